"""A case's timeline: Postfix's log and the fake world's events merged in time order.

:func:`build_timeline` is a pure function of a :class:`~harness.results.CaseResult`: it reads
``postfix_log`` (``<Docker RFC 3339 timestamp> <syslog line>``, parsed with :func:`harness.maillog.parse_line`)
and ``peer_events`` (``<Docker timestamp> <JSON event>``, see :mod:`harness.peer`) and returns
:class:`TraceEntry` values for the terminal (:mod:`harness.report`) and the HTML report
(:mod:`harness.html_report`) to render. Nothing here does I/O.

Times: a Postfix line is placed at its Docker timestamp (when Postfix's ``maillog_file`` reached the container's
stdout, typically well under a millisecond after the event); a peer event at its own ``t`` (Unix time, taken
where it happened), else at its Docker timestamp. Both clocks are the host's, so the merge is meaningful to about
a millisecond; entries of equal time keep their order of appearance.
"""

from __future__ import annotations

__all__ = [
    "CHAIN_LABEL",
    "LEAF_NAMES_LABEL",
    "LOOPBACK_NOTE",
    "DnsQuery",
    "TraceEntry",
    "build_timeline",
    "certificate_lines",
    "dns_queries",
    "peer_events",
    "split_docker_time",
]

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.maillog import (
    CertVerifyFailure,
    ChainLine,
    Delivery,
    Fatal,
    LogEvent,
    MasterStarted,
    MessageId,
    PeerCertificate,
    Pickup,
    QueueActive,
    QueueNote,
    SubjectAltName,
    TlsEstablished,
    Warning,
    parse_line,
)
from harness.results import CaseResult

#: How the names of a server's leaf certificate are introduced in reports (trace, failure details).
LEAF_NAMES_LABEL = "leaf certificate names:"
#: How the chain a server presents is introduced in the trace.
CHAIN_LABEL = "certificate chain it presents at STARTTLS (leaf first):"
#: Said once per case after the first connection whose client address is the server's own: every address of the
#: world is bound on the pod's loopback, and a connection to a local address leaves from that same address.
LOOPBACK_NOTE = (
    "the same address: every world address is on the pod's loopback, so Postfix's source is the server's own"
)
#: Server host → the subjects of its certificate chain, or the names of its leaf certificate.
_Names = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class TraceEntry:
    """One step of a case's story.

    Attributes:
        time: when it happened (UTC), None when the line carried no usable time.
        source: ``postfix`` (a Postfix log line), ``dns`` (a query to the fake DNS), ``smtp`` (a stage of a
            session at a fake SMTP server) or ``peer`` (the fake world itself: ready, errors).
        kind: what it is. Postfix: ``start``, ``queue``, ``verify`` (certificate verification failed), ``tls``
            (``… TLS connection established``), ``certificate``, ``note`` (a queue id's other lines, e.g. a
            soft TLS failure before the next MX host), ``status``, ``warning``, ``fatal``, ``log``. DNS:
            ``query``. SMTP: the stage (``connect``, ``ehlo``, ``helo``, ``starttls``, ``tls``, ``tls_failed``,
            ``mail``, ``rcpt``, ``data``, ``quit``, ``close``). Peer: ``ready``, ``error``, ``event``.
        who: who acted: ``postfix/smtp[221]``; ``fake DNS``; the SMTP server as Postfix names it,
            ``host[address]:port``; ``fake world``.
        text: one line. For Postfix, its message verbatim (after ``service[pid]: ``). The first connection of a case
            that comes from the server's own address says so (:data:`LOOPBACK_NOTE`, in its parenthesis).
        details: more lines, e.g. under a connection to a server the certificate chain it presents at STARTTLS
            and the names of its leaf certificate (what Postfix matches against the next-hop or MX host name).
        tone: how to colour it: ``sent``, ``deferred``, ``bounced`` (status lines), a TLS level (``Verified``,
            ``Trusted``, ``Untrusted``, ``Anonymous``), ``error``, ``warning``, or None.
        queue_id: the Postfix queue id the line names, if any.
        chain: for a connection to a server with a certificate, the subjects of the chain it presents at
            STARTTLS, leaf first (the story's order: it is known before Postfix logs its verdict on it).
        names: for such a connection, the names of the server's leaf certificate as Postfix matches them (DNS and
            IP subjectAltNames, or ``CN=…`` when there is no DNS subjectAltName).
    """

    time: datetime | None
    source: str
    kind: str
    who: str
    text: str
    details: tuple[str, ...] = ()
    tone: str | None = None
    queue_id: str | None = None
    chain: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsQuery:
    """One query the fake DNS answered (the peer's ``dns`` event; see :class:`harness.dns.ZoneResolver`).

    Attributes:
        time: when it was answered (UTC), None if unknown.
        qname: the name as asked (``fastmail.fm.``). qtype: ``MX``, ``A``, ``TLSA`` ….
        rcode: ``NOERROR``, ``NXDOMAIN`` …. ad: the AD bit of the reply (RFC 4035 §3.2.3).
        answers: the answer records in presentation form (``fastmail.fm. 300 IN MX 10 in1-smtp…``).
        client: ``address:port`` of the asking resolver.
    """

    time: datetime | None
    qname: str
    qtype: str
    rcode: str
    ad: bool
    answers: tuple[str, ...]
    client: str = ""

    def summary(self) -> str:
        """``MX query fastmail.fm. → NOERROR AD=0: MX 10 in1-smtp…, MX 20 in2-smtp…`` (TTL and class left out)."""
        records = ", ".join(_short_record(a, self.qname) for a in self.answers) or "no records"
        return f"{self.qtype} query {self.qname} → {self.rcode} AD={int(self.ad)}: {records}"


