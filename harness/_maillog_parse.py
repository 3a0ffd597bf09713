"""Parser of Postfix log lines into the events of :mod:`harness._maillog_events`. Private: import from
:mod:`harness.maillog`.

Accepted line prefixes: Postfix's own ``maillog_file`` form (Postfix 3.4+) and BSD syslog
(``Nov 30 10:53:17 host postfix/smtp[110]: …``), rsyslog's ISO 8601 form
(``2026-11-30T10:53:17.123+00:00 host postfix/smtp[110]: …``) and RFC 5424
(``<22>1 2026-11-30T10:53:17Z host postfix/smtp 110 - - …``), each optionally behind the RFC 3339 timestamp
``docker logs --timestamps`` adds. Message forms come from the Postfix source of releases 2.11 to 3.10:
``src/global/log_adhoc.c`` (``status=`` lines), ``src/tls/tls_client.c`` and ``src/tls/tls_verify.c``
(TLS lines).
"""

from __future__ import annotations

__all__ = ["has_syslog_prefix", "parse_line", "parse_lines", "parse_message", "queue_id_of", "queue_ids_mentioned"]

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from harness._maillog_events import (
    CertVerifyFailure,
    ChainLine,
    Delivery,
    Fatal,
    LogEvent,
    MasterStarted,
    MessageId,
    Other,
    PeerCertificate,
    Pickup,
    QueueActive,
    QueueNote,
    SubjectAltName,
    TlsEstablished,
    Warning,
)

# --- line prefix --------------------------------------------------------------------------------------------

_ISO_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_DOCKER_PREFIX = re.compile(rf"(?P<time>{_ISO_TIME})\s+")
_SERVICE = r"[\w.+-]+(?:/[\w.+-]+)*"
# BSD syslog / Postfix's own maillog_file format, and rsyslog's high-precision ISO 8601 variant.
_SYSLOG_LINE = re.compile(
    rf"(?:<\d{{1,3}}>)?(?P<syslog_time>[A-Z][a-z]{{2}} +\d{{1,2}} \d\d:\d\d:\d\d(?:\.\d+)?|{_ISO_TIME})"
    rf" (?P<host>\S+) (?P<service>{_SERVICE})(?:\[(?P<pid>\d+)\])?: (?P<text>.*)"
)
# RFC 5424 §6: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
_RFC5424_LINE = re.compile(
    rf"(?:<\d{{1,3}}>)?1 (?P<syslog_time>{_ISO_TIME}|-) (?P<host>\S+) (?P<service>{_SERVICE})"
    r" (?P<pid>\d+|-) \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?:\ufeff)?(?P<text>.*))?"
)
# Programs of a Postfix installation, for services whose syslog_name does not start with "postfix".
_POSTFIX_PROGRAMS = frozenset(
    "anvil bounce cleanup discard dnsblog error flush lmtp local master oqmgr pickup pipe postdrop postfix"
    " postfix-script postlog postlogd postmulti postqueue postscreen postsuper proxymap qmgr qmqpd scache"
    " sendmail showq smtp smtpd spawn tlsmgr tlsproxy trivial-rewrite verify virtual".split()
)

# --- message forms ------------------------------------------------------------------------------------------

