"""DANE in the TLS model (harness/_explain_dane.py): ``dane``/``dane-only`` with ``smtp_dns_support_level =
dnssec``, per release, as observed in scenarios/dane on Postfix 3.5.25, 3.7.11 and 3.10.13."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from _explain_world import world

from harness._explain_inputs import case_inputs
from harness.explain import Prediction, decide
from harness.scenario import scenario_from_dict

RELEASES = ("3.5.25", "3.7.11", "3.10.13")
TO = "user@example.com"


def dane_world(
    tlsa: str | list[str] | None = "3 1 1 cert:mx",
    *,
    level: str = "dane",
    in_policy: bool = False,
    mx_ad: bool = True,
    tlsa_ad: bool = True,
    address_ad: bool = True,
    tlsa_fault: str | None = None,
    server: dict[str, Any] | None = None,
    main_cf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The base world (mx.example.com presents ``mx``, issued by inter under root; root trusted) with DNSSEC
    lookups and a TLSA record set for the MX host; the level in main.cf or (``in_policy``) in a policy table."""
    dns: dict[str, Any] = {
        "example.com": {"MX": "10 mx.example.com", "dnssec": mx_ad},
        "mx.example.com": {"A": "auto", "dnssec": address_ad},
    }
    if tlsa is not None or tlsa_fault:
        node: dict[str, Any] = {"dnssec": tlsa_ad}
        if tlsa is not None:
            node["TLSA"] = tlsa
        if tlsa_fault:
            node["fault"] = {"TLSA": tlsa_fault}
        dns["_25._tcp.mx.example.com"] = node
    cf = {"smtp_dns_support_level": "dnssec", "smtp_tls_security_level": "may" if in_policy else level}
    cf.update(main_cf or {})
    data = world(
        main_cf=cf,
        policy=f"example.com {level}\n" if in_policy else None,
        dns=dns,
        servers={"mx.example.com": {"cert": "mx", **(server or {})}},
    )
    data["pki"]["certs"]["expired"] = {"issuer": "inter", "san": ["mx.example.com"], "key": "ec256",
                                       "not_before": "-60d", "not_after": "-1d"}  # fmt: skip
    data["pki"]["certs"]["wrongname"] = {"issuer": "inter", "san": ["mail.other.example.net"], "key": "ec256"}
    data["pki"]["certs"]["selfsigned"] = {"self_signed": True, "san": ["mx.example.com"], "key": "ec256"}
    return data


def predict(data: dict[str, Any], release: str = "3.7.11") -> Prediction:
    scenario = scenario_from_dict({**data, "cases": [{"name": "c", "send": [{"to": TO}]}]}, source="<test>")
    inputs = replace(case_inputs(scenario, scenario.cases[0]), release=release)
    return decide(inputs, TO).prediction


def outcome(p: Prediction) -> tuple[str | None, str | None, str | None, str | None, bool]:
    """Status, DSN, TLS level, the reason of a message not sent, and whether the model is sure."""
    return p.status, p.dsn, p.tls, None if p.status == "sent" else p.reason, p.certain


NOT_VERIFIED = "Server certificate not verified"
NOT_TRUSTED = "Server certificate not trusted"


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("cert", ["mx", "expired", "wrongname", "selfsigned"])
def test_a_dane_ee_record_for_the_servers_key_is_verified_whatever_its_dates_names_and_chain(
    release: str, cert: str
) -> None:
    p = predict(dane_world(f"3 1 1 cert:{cert}", server={"cert": cert}), release)
    assert outcome(p) == ("sent", "2.0.0", "Verified", None, True)


@pytest.mark.parametrize(
    ("release", "cert", "tls", "reason"),
    [
        ("3.7.11", "mx", "Untrusted", NOT_VERIFIED),
        ("3.10.13", "expired", "Untrusted", NOT_VERIFIED),
        # 3.5 checks the chain against smtp_tls_CAfile beside the DANE-EE digest
        ("3.5.25", "mx", "Trusted", NOT_VERIFIED),
        ("3.5.25", "expired", "Untrusted", NOT_TRUSTED),
    ],
)
def test_a_dane_ee_record_of_another_key_defers_with_no_fallback(
    release: str, cert: str, tls: str, reason: str
) -> None:
    p = predict(dane_world("3 1 1 cert:wrongname", server={"cert": cert}), release)
    assert outcome(p) == ("deferred", "4.7.5", tls, reason, True)
    assert p.relays == ("mx.example.com",)


