"""mxharness: a local test harness for mail delivery over STARTTLS, with a real Postfix in a container.

The public API, loaded lazily so that the peer container (which has only aiosmtpd and dnslib) can import
``harness.peer`` without the host-side dependencies::

    from harness import load_scenario, Runner
    with Runner() as runner:
        for result in runner.run([load_scenario("scenarios/seed/fastmail.yaml")]):
            print(result.case, result.passed)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CaseResult",
    "CaseTimeout",
    "ConfigRejected",
    "EnvironmentProblem",
    "HarnessError",
    "Observed",
    "PodError",
    "RecipientResult",
    "Runner",
    "Scenario",
    "ScenarioError",
    "ScenarioIssue",
    "load_scenario",
    "load_scenarios",
    "scenario_from_dict",
]

_WHERE = {
    "CaseResult": "harness.results",
    "Observed": "harness.results",
    "RecipientResult": "harness.results",
    "Runner": "harness.runner",
    "Scenario": "harness.model",
    "load_scenario": "harness.scenario",
    "load_scenarios": "harness.scenario",
    "scenario_from_dict": "harness.scenario",
    "CaseTimeout": "harness.errors",
    "ConfigRejected": "harness.errors",
    "EnvironmentProblem": "harness.errors",
    "HarnessError": "harness.errors",
    "PodError": "harness.errors",
    "ScenarioError": "harness.errors",
    "ScenarioIssue": "harness.errors",
}

if TYPE_CHECKING:
    from harness.errors import (
        CaseTimeout,
        EnvironmentProblem,
        HarnessError,
        PodError,
        ScenarioError,
        ScenarioIssue,
    )
    from harness.model import Scenario
    from harness.results import CaseResult, Observed, RecipientResult
    from harness.runner import Runner
    from harness.scenario import load_scenario, load_scenarios, scenario_from_dict


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
