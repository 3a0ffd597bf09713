"""Tests of harness.maillog: line forms of Postfix 2.11 (the seed report), 3.5, 3.7 and 3.10; the tracker.

Lines written here follow postfix-tls-notes.md (LAB-observed forms where marked there) and the Postfix source.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.maillog import (
    CertVerifyFailure,
    ChainLine,
    Delivery,
    DeliveryTracker,
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
    parse_line,
    parse_lines,
)

SEED_LOG = Path(__file__).parent.parent / "data" / "seed-smtp-tls.log"
IN1 = "in1-smtp.messagingengine.com[66.111.4.74]:25"
IN2 = "in2-smtp.messagingengine.com[192.0.2.20]:25"
TLS13 = (
    "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
    " server-signature RSA-PSS (2048 bits) server-digest SHA256"
)


def _log(*messages: str) -> list[str]:
    """Prefix ``service[pid]: text`` messages the way maillog_file writes them."""
    return [f"Nov 30 10:53:17 vm postfix/{m}" for m in messages]


def _parse(line: str) -> LogEvent:
    event = parse_line(line)
    assert event is not None, line
    return event


def _injected(queue_id: str, message_id: str, release: str = "3.7.11") -> list[str]:
    return _log(
        f"master[104]: daemon started -- version {release}, configuration /etc/postfix",
        f"pickup[105]: {queue_id}: uid=0 from=<sender@example.test>",
        f"cleanup[108]: {queue_id}: message-id=<{message_id}>",
        f"qmgr[106]: {queue_id}: from=<sender@example.test>, size=230, nrcpt=1 (queue active)",
    )


def _tracker(lines: list[str]) -> DeliveryTracker:
    tracker = DeliveryTracker()
    tracker.feed_all(lines)
    return tracker


# --- the seed log (Postfix 2.11, smtp_tls_loglevel 2, syslog with trailing blanks) ------------------------


def test_seed_log_is_the_shared_copy() -> None:
    shared = Path("/work/shared/cases/seed/smtp-tls.log")
    if not shared.exists():
        pytest.skip("the shared seed case is not on this machine (CI)")
    assert SEED_LOG.read_bytes() == shared.read_bytes()


def test_seed_log_events() -> None:
    events = parse_lines(SEED_LOG.read_text())
    assert len(events) == 32  # every line is a Postfix line
    chain = [e for e in events if isinstance(e, ChainLine)]
    assert [(c.depth, c.verify) for c in chain] == [(2, True), (1, True), (0, True)]
    assert chain[2].subject == "/C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com"
    assert chain[2].peer == IN1
    assert [e.name for e in events if isinstance(e, SubjectAltName)] == [
        "*.messagingengine.com",
        "messagingengine.com",
        "mail.messagingengine.com",
        "dav.messagingengine.com",
        "caldav.messagingengine.com",
        "carddav.messagingengine.com",
    ]
    (cert,) = [e for e in events if isinstance(e, PeerCertificate)]
    assert (cert.subject_cn, cert.issuer_cn) == (
        "*.messagingengine.com",
        "DigiCert SHA2 High Assurance Server CA",
    )
    assert cert.fingerprint == "D8:F5:7E:43:A8:DA:29:22:6B:7E:90:A6:31:86:C8:CD"
    assert cert.pkey_fingerprint == "49:07:46:E5:F1:35:C2:96:75:09:67:BE:D9:FE:DB:46"
    (tls,) = [e for e in events if isinstance(e, TlsEstablished)]
    assert (tls.level, tls.direction, tls.peer_host, tls.peer_address, tls.peer_port) == (
        "Trusted",
        "to",
        "in1-smtp.messagingengine.com",
        "66.111.4.74",
        25,
    )
    assert (tls.protocol, tls.cipher, tls.bits) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", 256)
    assert tls.raw.endswith("bits) ")  # raw keeps the trailing blank; fields do not
    assert events[0].syslog_time == "Feb 25 21:57:22" and events[0].host == "mail" and events[0].time is None
    assert {e.service for e in events} == {"postfix/smtp", "postfix/tlsmgr"}


def test_seed_log_delivery_and_attempt() -> None:
    tracker = _tracker(SEED_LOG.read_text().splitlines())
    attempt = tracker.attempt("D33A02504112", "user@fastmail.fm")
    assert attempt is not None
    d = attempt.delivery
    assert (d.relay_host, d.relay_address, d.relay_port) == (
        "in1-smtp.messagingengine.com",
        "66.111.4.74",
        25,
    )
    assert (d.delay, d.delays, d.dsn, d.status) == (8.4, (0.02, 0.0, 8.4, 0.0), "4.7.5", "deferred")
    assert d.reason == "Server certificate not verified"
    # The seed report's confusing pair: a Trusted session and a deferral for an unverified certificate.
    assert attempt.tls_level == "Trusted" and attempt.verify_failures == []
    assert attempt.lines[-1] == d.raw and len(attempt.lines) == 29  # smtp[25291]'s lines, not tlsmgr's
    assert tracker.lines_for("D33A02504112") == attempt.lines
    assert tracker.fed == 32 and tracker.version is None


# --- line prefixes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "time", "syslog_time", "host", "service", "pid"),
    [
        (
            "2026-11-30T10:53:17.123456789Z Nov 30 10:53:17 vm postfix/smtp[110]: connect to x",
            datetime(2026, 11, 30, 10, 53, 17, 123456, tzinfo=UTC),
            "Nov 30 10:53:17",
            "vm",
            "postfix/smtp",
            110,
        ),
        (
            "2026-11-30T10:53:17.123+00:00 mx1 postfix/smtp[1]: connect to x",
            datetime(2026, 11, 30, 10, 53, 17, 123000, tzinfo=UTC),
            "2026-11-30T10:53:17.123+00:00",
            "mx1",
            "postfix/smtp",
            1,
        ),
        (
            "<22>1 2026-11-30T10:53:17.5Z mx1 postfix/smtp 4711 - - connect to x",
            datetime(2026, 11, 30, 10, 53, 17, 500000, tzinfo=UTC),
            "2026-11-30T10:53:17.5Z",
            "mx1",
            "postfix/smtp",
            4711,
        ),
        ("Nov  3 01:02:03 vm postfix-out/smtp[7]: connect to x", None, "Nov  3 01:02:03", "vm",
         "postfix-out/smtp", 7),
        ("Nov 3 01:02:03 vm postfix/submission/smtpd[8]: connect to x", None, "Nov 3 01:02:03", "vm",
         "postfix/submission/smtpd", 8),
        ("Nov 30 10:53:17 vm mailout/smtp[9]: connect to x", None, "Nov 30 10:53:17", "vm",
         "mailout/smtp", 9),
        ("Nov 30 10:53:17 vm postfix/postlog: starting the Postfix mail system", None, "Nov 30 10:53:17",
         "vm", "postfix/postlog", None),
    ],
)  # fmt: skip
def test_line_prefixes(
    line: str, time: datetime | None, syslog_time: str, host: str, service: str, pid: int | None
) -> None:
    event = _parse(line)
    assert (event.time, event.syslog_time, event.host, event.service, event.pid) == (
        time,
        syslog_time,
        host,
        service,
        pid,
    )
    assert event.raw == line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "random text",
        '{"event": "session", "peer": "192.0.2.1"}',
        "Nov 30 10:53:17 vm dovecot: lmtp(42): Connect from local",
        "Nov 30 10:53:17 vm sshd[42]: Accepted publickey for root",
        "2026-11-30T10:53:17Z postfix/smtp[1]: no host field",
    ],
)
def test_non_postfix_lines_are_none(line: str) -> None:
    assert parse_line(line) is None


# --- message forms ------------------------------------------------------------------------------------------


def test_queue_lines_of_one_message() -> None:
    pickup, message_id, active = (_parse(line) for line in _injected("A32DE17604A", "id-1@example.test")[1:])
    assert isinstance(pickup, Pickup) and (pickup.queue_id, pickup.uid, pickup.sender) == (
        "A32DE17604A",
        0,
        "sender@example.test",
    )
    assert isinstance(message_id, MessageId) and message_id.message_id == "id-1@example.test"
    assert isinstance(active, QueueActive) and (active.sender, active.size, active.nrcpt) == (
        "sender@example.test",
        230,
        1,
    )
    (removed,) = (_parse(line) for line in _log("qmgr[106]: A32DE17604A: removed"))
    assert isinstance(removed, QueueNote) and removed.message == "removed"
    assert removed.text == "A32DE17604A: removed"  # text is always the whole message part


def test_master_started_and_other_lines() -> None:
    started, script, connect = (
        _parse(line)
        for line in _log(
            "master[104]: daemon started -- version 3.7.11, configuration /etc/postfix",
            "postfix-script[103]: starting the Postfix mail system",
            "smtp[110]: connect to mx.example.test[192.0.2.1]:25: Connection refused",
        )
    )
    assert isinstance(started, MasterStarted) and started.version == "3.7.11"
    assert isinstance(script, Other) and isinstance(connect, Other)


def test_long_queue_id() -> None:
    (event,) = parse_lines(_log("qmgr[106]: 4T1x2y3z4bz9abc: removed"))
    assert isinstance(event, QueueNote) and event.queue_id == "4T1x2y3z4bz9abc"


def test_anvil_statistics_is_not_a_queue_line() -> None:
    assert type(_parse(_log("anvil[9]: statistics: max connection rate 1/60s for (smtp:192.0.2.1)")[0])) is Other


@pytest.mark.parametrize(
    ("relay", "host", "address", "port"),
    [
        ("none", None, None, None),
        ("in1-smtp.messagingengine.com[66.111.4.74]:25", "in1-smtp.messagingengine.com", "66.111.4.74", 25),
        ("[192.0.2.1]:587", None, "192.0.2.1", 587),
        ("mx[2001:db8::1]:25", "mx", "2001:db8::1", 25),
        ("private/dovecot-lmtp", None, None, None),
        ("mail.example.com[private/dovecot-lmtp]", "mail.example.com", "private/dovecot-lmtp", None),
        ("local", None, None, None),
    ],
)
def test_delivery_relay_forms(relay: str, host: str | None, address: str | None, port: int | None) -> None:
    line = _log(
        f"smtp[110]: A32DE17604A: to=<b@nowhere.test>, relay={relay}, delay=0.15,"
        " delays=0.12/0.03/0/0, dsn=2.0.0, status=sent (ok)"
    )[0]
    event = _parse(line)
    assert isinstance(event, Delivery)
    assert (event.relay, event.relay_host, event.relay_address, event.relay_port) == (
        relay,
        host,
        address,
        port,
    )


def test_delivery_fields_with_orig_to_and_conn_use() -> None:
    event = _parse(
        _log(
            "smtp[110]: A32DE17604A: to=<b@example.net>, orig_to=<alias@example.test>,"
            " relay=mx.example.net[192.0.2.7]:25, conn_use=2, delay=123, delays=100/0.03/11/12,"
            " dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F1A2B3C4D)"
        )[0]
    )
    assert isinstance(event, Delivery)
    assert (event.recipient, event.orig_recipient, event.conn_use) == (
        "b@example.net",
        "alias@example.test",
        2,
    )
    assert (event.delay, event.delays) == (123.0, (100.0, 0.03, 11.0, 12.0))
    assert event.reason == "250 2.0.0 Ok: queued as 4F1A2B3C4D"


@pytest.mark.parametrize(
    ("rest", "reason"),
    [
        (
            "(host mx[192.0.2.1] said: 550 5.1.1 <u@x>: User unknown (in reply to RCPT TO command))",
            "host mx[192.0.2.1] said: 550 5.1.1 <u@x>: User unknown (in reply to RCPT TO command)",
        ),
        ("(451 4.3.0 odd reply (try later (in reply to end of DATA command))",
         "451 4.3.0 odd reply (try later (in reply to end of DATA command)"),
        ("(Host or domain name not found. Name service error for name=nowhere.test type=MX: Host not"
         " found, try again)",
         "Host or domain name not found. Name service error for name=nowhere.test type=MX: Host not"
         " found, try again"),
    ],
)  # fmt: skip
def test_delivery_reason_is_the_final_parenthesised_text(rest: str, reason: str) -> None:
    line = _log(
        "smtp[110]: A32DE17604A: to=<b@nowhere.test>, relay=none, delay=0.15, delays=0.12/0.03/0/0,"
        f" dsn=4.4.3, status=deferred {rest}"
    )[0]
    event = _parse(line)
    assert isinstance(event, Delivery) and event.reason == reason


@pytest.mark.parametrize(
    ("message", "depth", "num", "reason"),
    [
        (f"server certificate verification failed for {IN1}: num=62:hostname mismatch", None, 62,
         "hostname mismatch"),
        (f"certificate verification failed for {IN1}: untrusted issuer /C=US/O=Example/CN=Other CA", None,
         None, "untrusted issuer /C=US/O=Example/CN=Other CA"),
        (f"server certificate verification failed for {IN1}: certificate has expired", None, None,
         "certificate has expired"),
        # OpenSSL 1.1.1 capitalises some texts
        (f"Server certificate verification failed for {IN1}: num=62:Hostname mismatch", None, 62,
         "Hostname mismatch"),
        (f"certificate verification failed for {IN1}: depth=0 num=65:no matching DANE TLSA records", 0, 65,
         "no matching DANE TLSA records"),
    ],
)  # fmt: skip
def test_certificate_verification_failures(message: str, depth: int | None, num: int | None, reason: str) -> None:
    event = _parse(_log(f"smtp[110]: {message}")[0])
    assert isinstance(event, CertVerifyFailure)
    assert (event.peer_host, event.peer_address, event.peer_port) == (
        "in1-smtp.messagingengine.com",
        "66.111.4.74",
        25,
    )
    assert (event.depth, event.num, event.reason) == (depth, num, reason)


def test_tls_established_from_a_client() -> None:
    event = _parse(_log("smtpd[9]: Anonymous TLS connection established from client.test[192.0.2.5]: " + TLS13)[0])
    assert isinstance(event, TlsEstablished)
    assert (event.level, event.direction, event.peer_port, event.protocol) == (
        "Anonymous",
        "from",
        None,
        "TLSv1.3",
    )


@pytest.mark.parametrize(
    ("message", "cls", "severity", "text"),
    [
        ("warning: TLS library problem: error:0A000086:SSL routines::certificate verify failed:", Warning,
         "warning", "TLS library problem: error:0A000086:SSL routines::certificate verify failed:"),
        ("error: open database /etc/postfix/tls_policy.db: No such file or directory", Warning, "error",
         "open database /etc/postfix/tls_policy.db: No such file or directory"),
        ("fatal: bad string length 0 < 1: smtp_tls_security_level =", Fatal, "fatal",
         "bad string length 0 < 1: smtp_tls_security_level ="),
        ("panic: myfree: corrupt or unallocated memory block", Fatal, "panic",
         "myfree: corrupt or unallocated memory block"),
    ],
)  # fmt: skip
def test_warnings_and_fatals(message: str, cls: type[Warning | Fatal], severity: str, text: str) -> None:
    event = _parse(_log(f"smtp[110]: {message}")[0])
    assert type(event) is cls
    assert isinstance(event, Warning | Fatal) and (event.severity, event.message) == (severity, text)


# --- the tracker: Postfix 3.5 / 3.7 / 3.10 on the seed's fastmail layout ----------------------------------

VERIFY_FAILED = f"smtp[110]: server certificate verification failed for {IN1}: num=62:hostname mismatch"
DEFERRED = (
    f"smtp[110]: B1A2C3D4E5: to=<user@fastmail.fm>, relay={IN1}, delay=0.08, delays=0.01/0.01/0.05/0,"
    " dsn=4.7.5, status=deferred (Server certificate not verified)"
)


@pytest.mark.parametrize(
    ("release", "session", "level", "failures"),
    [
        ("3.5.25", [f"smtp[110]: Trusted TLS connection established to {IN1}: {TLS13}"], "Trusted", 0),
        ("3.7.11", [VERIFY_FAILED, f"smtp[110]: Untrusted TLS connection established to {IN1}: {TLS13}"],
         "Untrusted", 1),
        ("3.10.13", [VERIFY_FAILED, f"smtp[110]: Trusted TLS connection established to {IN1}: {TLS13}"],
         "Trusted", 1),
    ],
)  # fmt: skip
def test_secure_level_deferral_per_release(release: str, session: list[str], level: str, failures: int) -> None:
    tracker = _tracker(_injected("B1A2C3D4E5", "m1@mxharness.test", release) + _log(*session, DEFERRED))
    attempt = tracker.first_attempt("<m1@mxharness.test>", "User@Fastmail.FM")
    assert attempt is not None and tracker.version == release
    assert (attempt.delivery.status, attempt.delivery.dsn) == ("deferred", "4.7.5")
    assert attempt.delivery.reason == "Server certificate not verified"
    assert attempt.tls_level == level
    assert [f.num for f in attempt.verify_failures] == [62] * failures


def test_tls_not_offered_is_level_none() -> None:
    tracker = _tracker(
        _injected("C1A2C3D4E5", "m@x")
        + _log(
            "smtp[110]: C1A2C3D4E5: to=<u@x.test>, relay=mx.x.test[192.0.2.5]:25, delay=0.1,"
            " delays=0.05/0/0.05/0, dsn=4.7.4,"
            " status=deferred (TLS is required, but was not offered by host mx.x.test[192.0.2.5])"
        )
    )
    attempt = tracker.first_attempt("m@x", "u@x.test")
    assert attempt is not None and attempt.tls is None and attempt.tls_level == "none"
    assert attempt.delivery.reason == "TLS is required, but was not offered by host mx.x.test[192.0.2.5]"


def test_handshake_failure() -> None:
    tracker = _tracker(
        _injected("C2A2C3D4E5", "m@x")
        + _log(
            "smtp[110]: SSL_connect error to mx.x.test[192.0.2.5]:25: -1",
            "smtp[110]: warning: TLS library problem: error:0A000086:SSL routines::certificate verify failed:"
            "../ssl/statem/statem_clnt.c:1889:",
            "smtp[110]: C2A2C3D4E5: to=<u@x.test>, relay=mx.x.test[192.0.2.5]:25, delay=0.1,"
            " delays=0.05/0/0.05/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)",
        )
    )
    attempt = tracker.first_attempt("m@x", "u@x.test")
    assert attempt is not None and attempt.tls_level == "none"
    assert attempt.delivery.reason == "Cannot start TLS: handshake failure"
    assert len(attempt.lines) == 3 and "SSL_connect error" in attempt.lines[0]
    assert [w.message.split(":")[0] for w in tracker.warnings] == ["TLS library problem"]


def test_nxdomain_bounce_and_its_notice() -> None:
    lines = _injected("D1A2C3D4E5", "m@x") + _log(
        "smtp[110]: D1A2C3D4E5: to=<u@nowhere.test>, relay=none, delay=0.03, delays=0.01/0/0.02/0, dsn=5.4.4,"
        " status=bounced (Host or domain name not found. Name service error for name=nowhere.test type=A:"
        " Host not found)",
        "cleanup[108]: E2A2C3D4E5: message-id=<20261130105317.E2A2C3D4E5@vm>",
        "bounce[111]: D1A2C3D4E5: sender non-delivery notification: E2A2C3D4E5",
        "qmgr[106]: D1A2C3D4E5: removed",
    )
    tracker = _tracker(lines)
    attempt = tracker.first_attempt("m@x", "u@nowhere.test")
    assert attempt is not None
    d = attempt.delivery
    assert (d.relay, d.relay_host, d.dsn, d.status, attempt.tls_level) == (
        "none",
        None,
        "5.4.4",
        "bounced",
        "none",
    )
    assert tracker.queue_id_for("m@x") == "D1A2C3D4E5"
    assert tracker.queue_id_for("20261130105317.E2A2C3D4E5@vm") == "E2A2C3D4E5"
    assert tracker.lines_for("D1A2C3D4E5") == [*lines[1:5], lines[6], lines[7]]
    assert tracker.lines_for("E2A2C3D4E5") == [
        lines[5],
        lines[6],
    ]  # its cleanup line and the notice naming it


SENT = "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F1A2B3C4D)"
NOT_VERIFIED = "dsn=4.7.5, status=deferred (Server certificate not verified)"


def _two_mx(second_level: str, outcome: str) -> list[str]:
    """in1 fails the name check (3.7 form); the same smtp process moves on to in2 within the attempt."""
    in2_failure = f"smtp[120]: server certificate verification failed for {IN2}: num=62:hostname mismatch"
    return _injected("F1A2C3D4E5", "m@x") + _log(
        f"smtp[120]: server certificate verification failed for {IN1}: num=62:hostname mismatch",
        f"smtp[120]: Untrusted TLS connection established to {IN1}: {TLS13}",
        "smtp[120]: F1A2C3D4E5: Server certificate not verified",
        *([in2_failure] if second_level == "Untrusted" else []),
        f"smtp[120]: {second_level} TLS connection established to {IN2}: {TLS13}",
        f"smtp[120]: F1A2C3D4E5: to=<user@fastmail.fm>, relay={IN2}, delay=0.2, delays=0/0/0/0, {outcome}",
    )


def test_two_mx_first_fails_second_delivers() -> None:
    attempt = _tracker(_two_mx("Verified", SENT)).first_attempt("m@x", "user@fastmail.fm")
    assert attempt is not None
    assert (attempt.delivery.status, attempt.delivery.relay_host) == ("sent", "in2-smtp.messagingengine.com")
    assert attempt.delivery.reason == "250 2.0.0 Ok: queued as 4F1A2B3C4D"
    assert attempt.tls is not None and (attempt.tls.level, attempt.tls.peer_address) == (
        "Verified",
        "192.0.2.20",
    )
    # every failure of the attempt, for every MX host tried, each with its peer
    assert [(f.peer_host, f.num) for f in attempt.verify_failures] == [("in1-smtp.messagingengine.com", 62)]
    soft = [e for e in map(parse_line, attempt.lines) if isinstance(e, QueueNote)]
    assert [n.message for n in soft] == ["Server certificate not verified"]
    assert len(attempt.lines) == 5


def test_two_mx_both_fail_defers_via_the_second() -> None:
    attempt = _tracker(_two_mx("Untrusted", NOT_VERIFIED)).first_attempt("m@x", "user@fastmail.fm")
    assert attempt is not None and attempt.delivery.relay_host == "in2-smtp.messagingengine.com"
    assert (attempt.delivery.status, attempt.tls_level) == ("deferred", "Untrusted")
    assert [f.peer_address for f in attempt.verify_failures] == ["66.111.4.74", "192.0.2.20"]


def test_first_attempt_is_kept_over_retries() -> None:
    retry = f"smtp[130]: B1A2C3D4E5: to=<user@fastmail.fm>, relay={IN1}, delay=300, delays=299/0/0.5/0.5, {SENT}"
    tracker = _tracker(
        _injected("B1A2C3D4E5", "m1")
        + _log(DEFERRED, f"smtp[130]: Verified TLS connection established to {IN1}: {TLS13}", retry)
    )
    attempt = tracker.first_attempt("m1", "user@fastmail.fm")
    assert attempt is not None and (attempt.delivery.status, attempt.tls_level) == ("deferred", "none")
    assert len(tracker.attempts) == 1
    assert tracker.lines_for("B1A2C3D4E5")[-2:] == _log(
        f"smtp[130]: Verified TLS connection established to {IN1}: {TLS13}", retry
    )  # the retry's lines are still there for a report
    assert tracker.first_attempt("unknown", "user@fastmail.fm") is None
    assert tracker.first_attempt("m1", "other@fastmail.fm") is None


def test_interleaved_smtp_processes_are_told_apart() -> None:
    mx_a, mx_b = "mx1.a.test[192.0.2.1]:25", "mx.b.test[192.0.2.9]:25"
    lines = (
        _injected("AAAA01", "a@x")
        + _injected("BBBB02", "b@x")
        + _injected("CCCC03", "c@x")
        + _log(
            f"smtp[201]: setting up TLS connection to {mx_a}",
            f"smtp[202]: setting up TLS connection to {mx_b}",
            f"smtp[202]: server certificate verification failed for {mx_b}: num=62:hostname mismatch",
            f"smtp[201]: Verified TLS connection established to {mx_a}: {TLS13}",
            f"smtp[202]: Untrusted TLS connection established to {mx_b}: {TLS13}",
            f"smtp[201]: AAAA01: to=<u@a.test>, relay={mx_a}, delay=0.1, delays=0/0/0.05/0.05, dsn=2.0.0,"
            " status=sent (250 2.0.0 Ok: queued as 1234ABC)",
            f"smtp[202]: BBBB02: to=<v@b.test>, relay={mx_b}, delay=0.1, delays=0/0/0.1/0, dsn=4.7.5,"
            " status=deferred (Server certificate not verified)",
            # smtp[201] takes the next request: same host, no STARTTLS this time, so no TLS line at all
            f"smtp[201]: CCCC03: to=<w@a.test>, relay={mx_a}, delay=0.1, delays=0/0/0.05/0.05, dsn=2.0.0,"
            " status=sent (250 2.0.0 Ok: queued as 5678DEF)",
        )
    )
    tracker = _tracker(lines)
    a, b, c = (tracker.first_attempt(m, r) for m, r in [("a@x", "u@a.test"), ("b@x", "v@b.test"), ("c@x", "w@a.test")])
    assert a is not None and b is not None and c is not None
    assert (a.tls_level, a.verify_failures) == ("Verified", [])
    assert (b.tls_level, [f.num for f in b.verify_failures]) == ("Untrusted", [62])
    assert c.tls_level == "none"  # smtp[201]'s earlier session must not leak into the next request
    assert all("smtp[202]" not in line for line in tracker.lines_for("AAAA01"))
    assert all("smtp[201]" not in line for line in tracker.lines_for("BBBB02"))
    assert c.lines == [lines[-1]]


def test_several_recipients_in_one_session_share_its_tls() -> None:
    tracker = _tracker(
        _injected("A1A2C3D4E5", "g@x")
        + _log(
            f"smtp[140]: Verified TLS connection established to {IN1}: {TLS13}",
            f"smtp[140]: A1A2C3D4E5: to=<a@fastmail.fm>, relay={IN1}, delay=0.1,"
            " delays=0/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1)",
            f"smtp[140]: A1A2C3D4E5: to=<b@fastmail.fm>, relay={IN1}, delay=0.1,"
            " delays=0/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1)",
        )
    )
    levels = [getattr(tracker.first_attempt("g@x", f"{r}@fastmail.fm"), "tls_level", None) for r in "ab"]
    assert levels == ["Verified", "Verified"]


def test_tracker_counts_every_line_fed() -> None:
    tracker = DeliveryTracker()
    assert tracker.feed("not a postfix line") is None
    assert isinstance(tracker.feed(_log("qmgr[1]: ABCDEF1A2C3D4E5: removed")[0]), QueueNote)
    tracker.feed(_parse(_log("smtp[110]: fatal: no smtp_tls_CAfile")[0]))
    assert tracker.fed == 3 and [f.message for f in tracker.fatals] == ["no smtp_tls_CAfile"]
