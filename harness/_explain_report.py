"""The TLS model in the run reports: its explanation beside a failed recipient, and a loud line wherever the model
and real Postfix disagree.

A :class:`~harness.results.CaseResult` does not carry its scenario, so the scenario is loaded again from
``CaseResult.source_file`` (cached by path and modification time), and the model is run for the Postfix version the
case logged (``CaseResult.release``). A result whose scenario was built in code, whose file is gone or no longer has
the case, or that ran a configuration folder the file does not name (``run --postfix-config``), simply gets no
explanation: the report never fails because of the model, and never compares Postfix with a model of another
configuration.

Used by the terminal report (:mod:`harness.report`), the pytest plugin's summary and ``--json``
(:func:`model_document`, docs/results-json.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from harness.explain import Explanation, disagreements, explain_case
from harness.model import Scenario
from harness.results import CaseResult, RecipientResult
from harness.results_json import sorted_releases

__all__ = ["DISAGREEMENT_HEADING", "disagreement_lines", "explanation_lines", "model_document"]

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
        f"{DISAGREEMENT_HEADING} {', '.join(sorted_releases(releases))} on {len(found)} recipient(s): a bug in "
        "harness/explain.py or a Postfix version difference worth knowing (docs/explain.md)"
    )
    return [head, *found]


def model_document(case: CaseResult, recipient: RecipientResult) -> dict[str, Any] | None:
    """The model's prediction for ``recipient`` and where Postfix differs, as the ``tls_model`` object of
    docs/results-json.md; None when the model did not run (see the module docstring)."""
    e = _explanations(case, fixes=False).get(recipient.recipient)
    if e is None:
        return None
    p = e.prediction
    differ = disagreements(p, recipient.observed) if recipient.observed is not None else ()
    return {
        "release": e.release,
        "certain": p.certain,
        "status": p.status,
        "dsn": p.dsn,
        "tls": p.tls,
        "reason": p.reason,
        "caveats": list(p.caveats),
        "disagreements": [{"key": d.key, "model": d.model, "postfix": d.postfix} for d in differ],
    }


#: The first line of a main.cf the harness wrote from a configuration folder (harness.postfix.render_main_cf).
_FOLDER_MAIN_CF = "# main.cf written by mxharness: the configuration folder's"


def _explanations(case: CaseResult, *, fixes: bool) -> dict[str, Explanation]:
    try:
        stamp = os.stat(case.source_file).st_mtime_ns
    except OSError:
        return {}
    found = _cached(case.source_file, stamp, case.scenario, case.case, case.release, fixes)
    if case.main_cf and found and not _same_configuration(case, stamp):
        return {}  # run --postfix-config: the file alone does not say which configuration ran
    return found


def _same_configuration(case: CaseResult, stamp: int) -> bool:
    """Whether the main.cf the case ran is the one the model reads: from a configuration folder or not, and for
    a folder the same parameters (values may differ only by the digests substituted at run time)."""
    modelled = _folder_parameters(case.source_file, stamp, case.scenario, case.case)
    ran_folder = case.main_cf.startswith(_FOLDER_MAIN_CF)
    if not ran_folder or modelled is None:
        return ran_folder == (modelled is not None)
    from harness.postfix_config import ConfigFolderError, parse_main_cf

    try:
        return frozenset(parse_main_cf(case.main_cf)) == modelled
    except ConfigFolderError:
        return False


@lru_cache(maxsize=256)
def _folder_parameters(path: str, stamp: int, scenario_name: str, case_name: str) -> frozenset[str] | None:
    """The main.cf parameter names of a case that runs a configuration folder, as the model reads them; None for
    a case without one (or one that cannot be read)."""
    from harness._explain_inputs import case_inputs

    scenario = _scenario(path, stamp)
    case = next((c for c in scenario.cases if c.name == case_name), None) if scenario is not None else None
    if scenario is None or case is None or scenario.name != scenario_name:
        return None
    inputs = case_inputs(scenario, case)
    return frozenset(inputs.main_cf) if inputs.folder is not None else None


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
