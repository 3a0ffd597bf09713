"""The ``mxharness`` command line.

Exit codes: 0 every expectation held; 1 an expectation failed (or a case could not finish); 2 invalid input
(a scenario error, bad options); 3 environment problem (no Docker engine, an image build failed).
"""

from __future__ import annotations

import fnmatch
import sys

import click
from rich.console import Console

from harness.errors import EnvironmentProblem, ScenarioError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3


class _Group(click.Group):
    """Maps the harness's errors to exit codes, so no command shows a traceback for them."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ScenarioError as exc:
            click.echo(str(exc), err=True)
            click.echo(f"{len(exc.issues)} problem(s) found; nothing was started.", err=True)
            sys.exit(EXIT_INPUT)
        except EnvironmentProblem as exc:
            click.echo(f"environment problem: {exc}", err=True)
            sys.exit(EXIT_ENVIRONMENT)


@click.group(cls=_Group)
@click.version_option(package_name="mxharness")
def main() -> None:
    """mxharness: run mail-delivery scenarios against a real Postfix in a container."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-k", "pattern", help="Run only cases whose 'scenario/case' matches this glob, e.g. '*secure*'.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds per case for every recipient to reach a first-attempt status.",
)
@click.option("--keep", is_flag=True, help="Leave the pod of a failed case running and say how to get a shell in it.")
def run(paths: tuple[str, ...], pattern: str | None, timeout_s: float, keep: bool) -> None:
    """Run scenarios (files or folders; default: scenarios/) and print expected vs observed per recipient."""
    from harness.report import print_results
    from harness.runner import Runner
    from harness.scenario import load_scenarios

    scenarios = load_scenarios(paths or ["scenarios"])  # everything is validated before any container starts
    console = Console(width=None if sys.stdout.isatty() else 200)

    def select(scenario: object, case: object) -> bool:
        name = f"{getattr(scenario, 'name', '')}/{getattr(case, 'name', '')}"
        return pattern is None or fnmatch.fnmatch(name, pattern) or pattern in name

    results = []
    progress = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    with Runner(timeout_s=timeout_s, progress=progress, keep_failed=keep) as runner:
        for result in runner.run(scenarios, select=select):
            mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {result.scenario}/{result.case} ({result.duration_s:.1f} s)")
            results.append(result)
    if not results:
        click.echo(f"no case matches -k {pattern!r}. Hint: patterns match 'scenario/case'", err=True)
        sys.exit(EXIT_INPUT)
    print_results(results, console)
    for result in results:
        if result.kept_pod:
            console.print(
                f"kept the pod of {result.scenario}/{result.case}: docker exec -it {result.kept_pod} bash "
                "(Postfix's log: docker logs " + result.kept_pod + "); remove it with: mxharness clean"
            )
    failed = sum(1 for r in results if not r.passed)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if any(r.config_issues for r in results):
        sys.exit(EXIT_INPUT)  # Postfix rejected a configuration: invalid input, as for a scenario error
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def check(paths: tuple[str, ...]) -> None:
    """Validate scenarios without Docker: every problem with file, line and key."""
    from harness.scenario import load_scenarios

    scenarios = load_scenarios(paths or ["scenarios"])
    cases = sum(len(s.cases) for s in scenarios)
    click.echo(f"{len(scenarios)} scenario(s), {cases} case(s): ok")


@main.group()
def images() -> None:
    """The pod's images (Postfix per release, peer)."""


@images.command("build")
@click.option("--release", default=None, help="Postfix release (default: the project's default, 3.7).")
def images_build(release: str | None) -> None:
    """Build the images that are missing or out of date (pull a base, else bootstrap it from the Debian mirror)."""
    from harness.engine import Engine
    from harness.images import ensure_images

    engine = Engine()
    try:
        built = ensure_images(engine, release, progress=click.echo)
    finally:
        engine.close()
    click.echo(f"postfix image: {built.postfix}\npeer image:    {built.peer}")


@main.command()
def doctor() -> None:
    """Is this machine ready? Engine, images (present and current), Postfix releases, bootstrap tools."""
    import shutil

    from harness.engine import Engine
    from harness.images import DEFAULT_RELEASE, RELEASES, image_states

    click.echo(
        f"Postfix releases: {', '.join(f'{r} (Debian {s})' for r, s in RELEASES.items())}; default {DEFAULT_RELEASE}"
    )
    click.echo(f"mmdebstrap (bootstrap without a registry): {shutil.which('mmdebstrap') or 'not installed'}")
    engine = Engine()  # EnvironmentProblem → exit 3 with the hint
    try:
        version = engine.client.version()
        click.echo(f"Docker engine: {version.get('Version')} (API {version.get('ApiVersion')}) — reachable")
        missing = 0
        for state in image_states(engine):
            mark = "ok" if state.present else "missing"
            missing += not state.present
            click.echo(f"  {state.role:<24} {mark:<8} {state.tag or '(tag known once the base exists)'}")
    finally:
        engine.close()
    if missing:
        click.echo("Some images are missing or out of date: `mxharness images build` (or any run) builds them.")
    else:
        click.echo("Ready.")


@main.command()
def clean() -> None:
    """Remove every container labelled by mxharness, including leftovers of crashed runs."""
    from harness.engine import Engine, remove_leftovers

    engine = Engine()
    try:
        removed = remove_leftovers(engine)
    finally:
        engine.close()
    click.echo(f"removed {removed} container(s)")