def test_current_and_next_records_side_by_side_match_the_new_key() -> None:
    p = predict(dane_world(["3 1 1 cert:wrongname", "3 1 1 cert:mx"]))
    assert outcome(p) == ("sent", "2.0.0", "Verified", None, True)


@pytest.mark.parametrize(
    ("release", "in_policy", "expected"),
    [
        # 3.5/3.7.11: smtp_tls_dane_insecure_mx_policy is "dane" only when main.cf says "dane", else "may"
        ("3.7.11", True, ("sent", "2.0.0", "Trusted", None, True)),  # may: the chain happens to be trusted
        ("3.5.25", True, ("sent", "2.0.0", "Trusted", None, True)),
        ("3.7.11", False, ("sent", "2.0.0", "Trusted", None, True)),  # half-dane: a match is only "Trusted"
        ("3.10.13", True, ("sent", "2.0.0", "Trusted", None, True)),  # 3.10: "dane" whatever main.cf says
    ],
)
def test_an_mx_answer_without_ad_follows_the_insecure_mx_policy(
    release: str, in_policy: bool, expected: tuple[object, ...]
) -> None:
    p = predict(dane_world(mx_ad=False, in_policy=in_policy), release)
    assert outcome(p) == expected


def test_with_an_insecure_mx_the_release_decides_between_opportunistic_tls_and_the_tlsa_records() -> None:
    # A self-signed certificate tells "may" (Untrusted, delivered) from half-dane (Trusted, the TLSA matches).
    data = dane_world("3 1 1 cert:selfsigned", mx_ad=False, in_policy=True, server={"cert": "selfsigned"})
    assert predict(data, "3.7.11").tls == "Untrusted"
    assert predict(data, "3.7.13").tls == "Trusted"  # the default was reverted in 3.7.13 (HISTORY 20250210)
    assert predict(data, "3.10.13").tls == "Trusted"
    forced = dane_world("3 1 1 cert:selfsigned", mx_ad=False, in_policy=True, server={"cert": "selfsigned"},
                        main_cf={"smtp_tls_dane_insecure_mx_policy": "dane"})  # fmt: skip
    assert predict(forced, "3.7.11").tls == "Trusted"
    mismatch = dane_world("3 1 1 cert:wrongname", mx_ad=False)
    assert outcome(predict(mismatch, "3.7.11")) == ("deferred", "4.7.5", "Untrusted", NOT_VERIFIED, True)


@pytest.mark.parametrize("release", RELEASES)
def test_dane_only_with_an_insecure_mx_defers_without_connecting(release: str) -> None:
    p = predict(dane_world(mx_ad=False, level="dane-only", in_policy=True), release)
    assert outcome(p) == ("deferred", "4.7.5", "none", "non DNSSEC destination", True)
    assert p.relays == ("none",)


@pytest.mark.parametrize("level", ["dane", "dane-only"])
def test_a_tlsa_lookup_that_fails_defers_without_connecting(level: str) -> None:
    p = predict(dane_world(tlsa_fault="servfail", level=level, in_policy=True))
    assert outcome(p) == ("deferred", "4.7.5", "none", "TLSA lookup error for mx.example.com:25", True)
    assert p.relays == ("none",)


def test_no_tlsa_record_is_may_at_dane_and_a_deferral_at_dane_only() -> None:
    may = predict(dane_world(None, server={"cert": "selfsigned"}))
    assert outcome(may) == ("sent", "2.0.0", "Untrusted", None, True)
    only = predict(dane_world(None, level="dane-only", in_policy=True))
    assert outcome(only) == ("deferred", "4.7.5", "none", "no TLSA records found", True)


