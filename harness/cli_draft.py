"""``mxharness draft``: a scenario drafted from a bug report (see :mod:`harness.draft`).

Exit codes: 0 the draft was written; 1 it was written but does not load as a scenario (its header lists the
problems; edit it before running it); 2 invalid input (an unreadable or binary file, main.cf or policy table
lines not of their form, nothing to draft from, an output path that cannot be written), as for ``run``.
"""

from __future__ import annotations

__all__ = ["draft"]

import sys
from pathlib import Path

import click

from harness.errors import ScenarioError, ScenarioIssue


@click.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--policy", metavar="FILE", type=click.Path(dir_okay=False), help="The TLS policy table source.")
@click.option("--main-cf", metavar="FILE", type=click.Path(dir_okay=False), help="main.cf or `postconf -n` output.")
@click.option("-o", "--output", metavar="FILE", help="Write the scenario here (default: standard output).")
@click.option("--name", metavar="NAME", help="Scenario name (default: drafted- and the first next-hop).")
@click.option("--keep-addresses", is_flag=True, help="Keep the local parts of addresses (default: placeholders).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
def draft(
    logs: tuple[str, ...],
    policy: str | None,
    main_cf: str | None,
    output: str | None,
    name: str | None,
    keep_addresses: bool,
    force: bool,
) -> None:
    """Draft a scenario from Postfix log excerpts and posttls-finger output (LOGS; - reads standard input), with
    the reporter's policy table and main.cf. Guesses are listed in the comments at the top of the draft."""
    from harness.draft import draft_scenario

    if output is not None:
        _check_output(Path(output), force=force)
    result = draft_scenario(logs, policy=policy, main_cf=main_cf, keep_addresses=keep_addresses, name=name)
    if output is None:
        click.echo(result.text, nl=False)
    else:
        try:
            Path(output).write_text(result.text, encoding="utf-8")
        except OSError as exc:
            issue = ScenarioIssue(output, None, "", f"cannot write the draft: {exc.strerror or exc}")
            raise ScenarioError(issue) from None
        paste = result.paste
        click.echo(
            f"wrote {output}: scenario {result.name}, {len(result.data['cases'][0]['send'])} message(s); "
            f"{len(paste.entries)} line(s) used, {len(paste.skipped)} not understood, {len(result.guesses)} guess(es) "
            "listed at the top",
            err=True,
        )
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.problems:
        for problem in result.problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo("the draft does not load as a scenario: edit it before running it", err=True)
        sys.exit(1)


def _check_output(path: Path, *, force: bool) -> None:
    """Refuse to overwrite a file without --force, and an output folder that does not exist (exit 2)."""
    if path.is_dir():
        hint = f"give a file name, e.g. {path / 'scenario.yaml'}"
        raise ScenarioError(ScenarioIssue(str(path), None, "", f"cannot write the draft: a folder. Hint: {hint}"))
    if path.exists() and not force:
        raise ScenarioError(
            ScenarioIssue(str(path), None, "", "the file exists. Hint: choose another name, or --force to overwrite")
        )
    if not path.parent.is_dir():
        raise ScenarioError(
            ScenarioIssue(str(path), None, "", f"folder {str(path.parent)!r} does not exist. Hint: create it first")
        )