def split_docker_time(line: str) -> tuple[datetime | None, str]:
    """Split ``docker logs --timestamps``' RFC 3339 prefix from a line.

    Returns:
        The prefix as an aware datetime (None when the line has no such prefix) and the rest of the line.
    """
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[:4].isdigit() and head[4] == "-" and "T" in head:
        try:
            moment = datetime.fromisoformat(_micro(head))
        except ValueError:
            return None, line
        if moment.tzinfo is not None:
            return moment.astimezone(UTC), rest
    return None, line


def peer_events(lines: Iterable[str]) -> Iterator[tuple[datetime | None, dict[str, Any]]]:
    """The JSON events of the peer's log with their time (the event's ``t``, else the Docker timestamp).

    Lines that are not JSON objects with an ``event`` key (warnings, tracebacks) are skipped.
    """
    for line in lines:
        docker_time, text = split_docker_time(line)
        if not text.startswith("{"):
            continue
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            t = event.get("t")
            if isinstance(t, int | float) and not isinstance(t, bool):
                yield datetime.fromtimestamp(t, UTC), event
            else:
                yield docker_time, event


def dns_queries(case: CaseResult) -> list[DnsQuery]:
    """Every DNS query the fake DNS answered during the case, in time order."""
    queries = [_dns_query(time, e) for time, e in peer_events(case.peer_events) if e["event"] == "dns"]
    return sorted(queries, key=lambda q: _sort_time(q.time))


def build_timeline(case: CaseResult) -> tuple[TraceEntry, ...]:
    """The case's story in time order: DNS queries, SMTP sessions, Postfix's TLS and status lines.

    Args:
        case: a finished case; reads ``postfix_log``, ``peer_events``, ``server_chains`` and ``server_names``.

    Returns:
        Every Postfix line and every peer event except the per-session summaries (their content is in the
        stage events), ordered by time; equal times keep log order, Postfix lines first.
    """
    entries = list(_postfix_entries(case.postfix_log))
    entries += _peer_entries(case.peer_events, case.server_chains, case.server_names)
    order = {id(entry): index for index, entry in enumerate(entries)}
    return tuple(sorted(entries, key=lambda e: (_sort_time(e.time), order[id(e)])))


# --- Postfix ----------------------------------------------------------------------------------------------


def _postfix_entries(lines: Iterable[str]) -> Iterator[TraceEntry]:
    last: datetime | None = None
    for line in lines:
        event = parse_line(line)
        if event is None:
            time, text = split_docker_time(line)
            last = time or last
            if text.strip():
                yield TraceEntry(last, "postfix", "log", "", text.strip())
            continue
        last = event.time.astimezone(UTC) if event.time else last
        who = f"{event.service}[{event.pid}]" if event.pid is not None else event.service
        kind, tone, queue_id = _classify(event)
        yield TraceEntry(last, "postfix", kind, who, event.text, tone=tone, queue_id=queue_id)


def _classify(event: LogEvent) -> tuple[str, str | None, str | None]:
    """(kind, tone, queue id) of a Postfix event."""
    if isinstance(event, Delivery):
        tone = event.status if event.status in ("sent", "deferred", "bounced") else "error"
        return "status", tone, event.queue_id
    if isinstance(event, TlsEstablished):
        return "tls", event.level, None
    if isinstance(event, CertVerifyFailure):
        return "verify", "error", None
    if isinstance(event, PeerCertificate | ChainLine | SubjectAltName):
        return "certificate", None, None
    if isinstance(event, Pickup | MessageId | QueueActive):
        return "queue", None, event.queue_id
    if isinstance(event, QueueNote):
        return "note", None, event.queue_id
    if isinstance(event, Fatal):
        return "fatal", "error", None
    if isinstance(event, Warning):
        return "warning", "warning", None
    if isinstance(event, MasterStarted):
        return "start", None, None
    return "log", None, None


