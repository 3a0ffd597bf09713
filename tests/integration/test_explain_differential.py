"""The TLS model (harness/explain.py) held to real Postfix: every combination of the differential matrix
(harness/_explain_matrix.py, more than 300) runs on Postfix, a few cases with many recipient domains each, and the
model must agree on status, DSN and TLS level for every one. Where they disagree, Postfix is right: fix the model
(or record a Postfix version difference in docs/explain.md). bench/bench_explain.py prints the same count.
"""

from __future__ import annotations

from harness._explain_matrix import combinations, judge, matrix_scenario
from harness.runner import Runner


def test_the_model_agrees_with_postfix_on_every_combination_of_the_matrix(mxharness_runner: Runner) -> None:
    combos = combinations()
    scenario = matrix_scenario(combos)
    timeout = mxharness_runner.timeout_s
    mxharness_runner.timeout_s = max(timeout, 120.0)  # ~120 recipients per case
    try:
        results = list(mxharness_runner.run([scenario]))
    finally:
        mxharness_runner.timeout_s = timeout
    assert [case.error for case in results] == [None] * len(scenario.cases)
    verdicts = judge(scenario, results, combos)
    disagreeing = [v.describe() for v in verdicts if not v.agrees]
    assert disagreeing == [], "\n".join(disagreeing)
    assert len(verdicts) == len(combos) >= 300
