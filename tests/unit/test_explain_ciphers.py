"""The TLS model's cipher rules: the exclusions Postfix appends to its cipher list against a server limited to a few
ciphers, and "not sure" for what the model does not follow.

The matrix below is what Postfix 3.5.25, 3.7.11 and 3.10.13 did, alike, with a server limited to one
``ECDHE-ECDSA-…`` cipher at TLS 1.2 (an ECDSA key) and ``smtp_tls_mandatory_exclude_ciphers`` at ``encrypt``
(``mxharness run --release all`` of a probe scenario, 2026-11-30; ``scenarios/faults/tls-versions.yaml`` keeps the
``AES128`` case and its ``may`` twins).
"""

from __future__ import annotations

from typing import Any

import pytest
from _explain_world import world

from harness._explain_inputs import case_inputs
from harness.explain import Decision, decide, explain
from harness.scenario import scenario_from_dict

CIPHERS = {
    "gcm128": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "gcm256": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "chacha": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "cbc384": "ECDHE-ECDSA-AES256-SHA384",
    "cbc256": "ECDHE-ECDSA-AES128-SHA256",
    "cbcsha1": "ECDHE-ECDSA-AES128-SHA",
}
HARDENING = (
    "aNULL, eNULL, EXPORT, DES, RC4, MD5, PSK, aECDH, EDH-DSS-DES-CBC3-SHA, EDH-RSA-DES-CBC3-SHA, KRB5-DES, "
    "CBC3-SHA, 3DES, LOW, SEED, IDEA, CAMELLIA, ARIA, kRSA, DHE, EDH, aDSS, SRP, NULL, RC2, EXP, ADH, AECDH, KRB5, "
    "DSS, kDHE, kEDH"
)
#: exclusion → the servers (by cipher) that Postfix could not reach: "Cannot start TLS: handshake failure".
OBSERVED = {
    HARDENING: set(),
    "CHACHA20": {"chacha"},
    "ECDHE": set(CIPHERS),
    "EECDH": set(CIPHERS),
    "kECDHE": set(CIPHERS),
    "aECDSA": set(CIPHERS),
    "SHA384": {"cbc384"},
    "SHA1": {"cbcsha1"},
    "SHA": {"cbcsha1"},
    "aRSA": set(),
    "AES256": {"gcm256", "cbc384"},
    "SHA256": {"cbc256"},  # not ...-GCM-SHA256: an AEAD cipher has no SHA-256 MAC
    "AES256+SHA384": {"cbc384"},
}
#: the same with only the AES128-GCM server
OBSERVED_GCM128 = {
    "AES128": True,
    "AES": True,
    "AESGCM": True,
    "ECDSA": True,
    "ECDHE+AES128": True,
    "ECDHE-ECDSA-AES128-GCM-SHA256": True,
    "SHA256": False,
    "PSD": False,  # not an OpenSSL word: ignored (the seed reporter's main.cf has it)
}
RELEASES = ("3.5", "3.7", "3.10")


def _server(cipher: str | None = None, **tls: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"max_version": "TLSv1.2", **tls}
    if cipher is not None:
        spec["ciphers"] = cipher
    return {"mx.example.com": {"cert": "mx", "tls": spec}}


def _decide(data: dict[str, Any], release: str = "3.7") -> Decision:
    data = {**data, "postfix": {**data["postfix"], "release": release}}
    data["cases"] = [{"name": "c", "send": [{"to": "user@example.com"}]}]
    scenario = scenario_from_dict(data, source="<test>")
    return decide(case_inputs(scenario, scenario.cases[0]), "user@example.com")


def _outcome(d: Decision) -> tuple[str | None, str | None, str | None, bool]:
    p = d.prediction
    return p.status, p.dsn, p.tls, p.certain