# --- the peer: fake DNS and SMTP servers --------------------------------------------------------------------


def _peer_entries(lines: Iterable[str], chains: _Names, names: _Names) -> list[TraceEntry]:
    entries: list[TraceEntry] = []
    last: dict[str, Mapping[str, Any]] = {}  # session → its previous SMTP event
    loopback_noted = False
    for time, event in peer_events(lines):
        kind = event["event"]
        if kind == "dns":
            query = _dns_query(time, event)
            entries.append(TraceEntry(time, "dns", "query", "fake DNS", query.summary(), tone=_dns_tone(query)))
        elif kind == "smtp":
            session = str(event.get("session", ""))
            note = not loopback_noted and event.get("stage") == "connect" and _from_the_server_s_address(event)
            loopback_noted |= note
            entries.append(_smtp_entry(time, event, chains, names, previous=last.get(session), note_loopback=note))
            last[session] = event
        elif kind == "ready":
            entries.append(TraceEntry(time, "peer", "ready", "fake world", _ready_text(event)))
        elif kind == "error":
            entries.append(TraceEntry(time, "peer", "error", "fake world", str(event.get("message")), tone="error"))
        elif kind not in ("session", "stopped", "mark"):
            text = json.dumps({k: v for k, v in event.items() if k != "t"}, sort_keys=True)
            entries.append(TraceEntry(time, "peer", "event", "fake world", text))
    return entries


def _from_the_server_s_address(event: Mapping[str, Any]) -> bool:
    """Whether a connection's client address (``address:port``, ``[v6]:port``) is the server's own."""
    client, local = str(event.get("client", "")), str(event.get("local", ""))
    return bool(client) and _address(client) == _address(local)


def _address(address_port: str) -> str:
    return address_port[1:].partition("]")[0] if address_port.startswith("[") else address_port.rpartition(":")[0]


def _dns_query(time: datetime | None, event: Mapping[str, Any]) -> DnsQuery:
    answers = event.get("answers")
    return DnsQuery(
        time=time,
        qname=str(event.get("qname", "")),
        qtype=str(event.get("qtype", "")),
        rcode=str(event.get("rcode", "")),
        ad=bool(event.get("ad")),
        answers=tuple(str(a) for a in answers) if isinstance(answers, list) else (),
        client=str(event.get("client", "")),
    )


def _dns_tone(query: DnsQuery) -> str | None:
    return None if query.rcode == "NOERROR" else "warning"


def _smtp_entry(
    time: datetime | None,
    event: Mapping[str, Any],
    chains: _Names,
    names: _Names,
    *,
    previous: Mapping[str, Any] | None = None,
    note_loopback: bool = False,
) -> TraceEntry:
    stage = str(event.get("stage", ""))
    server = str(event.get("server", ""))
    who = _namaddr(server, str(event.get("local", "")))
    details: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    leaf_names: tuple[str, ...] = ()
    tone: str | None = None
    if stage == "connect":
        notes = [f"smtp[{event['client_pid']}] in Postfix's log"] if isinstance(event.get("client_pid"), int) else []
        notes += [LOOPBACK_NOTE] if note_loopback else []
        text = f"connection to {who} from {event.get('client')}" + (f" ({'; '.join(notes)})" if notes else "")
        chain, leaf_names = chains.get(server, ()), names.get(server, ())
        details = certificate_lines(chain, leaf_names)
    elif stage in ("ehlo", "helo"):
        text = f"{stage.upper()} {event.get('hostname')}"
    elif stage == "starttls":
        text = "STARTTLS"
    elif stage == "tls":
        sni = event.get("sni")
        text = f"TLS handshake done: {event.get('version')}, {event.get('cipher')}, SNI {sni or '(none)'}"
        text += ", client certificate presented" if event.get("client_cert") is True else ""
    elif stage == "tls_failed":
        text, tone = f"TLS handshake failed: {event.get('error')}", "error"
    elif stage in ("mail", "rcpt"):
        options = " ".join(str(o) for o in event.get("options") or ())
        verb = "MAIL FROM" if stage == "mail" else "RCPT TO"
        text = f"{verb}:<{event.get('address')}>" + (f" {options}" if options else "")
    elif stage == "data" and event.get("accepted") is not False:
        text = (
            f"DATA accepted: {event.get('size')} octets, Message-ID <{event.get('message_id')}>, "
            f"queued as {event.get('queue_id')}"
        )
        tone = "sent"
    elif stage == "data":
        text = f"DATA refused: {event.get('size')} octets, Message-ID <{event.get('message_id')}>"
    elif stage == "quit":
        text = "QUIT"
    elif stage == "close":
        text = _close_text(event, previous)
    else:  # greeting, data_command, auth …: the stage and what it carries
        fields = {k: v for k, v in event.items() if k not in _SMTP_COMMON and v is not None}
        verb = {"data_command": "DATA", "auth": "AUTH"}.get(stage, stage)
        text = " ".join([verb, *(f"{k}={v}" for k, v in fields.items() if k not in ("reply", "dropped"))])
    text, tone = _reply(event, text, tone)
    return TraceEntry(time, "smtp", stage, who, text, details=details, tone=tone, chain=chain, names=leaf_names)


