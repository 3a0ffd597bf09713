"""``--json``: the document holds to docs/results-json.md (read from the page itself) and reads back unchanged."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _report_cases import config_rejected, fastmail_defers, fastmail_sent, timed_out
from _report_world import MAIN_CF, MAPS, MESSAGE_ID, MESSAGINGENGINE_NAMES, with_world

from harness.model import Expect
from harness.results import CaseResult, compare
from harness.results_json import SCHEMA_VERSION, dumps_results, results_document, results_from_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "results-json.md"
STARTED = datetime(2026, 11, 30, 11, 22, 39, 500000, tzinfo=UTC)
FINISHED = datetime(2026, 11, 30, 11, 23, 20, tzinfo=UTC)
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}

Schema = dict[str, dict[str, tuple[str, bool]]]


def documented_schema() -> Schema:
    """Object name → key → (type, optional), from the tables under '## Objects' of docs/results-json.md."""
    text = DOC.read_text().split("## Objects", 1)[1].split("\n## ", 1)[0]
    schema: Schema = {}
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        name, _, body = section.partition("\n")
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", body, flags=re.M)
        schema[name.strip()] = {
            key: (kind.strip().removesuffix(", optional"), kind.strip().endswith(", optional")) for key, kind in rows
        }
    return schema


def check(value: Any, kind: str, schema: Schema, where: str = "$") -> None:
    """Assert that ``value`` has the documented type ``kind``."""
    if kind.endswith(" or null"):
        if value is not None:
            check(value, kind.removesuffix(" or null"), schema, where)
        return
    if kind.startswith("array of "):
        assert isinstance(value, list), f"{where}: expected an array, found {value!r}"
        for i, item in enumerate(value):
            check(item, kind.removeprefix("array of "), schema, f"{where}[{i}]")
        return
    if kind.startswith("object of "):
        assert isinstance(value, dict), f"{where}: expected an object, found {value!r}"
        for key, item in value.items():
            assert isinstance(key, str)
            check(item, kind.removeprefix("object of "), schema, f"{where}.{key}")
        return
    if kind in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[kind]) and (kind == "boolean" or not isinstance(value, bool))
        assert ok, f"{where}: expected {kind}, found {value!r}"
        return
    assert kind in schema, f"{where}: type {kind!r} is not documented"
    assert isinstance(value, dict), f"{where}: expected object {kind}, found {value!r}"
    fields = schema[kind]
    undocumented = set(value) - set(fields)
    assert not undocumented, f"{where}: keys {sorted(undocumented)} are not in docs/results-json.md ({kind})"
    for key, (field_kind, optional) in fields.items():
        if key not in value:
            assert optional, f"{where}: documented key {key!r} of {kind} is missing"
            continue
        check(value[key], field_kind, schema, f"{where}.{key}")


def _all_kinds() -> list[CaseResult]:
    return [
        with_world(fastmail_sent()),
        with_world(fastmail_defers(Expect(status="sent", tls="Verified"))),
        timed_out(),
        config_rejected(),
    ]


def test_the_page_documents_every_object_it_names() -> None:
    schema = documented_schema()
    assert {"run", "summary", "case", "recipient", "expected", "observed", "server", "check", "dns_query"} <= set(
        schema
    )
    assert schema["run"]["schema_version"] == ("integer", False)
    assert schema["expected"]["tls"] == ("string", True)


def test_a_document_of_every_kind_of_case_holds_to_the_page() -> None:
    document = json.loads(dumps_results(_all_kinds(), started=STARTED, finished=FINISHED))
    check(document, "run", documented_schema())


def test_the_check_rejects_what_the_page_does_not_say() -> None:  # negative control for the test above
    document = results_document([fastmail_sent()])
    document["cases"][0]["recipients"][0]["observed"]["colour"] = "green"
    with pytest.raises(AssertionError, match="colour"):
        check(document, "run", documented_schema())
    del document["cases"][0]["recipients"][0]["observed"]["colour"]
    document["cases"][0]["duration_s"] = "3.6"
    with pytest.raises(AssertionError, match=r"duration_s: expected number"):
        check(document, "run", documented_schema())


def test_postfix_releases_are_sorted_as_versions() -> None:
    cases = [replace(fastmail_sent(), release=r) for r in ("3.10.13", "3.5.25", "3.7.11", "3.5.25")]
    assert results_document(cases)["postfix_releases"] == ["3.5.25", "3.7.11", "3.10.13"]


def test_the_run_carries_version_times_releases_and_counts() -> None:
    document = results_document(_all_kinds(), started=STARTED, finished=FINISHED)
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert document["started"] == "2026-11-30T11:22:39.500000Z"
    assert document["finished"] == "2026-11-30T11:23:20.000000Z"
    assert document["postfix_releases"] == ["3.7.11"]
    assert document["passed"] is False
    assert document["summary"] == {
        "cases": 4,
        "cases_passed": 1,
        "cases_failed": 3,
        "recipients": 4,
        "recipients_passed": 1,
        "recipients_failed": 3,
    }


def test_a_passing_run_is_passed_and_an_empty_one_is_not() -> None:
    assert results_document([fastmail_sent(), fastmail_defers()])["passed"] is True
    assert results_document([])["passed"] is False


def test_a_recipient_has_expected_observed_checks_and_the_fake_servers_view() -> None:
    case = results_document([fastmail_defers(Expect(status="sent", tls="Verified"))])["cases"][0]
    recipient = case["recipients"][0]
    assert recipient["expected"] == {"status": "sent", "tls": "Verified"}  # only the keys given
    assert recipient["checks"] == [
        {"key": "status", "expected": "sent", "observed": "deferred", "ok": False},
        {"key": "tls", "expected": "Verified", "observed": "Untrusted", "ok": False},
    ]
    observed = recipient["observed"]
    assert observed["relay"] == "in2-smtp.messagingengine.com[192.0.2.10]:25"
    assert (observed["relay_host"], observed["relay_address"], observed["relay_port"]) == (
        "in2-smtp.messagingengine.com",
        "192.0.2.10",
        25,
    )
    assert (observed["tls"], observed["tls_protocol"], observed["tls_cipher"]) == (
        "Untrusted",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
    )
    assert observed["server"]["starttls"] is True and observed["server"]["sni"] is None
    assert any("status=deferred" in line for line in observed["log_lines"])


def test_a_case_carries_its_dns_queries_chains_and_raw_logs() -> None:
    case = results_document([fastmail_defers()])["cases"][0]
    assert case["dns_queries"][0] == {
        "time": "2026-11-30T11:22:40.055295Z",  # t = 1796037760.0552945
        "qname": "fastmail.fm.",
        "qtype": "MX",
        "rcode": "NOERROR",
        "ad": False,
        "answers": [
            "fastmail.fm. 300 IN MX 10 in1-smtp.messagingengine.com.",
            "fastmail.fm. 300 IN MX 20 in2-smtp.messagingengine.com.",
        ],
        "client": "127.0.0.1:46751",
    }
    assert case["server_chains"]["in1-smtp.messagingengine.com"][0].endswith("CN=*.messagingengine.com")
    assert len(case["postfix_log"]) == 11 and len(case["peer_events"]) == 19


def test_a_case_carries_its_leaf_names_main_cf_and_maps_and_a_recipient_its_message_id() -> None:
    case = results_document([with_world(fastmail_defers())])["cases"][0]
    assert case["server_names"]["in2-smtp.messagingengine.com"] == list(MESSAGINGENGINE_NAMES)
    assert case["main_cf"] == MAIN_CF
    assert case["maps"] == MAPS
    assert case["recipients"][0]["message_id"] == MESSAGE_ID
    bare = results_document([timed_out()])["cases"][0]
    assert (bare["server_names"], bare["main_cf"], bare["maps"]) == ({}, "", {})
    assert bare["recipients"][0]["message_id"] is None


def test_the_new_keys_are_documented_with_their_types() -> None:
    schema = documented_schema()
    assert schema["case"]["server_names"] == ("object of array of string", False)
    assert schema["case"]["main_cf"] == ("string", False)
    assert schema["case"]["maps"] == ("object of string", False)
    assert schema["recipient"]["message_id"] == ("string or null", False)


def test_a_document_of_an_earlier_release_without_the_new_keys_reads_back() -> None:
    document = results_document([with_world(fastmail_defers())])
    for case in document["cases"]:
        for key in ("server_names", "main_cf", "maps"):
            del case[key]
        for recipient in case["recipients"]:
            del recipient["message_id"]
    (case,) = results_from_document(document)
    assert (case.server_names, case.main_cf, case.maps) == ({}, "", {})
    assert case.recipients[0].message_id is None
    assert case.server_chains  # the rest is there


def _with_client_cert(presented: bool, expected: bool) -> CaseResult:
    """The sent case with the fake server's record of a client certificate, and ``client_cert`` expected."""
    case = fastmail_sent()
    [r] = case.recipients
    assert r.observed is not None and r.observed.server is not None
    observed = replace(r.observed, server=replace(r.observed.server, client_cert=presented))
    expect = r.expect.model_copy(update={"client_cert": expected})
    return replace(case, recipients=(replace(r, expect=expect, observed=observed, checks=compare(expect, observed)),))


