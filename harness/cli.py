"""The ``mxharness`` command line.

Exit codes: 0 every expectation held; 1 an expectation failed (or a case could not finish); 2 invalid input
(a scenario error, bad options); 3 environment problem (no Docker engine, an image build failed); 130
interrupted (Ctrl-C, SIGTERM, SIGHUP: the running pod is removed first).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.errors import EnvironmentProblem, ScenarioError

if TYPE_CHECKING:
    from harness.model import Case, Scenario
    from harness.progress import RunProgress
    from harness.results import CaseResult

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_ENVIRONMENT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def import_docker_sdk() -> None:
    """Import the Docker SDK without its ``ssh://`` transport unless ``DOCKER_HOST`` names one: the SDK imports
    paramiko at import time only for that transport (about 0.2 s of a command's start; the SDK treats the
    transport as optional, docker/transport/__init__.py). Only the command-line process does this: it owns its
    imports, a process that loads the pytest plugin does not."""
    if "docker" in sys.modules or os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return
    blocked = "paramiko" not in sys.modules
    if blocked:
        sys.modules["paramiko"] = None  # type: ignore[assignment]  # `import paramiko` raises ImportError
    try:
        import docker  # noqa: F401
    finally:
        if blocked:
            del sys.modules["paramiko"]


def _interrupt(signum: int, frame: object) -> None:
    # The first Ctrl-C (or SIGTERM, SIGHUP) ends the run; those that follow while the pods are being removed are
    # ignored, so that none is cut short (users press Ctrl-C twice).
    for held in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(held, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


class _Group(click.Group):
    """Maps the harness's errors to exit codes, so no command shows a traceback for them."""

    def invoke(self, ctx: click.Context) -> object:
        # SIGTERM (a CI timeout, `timeout`, `kill`) and SIGHUP (a dropped session) unwind like Ctrl-C, so every
        # context manager removes what it started.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
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
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per case for every recipient to reach a first-attempt status.",
)
@click.option("--keep", is_flag=True, help="Leave the pod of a failed case running and say how to get a shell in it.")
@click.option("--json", "json_path", metavar="FILE", help="Write the results as JSON (docs/results-json.md).")
@click.option("--junit", "junit_path", metavar="FILE", help="Write JUnit XML for CI: one testcase per recipient.")
@click.option("--html", "html_path", metavar="FILE", help="Write a self-contained HTML report with each timeline.")
@click.option(
    "--trace", is_flag=True, help="Print each case's timeline (DNS, SMTP sessions, TLS, Postfix's lines) when it ends."
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cases to run at once, each on its own pod.",
)
@click.option("--fresh-pods", is_flag=True, help="A new pod for every case instead of resetting one between cases.")
@click.option("--shard", metavar="K/N", help="Run only the K-th of N deterministic slices of the cases (CI jobs).")
@click.option(
    "--postfix-config",
    "config_dir",
    metavar="DIR",
    help="A copy of a real /etc/postfix to run in every scenario (as postfix.config_dir; a case's own one wins).",
)
@click.option("--strict", is_flag=True, help="A case in which Postfix logged a warning fails.")
@click.option(
    "--release",
    "releases",
    multiple=True,
    metavar="R",
    help="Run every case on Postfix release R (repeatable; `all`: every release the harness has), overriding "
    "postfix.release.",
)
def run(
    paths: tuple[str, ...],
    pattern: str | None,
    timeout_s: float,
    keep: bool,
    json_path: str | None,
    junit_path: str | None,
    html_path: str | None,
    trace: bool,
    jobs: int,
    fresh_pods: bool,
    shard: str | None,
    config_dir: str | None,
    strict: bool,
    releases: tuple[str, ...],
) -> None:
    """Run scenarios (files or folders; default: scenarios/) and print expected vs observed per recipient."""
    import_docker_sdk()
    from harness.releases import DEFAULT_RELEASE, suite_for_release
    from harness.runner import Runner

    reports = _report_paths({"--json": json_path, "--junit": junit_path, "--html": html_path})
    scenarios, _ = _load(paths)  # everything is validated before any container starts
    if config_dir is not None:
        scenarios = [_with_config_dir(s, config_dir) for s in scenarios]
    if releases:
        scenarios = [s.on_release(r) for s in scenarios for r in _release_list(releases)]
    in_shard = _shard(shard)
    plan = [
        (s, [c for c in s.cases if _selected(f"{s.name}/{c.name}", pattern) and in_shard(f"{s.name}/{c.name}")])
        for s in scenarios
    ]
    plan = [(scenario, cases) for scenario, cases in plan if cases]
    if not plan:
        matched = sum(_selected(f"{s.name}/{c.name}", pattern) for s in scenarios for c in s.cases)
        if shard is not None and matched:
            # Hash-based slices of a small suite can be empty: a CI job with nothing to do has not failed.
            click.echo(f"--shard {shard}: none of the {matched} selected case(s) falls in this slice; nothing to run")
            sys.exit(EXIT_OK)
        what = f"-k {pattern!r}. Hint: patterns match 'scenario/case'" if pattern else "the paths given"
        click.echo(f"no case to run: no case matches {what}", err=True)
        sys.exit(EXIT_INPUT)
    started = datetime.now(UTC)
    results: list[CaseResult] = []
    chosen = {(s.name, c.name) for s, cases in plan for c in cases}
    display: list[RunProgress] = []  # the progress display, once it exists

    def note(message: str) -> None:
        """A message of the runner (image builds): above the progress line, or plain before it exists."""
        if display:
            display[0].note(message)
        else:
            click.echo(message, err=True)

    def running(s: Scenario, c: Case) -> None:
        display[0].running(s.name, c.name, c.postfix.release or s.postfix.release or DEFAULT_RELEASE)

    runner = Runner(
        timeout_s=timeout_s, progress=note, keep_failed=keep, reuse_pods=not fresh_pods, jobs=jobs, strict=strict
    )
    with runner:
        # The worlds are built and the first pods started from here on, while the rest of the command loads.
        selected = runner.run([s for s, _ in plan], select=lambda s, c: (s.name, c.name) in chosen, on_start=running)
        from harness.progress import RunProgress
        from harness.report import make_console, print_results, print_trace
        from harness.results_json import release_key

        console = make_console()
        several = (
            len({suite_for_release(c.postfix.release or s.postfix.release) for s, cases in plan for c in cases}) > 1
        )
        progress = RunProgress(console, sum(len(cases) for _, cases in plan), show_release=several)
        display.append(progress)
        # The TLS model's account (0.2 s of imports), needed only by the report at the end: imported while cases run.
        threading.Thread(target=importlib.import_module, args=("harness._explain_report",), daemon=True).start()
        with progress:
            for result in selected:
                results.append(result)
                progress.done(result)
                if trace:
                    print_trace(result, console)
    finished = datetime.now(UTC)
    if len(releases) > 1 or "all" in releases:  # side by side: each case on every release, one after the other
        order = {(s.name, c.name): i for i, (s, c) in enumerate((s, c) for s, _ in plan for c in s.cases)}
        results.sort(key=lambda r: (order.get((r.scenario, r.case), 0), release_key(r.release)))
    print_results(results, console)
    for result in results:
        if result.kept_pod:
            console.print(
                f"kept the pod of {result.scenario}/{result.case}: docker exec -it {result.kept_pod} bash "
                f"(Postfix's log: docker logs {result.kept_pod}); "
                f"remove it with: mxharness clean --run {runner.run_id}",
                markup=False,
            )
    notes = {s.name: [p for p in (s.description, s.source and f"Source: {s.source}") if p] for s in scenarios}
    _write_reports(reports, results, started=started, finished=finished, notes=notes)
    for option, path in reports.items():
        console.print(f"wrote {option[2:]} report: {path}", markup=False, highlight=False)
    failed = sum(1 for r in results if not r.passed)
    console.print(f"{len(results) - failed} passed, {failed} failed")
    if any(r.config_issues for r in results):
        sys.exit(EXIT_INPUT)  # Postfix rejected a configuration: invalid input, as for a scenario error
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _load(paths: tuple[str, ...]) -> tuple[list[Scenario], int]:
    """The scenarios under ``paths`` (default ``scenarios/``) and how many warnings the loader printed (on stderr,
    ``file:line: WARNING: key: message``, also when an error follows); a ScenarioError exits 2 through the group."""
    from harness.errors import ScenarioIssue
    from harness.scenario import load_scenarios, warning_text

    warnings: list[ScenarioIssue] = []
    try:
        return load_scenarios(paths or ["scenarios"], warnings=warnings), len(warnings)
    finally:
        for issue in warnings:
            click.echo(warning_text(issue), err=True)


