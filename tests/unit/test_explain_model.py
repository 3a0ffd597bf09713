"""The TLS model end to end: the scenario library's observed outcomes, the seed reporter's story, the changes it
suggests, and how it says what it does not know.

The scenario library's expectations were observed on real Postfix 3.7.11 (every file says so); the model must agree
with each one it is sure of. The differential test (tests/integration/test_explain_differential.py) holds it to
Postfix over hundreds more situations.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from _explain_world import decision, world

from harness._explain_inputs import case_inputs
from harness.explain import Prediction, decide, disagreements, explain_case
from harness.results import Observed
from harness.scenario import load_scenario, load_scenarios, scenario_from_dict

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def _library_checks() -> list[tuple[str, str, str, Prediction, dict[str, str]]]:
    rows = []
    for scenario in load_scenarios([LIBRARY]):
        for case in scenario.cases:
            for message, e in zip(case.send, explain_case(scenario, case, fixes=False), strict=True):
                expected = {k: getattr(message.expect, k) for k in ("status", "dsn", "tls")}
                expected = {k: v for k, v in expected.items() if v is not None}
                if expected:
                    rows.append((scenario.name, case.name, message.to, e.prediction, expected))
    return rows


def test_the_model_agrees_with_every_observed_outcome_of_the_library_it_is_sure_of() -> None:
    rows = _library_checks()
    sure = [row for row in rows if row[3].certain]
    wrong = []
    for scenario, case, to, p, expected in sure:
        for key, value in expected.items():
            got = getattr(p, key)
            ok = got is None or got == value or (key == "dsn" and got.startswith(value + "."))
            if not ok:
                wrong.append(f"{scenario}/{case} {to}: {key} model {got}, observed {value}")
    assert wrong == []
    assert len(sure) >= 120  # 125 when written; what it is unsure of is listed in docs/explain.md


def test_the_seed_fastmail_story_in_plain_words() -> None:
    scenario = load_scenario(LIBRARY / "seed" / "fastmail.yaml")
    case = next(c for c in scenario.cases if c.name == "secure-defers")
    (e,) = explain_case(scenario, case)
    text = e.text()
    assert e.prediction.summary() == "deferred 4.7.5 tls=Untrusted (Server certificate not verified)"
    assert 'security level: secure, from the policy table entry "fastmail.fm secure ciphers=high"' in text
    assert "(without it: smtp_tls_security_level = may (main.cf, set by the scenario))" in text
    assert "match list: nexthop, dot-nexthop, from smtp_tls_secure_cert_match = nexthop, dot-nexthop" in text
    assert "Names checked: fastmail.fm (nexthop: exactly this name), .fastmail.fm (dot-nexthop" in text
    assert "The chain is trusted, and the certificate names the MX host" in text
    assert 'But at "secure" Postfix does not check the MX host name' in text
    assert 'log such a connection as "Untrusted" although the chain is trusted' in text
    changes = {f.change: f for f in e.fixes}
    provider = '/etc/postfix/tls_policy: "fastmail.fm secure ciphers=high" → ' + (
        '"fastmail.fm secure ciphers=high match=.messagingengine.com"'
    )
    verify = '/etc/postfix/tls_policy: "fastmail.fm secure ciphers=high" → "fastmail.fm verify ciphers=high"'
    assert provider in changes and verify in changes
    assert "messagingengine.com" in changes[provider].trade_off
    assert "not authenticated" in changes[verify].trade_off
    assert all(f.after.status == "sent" for f in e.fixes)


def test_a_suggested_change_is_one_the_model_sees_deliver_and_a_useless_one_is_left_out() -> None:
    scenario = load_scenario(LIBRARY / "seed" / "hearst.yaml")
    (e,) = explain_case(scenario, scenario.cases[0])
    changes = [f.change for f in e.fixes]
    assert any("match=gslb.pphosted.com" in c for c in changes)
    assert not any(c.endswith('"hearst.com verify ciphers=high"') for c in changes)  # the MX names do not match


def test_the_suggested_match_really_delivers_when_written_into_the_scenario() -> None:
    scenario = load_scenario(LIBRARY / "seed" / "hearst.yaml")
    fixed = next(c for c in scenario.cases if c.name == "secure-with-match-delivers")
    (e,) = explain_case(scenario, fixed)
    assert (e.prediction.status, e.prediction.tls) == ("sent", "Verified") and e.fixes == ()


def test_untrusted_root_is_explained_by_the_chain_and_fixed_by_trusting_the_root() -> None:
    d = world(main_cf={"smtp_tls_security_level": "verify"}, trust=["other-root"])
    scenario = scenario_from_dict({**d, "cases": [{"name": "c", "send": [{"to": "user@example.com"}]}]})
    (e,) = explain_case(scenario, scenario.cases[0])
    assert e.prediction.summary() == "deferred 4.7.5 tls=Untrusted (Server certificate not verified)"
    assert "The certificate's chain does not verify (untrusted issuer /O=Example/CN=Example Root)" in e.text()
    assert any(f.change.startswith("postfix.trust: [other-root, root]") for f in e.fixes)


def test_starttls_not_offered_is_4_7_4_at_encrypt_and_plaintext_at_may() -> None:
    plain = {"mx.example.com": {}}
    encrypt = decision(world(main_cf={"smtp_tls_security_level": "encrypt"}, servers=plain)).prediction
    may = decision(world(main_cf={"smtp_tls_security_level": "may"}, servers=plain)).prediction
    assert (encrypt.status, encrypt.dsn, encrypt.tls) == ("deferred", "4.7.4", "none")
    assert (may.status, may.dsn, may.tls) == ("sent", "2.0.0", "none")


def test_equal_preferences_with_different_outcomes_leave_the_reported_failure_open() -> None:
    data = world(
        main_cf={"smtp_tls_security_level": "encrypt"},
        dns={"example.com": {"MX": ["10 a.example.com", "10 b.example.com"]},
             "a.example.com": {"A": "auto"}, "b.example.com": {"A": "auto"}},
        servers={"a.example.com": {}},
    )  # fmt: skip
    p = decision(data).prediction
    assert p.status == "deferred" and p.dsn is None and p.tls == "none"
    assert any("random" in c for c in p.caveats)


def test_a_slow_greeting_against_smtp_helo_timeout_defers_and_a_quick_one_delivers() -> None:
    def server(delay: float) -> dict[str, object]:
        return {"mx.example.com": {"delays": {"greeting": delay}}}

    slow = decision(world(main_cf={"smtp_helo_timeout": "1s"}, servers=server(2.5)))
    quick = decision(world(main_cf={"smtp_helo_timeout": "1s"}, servers=server(0.2)))
    assert (slow.prediction.status, slow.prediction.dsn) == ("deferred", "4.4.2")
    assert quick.prediction.status == "sent"


def _wrong_name(level: str) -> dict[str, object]:
    """The base world whose MX host presents a trusted certificate for another name."""
    d = world(main_cf={"smtp_tls_security_level": level}, servers={"mx.example.com": {"cert": "wrong"}})
    d["pki"]["certs"]["wrong"] = {"issuer": "inter", "san": ["elsewhere.example.net"], "key": "ec256"}
    return d


def test_messages_to_one_next_hop_that_is_deferred_do_not_get_a_tls_prediction() -> None:
    d = _wrong_name("verify")
    send = [{"to": "a@example.com"}, {"to": "b@example.com"}]
    scenario = scenario_from_dict({**d, "cases": [{"name": "c", "send": send}]})
    explanations = explain_case(scenario, scenario.cases[0], fixes=False)
    assert [(e.prediction.status, e.prediction.tls) for e in explanations] == [("deferred", None)] * 2


def test_the_tls_line_of_a_name_mismatch_depends_on_the_release() -> None:
    d = _wrong_name("verify")
    scenario = scenario_from_dict({**d, "cases": [{"name": "c", "send": [{"to": "user@example.com"}]}]})
    inputs = case_inputs(scenario, scenario.cases[0])
    assert inputs.release == "3.7.11"  # the default release, as Debian bookworm ships it
    assert decide(inputs, "user@example.com").prediction.tls == "Untrusted"
    assert decide(replace(inputs, release="3.10.4"), "user@example.com").prediction.tls == "Trusted"
    old = decide(replace(inputs, release="3.5.25"), "user@example.com").prediction
    assert old.tls == "Trusted" and not old.certain  # Postfix 3.5's own name matcher is not modelled


def test_the_fingerprint_digest_default_follows_the_compatibility_level_the_harness_sets() -> None:
    scenario = scenario_from_dict({**world(), "cases": [{"name": "c", "send": [{"to": "user@example.com"}]}]})
    inputs = case_inputs(scenario, scenario.cases[0])
    assert inputs.param("smtp_tls_fingerprint_digest").value == "sha256"
    assert replace(inputs, release="3.5.25").param("smtp_tls_fingerprint_digest").value == "md5"


OBSERVED = Observed(
    status="deferred",
    dsn="4.7.5",
    reason="Server certificate not verified",
    relay="mx.example.com[192.0.2.10]:25",
    relay_host="mx.example.com",
    relay_address="192.0.2.10",
    relay_port=25,
    tls="Untrusted",
    queue_id="ABC",
)


@pytest.mark.parametrize(
    ("prediction", "keys"),
    [
        (Prediction("deferred", "4.7.5", "Untrusted", None), []),
        (Prediction("deferred", "4.7.5", "Trusted", None), ["tls"]),
        (Prediction("sent", "2.0.0", "Verified", None), ["status", "dsn", "tls"]),
        (Prediction("deferred", None, None, None), []),  # not predicted: not compared
        (Prediction("sent", "2.0.0", "Verified", None, certain=False), []),  # unsure: never a disagreement
    ],
)
def test_disagreements_are_the_keys_a_certain_prediction_gets_wrong(prediction: Prediction, keys: list[str]) -> None:
    assert [d.key for d in disagreements(prediction, OBSERVED)] == keys
