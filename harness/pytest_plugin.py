"""pytest plugin (entry point ``pytest11: mxharness``): scenario YAML files become test items, one per case.

``pytest scenarios/`` runs every case on real Postfix; a failing case reports expected vs observed and the Postfix
log lines of the attempt instead of a Python traceback. Case items carry the ``docker`` marker, so
``pytest -m "not docker"`` leaves them out on a machine without an engine (they are never skipped silently).

Fixtures, in three layers: ``mxharness_timeout`` (seconds per case; override it in a conftest) →
``mxharness_runner`` (the session's :class:`~harness.runner.Runner`: one engine connection and one set of images
for the whole session) → ``mxharness_run`` (runs a scenario built inside a test, each case in a fresh pod).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.model import Case, Scenario
from harness.results import CaseResult

__all__ = ["CaseItem", "ScenarioFile"]

_RUNNER_KEY = pytest.StashKey[Any]()
_RESULTS_KEY = pytest.StashKey[list[CaseResult]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mxharness")
    group.addoption(
        "--mxharness-shard",
        metavar="K/N",
        default=None,
        help="run only the K-th of N deterministic slices of the scenario cases (as `mxharness run --shard`)",
    )
    group.addoption(
        "--mxharness-release",
        action="append",
        metavar="R",
        default=[],
        help="run every scenario case on Postfix release R (repeatable; `all`: every release the harness has); the "
        "item of a case gets the release in brackets, e.g. secure-defers[3.5]",
    )
    group.addoption(
        "--mxharness-timeout",
        type=float,
        default=30.0,
        help="seconds per scenario case for every recipient to reach a first-attempt status",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs a Docker engine and runs real Postfix (integration)")
    _releases(config)  # an unknown --mxharness-release is a usage error before collection


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """In bold red, every recipient of a case item that ran (passed or failed) on which the TLS model and Postfix
    disagree, as ``mxharness run`` ends its report (:mod:`harness._explain_report`)."""
    results = config.stash.get(_RESULTS_KEY, [])
    if not results:
        return
    from harness._explain_report import disagreement_lines

    if lines := disagreement_lines(results):
        terminalreporter.section("TLS model", red=True, bold=True)
        for line in lines:
            terminalreporter.write_line(line, red=True, bold=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = config.stash.get(_RUNNER_KEY, None)
    if runner is not None:
        runner.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--mxharness-shard")
    if not shard:
        return
    k, _, n = str(shard).partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise pytest.UsageError(f"--mxharness-shard {shard}: expected K/N with 1 <= K <= N, e.g. 2/4")
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        if isinstance(item, CaseItem):
            name = f"{item.scenario.name}/{item.case.name}"
            mine = int(hashlib.sha256(name.encode()).hexdigest(), 16) % int(n) == int(k) - 1
            (keep if mine else drop).append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    from harness.scenario import looks_like_scenario

    if file_path.suffix in (".yaml", ".yml") and looks_like_scenario(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def session_runner(config: pytest.Config) -> Any:
    """The session's Runner, created on first use and closed at the end of the session."""
    if _RUNNER_KEY not in config.stash:
        from harness.runner import Runner

        config.stash[_RUNNER_KEY] = Runner(timeout_s=config.getoption("--mxharness-timeout"), progress=lambda m: None)
    return config.stash[_RUNNER_KEY]


@pytest.fixture(scope="session")
def mxharness_timeout(pytestconfig: pytest.Config) -> float:
    """Seconds per case for every recipient to reach a first-attempt status (``--mxharness-timeout``)."""
    return float(pytestconfig.getoption("--mxharness-timeout"))


@pytest.fixture(scope="session")
def mxharness_runner(pytestconfig: pytest.Config, mxharness_timeout: float) -> Any:
    """The session's :class:`harness.runner.Runner` (connects to Docker on first use)."""
    runner = session_runner(pytestconfig)
    runner.timeout_s = mxharness_timeout
    return runner


