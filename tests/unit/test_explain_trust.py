"""The model's chain trust and fingerprints, from the scenario's pki specs (no certificate is made).

Expectations are what Postfix 3.7.11 logged for the same layouts (scenarios/faults/certs-chain.yaml,
certs-expiry.yaml, certs-self-signed.yaml, certs-keys.yaml).
"""

from __future__ import annotations

from datetime import UTC, datetime

from harness._explain_trust import check_chain, check_fingerprints, readable, symbolic
from harness.model import CaSpec, CertSpec

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CAS = {
    "root": CaSpec(subject="/O=Example/CN=Example Root"),
    "inter": CaSpec(subject="/O=Example/CN=Example Issuing CA", issuer="root"),
    "other-root": CaSpec(subject="Other Root"),
}
CERTS = {
    "mx": CertSpec(issuer="inter", san=["mx.example.com"]),
    "other": CertSpec(issuer="other-root", san=["mx.example.com"]),
    "self": CertSpec(self_signed=True, san=["mx.example.com"]),
    "expired": CertSpec(issuer="inter", san=["mx.example.com"], not_after="-1d"),
    "not-yet": CertSpec(issuer="inter", san=["mx.example.com"], not_before="+1d"),
}


def chain(cert: str, *, mode: str = "full", trust: tuple[str, ...] = ("root",), cas: dict[str, CaSpec] = CAS):  # type: ignore[no-untyped-def]
    return check_chain(cert, certs=CERTS, cas=cas, chain=mode, trust=trust, now=NOW)


def test_a_full_chain_to_a_trusted_root_verifies() -> None:
    check = chain("mx")
    assert check.trusted and check.problem is None
    assert check.path == ("mx (the server's certificate)", "inter (sent by the server)", "root (in the trust store)")


def test_a_missing_intermediate_is_an_untrusted_issuer_unless_the_trust_store_has_it() -> None:
    missing = chain("mx", mode="leaf")
    assert not missing.trusted and missing.problem == "untrusted issuer /O=Example/CN=Example Issuing CA"
    assert chain("mx", mode="leaf", trust=("root", "inter")).trusted


def test_an_intermediate_alone_in_the_trust_store_is_no_anchor() -> None:
    assert not chain("mx", trust=("inter",)).trusted


def test_a_root_the_server_sends_counts_only_when_it_is_trusted() -> None:
    assert chain("mx", mode="with-root").trusted
    sent_untrusted = chain("other", mode="with-root", trust=("root",))
    assert not sent_untrusted.trusted and (sent_untrusted.problem or "").startswith("untrusted issuer /CN=Other Root")
    assert not chain("other", trust=("root",)).trusted


def test_self_signed_expired_and_not_yet_valid_certificates_are_not_trusted() -> None:
    assert chain("self").problem == "self-signed certificate"
    assert (chain("expired").problem or "").startswith("certificate has expired")
    assert (chain("not-yet").problem or "").startswith("certificate not yet valid")


def test_an_expired_ca_breaks_the_chain() -> None:
    cas = {**CAS, "inter": CaSpec(subject="/O=Example/CN=Example Issuing CA", issuer="root", not_after="-1d")}
    check = chain("mx", cas=cas)
    assert not check.trusted and (check.problem or "").startswith("certificate has expired (inter")


def test_a_fingerprint_placeholder_matches_its_certificate_with_the_configured_digest() -> None:
    pin = symbolic("{{ fingerprint mx }}")
    assert pin == "{{fingerprint/mx/sha256}}" and readable(pin) == "{{ fingerprint mx }}"
    assert check_fingerprints([pin], "mx", digest="sha256", digest_of=None).matched is True
    assert check_fingerprints([symbolic("{{ pubkey_fingerprint mx }}")], "mx", digest="sha256", digest_of=None).matched
    assert check_fingerprints([pin], "other", digest="sha256", digest_of=None).matched is False
    assert check_fingerprints([pin], "mx", digest="md5", digest_of=None).matched is False


def test_a_literal_digest_is_compared_only_with_a_digest_function() -> None:
    literal = "AB:CD"
    assert check_fingerprints([literal], "mx", digest="sha256", digest_of=None).matched is None

    def digest_of(name: str, digest: str, public_key: bool) -> str:
        return "AB:CD" if (name, public_key) == ("mx", True) else "00:00"

    assert check_fingerprints(["abcd"], "mx", digest="sha256", digest_of=digest_of).matched is True
    assert check_fingerprints(["abce"], "mx", digest="sha256", digest_of=digest_of).matched is False
