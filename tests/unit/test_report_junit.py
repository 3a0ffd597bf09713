"""``--junit``: JUnit XML that parses, counts right, and explains a failure in Postfix's terms."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

from _report_cases import config_rejected, fastmail_defers, fastmail_sent, timed_out
from _report_world import with_world

from harness.junit import junit_xml
from harness.model import Expect
from harness.results import CaseResult

FAILING = Expect(status="sent", tls="Verified")


def _parse(results: list[CaseResult], **kwargs: object) -> ET.Element:
    return ET.fromstring(junit_xml(results, **kwargs))  # type: ignore[arg-type]


def test_the_document_is_utf8_xml_with_suites_per_scenario_and_cases_per_recipient() -> None:
    text = junit_xml([fastmail_sent(), fastmail_defers(FAILING), timed_out()])
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites')
    root = ET.fromstring(text)
    assert [s.get("name") for s in root.findall("testsuite")] == [
        "fastmail-secure-nexthop",
        "facebook-nexthop-certificate",
    ]
    names = [(t.get("classname"), t.get("name")) for t in root.iter("testcase")]
    assert names == [
        ("fastmail-secure-nexthop.secure-with-provider-match", "user@fastmail.fm"),
        ("fastmail-secure-nexthop.secure-defers", "user@fastmail.fm"),
        ("facebook-nexthop-certificate.untrusted-root-defers", "user@facebook.com"),
    ]


def test_the_counts_add_up_in_suites_and_root() -> None:
    root = _parse([fastmail_sent(), fastmail_defers(FAILING), timed_out(), config_rejected()])
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "2")
    fastmail = root.find("testsuite[@name='fastmail-secure-nexthop']")
    assert fastmail is not None
    assert (fastmail.get("tests"), fastmail.get("failures"), fastmail.get("errors")) == ("2", "1", "0")
    assert float(root.get("time", "0")) == sum(float(s.get("time", "0")) for s in root.findall("testsuite"))
    assert root.get("time") == "38.920"  # 3.6 + 2.62 + 31.2 + 1.5


def test_a_passing_recipient_is_an_empty_testcase() -> None:
    (testcase,) = _parse([fastmail_sent()]).iter("testcase")
    assert list(testcase) == []
    assert testcase.get("time") == "3.600"
    assert testcase.get("file") == "scenarios/seed/fastmail.yaml"


def test_a_failed_client_cert_expectation_is_named_in_the_failure() -> None:
    (testcase,) = _parse([fastmail_defers(Expect(status="deferred", client_cert=True))]).iter("testcase")
    failure = testcase.find("failure")
    assert failure is not None
    assert failure.get("message") == "client_cert: expected 'true', observed 'false'"
    assert "    expected: deferred client_cert=true" in (failure.text or "")


def test_a_failure_carries_expected_vs_observed_and_the_postfix_lines() -> None:
    (testcase,) = _parse([fastmail_defers(FAILING)]).iter("testcase")
    failure = testcase.find("failure")
    assert failure is not None
    assert failure.get("type") == "ExpectationFailed"
    assert failure.get("message") == (
        "status: expected 'sent', observed 'deferred'; tls: expected 'Verified', observed 'Untrusted'"
    )
    text = failure.text or ""
    assert "expected: sent tls=Verified" in text
    assert "observed: deferred 4.7.5 Untrusted via in2-smtp.messagingengine.com[192.0.2.10]:25" in text
    assert "FAIL status: expected 'sent', observed 'deferred'" in text
    assert "postfix/smtp[221]: server certificate verification failed for in2-smtp.messagingengine.com" in text
    assert "status=deferred (Server certificate not verified)" in text
    assert "SNI=(none)" in text and "MX query fastmail.fm." in text


def test_a_failure_names_the_leaf_certificate_of_the_server() -> None:
    (testcase,) = _parse([with_world(fastmail_defers(FAILING))]).iter("testcase")
    failure = testcase.find("failure")
    assert failure is not None
    assert "leaf certificate names: *.messagingengine.com, messagingengine.com" in (failure.text or "")
    assert "leaf certificate names: *.messagingengine.com" in (testcase.findtext("system-out") or "")


def test_a_failing_testcase_has_the_timeline_as_system_out() -> None:
    (testcase,) = _parse([fastmail_defers(FAILING)]).iter("testcase")
    out = testcase.findtext("system-out") or ""
    assert out.startswith("trace of fastmail-secure-nexthop / secure-defers FAIL")
    assert "connection to in1-smtp.messagingengine.com[66.111.4.74]:25" in out


def test_a_case_that_could_not_finish_is_an_error_with_the_log_tails() -> None:
    (testcase,) = _parse([timed_out()]).iter("testcase")
    error = testcase.find("error")
    assert error is not None and testcase.find("failure") is None
    assert error.get("type") == "CaseError"
    assert (error.get("message") or "").startswith("no first-attempt status for user@facebook.com within 30 s")
    assert "(expected: deferred 4.7.5)" in (error.get("message") or "")
    assert "last Postfix log lines:" in (error.text or "")


def test_a_rejected_configuration_is_an_error_naming_file_line_and_key() -> None:
    (testcase,) = _parse([config_rejected()]).iter("testcase")
    error = testcase.find("error")
    assert error is not None
    assert error.get("type") == "ConfigRejected"
    assert "scenarios/x.yaml:14: postfix.main.cf.smtp_tls_securty_level" in (error.get("message") or "")


def test_the_same_recipient_twice_in_a_case_gets_distinct_names_and_shares_the_time() -> None:
    case = fastmail_sent()
    case = replace(case, recipients=case.recipients * 2)
    names = [(t.get("name"), t.get("time")) for t in _parse([case]).iter("testcase")]
    assert names == [("user@fastmail.fm", "1.800"), ("user@fastmail.fm #2", "1.800")]


def test_characters_xml_cannot_carry_are_written_as_escapes() -> None:
    text = junit_xml([fastmail_defers(FAILING, reason="550 bad\x1b[0m byte \x00 <&>")])
    failure = ET.fromstring(text).find(".//failure")
    assert failure is not None
    assert "550 bad\\x1b[0m byte \\x00 <&>" in (failure.text or "")


def test_the_suite_timestamp_is_the_run_start_in_utc() -> None:
    started = datetime(2026, 11, 30, 12, 22, 39, tzinfo=UTC)
    suite = _parse([fastmail_sent()], started=started).find("testsuite")
    assert suite is not None
    assert suite.get("timestamp") == "2026-11-30T12:22:39"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {"postfix_release": "3.7.11"}
