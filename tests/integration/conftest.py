"""Integration tests: every test here runs real Postfix in a pod (marker ``docker``)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.model import Scenario
from harness.results import CaseResult
from harness.runner import Runner
from harness.scenario import scenario_from_dict


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def run_scenario(mxharness_runner: Runner) -> Any:
    """Run a scenario given as a dict; returns the list of CaseResult."""

    def run(data: dict[str, Any], **kwargs: Any) -> list[CaseResult]:
        scenario: Scenario = scenario_from_dict(data)
        return list(mxharness_runner.run([scenario], **kwargs))

    return run
