"""``mxharness run --json/--junit/--html/--trace`` before any container: report paths are checked first.

``run`` is started as a subprocess with DOCKER_HOST pointing at a socket that does not exist: an exit 2 proves that
the check came before the engine was needed (without it the command would exit 3, "environment problem").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import EXIT_ENVIRONMENT, EXIT_INPUT, main

MXHARNESS = Path(sys.executable).with_name("mxharness")
VALID = """\
name: cli
pki:
  cas: {root: {subject: /CN=Root, key: ec256}}
  certs: {mx: {issuer: root, san: [mx.example.com], key: ec256}}
dns:
  example.com: {MX: 10 mx.example.com}
  mx.example.com: {A: auto}
servers:
  mx.example.com: {cert: mx}
cases:
  - name: one
    send: [{to: user@example.com, expect: {status: sent}}]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "valid.yaml").write_text(VALID)
    return tmp_path


def mxharness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command, with no reachable container engine."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{cwd}/no-such-docker.sock", "NO_COLOR": "1"}
    return subprocess.run(
        [str(MXHARNESS), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_run_documents_the_report_options() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--json FILE", "--junit FILE", "--html FILE", "--trace"):
        assert option in result.output


def test_a_json_path_in_a_missing_folder_exits_2_before_any_container(folder: Path) -> None:
    result = mxharness("run", "--json", "nope/results.json", "valid.yaml", cwd=folder)
    assert result.returncode == EXIT_INPUT
    assert result.stderr == (
        "--json nope/results.json: cannot write the report: folder 'nope' does not exist. Hint: create it first.\n"
        "nothing was started.\n"
    )


def test_a_report_path_that_is_a_folder_exits_2(folder: Path) -> None:
    (folder / "out").mkdir()
    result = mxharness("run", "--html", "out", "valid.yaml", cwd=folder)
    assert result.returncode == EXIT_INPUT
    assert "--html out: cannot write the report: it is a folder. Hint: give a file name, e.g. out/results." in (
        result.stderr
    )


def test_two_reports_in_one_file_exit_2(folder: Path) -> None:
    result = mxharness("run", "--json", "r.out", "--junit", "./r.out", "valid.yaml", cwd=folder)
    assert result.returncode == EXIT_INPUT
    assert "--junit r.out: the same file as --json. Hint: give each report its own file." in result.stderr


def test_every_bad_report_path_is_named_at_once(folder: Path) -> None:
    result = mxharness("run", "--json", "a/x.json", "--junit", "b/x.xml", "valid.yaml", cwd=folder)
    assert result.returncode == EXIT_INPUT
    assert "--json a/x.json:" in result.stderr and "--junit b/x.xml:" in result.stderr


def test_an_unwritable_folder_exits_2(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{folder}/no-such-docker.sock")
    # Permission bits do not stop root (the test may run as root): the folder is made unwritable by os.access.
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith("ro"))
    (folder / "ro").mkdir()
    result = CliRunner().invoke(main, ["run", "--junit", "ro/junit.xml", "valid.yaml"])
    assert result.exit_code == EXIT_INPUT
    assert "--junit ro/junit.xml: cannot write the report: folder 'ro' is not writable. Hint:" in result.stderr


def test_good_report_paths_go_on_to_the_engine(folder: Path) -> None:  # negative control: the check lets them by
    result = mxharness(
        "run", "--json", "r.json", "--junit", "r.xml", "--html", "r.html", "--trace", "valid.yaml", cwd=folder
    )
    assert result.returncode == EXIT_ENVIRONMENT
    assert result.stderr.startswith("environment problem: no Docker engine is reachable")
    assert not (folder / "r.json").exists()  # nothing ran, nothing written
