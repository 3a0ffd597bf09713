"""``mxharness draft`` on the command line: output, exit codes, and input errors with file, line and hint."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import EXIT_INPUT, EXIT_OK, main
from harness.scenario import load_scenario

DATA = Path(__file__).parent.parent / "data"
DRAFT = Path(__file__).parent / "data" / "draft"
SEED_LOG = str(DATA / "seed-smtp-tls.log")
SEED_ARGS = [SEED_LOG, "--policy", str(DRAFT / "seed-tls_policy"), "--main-cf", str(DRAFT / "seed-main.cf")]


def test_draft_writes_a_loadable_scenario_and_says_what_it_did(tmp_path: Path) -> None:
    out = tmp_path / "scenario.yaml"
    result = CliRunner().invoke(main, ["draft", *SEED_ARGS, "-o", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    assert f"wrote {out}: scenario drafted-fastmail-fm, 1 message(s); 32 line(s) used, 0 not understood" in (
        result.output
    )
    assert load_scenario(out).cases[0].send[0].expect.dsn == "4.7.5"


def test_draft_without_output_prints_the_scenario() -> None:
    result = CliRunner().invoke(main, ["draft", SEED_LOG, "--name", "seed-report"])
    assert result.exit_code == EXIT_OK, result.output
    assert result.output.startswith("# Drafted by `mxharness draft` from ")
    assert "\nname: seed-report\n" in result.output


def test_draft_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "scenario.yaml"
    out.write_text("mine\n")
    result = CliRunner().invoke(main, ["draft", SEED_LOG, "-o", str(out)])
    assert result.exit_code == EXIT_INPUT
    assert "the file exists. Hint: choose another name, or --force to overwrite" in result.output
    assert out.read_text() == "mine\n"
    assert CliRunner().invoke(main, ["draft", SEED_LOG, "-o", str(out), "--force"]).exit_code == EXIT_OK
    assert out.read_text().startswith("# Drafted")


def test_draft_input_errors_exit_2_with_file_and_line(tmp_path: Path) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("smtp_tls_security_level = may\nsmtp      inet  n       -       y       -       -       smtpd\n")
    result = CliRunner().invoke(main, ["draft", SEED_LOG, "--main-cf", str(main_cf), "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == EXIT_INPUT
    assert f"{main_cf}:2: not a main.cf line" in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_draft_of_a_missing_log_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["draft", str(tmp_path / "nope.log")])
    assert result.exit_code == EXIT_INPUT
    assert "nope.log: cannot read the file" in result.output


def test_draft_into_a_missing_folder_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["draft", SEED_LOG, "-o", str(tmp_path / "no" / "x.yaml")])
    assert result.exit_code == EXIT_INPUT
    assert "does not exist. Hint: create it first" in result.output


def test_draft_reads_standard_input() -> None:
    result = CliRunner().invoke(main, ["draft", "-"], input=Path(SEED_LOG).read_text())
    assert result.exit_code == EXIT_OK, result.output
    assert result.output.startswith("# Drafted by `mxharness draft` from standard input.")
    assert "Read 32 line(s): 32 Postfix log line(s)" in result.output