_SMTP_COMMON = {"event", "stage", "t", "session", "server", "local", "client"}


def _close_text(event: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str:
    """The end of a connection. The server sees the client's hang-up as an error (a reset, or a broken pipe on its
    next write): after QUIT, or while it waited for the next command (Postfix leaving after a failed certificate
    check, say), that is the client's ordinary close. The error is kept where it means something: in the middle of
    the message content after DATA's 354, during a TLS handshake, or where nothing came before."""
    error = event.get("error")
    if not error:
        return "connection closed"
    if previous is not None and _awaiting_a_command(previous):
        return "connection closed by the client"
    return f"connection closed ({error})"


def _awaiting_a_command(event: Mapping[str, Any]) -> bool:
    """Whether, after this SMTP event of a session, the server was waiting for the client's next command."""
    stage, reply = event.get("stage"), event.get("reply")
    code = reply if isinstance(reply, int) and not isinstance(reply, bool) else None
    if event.get("dropped") or stage in ("tls_failed", "close"):
        return False
    if stage == "starttls":  # after 220 the TLS handshake was under way
        return code is not None and code // 100 != 2
    if stage == "data_command":  # after 354 the message content was coming
        return code is not None and code // 100 != 3
    return True


def _reply(event: Mapping[str, Any], text: str, tone: str | None) -> tuple[str, str | None]:
    """The server's reply when it refused (4xx/5xx) or dropped the connection instead of replying."""
    reply = event.get("reply")
    if event.get("dropped"):
        return f"{text}: the server dropped the connection instead of replying", "error"
    if isinstance(reply, int) and not isinstance(reply, bool) and reply >= 400:
        return f"{text}: the server replied {reply}", "error" if reply >= 500 else "warning"
    if event.get("stage") in ("greeting", "data_command") and isinstance(reply, int):
        return f"{text}: {reply}", tone
    return text, tone


def certificate_lines(chain: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    """The chain a server presents and its leaf's names, as lines for a report::

        certificate chain it presents at STARTTLS (leaf first):
          [0] /C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com
          [1] /C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA
        leaf certificate names: *.messagingengine.com, messagingengine.com

    Either part is left out when unknown.
    """
    lines = [CHAIN_LABEL, *(f"  [{i}] {s}" for i, s in enumerate(chain))]
    return (*(lines if chain else ()), *((f"{LEAF_NAMES_LABEL} {', '.join(names)}",) if names else ()))


def _ready_text(event: Mapping[str, Any]) -> str:
    endpoints = [e for e in event.get("endpoints") or () if isinstance(e, dict)]
    servers = ", ".join(_namaddr(str(e.get("host")), _join(str(e.get("address")), e.get("port"))) for e in endpoints)
    dns = event.get("dns") if isinstance(event.get("dns"), dict) else {}
    assert isinstance(dns, dict)
    dns_at = _join(str(dns.get("address")), dns.get("port")) if dns else "?"
    return f"ready: DNS at {dns_at}; SMTP servers {servers or '(none)'}"


# --- small helpers -----------------------------------------------------------------------------------------


def _namaddr(host: str, address_port: str) -> str:
    """Postfix's form of a server: ``host[address]:port``, from the peer's ``address:port`` (``[v6]:port``)."""
    if address_port.startswith("["):
        address, _, port = address_port[1:].partition("]:")
    else:
        address, _, port = address_port.rpartition(":")
    return f"{host}[{address}]:{port}"


def _join(address: str, port: object) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _short_record(record: str, qname: str) -> str:
    """``fastmail.fm. 300 IN MX 10 x.`` → ``MX 10 x.``; the owner is kept when it is not the query name."""
    parts = record.split(None, 3)
    if len(parts) < 4 or parts[2] != "IN":
        return record
    owner, rest = parts[0], parts[3]
    return rest if owner.lower().rstrip(".") == qname.lower().rstrip(".") else f"{owner} {rest}"


def _micro(stamp: str) -> str:
    """Cut an RFC 3339 fraction to microseconds (Docker writes nanoseconds)."""
    if "." not in stamp:
        return stamp
    head, _, tail = stamp.partition(".")
    digits = len(tail) - len(tail.lstrip("0123456789"))
    return f"{head}.{tail[: min(digits, 6)]}{tail[digits:]}"


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _sort_time(time: datetime | None) -> datetime:
    return time or _EPOCH