def _with_config_dir(scenario: Scenario, folder: str) -> Scenario:
    """``--postfix-config DIR``: the scenario with ``postfix.config_dir`` set to DIR (exit 2 if it cannot be read)."""
    from harness.postfix_config import ConfigFolderError, load_postfix_config

    path = Path(folder).expanduser().resolve()
    try:
        load_postfix_config(path)
    except ConfigFolderError as exc:
        click.echo(f"--postfix-config {folder}: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    postfix = scenario.postfix.model_copy(update={"config_dir": str(path)})
    return scenario.model_copy(update={"postfix": postfix})


def _release_list(values: tuple[str, ...]) -> list[str]:
    """``--release`` values, ``all`` expanded, each once, in the order given (exit 2 for an unknown one)."""
    from harness.releases import RELEASES, release_error, suite_for_release

    out: list[str] = []
    for value in values:
        for release in RELEASES if value == "all" else [value]:
            if suite_for_release(release) is None:
                click.echo(f"--release {release}: {release_error(release)}", err=True)
                sys.exit(EXIT_INPUT)
            if release not in out:
                out.append(release)
    return out


def _shard(text: str | None) -> Callable[[str], bool]:
    """``--shard K/N``: keep a case when a stable hash of ``scenario/case`` modulo N is K-1, so that N CI jobs
    split a suite the same way on every run and machine (exit 2 on a malformed value)."""
    if text is None:
        return lambda name: True
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        click.echo(f"--shard {text}: expected K/N with 1 ≤ K ≤ N, e.g. 2/4", err=True)
        sys.exit(EXIT_INPUT)
    return lambda name: int(hashlib.sha256(name.encode()).hexdigest(), 16) % int(n) == int(k) - 1


def _selected(name: str, pattern: str | None) -> bool:
    """``-k``: a glob over ``scenario/case``, or a plain substring of it."""
    return pattern is None or fnmatch.fnmatch(name, pattern) or pattern in name


def _report_paths(options: dict[str, str | None]) -> dict[str, Path]:
    """The report files asked for, checked before anything starts (exit 2 when one cannot be written)."""
    paths = {option: Path(value) for option, value in options.items() if value}
    problems = [f"{option} {path}: {problem}" for option, path in paths.items() if (problem := _unwritable(path))]
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if (other := seen.setdefault(path.resolve(), option)) != option:
            problems.append(f"{option} {path}: the same file as {other}. Hint: give each report its own file.")
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        click.echo("nothing was started.", err=True)
        sys.exit(EXIT_INPUT)
    return paths


def _unwritable(path: Path) -> str | None:
    """Why a report cannot be written at ``path``, or None when it can."""
    folder = path.parent
    if path.is_dir():
        return f"cannot write the report: it is a folder. Hint: give a file name, e.g. {path / 'results'}."
    if not folder.is_dir():
        return f"cannot write the report: folder {str(folder)!r} does not exist. Hint: create it first."
    if path.exists() and not os.access(path, os.W_OK):
        return "cannot write the report: the file is not writable. Hint: choose another path or fix permissions."
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write the report: folder {str(folder)!r} is not writable. Hint: choose another folder."
    return None


def _write_reports(
    paths: dict[str, Path],
    results: list[CaseResult],
    *,
    started: datetime,
    finished: datetime,
    notes: dict[str, list[str]],
) -> None:
    from harness.html_report import render_html
    from harness.junit import junit_xml
    from harness.results_json import dumps_results

    render = {
        "--json": lambda: dumps_results(results, started=started, finished=finished),
        "--junit": lambda: junit_xml(results, started=started),
        "--html": lambda: render_html(results, notes=notes, generated=finished),
    }
    for option, path in paths.items():
        try:
            path.write_text(render[option](), encoding="utf-8")
        except OSError as exc:
            click.echo(
                f"{option} {path}: cannot write the report: {exc.strerror or exc}. Hint: free space or choose "
                "another path; the results are in the table above.",
                err=True,
            )
            sys.exit(EXIT_ENVIRONMENT)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def check(paths: tuple[str, ...]) -> None:
    """Validate scenarios without Docker: every problem with file, line and key (warnings too; they do not fail)."""
    scenarios, warned = _load(paths)
    cases = sum(len(s.cases) for s in scenarios)
    note = f" ({warned} warning{'s' if warned != 1 else ''} above)" if warned else ""
    click.echo(f"{len(scenarios)} scenario(s), {cases} case(s): ok{note}")


@main.group()
def images() -> None:
    """The pod's images (Postfix per release, peer)."""


@images.command("build")
@click.option(
    "--release",
    "releases",
    multiple=True,
    metavar="R",
    help="Postfix release (repeatable; `all`: every release; default: the project's default, 3.7).",
)
def images_build(releases: tuple[str, ...]) -> None:
    """Build the images that are missing or out of date (pull a base, else bootstrap it from the Debian mirror)."""
    from harness.engine import Engine
    from harness.images import ensure_images

    engine = Engine()
    try:
        for release in _release_list(releases) if releases else [None]:
            built = ensure_images(engine, release, progress=click.echo)
            click.echo(f"postfix image: {built.postfix}")
    finally:
        engine.close()
    click.echo(f"peer image:    {built.peer}")


@main.command()
def doctor() -> None:
    """Is this machine ready? Engine, images (present and current), Postfix releases, bootstrap tools."""
    import shutil

    from harness.engine import Engine
    from harness.images import image_states
    from harness.releases import DEFAULT_RELEASE, RELEASES

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
@click.option("--run", "run_id", help="Remove only the containers of this run id (printed by `run` on interrupt).")
@click.option("--all", "everything", is_flag=True, help="Also remove pods of runs that are still going.")
def clean(run_id: str | None, everything: bool) -> None:
    """Remove containers labelled by mxharness: leftovers of crashed or killed runs, and pods kept by --keep.

    Pods of runs whose process is still alive on this machine are left alone unless --all is given.
    """
    from harness.engine import Engine, remove_leftovers

    engine = Engine()
    try:
        removed = remove_leftovers(engine, run_id=run_id, include_live=everything)
    finally:
        engine.close()
    click.echo(f"removed {removed} container(s)")


from harness.cli_draft import draft  # noqa: E402  (after `main`: the command module does not import this one)

main.add_command(draft)

from harness.cli_explain import explain  # noqa: E402  (after `main`, as above)

main.add_command(explain)

from harness.cli_compare import compare  # noqa: E402  (after `main`, as above)

main.add_command(compare)
