"""Observed outcomes held against ``expect``, and how results read in the report.

Each check has its negative control: the same expectation against an observation it must not hold for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.model import Expect
from harness.report import expected_text, failure_details, results_table
from harness.results import CaseResult, Check, Observed, RecipientResult, ServerSession, compare

DEFERRED = Observed(
    status="deferred",
    dsn="4.7.5",
    reason="Server certificate not verified",
    relay="in1-smtp.messagingengine.com[66.111.4.74]:25",
    relay_host="in1-smtp.messagingengine.com",
    relay_address="66.111.4.74",
    relay_port=25,
    tls="Untrusted",
    queue_id="4F9D1C2A3B",
    tls_protocol="TLSv1.3",
    tls_cipher="TLS_AES_256_GCM_SHA384",
)
SENT = replace(
    DEFERRED, status="sent", dsn="2.0.0", reason="250 2.0.0 Ok: queued as 1234", tls="Verified", received=True
)
NOT_REACHED = Observed(
    status="deferred",
    dsn="4.4.1",
    reason="connect to mx.example.com[192.0.2.10]:25: Connection refused",
    relay="none",
    relay_host=None,
    relay_address=None,
    relay_port=None,
    tls="none",
    queue_id="ABCDEF0123",
)


def expect(**keys: Any) -> Expect:
    return Expect.model_validate(keys)


def verdicts(checks: tuple[Check, ...]) -> dict[str, bool]:
    return {c.key: c.ok for c in checks}


# --- compare ------------------------------------------------------------------------------------------------


def test_an_empty_expect_checks_nothing() -> None:
    assert compare(Expect(), DEFERRED) == ()


def test_every_given_key_is_checked_in_a_fixed_order() -> None:
    checks = compare(
        expect(
            received=False,
            tls="Untrusted",
            relay="in1-smtp.messagingengine.com",
            reason="not",
            dsn="4",
            status="deferred",
        ),
        DEFERRED,
    )
    assert [c.key for c in checks] == ["status", "dsn", "reason", "relay", "tls", "received"]
    assert all(c.ok for c in checks)


def test_status_holds_when_equal() -> None:
    assert compare(expect(status="deferred"), DEFERRED) == (Check("status", "deferred", "deferred", True),)
    assert compare(expect(status="sent"), DEFERRED) == (Check("status", "sent", "deferred", False),)


def test_status_delivered_holds_for_sent() -> None:
    assert verdicts(compare(expect(status="delivered"), SENT)) == {"status": True}
    assert verdicts(compare(expect(status="delivered"), DEFERRED)) == {"status": False}


def test_status_bounced_does_not_hold_for_deferred() -> None:
    assert verdicts(compare(expect(status="bounced"), DEFERRED)) == {"status": False}


@pytest.mark.parametrize("dsn", ["4.7.5", "4.7", "4"])
def test_dsn_holds_exactly_or_as_a_prefix_at_a_dot(dsn: str) -> None:
    assert compare(expect(dsn=dsn), DEFERRED) == (Check("dsn", dsn, "4.7.5", True),)


@pytest.mark.parametrize(
    ("dsn", "observed"),
    [("4.7", "4.70.1"), ("4.7.5", "4.7.50"), ("4.7.5", "4.7"), ("5", "4.7.5"), ("4.7.1", "4.7.5")],
)
def test_dsn_does_not_hold_inside_a_number_or_for_another_code(dsn: str, observed: str) -> None:
    assert verdicts(compare(expect(dsn=dsn), replace(DEFERRED, dsn=observed))) == {"dsn": False}


def test_reason_is_a_substring() -> None:
    assert verdicts(compare(expect(reason="certificate not verified"), DEFERRED)) == {"reason": True}
    assert verdicts(compare(expect(reason="Certificate Not Verified"), DEFERRED)) == {"reason": False}
    assert verdicts(compare(expect(reason="hostname mismatch"), DEFERRED)) == {"reason": False}


def test_reason_written_in_slashes_is_a_regular_expression() -> None:
    assert verdicts(compare(expect(reason="/certificate (not )?verified/"), DEFERRED)) == {"reason": True}
    assert verdicts(compare(expect(reason="/^certificate/"), DEFERRED)) == {"reason": False}
    assert verdicts(compare(expect(reason="/(?i)^server CERTIFICATE/"), DEFERRED)) == {"reason": True}


def test_reason_regex_characters_outside_slashes_are_literal() -> None:
    observed = replace(DEFERRED, reason="status (4.7.5)")
    assert verdicts(compare(expect(reason="(4.7.5)"), observed)) == {"reason": True}
    assert verdicts(compare(expect(reason="(4x7x5)"), observed)) == {"reason": False}


def test_relay_host_name_holds_case_insensitively_and_without_the_trailing_dot() -> None:
    for written in (
        "in1-smtp.messagingengine.com",
        "IN1-SMTP.MessagingEngine.com",
        "in1-smtp.messagingengine.com.",
    ):
        assert compare(expect(relay=written), DEFERRED)[0].ok, written
    assert not compare(expect(relay="in2-smtp.messagingengine.com"), DEFERRED)[0].ok
    assert not compare(expect(relay="messagingengine.com"), DEFERRED)[0].ok


def test_relay_with_address_and_port_is_compared_with_the_whole_relay_field() -> None:
    assert compare(expect(relay="in1-smtp.messagingengine.com[66.111.4.74]:25"), DEFERRED)[0].ok
    assert not compare(expect(relay="in1-smtp.messagingengine.com[66.111.4.74]:587"), DEFERRED)[0].ok
    assert not compare(expect(relay="in1-smtp.messagingengine.com[192.0.2.10]:25"), DEFERRED)[0].ok


def test_relay_none_holds_only_when_no_server_was_reached() -> None:
    assert compare(expect(relay="none"), NOT_REACHED) == (Check("relay", "none", "none", True),)
    assert not compare(expect(relay="none"), DEFERRED)[0].ok
    assert not compare(expect(relay="mx.example.com"), NOT_REACHED)[0].ok


@pytest.mark.parametrize(
    ("level", "ok"), [("Untrusted", True), ("Trusted", False), ("Verified", False), ("none", False)]
)
def test_tls_holds_for_the_same_level_only(level: str, ok: bool) -> None:
    assert compare(expect(tls=level), DEFERRED) == (Check("tls", level, "Untrusted", ok),)


def test_tls_none_holds_when_no_tls_was_established() -> None:
    assert compare(expect(tls="none"), NOT_REACHED)[0].ok


def test_received_is_compared_as_true_or_false() -> None:
    assert compare(expect(received=True), SENT) == (Check("received", "true", "true", True),)
    assert compare(expect(received=True), DEFERRED) == (Check("received", "true", "false", False),)
    assert compare(expect(received=False), DEFERRED) == (Check("received", "false", "false", True),)


def test_a_failed_key_does_not_hide_the_others() -> None:
    checks = compare(expect(status="sent", dsn="4.7.5", tls="Verified"), DEFERRED)
    assert verdicts(checks) == {"status": False, "dsn": True, "tls": False}


# --- Observed.summary ---------------------------------------------------------------------------------------


def test_summary_reads_like_the_status_line() -> None:
    assert DEFERRED.summary() == (
        "deferred 4.7.5 Untrusted via in1-smtp.messagingengine.com[66.111.4.74]:25 (Server certificate not verified)"
    )


def test_summary_leaves_out_tls_and_relay_when_there_were_none() -> None:
    assert NOT_REACHED.summary() == "deferred 4.4.1 (connect to mx.example.com[192.0.2.10]:25: Connection refused)"


# --- results ------------------------------------------------------------------------------------------------


def recipient(exp: Expect, observed: Observed | None, *, error: str | None = None) -> RecipientResult:
    checks = compare(exp, observed) if observed else ()
    return RecipientResult("fastmail", "secure-defers", "user@fastmail.fm", exp, observed, checks, error=error)


def test_a_recipient_passes_when_every_check_holds() -> None:
    assert recipient(expect(status="deferred"), DEFERRED).passed
    assert not recipient(expect(status="sent"), DEFERRED).passed


def test_a_recipient_without_observation_fails_even_without_expectations() -> None:
    assert not recipient(Expect(), None, error="no status line for this recipient").passed


def test_a_case_with_an_error_fails_although_its_recipients_pass() -> None:
    ok = recipient(expect(status="deferred"), DEFERRED)
    assert CaseResult("fastmail", "secure-defers", "s.yaml", (ok,)).passed
    assert not CaseResult("fastmail", "secure-defers", "s.yaml", (ok,), error="timeout").passed


# --- report -------------------------------------------------------------------------------------------------


def test_expected_text_lists_the_given_keys() -> None:
    exp = expect(
        status="deferred",
        dsn="4.7.5",
        tls="Untrusted",
        relay="in1.example",
        received=False,
        reason="not verified",
    )
    assert expected_text(exp) == "deferred 4.7.5 tls=Untrusted relay=in1.example received=false (not verified)"


def test_expected_text_of_an_empty_expect() -> None:
    assert expected_text(Expect()) == "(anything)"


def test_expected_text_shows_delivered_as_sent() -> None:
    assert expected_text(expect(status="delivered", received=True)) == "sent received=true"


def test_failure_details_name_the_failed_key_with_expected_and_observed() -> None:
    log = ("2026-01-01T00:00:00.000000000Z postfix/smtp[12]: 4F9D1C2A3B: to=<user@fastmail.fm>, status=deferred",)
    observed = replace(
        DEFERRED,
        log_lines=log,
        server=ServerSession(
            server="in1-smtp.messagingengine.com",
            address="66.111.4.74",
            port=25,
            starttls=True,
            tls_version="TLSv1.3",
            cipher="TLS_AES_256_GCM_SHA384",
            sni=None,
            ehlo="mail.example.test",
        ),
    )
    case = CaseResult(
        "fastmail",
        "secure-defers",
        "scenarios/x.yaml",
        (recipient(expect(status="sent", dsn="4.7"), observed),),
    )
    text = failure_details(case)
    assert "scenarios/x.yaml: fastmail / secure-defers: FAILED" in text
    assert "to=<user@fastmail.fm>" in text
    assert "FAIL status: expected 'sent', observed 'deferred'" in text
    assert "ok   dsn: expected '4.7', observed '4.7.5'" in text
    assert "      postfix/smtp[12]: 4F9D1C2A3B: to=<user@fastmail.fm>, status=deferred" in text  # timestamp dropped
    assert "the fake server in1-smtp.messagingengine.com [66.111.4.74]:25 saw: EHLO mail.example.test" in text
    assert "STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384 SNI=(none)" in text
    assert "no message data" in text


def test_failure_details_of_a_case_that_could_not_finish_show_the_error_and_log_tails() -> None:
    case = CaseResult(
        "fastmail",
        "secure-defers",
        "s.yaml",
        (recipient(expect(status="deferred"), None, error="timed out after 30 s"),),
        error="timed out after 30 s",
        postfix_log=("postfix/master[1]: daemon started -- version 3.7.11",),
        peer_events=('{"event": "ready"}',),
    )
    text = failure_details(case)
    assert "  error: timed out after 30 s" in text
    assert "nothing observed: timed out after 30 s" in text
    assert "postfix/master[1]: daemon started -- version 3.7.11" in text
    assert '{"event": "ready"}' in text


def test_failure_details_leave_out_recipients_that_passed() -> None:
    passed = recipient(expect(status="deferred"), DEFERRED)
    failed = RecipientResult(
        "fastmail",
        "c",
        "other@fastmail.fm",
        expect(status="sent"),
        DEFERRED,
        compare(expect(status="sent"), DEFERRED),
    )
    text = failure_details(CaseResult("fastmail", "c", "s.yaml", (passed, failed)))
    assert "to=<other@fastmail.fm>" in text
    assert "to=<user@fastmail.fm>" not in text


def test_the_results_table_has_one_row_per_recipient() -> None:
    case = CaseResult(
        "fastmail",
        "secure-defers",
        "s.yaml",
        (
            recipient(expect(status="deferred"), DEFERRED),
            recipient(expect(status="sent"), None, error="gone"),
        ),
    )
    table = results_table([case])
    assert table.row_count == 2
    assert [c.header for c in table.columns] == [
        "scenario",
        "case",
        "recipient",
        "release",
        "expected",
        "observed",
        "result",
    ]
