"""Which fake-server session belongs to which delivery attempt (harness.observe), from recorded log lines.

The lines are those of a real run on Postfix 3.7.11 where two smtp(8) processes met one server in the same
millisecond (tests/integration/session-attribution.yaml); the peer's handshake times are set so that attribution
by time alone would swap the sessions.
"""

from __future__ import annotations

import json

from harness.maillog import DeliveryTracker
from harness.observe import recipient_results
from harness.scenario import scenario_from_dict

_SCENARIO = {
    "name": "attribution",
    "pki": {"cas": {"root": {"subject": "/CN=Root"}}, "certs": {"default": {"issuer": "root", "san": ["d.example"]}}},
    "dns": {
        "a.example": {"MX": "10 mx.example.net"},
        "b.example": {"MX": "10 mx.example.net"},
        "mx.example.net": {"A": "192.0.2.10"},
    },
    "servers": {"mx.example.net": {"cert": "default"}},
    "postfix": {"main.cf": {"smtp_tls_security_level": "verify", "smtp_tls_servername": "nexthop"}},
    "cases": [
        {
            "name": "two",
            "send": [
                {"to": "u@a.example", "expect": {"status": "deferred", "sni": "a.example"}},
                {"to": "u@b.example", "expect": {"status": "deferred", "sni": "b.example"}},
            ],
        }
    ],
}
_IDS = ["m0@x.test", "m1@x.test"]
_STAMP = "2026-11-30T13:13:12.{:06d}Z "


def _postfix_lines() -> list[str]:
    tls = (
        "Untrusted TLS connection established to mx.example.net[192.0.2.10]:25: TLSv1.3 with cipher"
        " TLS_AES_256_GCM_SHA384 (256/256 bits)"
    )
    status = (
        "relay=mx.example.net[192.0.2.10]:25, delay=0.04, delays=0.01/0.02/0.01/0, dsn=4.7.5,"
        " status=deferred (Server certificate not verified)"
    )
    raw = [
        "postfix/cleanup[178]: 251EF188278: message-id=<m0@x.test>",
        "postfix/cleanup[178]: 26BBF188277: message-id=<m1@x.test>",
        "postfix/smtp[182]: " + tls,
        "postfix/smtp[183]: " + tls,
        "postfix/smtp[183]: 26BBF188277: to=<u@b.example>, " + status,
        "postfix/smtp[182]: 251EF188278: to=<u@a.example>, " + status,
    ]
    return [_STAMP.format(100000 + i * 1000) + "Nov 30 13:13:12 mail " + text for i, text in enumerate(raw)]


def _peer_lines(pids: tuple[int | None, int | None]) -> list[str]:
    base = 1796044392.0  # 2026-11-30T13:13:12Z
    # Session "sa" saw SNI a.example, opened by pids[0]; its handshake is nearer to process 183's TLS line.
    sessions = [("sa", "a.example", pids[0], base + 0.1035), ("sb", "b.example", pids[1], base + 0.1015)]
    events = []
    for sid, sni, pid, t in sessions:
        common = {"event": "smtp", "session": sid, "server": "mx.example.net", "local": "192.0.2.10:25"}
        events.append({**common, "stage": "connect", "t": t - 0.002, "client_pid": pid, "client": "192.0.2.10:4"})
        events.append({**common, "stage": "tls", "t": t, "version": "TLSv1.3", "cipher": "X", "sni": sni})
    return [_STAMP.format(0) + json.dumps(e) for e in events]


def _sni_by_recipient(pids: tuple[int | None, int | None]) -> dict[str, str | None]:
    scenario = scenario_from_dict(_SCENARIO)
    tracker = DeliveryTracker()
    tracker.feed_all(_postfix_lines())
    results = recipient_results(scenario, scenario.cases[0], _IDS, tracker, _peer_lines(pids), None)
    sni = {}
    for r in results:
        assert r.observed is not None and r.observed.server is not None
        sni[r.recipient] = r.observed.server.sni
    return sni


def test_the_opening_process_decides_over_time() -> None:
    assert _sni_by_recipient((182, 183)) == {"u@a.example": "a.example", "u@b.example": "b.example"}


def test_without_the_opener_time_decides() -> None:
    # The fixture's times are misleading on purpose: this is the swap the pid prevents.
    assert _sni_by_recipient((None, None)) == {"u@a.example": "b.example", "u@b.example": "a.example"}


def _client_cert_by_recipient(extra: dict[str, dict[str, object]], summary: bool = False) -> dict[str, bool]:
    """Each recipient's ``observed.server.client_cert`` when the sessions' ``tls`` events carry ``extra[sid]``;
    with ``summary``, the same keys come only in each session's closing summary event."""
    lines = []
    for line in _peer_lines((182, 183)):
        stamp, _, text = line.partition(" ")
        event = json.loads(text)
        tls = event["stage"] == "tls"
        if tls and not summary:
            event.update(extra[event["session"]])
        lines.append(f"{stamp} {json.dumps(event)}")
        if tls and summary:
            fields = {k: event.get(k) for k in ("version", "cipher", "sni")}
            closing = {"event": "session", "session": event["session"], "tls": {**fields, **extra[event["session"]]}}
            lines.append(f"{stamp} {json.dumps(closing)}")
    scenario = scenario_from_dict(_SCENARIO)
    tracker = DeliveryTracker()
    tracker.feed_all(_postfix_lines())
    results = recipient_results(scenario, scenario.cases[0], _IDS, tracker, lines, None)
    seen = {}
    for r in results:
        assert r.observed is not None and r.observed.server is not None
        seen[r.recipient] = r.observed.server.client_cert
    return seen


def test_the_server_s_client_certificate_record_is_passed_on() -> None:
    extra = {"sa": {"client_cert": True, "implicit": False}, "sb": {"client_cert": False, "implicit": False}}
    assert _client_cert_by_recipient(extra) == {"u@a.example": True, "u@b.example": False}
    assert _client_cert_by_recipient(extra, summary=True) == {"u@a.example": True, "u@b.example": False}


def test_a_session_without_a_client_certificate_record_has_none() -> None:
    # Events of a peer that did not record it (or a non-boolean value) read as no certificate.
    extra: dict[str, dict[str, object]] = {"sa": {}, "sb": {"client_cert": "yes"}}
    assert _client_cert_by_recipient(extra) == {"u@a.example": False, "u@b.example": False}


def test_client_cert_is_checked_against_the_session_of_the_attempt() -> None:
    scenario = scenario_from_dict(
        {
            **_SCENARIO,
            "cases": [
                {
                    "name": "two",
                    "send": [
                        {"to": "u@a.example", "expect": {"client_cert": True}},
                        {"to": "u@b.example", "expect": {"client_cert": True}},
                    ],
                }
            ],
        }
    )
    lines = []
    for line in _peer_lines((182, 183)):
        stamp, _, text = line.partition(" ")
        event = json.loads(text)
        if event["stage"] == "tls":
            event["client_cert"] = event["session"] == "sa"
        lines.append(f"{stamp} {json.dumps(event)}")
    tracker = DeliveryTracker()
    tracker.feed_all(_postfix_lines())
    results = recipient_results(scenario, scenario.cases[0], _IDS, tracker, lines, None)
    assert [[(c.key, c.expected, c.observed, c.ok) for c in r.checks] for r in results] == [
        [("client_cert", "true", "true", True)],
        [("client_cert", "true", "false", False)],
    ]
