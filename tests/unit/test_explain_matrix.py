"""The differential matrix itself (harness/_explain_matrix.py): what it covers, that the model is sure of every
combination (so each one is compared with Postfix), and that a disagreement is caught. The run on real Postfix is
tests/integration/test_explain_differential.py."""

from __future__ import annotations

import collections

from harness._explain_matrix import LAYOUTS, combinations, judge, matrix_scenario
from harness.explain import explain_case
from harness.model import Expect
from harness.results import CaseResult, Observed, RecipientResult


def test_the_matrix_covers_every_dimension_the_model_is_held_to() -> None:
    combos = combinations()
    assert len(combos) >= 300
    assert {c.level for c in combos} == {"none", "may", "encrypt", "fingerprint", "verify", "secure"}
    assert {c.layout for c in combos} == set(LAYOUTS)
    assert {c.kind for c in combos} == {"mx", "bracketed", "bracketed-port", "relayhost", "transport-reset"}
    assert {c.source for c in combos} == {"policy", "parent", "main.cf", "master.cf -o"}
    assert {c.trusted for c in combos} == {True, False}
    matches = {c.match for c in combos if c.level in ("verify", "secure")}
    assert {"", "hostname", "nexthop", "dot-nexthop", ".parent", "LITERAL"} <= matches
    assert len({c.recipient for c in combos}) == len(combos)  # one next-hop each: no deferral suspends another
    per_case = collections.Counter(c.case for c in combos)
    assert len(per_case) <= 7 and max(per_case.values()) <= 130  # few pods; auto addresses from one /24 each


def test_the_model_is_sure_of_every_combination_and_predicts_both_outcomes() -> None:
    scenario = matrix_scenario()
    predictions = [e.prediction for case in scenario.cases for e in explain_case(scenario, case, fixes=False)]
    assert all(p.certain and None not in (p.status, p.dsn, p.tls) for p in predictions)
    seen = collections.Counter((p.status, p.tls) for p in predictions)
    for outcome in [("sent", "none"), ("sent", "Trusted"), ("sent", "Untrusted"), ("sent", "Verified"),
                    ("deferred", "Untrusted"), ("deferred", "none")]:  # fmt: skip
        assert seen[outcome] > 0, outcome


def test_judge_catches_a_disagreement_and_a_missing_observation() -> None:
    combos = combinations()[:3]
    scenario = matrix_scenario(combos)
    (case,) = scenario.cases
    predicted = [e.prediction for e in explain_case(scenario, case, fixes=False)]

    def observed(status: str, dsn: str, tls: str) -> Observed:
        return Observed(status, dsn, "", "none", None, None, None, tls, "Q")

    def row(index: int, seen: Observed | None) -> RecipientResult:
        return RecipientResult(scenario.name, case.name, combos[index].recipient, Expect(), seen, ())

    rows = [row(0, observed("sent", "2.0.0", "none")), row(1, observed("sent", "2.0.0", "Trusted")), row(2, None)]
    result = CaseResult(scenario.name, case.name, "<matrix>", tuple(rows))
    verdicts = judge(scenario, [result], combos)
    assert [p.summary().split(" (")[0] for p in predicted[:2]] == ["sent 2.0.0 tls=none"] * 2
    assert [v.agrees for v in verdicts] == [True, False, False]
    assert [d.key for d in verdicts[1].disagreements] == ["tls"]