def test_the_server_carries_whether_a_client_certificate_came_and_the_check_its_verdict() -> None:
    document = results_document([_with_client_cert(True, True), _with_client_cert(False, True)])
    check(document, "run", documented_schema())
    sent, none = (case["recipients"][0] for case in document["cases"])
    assert sent["observed"]["server"]["client_cert"] is True
    assert none["observed"]["server"]["client_cert"] is False
    assert sent["checks"][-1] == {"key": "client_cert", "expected": "true", "observed": "true", "ok": True}
    assert none["checks"][-1] == {"key": "client_cert", "expected": "true", "observed": "false", "ok": False}
    assert (sent["passed"], none["passed"]) == (True, False)
    assert results_document([fastmail_defers()])["cases"][0]["recipients"][0]["observed"]["server"]["client_cert"] is (
        False
    )


def test_client_cert_is_documented_as_a_key_of_server_added_within_version_1() -> None:
    assert documented_schema()["server"]["client_cert"] == ("boolean", False)
    versioning = DOC.read_text().split("## Versioning", 1)[1].split("\n## ", 1)[0]
    assert "`client_cert` of a server" in " ".join(versioning.split())


def test_client_cert_reads_back_and_is_false_in_a_document_without_it() -> None:
    document = results_document([_with_client_cert(True, True)])
    [again] = results_from_document(json.loads(json.dumps(document)))
    observed = again.recipients[0].observed
    assert observed is not None and observed.server is not None and observed.server.client_cert is True
    assert again.recipients[0].checks[-1].key == "client_cert"
    del document["cases"][0]["recipients"][0]["observed"]["server"]["client_cert"]  # an earlier release's document
    [earlier] = results_from_document(document)
    observed = earlier.recipients[0].observed
    assert observed is not None and observed.server is not None and observed.server.client_cert is False


