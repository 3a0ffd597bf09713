"""The release matrix without Docker: per-release `expect` values, `run --release`, `--mxharness-release`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ScenarioError
from harness.releases import RELEASES, suite_for_release
from harness.scenario import load_scenario, scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]


def _message(expect: dict[str, object]) -> dict[str, object]:
    return {"name": "s", "cases": [{"name": "c", "send": [{"to": "u@example.com", "expect": expect}]}]}


def test_the_three_releases_and_their_suites() -> None:
    assert RELEASES == {"3.5": "bullseye", "3.7": "bookworm", "3.10": "trixie"}
    assert suite_for_release("trixie") == "trixie" and suite_for_release("3.9") is None


def test_expect_values_per_release_with_a_default() -> None:
    scenario = scenario_from_dict(
        _message({"status": "deferred", "tls": {"default": "Untrusted", "3.5": "Trusted", "3.10": None}})
    )
    message = scenario.cases[0].send[0]
    assert message.expect_for("3.7.11").tls == "Untrusted"
    assert message.expect_for("3.5.25").tls == "Trusted"
    assert message.expect_for("3.10.13").tls is None  # null: not checked on that release
    assert message.expect_for(None).tls == "Untrusted"
    assert message.expect_for("3.5.25").status == "deferred"
    assert message.expect_releases == ("3.5", "3.10")


def test_a_key_without_default_is_checked_only_where_given() -> None:
    message = scenario_from_dict(_message({"reason": {"3.5": "Server certificate not trusted"}})).cases[0].send[0]
    assert message.expect_for("3.5.25").reason == "Server certificate not trusted"
    assert message.expect_for("3.7.11").reason is None


def test_yaml_release_keys_written_as_numbers_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ncases:\n  - name: c\n    send:\n      - to: u@example.com\n"
        "        expect: {tls: {default: Untrusted, 3.10: Trusted, 3.5: Trusted}}\n"
    )
    message = load_scenario(path).cases[0].send[0]
    assert message.expect_for("3.10.13").tls == "Trusted" and message.expect_for("3.1.0").tls == "Untrusted"


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"default": "Untrusted", "3.4": "Trusted"}, "expect.tls: '3.4' is not a Postfix release the harness has"),
        ({"default": "Untrusted", "3.5": "Trustd"}, "expect.tls for release 3.5: Input should be 'none'"),
    ],
)
def test_bad_per_release_values_name_file_line_and_key(tmp_path: Path, tls: dict[str, str], message: str) -> None:
    path = tmp_path / "s.yaml"
    values = ", ".join(f'"{k}": {v}' for k, v in tls.items())
    path.write_text(
        f"name: s\ncases:\n  - name: c\n    send:\n      - to: u@example.com\n        expect: {{tls: {{{values}}}}}\n"
    )
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    (issue,) = raised.value.issues
    assert issue.key == "cases[0].send[0]" and issue.line == 5
    assert message in issue.message


def test_on_release_pins_every_case() -> None:
    scenario = load_scenario(ROOT / "scenarios/seed/fastmail.yaml")
    copy = scenario.on_release("3.10")
    assert copy.postfix.release == "3.10" and all(c.postfix.release is None for c in copy.cases)
    assert copy.source_file == scenario.source_file and scenario.postfix.release is None


def test_run_with_an_unknown_release_exits_2_before_anything_starts() -> None:
    result = CliRunner().invoke(main, ["run", "--release", "2.11", str(ROOT / "scenarios/seed/fastmail.yaml")])
    assert result.exit_code == 2
    assert "no Postfix image for release '2.11'" in result.output and "3.5 (Debian bullseye)" in result.output


def test_pytest_items_per_release_side_by_side(pytester: pytest.Pytester) -> None:
    pytester.copy_example(str(ROOT / "scenarios/seed/facebook.yaml"))
    result = pytester.runpytest("--collect-only", "-q", "--mxharness-release", "all", "-p", "no:cacheprovider")
    names = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert names == [f"{case}[{r}]" for case in ("secure-delivers", "untrusted-root-defers") for r in RELEASES]
    bad = pytester.runpytest("--collect-only", "-q", "--mxharness-release", "9.9")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