FAILED = ("deferred", "4.7.5", "none", True)
SENT = ("sent", "2.0.0", "Trusted", True)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("exclusion", list(OBSERVED))
def test_the_model_follows_every_observed_exclusion(exclusion: str, release: str) -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "smtp_tls_mandatory_exclude_ciphers": exclusion}
    for key, cipher in CIPHERS.items():
        got = _outcome(_decide(world(main_cf=main_cf, servers=_server(cipher)), release))
        assert got == (FAILED if key in OBSERVED[exclusion] else SENT), (exclusion, cipher)


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize(("exclusion", "fails"), list(OBSERVED_GCM128.items()))
def test_the_model_follows_the_observed_exclusions_of_aes128_gcm(exclusion: str, fails: bool, release: str) -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "smtp_tls_mandatory_exclude_ciphers": exclusion}
    got = _outcome(_decide(world(main_cf=main_cf, servers=_server(CIPHERS["gcm128"])), release))
    assert got == (FAILED if fails else SENT)


def test_the_reason_names_the_word_that_excludes_the_servers_cipher() -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "smtp_tls_mandatory_exclude_ciphers": "RC4, AES128"}
    d = _decide(world(main_cf=main_cf, servers=_server(CIPHERS["gcm128"])))
    assert d.prediction.reason == "Cannot start TLS: handshake failure"
    assert any("ECDHE-ECDSA-AES128-GCM-SHA256 is excluded by AES128" in s for s in d.attempts[0].steps)


@pytest.mark.parametrize(
    ("level", "parameter", "expected"),
    [
        ("may", "smtp_tls_mandatory_exclude_ciphers", SENT),  # the mandatory list does not apply at may
        ("may", "smtp_tls_exclude_ciphers", FAILED),  # no plaintext fallback on the first attempt
        ("encrypt", "smtp_tls_exclude_ciphers", FAILED),
        ("verify", "smtp_tls_mandatory_exclude_ciphers", ("deferred", "4.7.5", "none", True)),
    ],
)
def test_which_exclusion_list_applies_at_which_level(level: str, parameter: str, expected: tuple[Any, ...]) -> None:
    d = _decide(
        world(main_cf={"smtp_tls_security_level": level, parameter: "AES128"}, servers=_server(CIPHERS["gcm128"]))
    )
    assert _outcome(d) == expected


def test_a_policy_entry_exclude_replaces_main_cfs_exclusions() -> None:
    main_cf = {"smtp_tls_mandatory_exclude_ciphers": "AES128"}
    data = world(
        main_cf=main_cf, policy="example.com encrypt exclude=3DES ciphers=high\n", servers=_server(CIPHERS["gcm128"])
    )
    assert _outcome(_decide(data)) == SENT
    data = world(main_cf=main_cf, policy="example.com encrypt exclude=AESGCM\n", servers=_server(CIPHERS["gcm128"]))
    assert _outcome(_decide(data)) == FAILED


@pytest.mark.parametrize("release", RELEASES)
def test_tls13_does_not_use_the_lists_and_a_tls12_default_server_keeps_a_cipher(release: str) -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "smtp_tls_mandatory_exclude_ciphers": "AES128"}
    tls13 = {"mx.example.com": {"cert": "mx"}}
    assert _outcome(_decide(world(main_cf=main_cf, servers=tls13), release)) == SENT
    assert _outcome(_decide(world(main_cf=main_cf, servers=_server()), release)) == SENT  # AES256-GCM observed
    main_cf["smtp_tls_mandatory_exclude_ciphers"] = "ECDSA"
    assert _outcome(_decide(world(main_cf=main_cf, servers=tls13), release)) == SENT
    # Observed deferred (every ECDSA cipher is gone), but the server's full default list is not modelled:
    assert _decide(world(main_cf=main_cf, servers=_server()), release).prediction.certain is False


