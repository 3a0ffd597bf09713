"""The timeline of a case (harness.trace), built from real Postfix logs and peer events of the seed scenarios."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from _report_cases import fastmail_defers, fastmail_sent
from _report_world import MESSAGINGENGINE_NAMES, with_world

from harness.results import CaseResult
from harness.trace import (
    LOOPBACK_NOTE,
    TraceEntry,
    build_timeline,
    certificate_lines,
    dns_queries,
    split_docker_time,
)


def _index(timeline: tuple[TraceEntry, ...], text: str, *, source: str | None = None) -> int:
    """Position of the first entry whose text contains ``text``."""
    for index, entry in enumerate(timeline):
        if text in entry.text and (source is None or entry.source == source):
            return index
    raise AssertionError(f"no entry with {text!r} in:\n" + "\n".join(e.text for e in timeline))


def _peer_line(event: dict[str, object], stamp: str = "2026-11-30T11:22:40.000000000Z") -> str:
    return f"{stamp} {json.dumps(event)}"


def _empty_case(**kwargs: object) -> CaseResult:
    return CaseResult(scenario="s", case="c", source_file="s.yaml", recipients=(), **kwargs)  # type: ignore[arg-type]


def test_the_timeline_is_in_time_order() -> None:
    timeline = build_timeline(fastmail_defers())
    times = [e.time for e in timeline]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert len(timeline) == 28


def test_the_timeline_tells_the_secure_defers_story_in_order() -> None:
    timeline = build_timeline(fastmail_defers())
    steps = [
        _index(timeline, "MX query fastmail.fm.", source="dns"),
        _index(timeline, "connection to in1-smtp.messagingengine.com[66.111.4.74]:25 from 66.111.4.74:53084"),
        _index(timeline, "STARTTLS", source="smtp"),
        _index(timeline, "verification failed for in1-smtp.messagingengine.com[66.111.4.74]:25: num=62:hostname"),
        _index(timeline, "Untrusted TLS connection established to in1-smtp.messagingengine.com"),
        _index(timeline, "connection to in2-smtp.messagingengine.com[192.0.2.10]:25"),
        _index(timeline, "status=deferred (Server certificate not verified)"),
    ]
    assert steps == sorted(steps)


def test_the_first_connection_from_the_server_s_own_address_says_why_once_per_case() -> None:
    connects = [e.text for e in build_timeline(fastmail_defers()) if e.kind == "connect"]
    assert connects == [
        "connection to in1-smtp.messagingengine.com[66.111.4.74]:25 from 66.111.4.74:53084 (the same address: every "
        "world address is on the pod's loopback, so Postfix's source is the server's own)",
        "connection to in2-smtp.messagingengine.com[192.0.2.10]:25 from 192.0.2.10:40628",  # said once is enough
    ]
    assert next(e.text for e in build_timeline(fastmail_sent()) if e.kind == "connect").endswith(f"({LOOPBACK_NOTE})")


def test_the_loopback_note_shares_the_parenthesis_of_the_smtp_process() -> None:
    connect = {"event": "smtp", "stage": "connect", "t": 0.5, "server": "mx.example", "local": "192.0.2.5:25",
               "client": "192.0.2.5:41000", "client_pid": 246}  # fmt: skip
    [entry] = build_timeline(_empty_case(peer_events=(_peer_line(connect),)))
    assert entry.text == (
        f"connection to mx.example[192.0.2.5]:25 from 192.0.2.5:41000 (smtp[246] in Postfix's log; {LOOPBACK_NOTE})"
    )


def test_a_connection_from_another_address_has_no_note() -> None:
    connect = {"event": "smtp", "stage": "connect", "t": 0.5, "server": "mx.example", "local": "192.0.2.5:25",
               "client": "192.0.2.50:41000"}  # fmt: skip
    [entry] = build_timeline(_empty_case(peer_events=(_peer_line(connect),)))
    assert entry.text == "connection to mx.example[192.0.2.5]:25 from 192.0.2.50:41000"


def test_a_dns_entry_has_qname_qtype_rcode_ad_bit_and_answers() -> None:
    timeline = build_timeline(fastmail_defers())
    entry = timeline[_index(timeline, "MX query")]
    assert (entry.source, entry.kind, entry.who, entry.tone) == ("dns", "query", "fake DNS", None)
    assert entry.text == (
        "MX query fastmail.fm. → NOERROR AD=0: MX 10 in1-smtp.messagingengine.com., MX 20 in2-smtp.messagingengine.com."
    )


def test_nodata_nxdomain_and_the_ad_bit_are_shown() -> None:
    events = [
        {"event": "dns", "t": 1.0, "qname": "in1.example.", "qtype": "AAAA", "rcode": "NOERROR", "ad": False,
         "answers": []},
        {"event": "dns", "t": 2.0, "qname": "nope.example.", "qtype": "MX", "rcode": "NXDOMAIN", "ad": False,
         "answers": []},
        {"event": "dns", "t": 3.0, "qname": "_25._tcp.mx.example.", "qtype": "TLSA", "rcode": "NOERROR", "ad": True,
         "answers": ["_25._tcp.mx.example. 300 IN TLSA 3 1 1 ABCD"]},
        {"event": "dns", "t": 4.0, "qname": "www.example.", "qtype": "A", "rcode": "NOERROR", "ad": False,
         "answers": ["www.example. 300 IN CNAME host.example.", "host.example. 300 IN A 192.0.2.7"]},
    ]  # fmt: skip
    timeline = build_timeline(_empty_case(peer_events=tuple(_peer_line(e) for e in events)))
    assert [e.text for e in timeline] == [
        "AAAA query in1.example. → NOERROR AD=0: no records",
        "MX query nope.example. → NXDOMAIN AD=0: no records",
        "TLSA query _25._tcp.mx.example. → NOERROR AD=1: TLSA 3 1 1 ABCD",
        "A query www.example. → NOERROR AD=0: CNAME host.example., host.example. A 192.0.2.7",
    ]
    assert [e.tone for e in timeline] == [None, "warning", None, None]


def test_a_connection_shows_the_chain_the_server_presents_and_its_leaf_names() -> None:
    timeline = build_timeline(with_world(fastmail_defers()))
    entry = timeline[_index(timeline, "connection to in1-smtp.messagingengine.com[66.111.4.74]:25")]
    assert (entry.source, entry.kind) == ("smtp", "connect")
    assert entry.details == (
        "certificate chain it presents at STARTTLS (leaf first):",
        "  [0] /C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com",
        "  [1] /C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA",
        "leaf certificate names: *.messagingengine.com, messagingengine.com, mail.messagingengine.com",
    )
    assert entry.chain[0].endswith("CN=*.messagingengine.com")
    assert entry.names == MESSAGINGENGINE_NAMES


def test_the_leaf_names_come_before_postfixs_hostname_mismatch_of_that_connection() -> None:
    timeline = build_timeline(with_world(fastmail_defers()))
    for host in ("in1-smtp.messagingengine.com[66.111.4.74]:25", "in2-smtp.messagingengine.com[192.0.2.10]:25"):
        connect = _index(timeline, f"connection to {host}")
        mismatch = _index(timeline, f"verification failed for {host}: num=62:hostname mismatch")
        assert connect < mismatch
        assert timeline[connect].names == MESSAGINGENGINE_NAMES


def test_the_tls_entry_has_version_cipher_and_sni() -> None:
    timeline = build_timeline(with_world(fastmail_defers()))
    entry = timeline[_index(timeline, "TLS handshake done", source="smtp")]
    assert entry.who == "in1-smtp.messagingengine.com[66.111.4.74]:25"
    assert entry.text == "TLS handshake done: TLSv1.3, TLS_AES_256_GCM_SHA384, SNI (none)"
    assert (entry.details, entry.chain, entry.names) == ((), (), ())


def test_certificate_lines_leave_out_what_is_unknown() -> None:
    assert certificate_lines((), ()) == ()
    assert certificate_lines((), ("CN=mx.example",)) == ("leaf certificate names: CN=mx.example",)
    assert certificate_lines(("/CN=mx.example",), ()) == (
        "certificate chain it presents at STARTTLS (leaf first):",
        "  [0] /CN=mx.example",
    )


def test_a_connection_without_known_names_shows_the_chain_only() -> None:
    timeline = build_timeline(fastmail_defers())  # a result without server_names (e.g. an older JSON document)
    entry = timeline[_index(timeline, "connection to in1-smtp")]
    assert entry.details[-1].startswith("  [1] /C=US/O=DigiCert Inc")
    assert entry.names == ()


def test_an_sni_sent_by_postfix_is_shown_and_a_server_without_a_known_chain_has_no_details() -> None:
    event = {"event": "smtp", "stage": "tls", "t": 1.0, "server": "mx.example", "local": "[2001:db8::5]:25",
             "client": "[2001:db8::5]:41000", "version": "TLSv1.2", "cipher": "ECDHE-RSA-AES256-GCM-SHA384",
             "sni": "mx.example"}  # fmt: skip
    connect = {"event": "smtp", "stage": "connect", "t": 0.5, "server": "mx.example", "local": "[2001:db8::5]:25",
               "client": "[2001:db8::5]:41000"}  # fmt: skip
    entries = build_timeline(_empty_case(peer_events=(_peer_line(connect), _peer_line(event))))
    assert [e.text for e in entries] == [
        f"connection to mx.example[2001:db8::5]:25 from [2001:db8::5]:41000 ({LOOPBACK_NOTE})",
        "TLS handshake done: TLSv1.2, ECDHE-RSA-AES256-GCM-SHA384, SNI mx.example",
    ]
    assert entries[1].who == "mx.example[2001:db8::5]:25"  # IPv6 in Postfix's host[address]:port form
    assert [e.details for e in entries] == [(), ()]


def test_a_client_certificate_the_server_received_is_shown() -> None:
    def tls(session: str, client_cert: object) -> str:
        event = {"event": "smtp", "stage": "tls", "t": 1.0, "session": session, "server": "mx.example",
                 "local": "192.0.2.10:25", "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "sni": None,
                 "implicit": False}  # fmt: skip
        if client_cert is not None:
            event["client_cert"] = client_cert
        return _peer_line(event)

    entries = build_timeline(_empty_case(peer_events=(tls("a", True), tls("b", False), tls("c", None))))
    assert [e.text for e in entries] == [
        "TLS handshake done: TLSv1.3, TLS_AES_256_GCM_SHA384, SNI (none), client certificate presented",
        "TLS handshake done: TLSv1.3, TLS_AES_256_GCM_SHA384, SNI (none)",
        "TLS handshake done: TLSv1.3, TLS_AES_256_GCM_SHA384, SNI (none)",
    ]


def test_postfix_lines_are_classified_and_coloured_by_status_and_tls_level() -> None:
    timeline = build_timeline(fastmail_defers())
    verify = timeline[_index(timeline, "server certificate verification failed")]
    tls = timeline[_index(timeline, "Untrusted TLS connection established")]
    note = timeline[_index(timeline, "085D7184144: Server certificate not verified")]
    status = timeline[_index(timeline, "status=deferred")]
    assert (verify.source, verify.kind, verify.tone, verify.who) == ("postfix", "verify", "error", "postfix/smtp[221]")
    assert (tls.kind, tls.tone) == ("tls", "Untrusted")
    assert (note.kind, note.queue_id) == ("note", "085D7184144")
    assert (status.kind, status.tone, status.queue_id) == ("status", "deferred", "085D7184144")
    assert status.text.startswith("085D7184144: to=<user@fastmail.fm>, relay=in2-smtp")  # Postfix's own words


def test_a_delivered_message_shows_verified_tls_and_the_data_the_server_accepted() -> None:
    timeline = build_timeline(fastmail_sent())
    tls = timeline[_index(timeline, "Verified TLS connection established")]
    data = timeline[_index(timeline, "DATA accepted")]
    status = timeline[_index(timeline, "status=sent")]
    assert tls.tone == "Verified"
    assert status.tone == "sent"
    assert data.tone == "sent"
    assert "369 octets" in data.text and "queued as 5AFEFFD3A8" in data.text
    assert [e.text for e in timeline if e.kind in ("mail", "rcpt")] == [
        "MAIL FROM:<sender@example.test> SIZE=369",
        "RCPT TO:<user@fastmail.fm>",
    ]


def test_session_summaries_are_left_out_and_every_other_peer_event_is_kept() -> None:
    case = fastmail_defers()
    timeline = build_timeline(case)
    json_lines = [line for line in case.peer_events if " {" in line]
    summaries = [line for line in json_lines if '"event": "session"' in line]
    assert len(summaries) == 2
    assert sum(1 for e in timeline if e.source != "postfix") == len(json_lines) - len(summaries)
    assert len([e for e in timeline if e.source == "postfix"]) == len(case.postfix_log)


def test_the_ready_event_names_the_dns_and_smtp_endpoints() -> None:
    timeline = build_timeline(fastmail_defers())
    ready = timeline[_index(timeline, "ready:", source="peer")]
    assert ready.text == (
        "ready: DNS at 127.0.0.53:53; SMTP servers in1-smtp.messagingengine.com[66.111.4.74]:25, "
        "in2-smtp.messagingengine.com[192.0.2.10]:25"
    )


def test_a_peer_event_without_t_is_placed_at_its_docker_timestamp() -> None:
    lines = (
        _peer_line({"event": "error", "message": "cannot bind 66.111.4.74"}, "2026-11-30T11:22:41.500000000Z"),
        _peer_line({"event": "smtp", "stage": "connect", "t": datetime(2026, 11, 30, 11, 22, 41, tzinfo=UTC)
                    .timestamp(), "server": "mx", "local": "192.0.2.1:25", "client": "192.0.2.1:4000"}),
        "2026-11-30T11:22:42.000000000Z Traceback (most recent call last):",
    )  # fmt: skip
    timeline = build_timeline(_empty_case(peer_events=lines))
    assert [(e.kind, e.time) for e in timeline] == [
        ("connect", datetime(2026, 11, 30, 11, 22, 41, tzinfo=UTC)),
        ("error", datetime(2026, 11, 30, 11, 22, 41, 500000, tzinfo=UTC)),
    ]
    assert timeline[1].tone == "error"


def test_a_tls_handshake_failure_at_the_server_is_an_error() -> None:
    event = {"event": "smtp", "stage": "tls_failed", "t": 5.0, "server": "mx", "local": "192.0.2.1:25",
             "client": "192.0.2.1:4000", "error": "SSLError: [SSL: NO_SHARED_CIPHER] no shared cipher"}  # fmt: skip
    (entry,) = build_timeline(_empty_case(peer_events=(_peer_line(event),)))
    assert (entry.text, entry.tone) == (
        "TLS handshake failed: SSLError: [SSL: NO_SHARED_CIPHER] no shared cipher",
        "error",
    )


def test_a_servers_refusal_or_dropped_connection_is_shown_with_its_reply() -> None:
    common = {"event": "smtp", "server": "mx", "local": "192.0.2.1:25", "client": "192.0.2.1:4000"}
    events = [
        {**common, "stage": "greeting", "t": 1.0, "reply": 220},
        {**common, "stage": "rcpt", "t": 2.0, "address": "a@example.com", "reply": 550},
        {**common, "stage": "mail", "t": 3.0, "address": "s@example.test", "reply": 451},
        {**common, "stage": "data", "t": 4.0, "size": 300, "message_id": "m@x", "accepted": False, "reply": 554},
        {**common, "stage": "ehlo", "t": 5.0, "hostname": "mail.example.test", "reply": None, "dropped": True},
        {**common, "stage": "rcpt", "t": 6.0, "address": "b@example.com", "reply": 250},
    ]
    timeline = build_timeline(_empty_case(peer_events=tuple(_peer_line(e) for e in events)))
    assert [(e.text, e.tone) for e in timeline] == [
        ("greeting: 220", None),
        ("RCPT TO:<a@example.com>: the server replied 550", "error"),
        ("MAIL FROM:<s@example.test>: the server replied 451", "warning"),
        ("DATA refused: 300 octets, Message-ID <m@x>: the server replied 554", "error"),
        ("EHLO mail.example.test: the server dropped the connection instead of replying", "error"),
        ("RCPT TO:<b@example.com>", None),
    ]


def test_the_clients_hang_up_after_quit_or_after_a_command_is_a_plain_close() -> None:
    # Real peer events: in1 is left by Postfix right after the TLS handshake (its certificate check failed; the
    # server's next write breaks the pipe), in2 after QUIT (a reset). Neither is an error.
    timeline = build_timeline(fastmail_defers())
    closes = [(e.who, e.text, e.tone) for e in timeline if e.kind == "close"]
    assert closes == [
        ("in1-smtp.messagingengine.com[66.111.4.74]:25", "connection closed by the client", None),
        ("in2-smtp.messagingengine.com[192.0.2.10]:25", "connection closed by the client", None),
    ]
    assert not [e.text for e in timeline if "Error" in e.text and e.source == "smtp"]


def test_an_unexpected_close_keeps_its_error() -> None:
    common = {"event": "smtp", "server": "mx", "local": "192.0.2.1:25", "client": "192.0.2.1:4000"}
    reset = "ConnectionResetError: [Errno 104] Connection reset by peer"

    def text(*before: dict[str, object], error: str | None = reset) -> str:
        """The close's text after the events ``before`` of its session; a second session's QUIT comes between
        them and the close (each session has its own last command)."""
        events = [{**common, "session": "s1", "t": float(i), **e} for i, e in enumerate(before)]
        events.append({**common, "session": "s2", "t": 8.0, "stage": "quit"})
        events.append({**common, "session": "s1", "t": 9.0, "stage": "close", "error": error})
        timeline = build_timeline(_empty_case(peer_events=tuple(_peer_line(e) for e in events)))
        (close,) = [e for e in timeline if e.kind == "close"]
        return close.text

    data_354 = {"stage": "data_command", "reply": 354}
    assert text({"stage": "connect"}, {"stage": "mail", "reply": 250}, data_354) == f"connection closed ({reset})"
    assert text({"stage": "starttls", "reply": 220}) == f"connection closed ({reset})"  # mid-handshake
    assert text() == f"connection closed ({reset})"  # nothing known before it
    assert text({"stage": "data_command", "reply": 554}) == "connection closed by the client"  # DATA refused
    assert text({"stage": "starttls", "reply": 454}) == "connection closed by the client"  # STARTTLS refused
    assert text({"stage": "rcpt", "reply": 250}, {"stage": "quit"}) == "connection closed by the client"
    assert text({"stage": "quit"}, error=None) == "connection closed"


def test_a_line_that_is_not_postfix_is_kept_as_a_plain_log_entry() -> None:
    case = fastmail_defers()
    odd = "2026-11-30T11:22:40.070000000Z postmap: fatal: open /etc/postfix/nope: No such file or directory"
    timeline = build_timeline(replace(case, postfix_log=(*case.postfix_log[:6], odd, *case.postfix_log[6:])))
    entry = timeline[_index(timeline, "postmap: fatal")]
    assert (entry.source, entry.kind, entry.who) == ("postfix", "log", "")
    assert entry.time == datetime(2026, 11, 30, 11, 22, 40, 70000, tzinfo=UTC)


def test_warnings_and_fatal_lines_are_coloured() -> None:
    lines = (
        "2026-11-30T11:22:40.0Z Nov 30 11:22:40 mail postfix/smtp[9]: warning: TLS library problem: x",
        "2026-11-30T11:22:41.0Z Nov 30 11:22:41 mail postfix/smtp[9]: fatal: bad smtp_tls_security_level",
    )
    timeline = build_timeline(_empty_case(postfix_log=lines))
    assert [(e.kind, e.tone) for e in timeline] == [("warning", "warning"), ("fatal", "error")]


def test_a_case_without_logs_has_an_empty_timeline() -> None:
    assert build_timeline(_empty_case()) == ()


def test_dns_queries_are_every_dns_event_in_time_order() -> None:
    queries = dns_queries(fastmail_defers())
    assert [(q.qtype, q.qname) for q in queries] == [
        ("MX", "fastmail.fm."),
        ("A", "in1-smtp.messagingengine.com."),
        ("AAAA", "in1-smtp.messagingengine.com."),
        ("A", "in2-smtp.messagingengine.com."),
        ("AAAA", "in2-smtp.messagingengine.com."),
    ]
    assert queries[0].answers == (
        "fastmail.fm. 300 IN MX 10 in1-smtp.messagingengine.com.",
        "fastmail.fm. 300 IN MX 20 in2-smtp.messagingengine.com.",
    )
    assert queries[0].client == "127.0.0.1:46751"
    assert queries[0].ad is False


def test_split_docker_time_reads_nanoseconds_and_leaves_other_lines_alone() -> None:
    line = "2026-11-30T11:22:39.748123160Z Nov 30 11:22:39 mail postfix/master[1]: daemon started"
    assert split_docker_time(line) == (
        datetime(2026, 11, 30, 11, 22, 39, 748123, tzinfo=UTC),
        "Nov 30 11:22:39 mail postfix/master[1]: daemon started",
    )
    assert split_docker_time("Nov 30 11:22:39 mail postfix/master[1]: x") == (
        None,
        "Nov 30 11:22:39 mail postfix/master[1]: x",
    )
    assert split_docker_time("2026-13-45T99:00:00Z nonsense") == (None, "2026-13-45T99:00:00Z nonsense")