def test_errors_and_config_issues_are_carried() -> None:
    timeout_case, config_case = results_document([timed_out(), config_rejected()])["cases"]
    assert timeout_case["error"].startswith("no first-attempt status for user@facebook.com")
    assert timeout_case["recipients"][0]["observed"] is None
    assert config_case["config_issues"] == [
        {
            "file": "scenarios/x.yaml",
            "line": 14,
            "key": "postfix.main.cf.smtp_tls_securty_level",
            "message": "Postfix does not know the parameter 'smtp_tls_securty_level' "
            "(did you mean 'smtp_tls_security_level'?)",
        }
    ]


def test_a_document_reads_back_into_the_same_results() -> None:
    results = _all_kinds()
    text = dumps_results(results, started=STARTED, finished=FINISHED)
    again = results_from_document(json.loads(text))
    assert again == results
    assert again[1].server_names == results[1].server_names and again[1].main_cf == MAIN_CF  # not only defaults
    assert again[1].recipients[0].message_id == results[1].recipients[0].message_id is not None


def test_the_text_is_indented_utf8_json_ending_with_a_newline() -> None:
    text = dumps_results([fastmail_defers()])
    assert text.endswith("}\n")
    assert '\n  "schema_version": 1,' in text
    assert "→" not in text and "\\u" not in text.split('"peer_events"')[0]  # no escapes needed so far


def test_another_schema_version_is_refused_with_a_hint() -> None:
    document = results_document([fastmail_sent()])
    document["schema_version"] = 2
    with pytest.raises(ValueError, match=r"schema_version 2, this mxharness reads 1\. Hint: "):
        results_from_document(document)


def test_a_document_missing_a_key_is_refused_with_a_hint() -> None:
    document = results_document([fastmail_sent()])
    del document["cases"][0]["recipients"][0]["checks"]
    with pytest.raises(ValueError, match=r"missing or mistyped key 'checks'\. Hint: see docs/results-json\.md"):
        results_from_document(document)


def test_server_side_expectations_are_written_and_read_back() -> None:
    case = _with_client_cert(True, True)
    [r] = case.recipients
    expect = r.expect.model_copy(update={"starttls": True, "sni": "none", "protocol": "TLSv1.3"})
    case = replace(case, recipients=(replace(r, expect=expect, checks=compare(expect, r.observed)),))
    document = results_document([case])
    expected = document["cases"][0]["recipients"][0]["expected"]
    assert {k: expected[k] for k in ("starttls", "sni", "protocol", "client_cert")} == {
        "starttls": True,
        "sni": "none",
        "protocol": "TLSv1.3",
        "client_cert": True,
    }
    [again] = results_from_document(json.loads(json.dumps(document)))
    assert again.recipients[0].expect == expect
