"""The command line without Docker: ``check``, and what ``run`` decides before it needs an engine.

``run`` is started as a subprocess with DOCKER_HOST pointing at a socket that does not exist, which proves
that the behaviour under test needs no engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from harness.cli import EXIT_ENVIRONMENT, EXIT_INPUT, EXIT_OK, main

ROOT = Path(__file__).resolve().parents[2]
MXHARNESS = Path(sys.executable).with_name("mxharness")

VALID = """\
name: cli
pki:
  cas:
    root: {subject: /CN=Root, key: ec256}
  certs:
    mx: {issuer: root, san: [mx.example.com], key: ec256}
dns:
  example.com: {MX: 10 mx.example.com}
  mx.example.com: {A: auto}
servers:
  mx.example.com: {cert: mx}
cases:
  - name: one
    send: [{to: user@example.com, expect: {status: sent}}]
  - name: two
    send: [{to: user@example.com}]
"""
INVALID = VALID.replace("{cert: mx}", "{cert: mxx}")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with valid.yaml and invalid.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "valid.yaml").write_text(VALID)
    (tmp_path / "invalid.yaml").write_text(INVALID)
    return tmp_path


def mxharness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command, with no reachable container engine."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{cwd}/no-such-docker.sock", "NO_COLOR": "1"}
    return subprocess.run(
        [str(MXHARNESS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


# --- check --------------------------------------------------------------------------------------------------


def test_check_of_valid_scenarios_exits_0_and_counts_them(runner: CliRunner, files: Path) -> None:
    result = runner.invoke(main, ["check", "valid.yaml"])
    assert result.exit_code == EXIT_OK == 0
    assert result.output == "1 scenario(s), 2 case(s): ok\n"


def test_check_of_the_project_scenarios_exits_0(runner: CliRunner) -> None:
    scenarios = sorted((ROOT / "scenarios").rglob("*.yaml"))
    result = runner.invoke(main, ["check", str(ROOT / "scenarios")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{len(scenarios)} scenario(s), ")


def test_check_without_paths_reads_the_scenarios_folder(runner: CliRunner, files: Path) -> None:
    (files / "scenarios").mkdir()
    (files / "scenarios" / "a.yaml").write_text(VALID)
    result = runner.invoke(main, ["check"])
    assert result.exit_code == 0
    assert result.output == "1 scenario(s), 2 case(s): ok\n"


def test_check_of_an_invalid_file_exits_2_with_file_line_and_key(runner: CliRunner, files: Path) -> None:
    result = runner.invoke(main, ["check", "invalid.yaml"])
    assert result.exit_code == EXIT_INPUT == 2
    assert result.stderr == (
        "invalid.yaml:11: servers[\"mx.example.com\"].cert: no certificate named 'mxx' in pki.certs "
        "(did you mean 'mx'?)\n"
        "1 problem(s) found; nothing was started.\n"
    )
    assert "Traceback" not in result.output


def test_check_reports_the_problems_of_every_file(runner: CliRunner, files: Path) -> None:
    (files / "empty.yaml").write_text("")
    result = runner.invoke(main, ["check", ".", "empty.yaml"])
    assert result.exit_code == 2
    assert result.stderr.startswith("invalid.yaml:11: servers")
    assert "empty.yaml:1: a scenario is a mapping of keys, found an empty file\n" in result.stderr
    assert result.stderr.endswith("2 problem(s) found; nothing was started.\n")


TYPO = VALID.replace(
    "cases:\n",
    "postfix:\n  main.cf: {smtp_tls_policy_maps: texthash:/etc/postfix/tls_policy}\n  maps:\n"
    "    /etc/postfix/tls_policy: |\n      acme.example sekure\ncases:\n",
)


def test_check_warns_of_a_policy_table_level_typo_and_still_exits_0(runner: CliRunner, files: Path) -> None:
    (files / "typo.yaml").write_text(TYPO)
    result = runner.invoke(main, ["check", "typo.yaml"])
    assert result.exit_code == EXIT_OK
    assert result.stdout == "1 scenario(s), 2 case(s): ok (1 warning above)\n"
    assert result.stderr.startswith(
        "typo.yaml:16: WARNING: postfix.maps[\"/etc/postfix/tls_policy\"]: policy table entry 'acme.example': "
        "unknown security level 'sekure' (did you mean 'secure'?)"
    )


def test_check_prints_warnings_before_the_errors_of_the_same_run(runner: CliRunner, files: Path) -> None:
    (files / "typo.yaml").write_text(TYPO)
    result = runner.invoke(main, ["check", "typo.yaml", "invalid.yaml"])
    assert result.exit_code == EXIT_INPUT
    assert result.stderr.startswith("typo.yaml:16: WARNING: ")
    assert "invalid.yaml:11: servers" in result.stderr


def test_check_of_a_missing_path_exits_2(runner: CliRunner, files: Path) -> None:
    result = runner.invoke(main, ["check", "nope.yaml"])
    assert result.exit_code == 2
    assert "nope.yaml: no such file or folder. Hint: give a scenario file or a folder" in result.stderr


def test_an_unknown_option_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(main, ["check", "--colour"])
    assert result.exit_code == 2
    assert "No such option '--colour'" in result.output


def test_an_unknown_command_exits_2(runner: CliRunner) -> None:
    assert runner.invoke(main, ["chek"]).exit_code == 2


def test_version_is_printed(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "0.1.0" in result.output


# --- run, up to the container engine ------------------------------------------------------------------------


def test_the_command_is_installed() -> None:
    assert MXHARNESS.is_file(), f"{MXHARNESS} is missing: install the project into the venv (pip install -e .)"


def test_run_of_an_invalid_file_exits_2_without_an_engine(files: Path) -> None:
    result = mxharness("run", "invalid.yaml", cwd=files)
    assert result.returncode == EXIT_INPUT
    assert result.stderr.startswith("invalid.yaml:11: servers[\"mx.example.com\"].cert: no certificate named 'mxx'")
    assert "nothing was started" in result.stderr
    assert "environment problem" not in result.stderr


def test_run_validates_every_file_before_it_starts_anything(files: Path) -> None:
    result = mxharness("run", "valid.yaml", "invalid.yaml", cwd=files)
    assert result.returncode == EXIT_INPUT
    assert "invalid.yaml:11:" in result.stderr
    assert "environment problem" not in result.stderr


def test_run_prints_the_loader_s_warnings_before_it_starts(files: Path) -> None:
    (files / "typo.yaml").write_text(TYPO)
    result = mxharness("run", "typo.yaml", cwd=files)
    assert result.returncode == EXIT_ENVIRONMENT  # the warning does not stop the run; the missing engine does
    assert result.stderr.startswith("typo.yaml:16: WARNING: postfix.maps")
    assert "(did you mean 'secure'?)" in result.stderr


def test_run_with_a_pattern_that_matches_no_case_exits_2_without_an_engine(files: Path) -> None:
    result = mxharness("run", "-k", "nomatch", "valid.yaml", cwd=files)
    assert result.returncode == EXIT_INPUT
    assert "no case matches -k 'nomatch'. Hint: patterns match 'scenario/case'" in result.stderr


def test_run_without_an_engine_exits_3_with_a_hint(files: Path) -> None:
    result = mxharness("run", "valid.yaml", cwd=files)
    assert result.returncode == EXIT_ENVIRONMENT == 3
    assert result.stderr.startswith("environment problem: no Docker engine is reachable")
    assert "Hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_keep_prints_the_clean_command_of_this_run(
    runner: CliRunner, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in Runner: the case fails and its pod is kept, as `Runner(keep_failed=True)` reports it.
    import dataclasses

    from _report_cases import fastmail_defers

    import harness.runner
    from harness.model import Expect

    kept = dataclasses.replace(fastmail_defers(Expect(status="sent")), kept_pod="mxh-postfix-kept")
    assert not kept.passed

    class KeptPodRunner:
        run_id = "0123abcd"

        def __init__(self, **options: object) -> None:
            assert options["keep_failed"] is True

        def __enter__(self) -> KeptPodRunner:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def run(self, scenarios: object, **kwargs: object) -> list[object]:
            return [kept]

    monkeypatch.setattr(harness.runner, "Runner", KeptPodRunner)
    monkeypatch.setenv("NO_COLOR", "1")
    result = runner.invoke(main, ["run", "--keep", "-k", "*/one", "valid.yaml"])
    assert "docker exec -it mxh-postfix-kept bash" in result.output
    assert "remove it with: mxharness clean --run 0123abcd" in result.output.replace("\n", " ")
    removal = runner.invoke(main, ["clean", "--help"])  # the printed command is one `clean` takes
    assert "--run TEXT" in removal.output


class _FakeRunner:
    """A stand-in Runner that returns given results (no engine), as the CLI's progress and report see them."""

    results: ClassVar[list[object]] = []

    def __init__(self, **options: object) -> None:
        pass

    def __enter__(self) -> _FakeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, scenarios: object, **kwargs: object) -> list[object]:
        return list(self.results)


