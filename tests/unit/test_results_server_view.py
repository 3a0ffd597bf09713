"""``expect`` keys about what the fake server saw (starttls, sni, protocol, cipher, client_cert), held against the
ServerSession of the attempt; each with its negative control, and the observation when no server session was
recorded."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.model import Expect
from harness.results import Check, Observed, ServerSession, compare

SESSION = ServerSession(
    server="mx.example.com",
    address="192.0.2.10",
    port=25,
    starttls=True,
    tls_version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    sni="mx.example.com",
    received=True,
)
SENT = Observed(
    status="sent",
    dsn="2.0.0",
    reason="250 2.0.0 Ok",
    relay="mx.example.com[192.0.2.10]:25",
    relay_host="mx.example.com",
    relay_address="192.0.2.10",
    relay_port=25,
    tls="Verified",
    queue_id="4F9D1C2A3B",
    received=True,
    server=SESSION,
)
NO_SESSION = replace(SENT, server=None)
PLAINTEXT = replace(SENT, tls="none", server=replace(SESSION, starttls=False, tls_version=None, cipher=None, sni=None))


def expect(**keys: Any) -> Expect:
    return Expect.model_validate(keys)


def test_starttls_holds_when_the_server_saw_it() -> None:
    assert compare(expect(starttls=True), SENT) == (Check("starttls", "true", "true", True),)
    assert compare(expect(starttls=False), SENT) == (Check("starttls", "false", "true", False),)
    assert compare(expect(starttls=False), PLAINTEXT) == (Check("starttls", "false", "false", True),)


def test_sni_holds_case_insensitively() -> None:
    assert compare(expect(sni="MX.Example.com"), SENT) == (Check("sni", "MX.Example.com", "mx.example.com", True),)
    assert compare(expect(sni="other.example.com"), SENT)[0].ok is False
    assert compare(expect(sni="none"), SENT) == (Check("sni", "none", "mx.example.com", False),)


def test_no_sni_is_observed_as_none() -> None:
    assert compare(expect(sni="none"), PLAINTEXT) == (Check("sni", "none", "none", True),)
    assert compare(expect(sni="mx.example.com"), PLAINTEXT)[0].ok is False


def test_protocol_is_the_version_the_server_negotiated() -> None:
    assert compare(expect(protocol="TLSv1.3"), SENT) == (Check("protocol", "TLSv1.3", "TLSv1.3", True),)
    assert compare(expect(protocol="TLSv1.2"), SENT) == (Check("protocol", "TLSv1.2", "TLSv1.3", False),)
    assert compare(expect(protocol="none"), PLAINTEXT) == (Check("protocol", "none", "none", True),)


def test_the_server_side_is_compared_not_postfix_s_log() -> None:
    # Postfix logged TLSv1.2 (say), the server TLSv1.3: the key is about what the server saw.
    observed = replace(SENT, tls_protocol="TLSv1.2", tls_cipher="ECDHE-RSA-AES256-GCM-SHA384")
    assert all(c.ok for c in compare(expect(protocol="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384"), observed))
    assert not any(c.ok for c in compare(expect(protocol="TLSv1.2", cipher="ECDHE-RSA-AES256-GCM-SHA384"), observed))


def test_cipher_holds_exactly() -> None:
    assert compare(expect(cipher="TLS_AES_256_GCM_SHA384"), SENT)[0].ok
    assert not compare(expect(cipher="TLS_AES_128_GCM_SHA256"), SENT)[0].ok
    assert compare(expect(cipher="none"), PLAINTEXT) == (Check("cipher", "none", "none", True),)


def test_client_cert_holds_when_the_server_received_one() -> None:
    with_cert = replace(SENT, server=replace(SESSION, client_cert=True))
    assert compare(expect(client_cert=True), with_cert) == (Check("client_cert", "true", "true", True),)
    assert compare(expect(client_cert=False), with_cert) == (Check("client_cert", "false", "true", False),)


def test_client_cert_false_holds_when_none_was_presented() -> None:
    assert SESSION.client_cert is False  # the default: the server saw no certificate
    assert compare(expect(client_cert=False), SENT) == (Check("client_cert", "false", "false", True),)
    assert compare(expect(client_cert=True), SENT) == (Check("client_cert", "true", "false", False),)
    assert compare(expect(client_cert=False), PLAINTEXT) == (Check("client_cert", "false", "false", True),)


def test_client_cert_is_the_server_s_view_with_implicit_tls_too() -> None:
    # On an implicit-TLS port starttls is false, yet the handshake may carry a client certificate.
    implicit = replace(SENT, server=replace(SESSION, starttls=False, client_cert=True))
    checks = compare(expect(starttls=False, client_cert=True), implicit)
    assert [(c.key, c.observed, c.ok) for c in checks] == [("starttls", "false", True), ("client_cert", "true", True)]


@pytest.mark.parametrize(
    ("keys", "observed"),
    [
        ({"client_cert": False}, "false"),
        ({"starttls": False}, "false"),
        ({"sni": "none"}, "none"),
        ({"protocol": "none"}, "none"),
        ({"cipher": "none"}, "none"),
    ],
)
def test_without_a_server_session_starttls_is_false_and_the_rest_none(keys: dict[str, Any], observed: str) -> None:
    [check] = compare(expect(**keys), NO_SESSION)
    assert check.observed == observed and check.ok


def test_without_a_server_session_a_positive_expectation_fails() -> None:
    checks = compare(
        expect(starttls=True, sni="mx.example.com", protocol="TLSv1.3", cipher="X", client_cert=True), NO_SESSION
    )
    assert [(c.key, c.observed, c.ok) for c in checks] == [
        ("starttls", "false", False),
        ("sni", "none", False),
        ("protocol", "none", False),
        ("cipher", "none", False),
        ("client_cert", "false", False),
    ]


def test_the_new_keys_come_after_the_version_1_keys() -> None:
    keys = {"client_cert": False, "cipher": "X", "starttls": True, "status": "sent", "received": True, "sni": "y"}
    checks = compare(expect(**keys, protocol="TLSv1.3"), SENT)
    assert [c.key for c in checks] == ["status", "received", "starttls", "sni", "protocol", "cipher", "client_cert"]
