"""The pytest side without Docker: the CI rule over scenario case items, and case items' report locations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

SKIP_EVERY_ITEM = """
import pytest

def pytest_runtest_setup(item):
    pytest.skip("no engine here")
"""


def _pytest_in_the_repository(tmp_path: Path, *args: str, ci: bool) -> subprocess.CompletedProcess[str]:
    """``pytest ARGS`` run as a user would, from the repository root, with a plugin that skips every item."""
    (tmp_path / "mxh_skip_every_item.py").write_text(SKIP_EVERY_ITEM)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    if ci:
        env["CI"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "mxh_skip_every_item", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_on_ci_a_skipped_scenario_case_fails_a_run_of_scenarios_alone(tmp_path: Path) -> None:
    # `pytest scenarios/…` alone never loads tests/conftest.py, and scenario items are not under tests/: the rule
    # must come from the root conftest.py and see the plugin's case items.
    on_ci = _pytest_in_the_repository(tmp_path, "scenarios/seed/facebook.yaml", ci=True)
    assert "2 skipped" in on_ci.stdout, on_ci.stdout + on_ci.stderr
    assert "CI: 2 docker test(s) were skipped: that is a failure" in on_ci.stdout
    assert on_ci.returncode == pytest.ExitCode.TESTS_FAILED, on_ci.stdout + on_ci.stderr
    off_ci = _pytest_in_the_repository(tmp_path, "scenarios/seed/facebook.yaml", ci=False)
    assert off_ci.returncode == pytest.ExitCode.OK, off_ci.stdout + off_ci.stderr


def test_a_skip_marker_on_a_case_item_reports_the_cases_line(pytester: pytest.Pytester) -> None:
    pytester.copy_example(str(ROOT / "scenarios/seed/facebook.yaml"))
    pytester.makeconftest(
        """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.skip(reason="not today"))
"""
    )
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=2)
    # Each skip is reported at the line of its case (pytest shows reportinfo's 0-based line plus one).
    lines = (ROOT / "scenarios/seed/facebook.yaml").read_text().splitlines()
    expected = [1 + lines.index(f"  - name: {name}") for name in ("secure-delivers", "untrusted-root-defers")]
    _, skipped, _ = pytester.inline_run("-p", "no:cacheprovider").listoutcomes()
    assert [(Path(str(r.longrepr[0])).name, r.longrepr[1], r.longrepr[2]) for r in skipped] == [  # type: ignore[index]
        ("facebook.yaml", line, "Skipped: not today") for line in expected
    ]
    assert [r.location[1] for r in skipped] == [line - 1 for line in expected]


def test_a_scenario_warning_shows_in_pytests_warnings_summary(pytester: pytest.Pytester) -> None:
    # The warning `mxharness check` prints (a policy table level Postfix does not know) reaches a pytest user too.
    text = (ROOT / "scenarios/seed/facebook.yaml").read_text()
    assert "facebook.com secure ciphers=high" in text
    pytester.makefile(".yaml", typo_policy=text.replace("facebook.com secure ciphers=high", "facebook.com sekure"))
    # -W default: this project's own pytest settings turn warnings into errors, and pytester runs in this process.
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "-W", "default")
    result.stdout.fnmatch_lines(
        ["*ScenarioWarning: */typo_policy.yaml:*: WARNING: *unknown security level 'sekure' (did you mean 'secure'?)*"]
    )
    clean = pytester.makefile(".yaml", clean_policy=text)
    assert "ScenarioWarning" not in pytester.runpytest("--collect-only", "-W", "default", str(clean)).stdout.str()