@pytest.fixture
def mxharness_run(mxharness_runner: Any) -> Callable[..., list[CaseResult]]:
    """Run a scenario built inside a test, on real Postfix; returns one CaseResult per case.

    The callable takes a dict (what a scenario YAML file parses to; checked like a file, ScenarioError on bad
    input), a :class:`~harness.model.Scenario`, or a path to a YAML file, and an optional ``cases`` (names to run).
    """

    def run(
        scenario: Scenario | Mapping[str, Any] | str | Path, *, cases: Iterable[str] | None = None
    ) -> list[CaseResult]:
        from harness.scenario import load_scenario, scenario_from_dict

        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        elif not isinstance(scenario, Scenario):
            scenario = scenario_from_dict(scenario, source="<test>")
        wanted = set(cases) if cases is not None else None
        return list(mxharness_runner.run([scenario], select=lambda s, c: wanted is None or c.name in wanted))

    return run


class ScenarioWarning(UserWarning):
    """What ``mxharness check`` prints as a WARNING about a scenario file, in pytest's warnings summary."""


class ScenarioFile(pytest.File):
    """A scenario YAML file: one item per case. A file that does not load is one collection error."""

    def collect(self) -> Iterator[pytest.Item]:
        from harness.scenario import load_scenario, warning_text

        warnings: list[Any] = []
        try:
            scenario = load_scenario(self.path, warnings=warnings)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        for warning in warnings:  # suspicious but valid (e.g. a policy table level Postfix does not know)
            self.warn(ScenarioWarning(warning_text(warning)))
        self._world: Any = None
        # With releases: each case on every release, one after the other (side by side in the report).
        copies = {release: scenario.on_release(release) for release in _releases(self.config)}
        for index, case in enumerate(scenario.cases):
            variants = [(f"{case.name}[{r}]", s) for r, s in copies.items()] or [(case.name, scenario)]
            for name, variant in variants:
                item = CaseItem.from_parent(
                    self, name=name, scenario=variant, case=variant.cases[index], line=_case_line(scenario, index)
                )
                item.add_marker(pytest.mark.docker)
                yield item

    def world(self, scenario: Scenario) -> Any:
        """The scenario's world (certificates issued once per file)."""
        if self._world is None:
            from harness.world import build_world

            self._world = build_world(scenario)
        return self._world


def _case_line(scenario: Scenario, index: int) -> int:
    """0-based line of the ``index``-th case in the scenario's file (as pytest wants it; 0 when unknown)."""
    line = scenario._key_lines.get(("cases", index))  # 1-based
    return line - 1 if line else 0


def _releases(config: pytest.Config) -> list[str]:
    """``--mxharness-release`` values, ``all`` expanded, each once (a usage error for an unknown release)."""
    from harness.releases import RELEASES, release_error, suite_for_release

    out: list[str] = []
    for value in config.getoption("--mxharness-release") or []:
        for release in RELEASES if value == "all" else [value]:
            if suite_for_release(release) is None:
                raise pytest.UsageError(f"--mxharness-release {release}: {release_error(release)}")
            if release not in out:
                out.append(release)
    return out


class CaseFailed(Exception):
    """Raised by a case item whose expectations did not hold; carries the result for the report."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(f"{result.scenario}/{result.case} failed")
        self.result = result


class CaseItem(pytest.Item):
    """One case of a scenario, run on real Postfix in a fresh pod."""

    def __init__(self, *, scenario: Scenario, case: Case, line: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.case = case
        self.case_line = line  # 0-based line of the case in the file

    def runtest(self) -> None:
        parent = self.parent
        assert isinstance(parent, ScenarioFile)
        result = session_runner(self.config).run_case(self.scenario, self.case, world=parent.world(self.scenario))
        self.config.stash.setdefault(_RESULTS_KEY, []).append(result)  # for the TLS model's summary
        self.user_properties.append(("postfix_release", result.release))
        if not result.passed:
            raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            from harness.report import failure_details

            return failure_details(excinfo.value.result)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        # A real line: pytest's skip/xfail reports (a `skip` marker on a case item) need one.
        return self.path, self.case_line, f"{self.scenario.name}/{self.case.name}"
