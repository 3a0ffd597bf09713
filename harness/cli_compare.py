"""``mxharness compare``: what a configuration change does to the mail of each destination, on real Postfix.

Registered on the ``mxharness`` group by :mod:`harness.cli`. Exit codes: 0 nothing got worse; 1 a destination got
worse (newly deferred or bounced, lost verification, weaker TLS) or a case could not finish; 2 invalid input (options,
a configuration folder or policy table that cannot be read, a world with problems, a configuration Postfix rejects);
3 environment problem (no Docker engine, an image build failed); 130 interrupted. See docs/compare.md.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from harness.compare import Comparison

__all__ = ["compare"]

EXIT_OK, EXIT_WORSE, EXIT_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3


@click.command()
@click.argument("worlds", nargs=-1, type=click.Path())
@click.option("--before", "before_dir", metavar="DIR", help="The configuration in use: a copy of /etc/postfix.")
@click.option("--after", "after_dir", metavar="DIR", help="The proposed configuration: a copy of /etc/postfix.")
@click.option(
    "--policy",
    "policy_file",
    metavar="FILE",
    help="A proposed smtp_tls_policy_maps table: compared with --before DIR, or alone with smtp_tls_security_level = "
    "may and no policy table.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write the comparison as JSON (docs/compare.md).")
@click.option("--junit", "junit_path", metavar="FILE", help="Write JUnit XML: a failure for each destination worse.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per case for every recipient to reach a first-attempt status.",
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Cases to run at once (pods)."
)
@click.option("--no-explain", is_flag=True, help="Leave out the TLS model's reason of each change.")
def compare(
    worlds: tuple[str, ...],
    before_dir: str | None,
    after_dir: str | None,
    policy_file: str | None,
    json_path: str | None,
    junit_path: str | None,
    timeout_s: float,
    jobs: int,
    no_explain: bool,
) -> None:
    """Run the same world and messages with two Postfix configurations and list, per destination, the outcome
    before and after (status, DSN, TLS level): changes for the worse first, then for the better, then the
    unchanged. WORLDS are scenario files or folders (a world with destinations sends one message to each); without
    them, the world library's destinations that the policy tables name."""
    from harness._compare_config import folder_configuration, opportunistic_configuration, policy_configuration
    from harness._compare_report import compare_junit, dumps_document
    from harness.cli import _report_paths, import_docker_sdk

    import_docker_sdk()
    from harness.compare import compare as run_comparison
    from harness.runner import Runner
    from harness.scenario import load_scenarios

    if after_dir is not None and policy_file is not None:
        raise click.UsageError("--policy FILE is the proposed change: give it instead of --after, not with it")
    if after_dir is not None and before_dir is None:
        raise click.UsageError("--after DIR needs --before DIR: the configuration in use")
    if before_dir is not None and after_dir is None and policy_file is None:
        raise click.UsageError("--before DIR needs --after DIR or --policy FILE: the configuration to compare with")
    if before_dir is None and policy_file is None:
        raise click.UsageError("give --before DIR with --after DIR (or with --policy FILE), or --policy FILE alone")
    reports = _report_paths({"--json": json_path, "--junit": junit_path})
    before = folder_configuration(before_dir) if before_dir else opportunistic_configuration()
    if policy_file is not None:
        after = policy_configuration(policy_file, base=before if before_dir else None)
    else:
        assert after_dir is not None
        after = folder_configuration(after_dir, option="--after")
    chosen = load_scenarios(worlds) if worlds else None  # every problem of every file before anything starts
    started = datetime.now(UTC)
    with Runner(timeout_s=timeout_s, jobs=jobs, progress=lambda m: click.echo(m, err=True)) as runner:
        result = run_comparison(before, after, chosen, runner=runner, explain=not no_explain)
    finished = datetime.now(UTC)
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    click.echo(result.text() if not colour else _coloured(result))
    render = {
        "--json": lambda: dumps_document(result, started=started, finished=finished),
        "--junit": lambda: compare_junit(result, started=started),
    }
    for option, path in reports.items():
        _write(option, path, render[option]())
    if result.config_issues:
        sys.exit(EXIT_INPUT)  # Postfix rejected a configuration: invalid input, as for `run`
    sys.exit(EXIT_WORSE if result.worse else EXIT_OK)


def _coloured(result: Comparison) -> str:
    from harness._compare_report import report_text

    def style(text: str, colour: str | None, bold: bool) -> str:
        return click.style(text, fg=colour, bold=bold)

    return report_text(result, style=style)


def _write(option: str, path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"{option} {path}: cannot write the report: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    click.echo(f"wrote {option[2:]} report: {path}", err=True)