@pytest.mark.parametrize("release_options", [["--release", "all"], []])
def test_run_on_several_releases_names_the_release_in_each_progress_line_in_version_order(
    runner: CliRunner, files: Path, monkeypatch: pytest.MonkeyPatch, release_options: list[str]
) -> None:
    import dataclasses

    from _report_cases import fastmail_defers

    import harness.runner

    several = bool(release_options)
    releases = ("3.10.13", "3.5.25", "3.7.11") if several else ("3.7.11",)
    monkeypatch.setattr(_FakeRunner, "results", [dataclasses.replace(fastmail_defers(), release=r) for r in releases])
    monkeypatch.setattr(harness.runner, "Runner", _FakeRunner)
    monkeypatch.setenv("NO_COLOR", "1")
    result = runner.invoke(main, ["run", *release_options, "-k", "*/one", "valid.yaml"])
    lines = result.stdout.splitlines()
    if several:
        assert lines[:3] == [
            "pass fastmail-secure-nexthop/secure-defers on Postfix 3.10.13 (2.6 s) [1/3]",
            "pass fastmail-secure-nexthop/secure-defers on Postfix 3.5.25 (2.6 s) [2/3]",
            "pass fastmail-secure-nexthop/secure-defers on Postfix 3.7.11 (2.6 s) [3/3]",
        ]
        assert "fastmail-secure-nexthop · Postfix 3.5.25, 3.7.11, 3.10.13 · 3 cases" in result.stdout
    else:
        assert lines[0] == "pass fastmail-secure-nexthop/secure-defers (2.6 s) [1/1]"