# Short queue ids are upper-case hex; long ones (enable_long_queue_ids) are base-52 time, 'z', inode.
_QUEUE_ID = r"(?:[0-9A-F]{6,}|[0-9A-Za-z]{10,}z[0-9A-Za-z]+)"
_QUEUE_LINE = re.compile(rf"(?P<queue_id>{_QUEUE_ID}): (?P<message>.*)")
_QUEUE_ID_TOKEN = re.compile(rf"\b{_QUEUE_ID}\b")
# host[address]:port as Postfix's namaddr; the port is absent for smtpd clients.
_PEER = r"(?P<host>[^\s\[\]]*)\[(?P<address>[^\]\s]*)\](?::(?P<port>\d+))?"
_PEER_TEXT = r"(?P<peer>[^\s\[\]]*\[[^\]\s]*\](?::\d+)?)"
_SEVERITY = re.compile(r"(?P<severity>warning|error|fatal|panic): (?P<message>.*)")
_MASTER_STARTED = re.compile(r"daemon started -- version (?P<version>[^,\s]+)")
_TLS_ESTABLISHED = re.compile(
    rf"(?P<level>Anonymous|Untrusted|Trusted|Verified) TLS connection established (?P<direction>to|from)"
    rf" {_PEER}: (?P<protocol>\S+) with cipher (?P<cipher>\S+) \((?P<bits>\d+)/\d+ bits\)"
)
# tls_verify.c: "%s certificate verification failed for %s: num=%d:%s" and the unprefixed special cases
# (untrusted issuer, self-signed certificate …); OpenSSL 1.1.1 capitalises some texts.
_VERIFY_FAILURE = re.compile(
    rf"(?:(?:server|client) )?certificate verification failed for {_PEER}:"
    r" (?:depth=(?P<depth>\d+)[ :]\s*)?(?:num=(?P<num>\d+):)?(?P<reason>.*)",
    re.IGNORECASE,
)
_PEER_CERTIFICATE = re.compile(
    rf"{_PEER_TEXT}: subject_CN=(?P<subject_cn>.*?), issuer_CN=(?P<issuer_cn>.*?)"
    r"(?:, fingerprint=(?P<fingerprint>[0-9A-Fa-f:]+))?(?:, pkey_fingerprint=(?P<pkey>[0-9A-Fa-f:]+))?"
)
_CHAIN_LINE = re.compile(rf"{_PEER_TEXT}: depth=(?P<depth>\d+) verify=(?P<verify>\d+) subject=(?P<subject>.*)")
_SUBJECT_ALT_NAME = re.compile(rf"{_PEER_TEXT}: subjectAltName: (?P<name>.*)")
_PICKUP = re.compile(r"uid=(?P<uid>\d+) from=<(?P<sender>.*)>")
_MESSAGE_ID = re.compile(r"message-id=(?P<message_id>.*)")
_QUEUE_ACTIVE = re.compile(r"from=<(?P<sender>.*)>, size=(?P<size>\d+), nrcpt=(?P<nrcpt>\d+) \(queue active\)")
# log_adhoc.c: to=<>, [orig_to=<>,] relay=, [conn_use=,] delay=, delays=a/b/c/d, dsn=, status= (reason)
_DELIVERY = re.compile(
    r"to=<(?P<recipient>.*?)>, (?:orig_to=<(?P<orig>.*?)>, )?relay=(?P<relay>\S+?),"
    r" (?:conn_use=(?P<conn_use>\d+), )?delay=(?P<delay>[\d.]+), delays=(?P<delays>[\d./]+),"
    r" dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>[\w-]+)(?: (?P<rest>.*))?"
)
_RELAY = re.compile(rf"{_PEER}")


def parse_line(line: str) -> LogEvent | None:
    """Parse one log line.

    Args:
        line: a line as Postfix, syslog or ``docker logs --timestamps`` wrote it; a trailing line ending and
            trailing blanks are ignored.

    Returns:
        The most specific event for the line, or None when it is not a Postfix line (another program, a
        blank line, a line without a syslog prefix).
    """
    raw = line.rstrip("\r\n")
    text = raw.rstrip()
    time: datetime | None = None
    prefix = None
    # An ISO 8601 syslog time looks like Docker's prefix: take it as Docker's only if a syslog line follows.
    if docker := _DOCKER_PREFIX.match(text):
        prefix = _syslog_prefix(text[docker.end() :])
        time = _iso_time(docker["time"]) if prefix else None
    prefix = prefix or _syslog_prefix(text)
    if prefix is None:
        return None
    syslog_time = prefix["syslog_time"]
    if time is None and syslog_time[:1].isdigit():
        time = _iso_time(syslog_time)
    pid = prefix["pid"]
    common: dict[str, Any] = {
        "time": time,
        "syslog_time": syslog_time,
        "host": prefix["host"],
        "service": prefix["service"],
        "pid": int(pid) if pid and pid != "-" else None,
        "text": prefix["text"] or "",
        "raw": raw,
    }
    return _message_event(common["text"], common)


