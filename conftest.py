"""The repository's own test rule, for every item under it: tests/ and the scenario cases of scenarios/.

Integration tests (marker ``docker``: tests/integration and every case the pytest plugin collects from scenarios/)
run real Postfix. They are never skipped: without an engine they error. On CI (``CI`` set) the session also fails
when a docker test was skipped or when none ran at all, so a green CI always means real Postfix ran.

The rule lives here, at the root, and not in the plugin (harness/pytest_plugin.py): a root conftest sees the
reports of every item below it, scenario cases included, and is loaded by ``pytest scenarios/…`` alone; projects
that use the plugin do not get it.
"""

from __future__ import annotations

import os

import pytest

_docker_outcomes: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "docker" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _docker_outcomes[report.outcome] = _docker_outcomes.get(report.outcome, 0) + 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI") or session.config.option.collectonly:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _docker_outcomes["skipped"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line(
                f"CI: {_docker_outcomes['skipped']} docker test(s) were skipped: that is a failure", red=True
            )
    elif _docker_outcomes["passed"] + _docker_outcomes["failed"] == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter:
            reporter.write_line("CI: no docker (real Postfix) test ran: that is a failure", red=True)
