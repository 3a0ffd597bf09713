"""mxharness compare without Docker: bad input is refused before anything starts (exit 2, with file, line and key),
and the reports of a comparison (terminal, --json, --junit) list what got worse first."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness._compare_config import folder_configuration, opportunistic_configuration
from harness._compare_report import compare_document, compare_junit, report_text
from harness.cli import main
from harness.compare import Change, Comparison
from harness.results import Observed

ROOT = Path(__file__).resolve().parents[2]
SEED = str(ROOT / "scenarios" / "seed" / "etc-postfix")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["compare", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --before DIR with --after DIR (or with --policy FILE), or --policy FILE alone"),
        (("--before", SEED), "--before DIR needs --after DIR or --policy FILE"),
        (("--after", SEED), "--after DIR needs --before DIR"),
        (("--before", SEED, "--after", SEED, "--policy", "x"), "give it instead of --after, not with it"),
    ],
)
def test_options_that_do_not_make_two_sides_are_a_usage_error(args: tuple[str, ...], message: str) -> None:
    code, output = _run(*args)
    assert code == 2 and message in output


def test_a_folder_without_main_cf_is_refused_with_its_name_and_option(tmp_path: Path) -> None:
    code, output = _run("--before", SEED, "--after", str(tmp_path))
    assert code == 2
    assert f"{tmp_path}: --after: --after: {tmp_path} has no main.cf" in output
    assert "nothing was started" in output


def test_a_malformed_policy_table_is_refused_at_its_line(tmp_path: Path) -> None:
    table = tmp_path / "tls_policy"
    table.write_text("gmail.com secure\nfastmail.fm\n")
    code, output = _run("--policy", str(table))
    assert code == 2 and f"{table}:2: --policy: 'fastmail.fm' is not `destination level" in output


def test_a_world_with_problems_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    world = tmp_path / "w.yaml"
    world.write_text("name: w\ninclude: [fastmial]\ncases: [{name: c, send: [{to: a@b.example}]}]\n")
    code, output = _run("--before", SEED, "--after", SEED, str(world))
    assert code == 2 and f"{world}:2: include[0]: no world 'fastmial' in the library" in output


def test_a_report_that_cannot_be_written_is_refused_before_anything_starts(tmp_path: Path) -> None:
    code, output = _run("--before", SEED, "--after", SEED, "--json", str(tmp_path / "no" / "r.json"))
    assert code == 2 and "folder" in output and "does not exist" in output


def _observed(status: str, dsn: str, tls: str) -> Observed:
    return Observed(status, dsn, "r", "mx[192.0.2.1]:25", "mx", "192.0.2.1", 25, tls, "Q1")


def _comparison() -> Comparison:
    verified, deferred = _observed("sent", "2.0.0", "Verified"), _observed("deferred", "4.7.5", "Untrusted")
    changes = (
        Change("newly deferred", "fastmail.fm", "postmaster@fastmail.fm", "sendmail", "world-fastmail", "compare",
               verified, deferred, reason="match .messagingengine.com → nexthop, dot-nexthop"),
        Change("newly verified", "hearst.com", "postmaster@hearst.com", "sendmail", "world-proofpoint", "compare",
               deferred, verified, reason="the certificate name gslb.pphosted.com matches gslb.pphosted.com"),
        Change("no result", "gmail.com", "postmaster@gmail.com", "sendmail", "world-google", "compare",
               verified, None, after_error="timed out after 30 s"),
        Change("unchanged", "facebook.com", "user@facebook.com", "smtp", "seed", "compare", verified, verified),
    )  # fmt: skip
    return Comparison(folder_configuration(SEED), opportunistic_configuration(), changes, notes=("a note",))


def test_the_text_lists_the_worse_first_each_with_before_after_and_reason() -> None:
    text = report_text(_comparison())
    lines = text.splitlines()
    assert lines[0] == f"before: {SEED}" and lines[1] == "after:  smtp_tls_security_level = may, no policy table"
    assert "note: a note" in lines
    headings = [line for line in lines if line and line.split(" (")[0].isupper()]
    assert headings == ["NEWLY DEFERRED (1)", "NO RESULT (1)", "NEWLY VERIFIED (1)", "UNCHANGED (1)"]
    width = len("user@facebook.com via smtp")  # the longest label: the columns line up
    assert f"  {'fastmail.fm':<{width}}  sent 2.0.0 tls=Verified  →  deferred 4.7.5 tls=Untrusted" in lines
    assert f"  {'':<{width}}  because: match .messagingengine.com → nexthop, dot-nexthop" in lines
    assert f"  {'gmail.com':<{width}}  sent 2.0.0 tls=Verified  →  no result (timed out after 30 s)" in lines
    assert "  user@facebook.com via smtp  sent 2.0.0 tls=Verified" in lines
    assert lines[-1] == "WORSE for 2 destination(s): 2 worse, 1 better, 0 otherwise changed, 1 unchanged"


def test_the_json_document_has_the_verdict_and_one_entry_per_message() -> None:
    document = json.loads(json.dumps(compare_document(_comparison())))
    assert document["kind"] == "compare" and document["schema_version"] == 1 and document["worse"] is True
    assert document["before"] == {"label": SEED, "config_dir": SEED}
    assert document["after"] == {"label": "smtp_tls_security_level = may, no policy table", "config_dir": None}
    assert document["summary"]["worse"] == 2 and document["summary"]["kinds"]["unchanged"] == 1
    first = document["changes"][0]
    assert (first["kind"], first["destination"], first["worse"]) == ("newly deferred", "fastmail.fm", True)
    assert first["after"] == {"status": "deferred", "dsn": "4.7.5", "tls": "Untrusted", "relay": "mx[192.0.2.1]:25",
                              "reason": "r"}  # fmt: skip
    assert document["changes"][2]["after"] == {"status": None, "error": "timed out after 30 s"}
    assert set(document["runs"]) == {"before", "after"} and document["runs"]["before"]["cases"] == []


def test_junit_fails_each_destination_that_got_worse_and_passes_the_others() -> None:
    suite = ET.fromstring(compare_junit(_comparison()))
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    failed = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    fastmail = failed["fastmail.fm"]
    assert fastmail is not None and fastmail.get("type") == "newly deferred"
    assert fastmail.get("message") == "newly deferred: sent 2.0.0 tls=Verified → deferred 4.7.5 tls=Untrusted"
    assert "because: match .messagingengine.com" in (fastmail.text or "")
    assert failed["hearst.com"] is None and failed["user@facebook.com via smtp"] is None