def _syslog_prefix(text: str) -> re.Match[str] | None:
    prefix = _SYSLOG_LINE.fullmatch(text) or _RFC5424_LINE.fullmatch(text)
    return prefix if prefix and _is_postfix(prefix["service"]) else None


def has_syslog_prefix(line: str, *, postfix: bool = False) -> bool:
    """Whether ``line`` starts with a syslog prefix of one of the accepted forms.

    Tells a line of another program (``dovecot: imap-login: …``) from a line without a prefix, such as the second
    half of a log line that a paste wrapped. A prefix with nothing after it (``… postfix/smtp[25291]:``, what a
    wrap right after the prefix leaves) counts.

    Args:
        line: the line.
        postfix: only a prefix of a Postfix program counts.
    """
    text = line.rstrip() + " "
    if docker := _DOCKER_PREFIX.match(text):
        text = text[docker.end() :] if _any_syslog_prefix(text[docker.end() :]) else text
    prefix = _SYSLOG_LINE.fullmatch(text) or _RFC5424_LINE.fullmatch(text)
    return prefix is not None and (not postfix or _is_postfix(prefix["service"]))


def _any_syslog_prefix(text: str) -> bool:
    return bool(_SYSLOG_LINE.fullmatch(text) or _RFC5424_LINE.fullmatch(text))


def parse_message(text: str, *, service: str, raw: str | None = None) -> LogEvent:
    """Parse a Postfix message that has no syslog prefix.

    posttls-finger(1) writes its messages to stderr as ``posttls-finger: <message>``; once the program name is
    removed, the message has the forms of the smtp client's log (the same ``src/tls`` code writes both).

    Args:
        text: the message, e.g. ``Untrusted TLS connection established to H[A]:25: TLSv1.3 with cipher …``.
        service: what the event's ``service`` is to say, e.g. ``posttls-finger``.
        raw: the whole line as read (default: ``text``).

    Returns:
        The most specific event for the message (:class:`Other` when it has none of the known forms); its
        ``time`` and ``pid`` are None and ``host`` is empty.
    """
    common: dict[str, Any] = {
        "time": None,
        "syslog_time": "",
        "host": "",
        "service": service,
        "pid": None,
        "text": text,
        "raw": text if raw is None else raw,
    }
    return _message_event(text, common)


def parse_lines(lines: str | Iterable[str]) -> list[LogEvent]:
    """Parse many lines (an iterable of lines, or one text with line breaks), dropping non-Postfix lines."""
    # split("\n"), not splitlines(): a remote reply quoted in a line may hold \x1c, \u2028 and the like.
    source = lines.split("\n") if isinstance(lines, str) else lines
    return [event for event in map(parse_line, source) if event is not None]


def _message_event(text: str, common: dict[str, Any]) -> LogEvent:
    if m := _SEVERITY.fullmatch(text):
        cls: type[Warning | Fatal] = Warning if m["severity"] in ("warning", "error") else Fatal
        return cls(**common, severity=m["severity"], message=m["message"])
    if m := _MASTER_STARTED.match(text):
        return MasterStarted(**common, version=m["version"])
    if m := _TLS_ESTABLISHED.match(text):
        return TlsEstablished(
            **common,
            **_peer(m),
            level=m["level"],
            direction=m["direction"],
            protocol=m["protocol"],
            cipher=m["cipher"],
            bits=int(m["bits"]),
        )
    if m := _VERIFY_FAILURE.fullmatch(text):
        return CertVerifyFailure(**common, **_peer(m), depth=_int(m["depth"]), num=_int(m["num"]), reason=m["reason"])
    if m := _PEER_CERTIFICATE.fullmatch(text):
        return PeerCertificate(
            **common,
            peer=m["peer"],
            subject_cn=m["subject_cn"],
            issuer_cn=m["issuer_cn"],
            fingerprint=m["fingerprint"],
            pkey_fingerprint=m["pkey"],
        )
    if m := _CHAIN_LINE.fullmatch(text):
        return ChainLine(
            **common, peer=m["peer"], depth=int(m["depth"]), verify=m["verify"] != "0", subject=m["subject"]
        )
    if m := _SUBJECT_ALT_NAME.fullmatch(text):
        return SubjectAltName(**common, peer=m["peer"], name=m["name"])
    if m := _QUEUE_LINE.fullmatch(text):
        return _queue_event(m["queue_id"], m["message"], common)
    return Other(**common)


