"""``mxharness explain``: what Postfix will do with each message of a scenario, and why, without running it.

Registered on the ``mxharness`` group by :mod:`harness.cli`. No Docker is needed: the text is the TLS model's
(:mod:`harness.explain`), which the differential test holds to real Postfix.
"""

from __future__ import annotations

import fnmatch
import sys

import click

__all__ = ["explain"]

EXIT_INPUT = 2


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-k", "pattern", help="Only cases whose 'scenario/case' matches this glob (or contains it).")
@click.option("--no-fixes", is_flag=True, help="Do not look for changes that would make a deferred message deliver.")
def explain(paths: tuple[str, ...], pattern: str | None, no_fixes: bool) -> None:
    """Explain, per message, Postfix's TLS decision in plain words: next-hop, security level and match list and
    where each comes from, the names checked against the certificate, the chain, the predicted status, DSN and TLS
    level; for a message that would not be delivered, the changes that would make it deliver and what each gives
    up. PATHS are scenario files or folders. Exit 2 on invalid input."""
    from harness.explain import explain_case
    from harness.scenario import load_scenarios

    scenarios = load_scenarios(paths)  # a ScenarioError exits 2 through the group
    chosen = [
        (s, c)
        for s in scenarios
        for c in s.cases
        if pattern is None or fnmatch.fnmatch(f"{s.name}/{c.name}", pattern) or pattern in f"{s.name}/{c.name}"
    ]
    if not chosen:
        click.echo(f"no case matches -k {pattern!r}. Hint: patterns match 'scenario/case'", err=True)
        sys.exit(EXIT_INPUT)
    blocks = []
    for scenario, case in chosen:
        for explanation in explain_case(scenario, case, fixes=not no_fixes):
            blocks.append(explanation.text())
    click.echo("\n\n".join(blocks))
