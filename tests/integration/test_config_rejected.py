"""Postfix's own parameter checks on real Postfix, in one reused pod: an unknown parameter name and a value Postfix
rejects are reported before any mail is sent, in Postfix's words at the scenario's key, and the valid case right
after each rejected one runs as in a fresh pod."""

from __future__ import annotations

from typing import Any

from harness.engine import RUN_LABEL
from harness.results import CaseResult
from harness.runner import Runner
from harness.scenario import scenario_from_dict


def _case(name: str, level_key: str, level: str) -> dict[str, Any]:
    return {
        "name": name,
        "postfix": {"main.cf": {level_key: level}},
        "send": [{"to": "a@example.net", "expect": {"status": "sent", "received": True}}],
    }


SCENARIO = {
    "name": "postconf-checks",
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {}},
    "cases": [
        _case("typo", "smtp_tls_securty_level", "may"),
        _case("valid-after-typo", "smtp_tls_security_level", "may"),
        _case("bad-value", "smtp_tls_security_level", "bogus"),
        _case("valid-after-bad-value", "smtp_tls_security_level", "may"),
    ],
}


def _nothing_was_sent(result: CaseResult) -> None:
    assert not result.passed and result.error
    assert not any("pickup" in line or "status=" in line for line in result.postfix_log), result.postfix_log
    assert not any('"stage": "connect"' in line for line in result.peer_events)  # no SMTP session either
    assert all(r.observed is None for r in result.recipients)


def test_postfix_rejects_an_unknown_name_and_a_bad_value_and_the_reused_pod_then_delivers(
    mxharness_runner: Runner,
) -> None:
    with Runner(engine=mxharness_runner.engine, reuse_pods=True, jobs=1, progress=lambda m: None) as runner:
        typo, after_typo, bad, after_bad = runner.run([scenario_from_dict(SCENARIO)])
        label = {"label": f"{RUN_LABEL}={runner.run_id}"}
        assert len(runner.engine.client.containers.list(all=True, filters=label)) == 2  # one pod served all four

    assert [str(i) for i in typo.config_issues] == [
        '<dict>: cases[0].postfix["main.cf"].smtp_tls_securty_level: Postfix does not know the parameter '
        "'smtp_tls_securty_level' (main.cf: unused parameter) (did you mean 'smtp_tls_security_level'?)"
    ]
    _nothing_was_sent(typo)
    assert [str(i) for i in bad.config_issues] == [
        '<dict>: cases[2].postfix["main.cf"].smtp_tls_security_level: Postfix rejected this configuration: '
        'Invalid TLS level "bogus"'
    ]
    _nothing_was_sent(bad)

    # Each valid case after a rejected one, in the same pod: no leftover of the rejection, the mail delivered.
    wrong = {
        valid.case: (valid.error, [str(i) for i in valid.config_issues], [r.observed for r in valid.recipients])
        for valid in (after_typo, after_bad)
        if not valid.passed or valid.error is not None or valid.config_issues
    }
    assert wrong == {}
