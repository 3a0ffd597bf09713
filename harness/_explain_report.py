"""The TLS model in the run reports: its explanation beside a failed recipient, and a loud line wherever the model
and real Postfix disagree.

A :class:`~harness.results.CaseResult` does not carry its scenario, so the scenario is loaded again from
``CaseResult.source_file`` (cached by path and modification time), and the model is run for the Postfix version the
case logged (``CaseResult.release``). A result whose scenario was built in code, or
whose file is gone or no longer has the case, simply gets no explanation: the report never fails because of the
model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache

from harness.explain import Explanation, disagreements, explain_case
from harness.model import Scenario
from harness.results import CaseResult

__all__ = ["DISAGREEMENT_HEADING", "disagreement_lines", "explanation_lines"]

#: The first words of the block that reports disagreements (what to grep a CI log for).
DISAGREEMENT_HEADING = "THE TLS MODEL DISAGREES WITH POSTFIX"


def explanation_lines(case: CaseResult, recipient: str, *, indent: str = "    ") -> list[str]:
    """The model's explanation of ``recipient``'s message (with changes that would deliver it), indented; empty
    when the scenario cannot be loaded again."""
    explanation = _explanations(case, fixes=True).get(recipient)
    if explanation is None:
        return []
    lines = [f"{indent}the TLS model's account (mxharness explain {case.source_file} -k {case.case}):"]
    lines += [indent + "  " + line for line in explanation.text().splitlines()[1:]]
    return lines


def disagreement_lines(results: Iterable[CaseResult]) -> list[str]:
    """One line per recipient whose observed status, DSN or TLS level differs from a certain prediction of the
    model, under :data:`DISAGREEMENT_HEADING`; empty when the model agrees everywhere (or cannot tell)."""
    found: list[str] = []
    releases: set[str] = set()
    for case in results:
        explanations = _explanations(case, fixes=False)
        for r in case.recipients:
            e = explanations.get(r.recipient)
            if e is None or r.observed is None:
                continue
            differ = disagreements(e.prediction, r.observed)
            if differ:
                releases.add(case.release or "?")
                keys = ", ".join(f"{d.key}: model {d.model}, Postfix {d.postfix}" for d in differ)
                found.append(f"  {case.scenario} / {case.case} to=<{r.recipient}>: {keys}")
    if not found:
        return []
    head = (
        f"{DISAGREEMENT_HEADING} {', '.join(sorted(releases))} on {len(found)} recipient(s): a bug in "
        "harness/explain.py or a Postfix version difference worth knowing (docs/explain.md)"
    )
    return [head, *found]


def _explanations(case: CaseResult, *, fixes: bool) -> dict[str, Explanation]:
    try:
        stamp = os.stat(case.source_file).st_mtime_ns
    except OSError:
        return {}
    return _cached(case.source_file, stamp, case.scenario, case.case, case.release, fixes)


@lru_cache(maxsize=256)
def _cached(
    path: str, stamp: int, scenario_name: str, case_name: str, release: str | None, fixes: bool
) -> dict[str, Explanation]:
    scenario = _scenario(path, stamp)
    if scenario is None or scenario.name != scenario_name:
        return {}
    case = next((c for c in scenario.cases if c.name == case_name), None)
    if case is None:
        return {}
    try:
        # The release that ran (mail_version), not only the scenario's: a run may override postfix.release.
        return {e.recipient: e for e in explain_case(scenario, case, fixes=fixes, release=release)}
    except Exception:  # the report must not fail because of the model; the differential test guards it
        return {}


@lru_cache(maxsize=32)
def _scenario(path: str, stamp: int) -> Scenario | None:
    from harness.errors import HarnessError
    from harness.scenario import load_scenario

    try:
        return load_scenario(path)
    except (HarnessError, OSError):
        return None
