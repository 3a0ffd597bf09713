"""The TLS model (harness/explain.py) held to real Postfix: every combination of the differential matrix
(harness/_explain_matrix.py, more than 300) runs on Postfix, a few cases with many recipient domains each, and the
model must agree on status, DSN and TLS level for every one. Where they disagree, Postfix is right: fix the model
(or record a Postfix version difference in docs/explain.md). bench/bench_explain.py prints the same count.

Also end to end: a failing scenario item under pytest shows the model's account in its failure report.
"""

from __future__ import annotations

import pytest

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


FAILING = """\
name: explain-in-failure-output
pki:
  cas:
    root: {subject: /CN=Root, key: ec256}
  certs:
    mx: {issuer: root, san: [mx.example.net], key: ec256}
dns:
  example.net: {MX: 10 mx.example.net}
  mx.example.net: {A: auto}
servers:
  mx.example.net: {cert: mx}
postfix:
  main.cf: {smtp_tls_security_level: secure}
cases:
  - name: expects-the-wrong-thing
    send:
      - to: a@example.net
        expect: {status: deferred}
"""


def test_a_failing_scenario_item_carries_the_models_account(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", failing=FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL status: expected 'deferred', observed 'sent'*",
            "*the TLS model's account (mxharness explain *failing.yaml -k expects-the-wrong-thing):*",
            "*model of Postfix 3.7.11: sent, DSN 2.0.0, TLS Verified via mx.example.net*",
            "*Names checked: example.net (nexthop: exactly this name), .example.net (dot-nexthop*",
        ]
    )