def _queue_event(queue_id: str, message: str, common: dict[str, Any]) -> LogEvent:
    if m := _DELIVERY.fullmatch(message):
        relay = _RELAY.fullmatch(m["relay"])
        return Delivery(
            **common,
            queue_id=queue_id,
            recipient=m["recipient"],
            orig_recipient=m["orig"],
            relay=m["relay"],
            relay_host=(relay["host"] or None) if relay else None,
            relay_address=relay["address"] if relay else None,
            relay_port=_int(relay["port"]) if relay else None,
            conn_use=_int(m["conn_use"]),
            delay=float(m["delay"]),
            delays=tuple(float(part) for part in m["delays"].split("/")),
            dsn=m["dsn"],
            status=m["status"],
            reason=_final_parenthesised(m["rest"] or ""),
        )
    if m := _PICKUP.fullmatch(message):
        return Pickup(**common, queue_id=queue_id, uid=int(m["uid"]), sender=m["sender"])
    if m := _MESSAGE_ID.fullmatch(message):
        return MessageId(**common, queue_id=queue_id, message_id=_strip_brackets(m["message_id"]))
    if m := _QUEUE_ACTIVE.fullmatch(message):
        return QueueActive(**common, queue_id=queue_id, sender=m["sender"], size=int(m["size"]), nrcpt=int(m["nrcpt"]))
    return QueueNote(**common, queue_id=queue_id, message=message)


def _final_parenthesised(rest: str) -> str:
    """The text inside the final parentheses of ``rest`` (``rest`` itself when it has none).

    log_adhoc.c writes `` (reason)`` last, so when ``rest`` is one parenthesised group the reason is taken
    whole, even if it holds unbalanced parentheses (remote replies can). Otherwise the final group is found by
    balancing parentheses from the end.
    """
    if rest.startswith("(") and rest.endswith(")"):
        return rest[1:-1]
    depth = 0
    for index in range(len(rest) - 1, -1, -1) if rest.endswith(")") else ():
        depth += {")": 1, "(": -1}.get(rest[index], 0)
        if depth == 0:
            return rest[index + 1 : -1]
    return rest


def _peer(m: re.Match[str]) -> dict[str, Any]:
    return {"peer_host": m["host"], "peer_address": m["address"], "peer_port": _int(m["port"])}


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _iso_time(text: str) -> datetime | None:
    """An aware datetime; None for an invalid time or one without a zone (it cannot be placed)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _strip_brackets(text: str) -> str:
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text


def _is_postfix(service: str) -> bool:
    # Postfix always logs as syslog_name/program; a lone "sendmail[1]" is another MTA.
    parts = service.split("/")
    return len(parts) > 1 and (parts[0].startswith("postfix") or parts[-1] in _POSTFIX_PROGRAMS)


def queue_id_of(event: LogEvent) -> str | None:
    """The queue id an event carries, None for lines without one (TLS lines, warnings …)."""
    if isinstance(event, Pickup | MessageId | QueueActive | Delivery | QueueNote):
        return event.queue_id
    return None


def queue_ids_mentioned(text: str) -> set[str]:
    """Every token of ``text`` shaped like a queue id (``queued as ABC``, ``notification: DEF`` …)."""
    return set(_QUEUE_ID_TOKEN.findall(text))
