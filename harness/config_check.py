"""Postfix's own verdict on a case's configuration, turned into scenario issues (file, line, key, hint).

Two checks run in the case's pod before any mail is sent (see :mod:`harness.runner`):

* ``postconf -n`` warns ``unused parameter: name=value`` for a parameter name Postfix does not know, in main.cf
  or in a master.cf ``-o`` (a typo that would otherwise be ignored silently);
* every SMTP client service is started once in stand-alone mode; a value Postfix rejects is a ``fatal:`` line in
  its log, e.g. ``fatal: Invalid TLS level "bogus"`` or ``fatal: bad numerical configuration: x = abc``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from harness.errors import ScenarioIssue
from harness.model import Scenario
from harness.postfix import UnusedParameter
from harness.scenario import scenario_issue

__all__ = ["fatal_issues", "unused_parameter_issues"]

Loc = tuple[str | int, ...]


def _where(scenario: Scenario, case_index: int, name: str) -> Loc:
    """The key path that set parameter ``name`` for this case: the case's main.cf, else the scenario's."""
    case = scenario.cases[case_index]
    if case.postfix.main_cf and name in case.postfix.main_cf:
        return ("cases", case_index, "postfix", "main.cf", name)
    if scenario.postfix.main_cf and name in scenario.postfix.main_cf:
        return ("postfix", "main.cf", name)
    if case.postfix.master_cf and name in case.postfix.master_cf:
        return ("cases", case_index, "postfix", "master.cf")
    return ("postfix", "master.cf")


def unused_parameter_issues(
    scenario: Scenario, case_index: int, unused: Iterable[UnusedParameter], known: Iterable[str]
) -> list[ScenarioIssue]:
    """One issue per parameter name Postfix does not know, with the closest names Postfix does know.

    Args:
        known: every parameter name of the image's Postfix (``postconf -dH``).
    """
    known = list(known)
    issues = []
    for param in unused:
        close = difflib.get_close_matches(param.name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ". Hint: `postconf -d` lists every parameter"
        file = param.file.rsplit("/", 1)[-1]
        message = f"Postfix does not know the parameter {param.name!r} ({file}: unused parameter){hint}"
        issues.append(scenario_issue(scenario, _where(scenario, case_index, param.name), message))
    return issues


_NAMED = re.compile(r"\b([a-z][a-z0-9_]+)\s*=\s*")


def fatal_issues(
    scenario: Scenario, case_index: int, fatal_lines: Iterable[str], main_cf: dict[str, str]
) -> list[ScenarioIssue]:
    """One issue per ``fatal:`` line of a rejected configuration, at the parameter the line names or whose value
    it quotes; Postfix's own words are the message."""
    issues = []
    for line in fatal_lines:
        text = line.split("fatal:", 1)[-1].strip()
        name = next((n for n in _NAMED.findall(text) if n in main_cf), None)
        if name is None:
            name = next((n for n, v in main_cf.items() if v and (f'"{v}"' in text or f" {v}" in f" {text}")), None)
        loc = _where(scenario, case_index, name) if name else ("postfix", "main.cf")
        message = f"Postfix rejected this configuration: {text}"
        issues.append(scenario_issue(scenario, loc, message))
    return issues
