"""``mxharness explain`` and the TLS model in the run reports (failure details, the disagreement line). No Docker:
the results are real runs' captures (tests/unit/_report_cases.py)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

from _report_cases import fastmail_defers, fastmail_sent
from click.testing import CliRunner
from rich.console import Console

from harness._explain_report import DISAGREEMENT_HEADING, disagreement_lines
from harness.cli import EXIT_INPUT, EXIT_OK, main
from harness.model import Expect
from harness.report import failure_details, print_results
from harness.results import CaseResult

ROOT = Path(__file__).resolve().parents[2]
FASTMAIL = str(ROOT / "scenarios" / "seed" / "fastmail.yaml")


def test_explain_tells_the_seed_reporters_story() -> None:
    result = CliRunner().invoke(main, ["explain", FASTMAIL, "-k", "secure-defers"])
    assert result.exit_code == EXIT_OK, result.output
    out = result.output
    assert out.startswith("fastmail-secure-nexthop / secure-defers: to=<user@fastmail.fm>\n")
    assert "model of Postfix 3.7.11: deferred, DSN 4.7.5, TLS Untrusted (Server certificate not verified)" in out
    assert "security level: secure, from the policy table entry" in out
    assert 'But at "secure" Postfix does not check the MX host name' in out
    assert "what would make it deliver (each change checked with the model):" in out
    assert 'match=.messagingengine.com"' in out and "trade-off: " in out
    assert "verify-trusts-mx-name" not in out  # -k chose one case


def test_explain_without_a_pattern_covers_every_case_and_no_fixes_leaves_them_out() -> None:
    result = CliRunner().invoke(main, ["explain", FASTMAIL, "--no-fixes"])
    assert result.exit_code == EXIT_OK
    assert result.output.count("fastmail-secure-nexthop / ") == 4
    assert "what would make it deliver" not in result.output and "no change to the TLS settings" not in result.output


def test_explain_input_errors_exit_2() -> None:
    unknown = CliRunner().invoke(main, ["explain", FASTMAIL, "-k", "no-such-case"])
    assert unknown.exit_code == EXIT_INPUT and "no case matches -k 'no-such-case'" in unknown.output
    missing = CliRunner().invoke(main, ["explain", str(ROOT / "scenarios" / "nope.yaml")])
    assert missing.exit_code == EXIT_INPUT


def test_failure_details_carry_the_models_account() -> None:
    case = _absolute(fastmail_defers(Expect(status="sent")))
    text = failure_details(case)
    assert f"the TLS model's account (mxharness explain {FASTMAIL} -k secure-defers):" in text
    assert "      match list: nexthop, dot-nexthop" in text


def test_a_result_whose_scenario_cannot_be_read_again_has_no_account() -> None:
    case = replace(fastmail_defers(Expect(status="sent")), source_file="<test>")
    assert "the TLS model's account" not in failure_details(case)


def test_the_report_says_loudly_where_the_model_and_postfix_disagree() -> None:
    agreeing = [_absolute(fastmail_sent()), _absolute(fastmail_defers())]
    assert disagreement_lines(agreeing) == []
    assert DISAGREEMENT_HEADING not in _printed(agreeing)
    sent = agreeing[0]
    r = sent.recipients[0]
    assert r.observed is not None
    contradicted = replace(sent, recipients=(replace(r, observed=replace(r.observed, tls="Trusted")),))
    lines = disagreement_lines([contradicted, agreeing[1]])
    assert lines[0].startswith(f"{DISAGREEMENT_HEADING} 3.7.11 on 1 recipient(s)")
    assert lines[1:] == [
        "  fastmail-secure-nexthop / secure-with-provider-match to=<user@fastmail.fm>: tls: model Verified, "
        "Postfix Trusted"
    ]
    printed = _printed([contradicted, agreeing[1]])
    assert printed.rstrip().endswith(lines[-1])  # the last thing the report says


def _absolute(case: CaseResult) -> CaseResult:
    return replace(case, source_file=FASTMAIL)


def _printed(results: list[CaseResult]) -> str:
    out = io.StringIO()
    print_results(results, Console(file=out, width=200))
    return out.getvalue()


def test_the_model_follows_the_release_that_ran() -> None:
    defers = _absolute(fastmail_defers())
    r = defers.recipients[0]
    assert r.observed is not None
    trusted = replace(r, observed=replace(r.observed, tls="Trusted"))  # what 3.10.4+ logs for a wrong name
    on_3_10 = replace(defers, release="3.10.13", recipients=(trusted,))
    on_3_7 = replace(defers, release="3.7.11", recipients=(trusted,))
    assert disagreement_lines([on_3_10]) == []
    assert "tls: model Untrusted, Postfix Trusted" in disagreement_lines([on_3_7])[1]