@pytest.mark.parametrize(
    ("main_cf", "server", "why"),
    [
        (
            {"smtp_tls_mandatory_exclude_ciphers": "RSA"},
            CIPHERS["gcm128"],
            "what RSA excludes",
        ),  # kRSA+aRSA, unverified
        ({"smtp_tls_mandatory_exclude_ciphers": "HIGH"}, CIPHERS["gcm128"], "what HIGH excludes"),
        (
            {"smtp_tls_mandatory_exclude_ciphers": "aes128"},
            CIPHERS["gcm128"],
            "what aes128 excludes",
        ),  # other letter case
        ({"smtp_tls_mandatory_exclude_ciphers": "!AES128"}, CIPHERS["gcm128"], "starts with !"),
        ({"smtp_tls_mandatory_exclude_ciphers": "AES, CHACHA20"}, CIPHERS["gcm128"], "no cipher the model knows"),
        ({"smtp_tls_mandatory_ciphers": "low"}, CIPHERS["gcm128"], "cipher list"),
        ({"tls_medium_cipherlist": "ECDHE+AESGCM"}, CIPHERS["gcm128"], "cipher list"),
        ({}, "ECDHE+AESGCM", "server cipher list"),
        ({}, "ECDHE-RSA-AES128-GCM-SHA256", "server cipher list"),
    ],
)
def test_what_the_model_does_not_follow_is_not_sure(main_cf: dict[str, str], server: str, why: str) -> None:
    d = _decide(world(main_cf={"smtp_tls_security_level": "encrypt", **main_cf}, servers=_server(server)))
    assert d.prediction.certain is False
    assert any(why in c for c in d.prediction.caveats), d.prediction.caveats


def test_a_restricted_server_is_not_sure_when_tls13_or_an_rsa_key_is_involved() -> None:
    main_cf = {"smtp_tls_security_level": "encrypt"}
    tls13 = {"mx.example.com": {"cert": "mx", "tls": {"ciphers": CIPHERS["gcm128"]}}}
    assert _decide(world(main_cf=main_cf, servers=tls13)).prediction.certain is False
    data = world(main_cf=main_cf, servers=_server(CIPHERS["gcm128"]))
    data["pki"]["certs"]["mx"]["key"] = "rsa2048"
    assert _decide(data).prediction.certain is False


def test_without_a_restriction_on_either_side_nothing_changes() -> None:
    d = _decide(world(main_cf={"smtp_tls_security_level": "encrypt"}, policy="example.com encrypt ciphers=high\n"))
    assert _outcome(d) == SENT and not any(s.startswith("Ciphers:") for s in d.attempts[0].steps)
    seclevel = {
        "smtp_tls_security_level": "encrypt",
        "tls_medium_cipherlist": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:@SECLEVEL=0",
    }
    assert _outcome(_decide(world(main_cf=seclevel, servers=_server(CIPHERS["gcm128"])))) == (
        "sent",
        "2.0.0",
        "Trusted",
        False,
    )


def test_seclevel_in_the_list_of_another_grade_is_no_caveat() -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "tls_high_cipherlist": "aNULL:-aNULL:HIGH:@STRENGTH:@SECLEVEL=2"}
    assert _outcome(_decide(world(main_cf=main_cf))) == SENT  # the medium grade's list is in use
    d = _decide(world(main_cf=main_cf, policy="example.com encrypt ciphers=high\n"))
    assert d.prediction.certain is False and "tls_high_cipherlist with @SECLEVEL" in d.prediction.caveats[0]


def test_the_suggested_change_drops_only_the_words_that_exclude_the_servers_cipher() -> None:
    main_cf = {"smtp_tls_security_level": "encrypt", "smtp_tls_mandatory_exclude_ciphers": "RC4, AES128, MD5"}
    data = world(main_cf=main_cf, servers=_server(CIPHERS["gcm128"]))
    data["cases"] = [{"name": "c", "send": [{"to": "user@example.com"}]}]
    scenario = scenario_from_dict(data, source="<test>")
    e = explain(scenario, scenario.cases[0], "user@example.com")
    changes = [f.change for f in e.fixes]
    assert changes[0] == "main.cf: smtp_tls_mandatory_exclude_ciphers = RC4, AES128, MD5 → RC4, MD5"
    assert "AES128" in e.fixes[0].trade_off and e.fixes[0].after.status == "sent"
    entry = world(
        main_cf=main_cf, policy="example.com encrypt exclude=AES128:RC4\n", servers=_server(CIPHERS["gcm128"])
    )
    entry["cases"] = data["cases"]
    scenario = scenario_from_dict(entry, source="<test>")
    e = explain(scenario, scenario.cases[0], "user@example.com")
    assert (
        e.fixes[0].change
        == '/etc/postfix/tls_policy: "example.com encrypt exclude=AES128:RC4" → "example.com encrypt exclude=RC4"'
    )