def test_only_unusable_records_make_tls_mandatory_without_authentication() -> None:
    unusable = ["0 1 1 ca:root", "1 1 1 cert:mx", "3 2 1 " + "00" * 32, "4 1 1 " + "00" * 32]
    sent = predict(dane_world(unusable, server={"cert": "selfsigned"}))
    assert outcome(sent) == ("sent", "2.0.0", "Untrusted", None, True)
    plain = predict(dane_world(unusable, server={"starttls": False}))
    assert (plain.status, plain.dsn, plain.tls, plain.certain) == ("deferred", "4.7.4", "none", True)
    no_records = predict(dane_world(None, server={"starttls": False}))
    assert (no_records.status, no_records.tls) == ("sent", "none")  # "dane" without TLSA records is "may"


@pytest.mark.parametrize(
    ("release", "tls", "reason"),
    [
        ("3.5.25", "Untrusted", NOT_TRUSTED),
        ("3.7.11", "Untrusted", NOT_VERIFIED),
        ("3.10.13", "Untrusted", NOT_VERIFIED),
    ],
)
@pytest.mark.parametrize(("anchor", "chain"), [("inter", "leaf"), ("root", "full")])
def test_a_dane_ta_anchor_the_server_does_not_send_defers(
    release: str, tls: str, reason: str, anchor: str, chain: str
) -> None:
    p = predict(dane_world(f"2 1 1 ca:{anchor}", server={"chain": chain}), release)
    assert outcome(p) == ("deferred", "4.7.5", tls, reason, True)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(("anchor", "chain"), [("inter", "full"), ("root", "with-root")])
def test_a_dane_ta_anchor_sent_with_the_right_name_is_verified(release: str, anchor: str, chain: str) -> None:
    p = predict(dane_world(f"2 1 1 ca:{anchor}", server={"chain": chain}), release)
    assert outcome(p) == ("sent", "2.0.0", "Verified", None, True)


@pytest.mark.parametrize(("release", "tls"), [("3.5.25", "Trusted"), ("3.7.11", "Untrusted"), ("3.10.13", "Trusted")])
def test_dane_ta_checks_the_name_unlike_dane_ee(release: str, tls: str) -> None:
    p = predict(dane_world("2 1 1 ca:inter", server={"cert": "wrongname", "chain": "full"}), release)
    assert outcome(p) == ("deferred", "4.7.5", tls, NOT_VERIFIED, True)


def test_the_next_hop_domain_is_a_dane_ta_reference_name_too() -> None:
    data = dane_world("2 1 1 ca:inter", server={"cert": "nexthop", "chain": "full"})
    data["pki"]["certs"]["nexthop"] = {"issuer": "inter", "san": ["example.com"], "key": "ec256"}
    assert outcome(predict(data)) == ("sent", "2.0.0", "Verified", None, True)


@pytest.mark.parametrize(
    "changes",
    [
        {"tlsa": "3 1 1 " + "ab" * 32},  # a literal digest is not compared
        {"tlsa_ad": False},
        {"address_ad": False},
        {"tlsa_fault": "timeout"},
        {"main_cf": {"smtp_tls_force_insecure_host_tlsa_lookup": "yes"}},
    ],
)
def test_what_dane_does_not_model_is_not_sure(changes: dict[str, Any]) -> None:
    assert not predict(dane_world(**changes)).certain


def test_the_explanation_says_what_dane_decided() -> None:
    data = dane_world(mx_ad=False, in_policy=True)
    scenario = scenario_from_dict({**data, "cases": [{"name": "c", "send": [{"to": TO}]}]}, source="<test>")
    inputs = case_inputs(scenario, scenario.cases[0])
    d = decide(inputs, TO)
    assert d.policy is not None and d.policy.level == "dane"
    steps = d.attempts[0].steps
    assert any("non DNSSEC destination" in s and '"dane" becomes "may"' in s for s in steps)
    assert any("smtp_tls_dane_insecure_mx_policy = may" in s for s in steps)
