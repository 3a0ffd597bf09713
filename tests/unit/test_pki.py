"""Tests of harness.pki: certificates checked by real TLS handshakes on loopback, with negative controls.

Keys are the slow part (RSA generation), so one module-scoped Pki holds every certificate the tests need.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.pki import (
    IssuedCert,
    KeyPool,
    Pki,
    UnknownNameError,
    fingerprint,
    format_dn,
    parse_dn,
    parse_when,
    tlsa_data,
)
from harness.world_servers import presented_chain

NOW = datetime(2026, 11, 30, 10, 53, 17, tzinfo=UTC)
ROOT_DN = "/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert High Assurance EV Root CA"
INTER_DN = "/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert SHA2 High Assurance Server CA"
LEAF_DN = "/C=AU/ST=Victoria/L=Melbourne/O=FastMail Pty Ltd/CN=*.messagingengine.com"
LEAF_SAN = ["*.messagingengine.com", "messagingengine.com", "mail.messagingengine.com"]


@pytest.fixture(scope="module")
def pki() -> Pki:
    # Real time, not NOW: the handshakes check validity against the clock.
    pki = Pki()
    pki.add_ca("root", subject=ROOT_DN)
    pki.add_ca("inter", subject=INTER_DN, issuer="root")
    pki.add_cert("fastmail", issuer="inter", subject=LEAF_DN, san=LEAF_SAN)
    pki.add_cert("expired", issuer="inter", san=["mx.example.com"], key="ec256", not_after="-1d")
    pki.add_cert("by-ip", issuer="inter", san=["127.0.0.1"], cn="mx.example.com", key="ec256")
    pki.add_ca("ec-root", subject="/O=EC Test/CN=EC Root", key="ec384")
    pki.add_cert("ec-leaf", issuer="ec-root", san=["mx.example.com"], key="ec256")
    # The fault catalogue's certificate kinds (scenarios/faults/certs-expiry.yaml, certs-names.yaml).
    pki.add_cert("not-yet", issuer="inter", san=["mx.example.com"], key="ec256", not_before="+1d")
    pki.add_cert("cn-only", issuer="inter", cn="mx.example.com", key="ec256")
    pki.add_cert("cn-only-other", issuer="inter", cn="other.example.net", key="ec256")
    pki.add_cert("san-and-cn", issuer="inter", cn="mx.example.com", san=["other.example.net"], key="ec256")
    pki.add_cert("upper", issuer="inter", san=["MX.Example.COM"], key="ec256")
    pki.add_cert("dotted", issuer="inter", san=["mx.example.com."], key="ec256")
    return pki


# --- loopback TLS ----------------------------------------------------------------------------------------


def _server_context(tmp_path: Path, chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    cert_file, key_file = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert_file.write_bytes(chain_pem)
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def _client_context(*cadata: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata="".join(pem.decode() for pem in cadata))
    # On by default since Python 3.13: a profile mistake (e.g. non-critical basicConstraints) fails here.
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> Mapping[str, object]:
    """Serve one TLS handshake on 127.0.0.1 and connect to it; returns the client's view of the peer cert."""
    return _handshake_chain(server, client, hostname)[0]


def _sent_chain(tls: ssl.SSLSocket) -> list[x509.Certificate]:
    """The certificates the server sent, in its order (OpenSSL's SSL_get_peer_cert_chain): public as
    ``SSLSocket.get_unverified_chain()`` since Python 3.13, on the private ``_sslobj`` before."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        ders = list(public())
    else:
        ders = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in tls._sslobj.get_unverified_chain()]  # type: ignore
    return [x509.load_der_x509_certificate(der) for der in ders]


def _handshake_chain(
    server: ssl.SSLContext, client: ssl.SSLContext, hostname: str
) -> tuple[Mapping[str, object], list[x509.Certificate]]:
    """As :func:`_handshake`, and what the server sent (:func:`_sent_chain`)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn, server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client closes
        except (OSError, ssl.SSLError):
            pass  # the client side reports what went wrong; a failing handshake ends here too
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()[:2], timeout=5) as raw,
            client.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            peer = tls.getpeercert()
            assert peer is not None
            return peer, _sent_chain(tls)
    finally:
        thread.join(5)


class Serve(Protocol):
    def __call__(
        self, cert: IssuedCert, client: ssl.SSLContext, hostname: str, *, leaf_only: bool = False
    ) -> Mapping[str, object]: ...


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """Serve ``cert`` (its chain, or the leaf alone) to one client handshake; returns the client's view."""

    def run(
        cert: IssuedCert, client: ssl.SSLContext, hostname: str, *, leaf_only: bool = False
    ) -> Mapping[str, object]:
        chain = cert.cert_pem if leaf_only else cert.chain_pem
        return _handshake(_server_context(tmp_path, chain, cert.key_pem), client, hostname)

    return run


def test_chain_verifies_against_root_for_a_san_name(pki: Pki, serve: Serve) -> None:
    peer = serve(pki.cert("fastmail"), _client_context(pki.ca("root").cert_pem), "mail.messagingengine.com")
    # The ssl module's own decoding of the subject, an independent view of the DN.
    assert peer["subject"] == (
        (("countryName", "AU"),),
        (("stateOrProvinceName", "Victoria"),),
        (("localityName", "Melbourne"),),
        (("organizationName", "FastMail Pty Ltd"),),
        (("commonName", "*.messagingengine.com"),),
    )


def test_client_trusting_an_unrelated_trustme_ca_fails(pki: Pki, serve: Serve) -> None:
    client = ssl.create_default_context(cadata=trustme.CA().cert_pem.bytes().decode())
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        serve(pki.cert("fastmail"), client, "mail.messagingengine.com")


def test_wrong_hostname_fails(pki: Pki, serve: Serve) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        serve(pki.cert("fastmail"), _client_context(pki.ca("root").cert_pem), "fastmail.fm")


def test_server_sending_only_the_leaf_fails(pki: Pki, serve: Serve) -> None:
    client = _client_context(pki.ca("root").cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        serve(pki.cert("fastmail"), client, "mail.messagingengine.com", leaf_only=True)


def test_expired_leaf_fails(pki: Pki, serve: Serve) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        serve(pki.cert("expired"), _client_context(pki.ca("root").cert_pem), "mx.example.com")


@pytest.mark.parametrize(
    ("hostname", "ok"),
    [
        ("in1-smtp.messagingengine.com", True),
        ("messagingengine.com", True),
        ("a.b.messagingengine.com", False),
    ],
)
def test_wildcard_san_covers_one_label(pki: Pki, serve: Serve, hostname: str, ok: bool) -> None:
    client = _client_context(pki.ca("root").cert_pem)
    if ok:
        serve(pki.cert("fastmail"), client, hostname)
    else:
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            serve(pki.cert("fastmail"), client, hostname)


def test_ip_san_verifies_an_ip_literal(pki: Pki, serve: Serve) -> None:
    peer = serve(pki.cert("by-ip"), _client_context(pki.ca("root").cert_pem), "127.0.0.1")
    assert peer["subjectAltName"] == (("IP Address", "127.0.0.1"),)


def test_dns_only_cert_fails_for_an_ip_literal(pki: Pki, serve: Serve) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        serve(pki.cert("fastmail"), _client_context(pki.ca("root").cert_pem), "127.0.0.1")


def test_ec_chain_verifies(pki: Pki, serve: Serve) -> None:
    leaf = pki.cert("ec-leaf")
    serve(leaf, _client_context(pki.ca("ec-root").cert_pem), "mx.example.com")
    assert isinstance(leaf.private_key, ec.EllipticCurvePrivateKey)
    assert leaf.private_key.curve.name == "secp256r1"
    root_key = pki.ca("ec-root").private_key
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    assert root_key.curve.name == "secp384r1"
    usage = leaf.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment  # RFC 5480 §3: no encipherment for EC
    assert (leaf.chain_pem, leaf.intermediates, leaf.root) == (leaf.cert_pem, (), pki.ca("ec-root"))


def test_ec_leaf_is_not_trusted_under_another_root(pki: Pki, serve: Serve) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        serve(pki.cert("ec-leaf"), _client_context(pki.ca("root").cert_pem), "mx.example.com")


# --- the fault catalogue's certificate kinds, as a verifying client sees them ------------------------------------


def _served_chain(tmp_path: Path, cert: IssuedCert, mode: str) -> ssl.SSLContext:
    """A server context presenting ``cert`` as a scenario server with ``chain: MODE`` does (the world's own
    :func:`harness.world_servers.presented_chain`)."""
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in presented_chain(cert, mode))
    return _server_context(tmp_path, chain, cert.key_pem)


def test_not_yet_valid_leaf_fails_and_its_twin_verifies(pki: Pki, serve: Serve) -> None:
    client = _client_context(pki.ca("root").cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate is not yet valid"):
        serve(pki.cert("not-yet"), client, "mx.example.com")
    unverifying = ssl.create_default_context()
    unverifying.check_hostname, unverifying.verify_mode = False, ssl.CERT_NONE
    serve(pki.cert("not-yet"), unverifying, "mx.example.com")  # only verification objects (Postfix's "encrypt")
    serve(pki.cert("ec-leaf"), _client_context(pki.ca("ec-root").cert_pem), "mx.example.com")  # control: valid now


def test_chain_with_root_sends_three_certificates_and_still_verifies(pki: Pki, tmp_path: Path) -> None:
    leaf, inter, root = pki.cert("fastmail"), pki.ca("inter"), pki.ca("root")
    client = _client_context(root.cert_pem)
    _, sent = _handshake_chain(_served_chain(tmp_path, leaf, "with-root"), client, "mail.messagingengine.com")
    assert sent == [leaf.certificate, inter.certificate, root.certificate]
    _, sent = _handshake_chain(_served_chain(tmp_path, leaf, "full"), client, "mail.messagingengine.com")
    assert sent == [leaf.certificate, inter.certificate]  # control: the default sends no root


def test_chain_with_root_does_not_make_an_untrusted_root_trusted(pki: Pki, tmp_path: Path) -> None:
    # As on Postfix (certs-chain.yaml): the root sent along is not a trust anchor; the client's CAs are.
    client = _client_context(pki.ca("ec-root").cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"):
        _handshake_chain(_served_chain(tmp_path, pki.cert("fastmail"), "with-root"), client, "mx.messagingengine.com")


def test_cn_only_certificate_matches_its_cn_unless_the_client_ignores_cns(pki: Pki, serve: Serve) -> None:
    # Without a subjectAltName, OpenSSL's X509_check_host falls back to the subject CN, and Python's ssl keeps
    # that default (SSLContext.hostname_checks_common_name is True), as Postfix does (certs-names.yaml). Modern
    # clients do not (RFC 6125 §6.4.4 deprecates it; browsers, Go since 1.15): with the fallback off the same
    # certificate fails its name check.
    client = _client_context(pki.ca("root").cert_pem)
    assert client.hostname_checks_common_name
    peer = serve(pki.cert("cn-only"), client, "mx.example.com")
    assert "subjectAltName" not in peer and peer["subject"] == ((("commonName", "mx.example.com"),),)
    modern = _client_context(pki.ca("root").cert_pem)
    modern.hostname_checks_common_name = False
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        serve(pki.cert("cn-only"), modern, "mx.example.com")


def test_cn_only_certificate_with_another_cn_fails_and_a_san_hides_the_cn(pki: Pki, serve: Serve) -> None:
    client = _client_context(pki.ca("root").cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        serve(pki.cert("cn-only-other"), client, "mx.example.com")  # the CN is matched, and it is another name
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        serve(pki.cert("san-and-cn"), client, "mx.example.com")  # any DNS subjectAltName: the CN is not looked at
    serve(pki.cert("cn-only-other"), client, "other.example.net")  # control: the chain itself verifies


@pytest.mark.parametrize("hostname", ["mx.example.com", "MX.EXAMPLE.COM", "Mx.Example.Com"])
def test_upper_case_san_is_presented_as_written_and_matches_any_case(pki: Pki, serve: Serve, hostname: str) -> None:
    peer = serve(pki.cert("upper"), _client_context(pki.ca("root").cert_pem), hostname)
    assert peer["subjectAltName"] == (("DNS", "MX.Example.COM"),)


def test_trailing_dot_san_is_presented_as_written_and_matches_only_a_dotted_name(pki: Pki, serve: Serve) -> None:
    # As on Postfix 3.7 (certs-names.yaml): mx.example.com. does not match mx.example.com, only the name with the dot.
    client = _client_context(pki.ca("root").cert_pem)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        serve(pki.cert("dotted"), client, "mx.example.com")
    peer = serve(pki.cert("dotted"), client, "mx.example.com.")
    assert peer["subjectAltName"] == (("DNS", "mx.example.com."),)


# --- certificate contents -------------------------------------------------------------------------------


def test_ca_profile(pki: Pki) -> None:
    root, inter = pki.ca("root"), pki.ca("inter")
    assert (root.is_root, root.issuer_name, inter.is_root, inter.issuer_name) == (True, None, False, "root")
    for ca in (root, inter):
        constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca
        usage = ca.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.key_cert_sign and usage.crl_sign
    assert inter.certificate.issuer == root.certificate.subject
    assert _aki(inter.certificate) == _ski(root.certificate)


def test_leaf_profile_and_chain(pki: Pki) -> None:
    leaf, inter, root = pki.cert("fastmail"), pki.ca("inter"), pki.ca("root")
    extensions = leaf.certificate.extensions
    assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment  # RSA
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert (
        extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        == LEAF_SAN
    )
    assert _aki(leaf.certificate) == _ski(inter.certificate)
    chain = x509.load_pem_x509_certificates(leaf.chain_pem)
    assert chain == [leaf.certificate, inter.certificate]  # root not sent
    assert leaf.root is root
    assert leaf.intermediates == (inter,)
    assert leaf.certificate.signature_hash_algorithm is not None
    assert leaf.certificate.signature_hash_algorithm.name == "sha256"
    assert isinstance(leaf.private_key, rsa.RSAPrivateKey) and leaf.private_key.key_size == 2048


def test_ip_san_entry_is_an_ip_address_san(pki: Pki) -> None:
    san = pki.cert("by-ip").certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == []
    assert format_dn(pki.cert("by-ip").certificate.subject) == "/CN=mx.example.com"


def test_leaf_subject_defaults_to_first_dns_san(pki: Pki) -> None:
    assert format_dn(pki.cert("expired").certificate.subject) == "/CN=mx.example.com"


def test_serial_numbers_are_random_and_positive(pki: Pki) -> None:
    serials = {pki.cert(n).certificate.serial_number for n in ("fastmail", "expired", "by-ip", "ec-leaf")}
    assert len(serials) == 4 and all(s > 0 for s in serials)


@pytest.mark.parametrize(
    ("dn", "rfc4514"),
    [
        (ROOT_DN, "CN=DigiCert High Assurance EV Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US"),
        (LEAF_DN, "CN=*.messagingengine.com,O=FastMail Pty Ltd,L=Melbourne,ST=Victoria,C=AU"),
        ("/DC=test/DC=example/CN=Example Issuing CA", "CN=Example Issuing CA,DC=example,DC=test"),
        ("mx.example.com", "CN=mx.example.com"),
    ],
)
def test_dn_round_trips_through_a_certificate(pki: Pki, dn: str, rfc4514: str) -> None:
    subject = pki.add_ca(f"rt-{dn}", subject=dn, issuer="ec-root", key="ec256").certificate.subject
    assert subject.rfc4514_string() == rfc4514
    assert format_dn(subject) == (dn if dn.startswith("/") else f"/CN={dn}")


def test_dn_with_every_known_attribute_keeps_order_and_names() -> None:
    dn = (
        "/C=DE/ST=Berlin/L=Berlin/street=Hauptstr. 1/postalCode=10115/O=Example GmbH/OU=IT"
        "/serialNumber=HRB 12345/emailAddress=postmaster@example.de/DC=de/CN=mx.example.de"
    )
    assert format_dn(parse_dn(dn)) == dn


def test_parse_dn_escaped_slash_and_case_insensitive_keys() -> None:
    name = parse_dn(r"/o=Example\/Sub/cn=x")
    assert format_dn(name) == "/O=Example/Sub/CN=x"  # OpenSSL's oneline form does not escape '/'
    assert name.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value == "Example/Sub"


def test_format_dn_escapes_non_ascii_like_openssl() -> None:
    assert format_dn(parse_dn("/O=Zürich/CN=x")) == "/O=Z\\xC3\\xBCrich/CN=x"


@pytest.mark.parametrize(
    ("dn", "message"),
    [
        ("/X=1/CN=a", "unknown attribute 'X'"),
        ("/commonName=a", "did you mean 'CN'"),
        ("/Email=a@b.c", "did you mean 'emailAddress'"),
        ("/O=/CN=a", "empty value for O"),
        ("/C=USA/CN=a", "C must be 2 letters"),
        ("/C=U1/CN=a", "C must be 2 letters"),
        ("CN=a,O=b", "does not start with '/'"),
        ("/O=a//CN=b", "empty component"),
        ("/CN=a\\", "lone backslash"),
        ("/CNa", "has no '='"),
        ("", "empty subject DN"),
        ("/CN=" + "x" * 65, "over the limit of 64"),
    ],
)
def test_parse_dn_rejects_with_a_hint(dn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_dn(dn)
    assert "Hint:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-30d", NOW - timedelta(days=30)),
        ("+90d", NOW + timedelta(days=90)),
        ("-2h", NOW - timedelta(hours=2)),
        ("+15m", NOW + timedelta(minutes=15)),
        ("-1w", NOW - timedelta(weeks=1)),
        ("+30s", NOW + timedelta(seconds=30)),
        ("2027-01-31", datetime(2027, 1, 31, tzinfo=UTC)),
        ("2027-01-31T12:00:00", datetime(2027, 1, 31, 12, tzinfo=UTC)),
        ("2027-01-31T12:00:00Z", datetime(2027, 1, 31, 12, tzinfo=UTC)),
        ("2027-01-31T14:00:00+02:00", datetime(2027, 1, 31, 12, tzinfo=UTC)),
        (date(2027, 1, 31), datetime(2027, 1, 31, tzinfo=UTC)),
        (datetime(2027, 1, 31, 12), datetime(2027, 1, 31, 12, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str | date, expected: datetime) -> None:
    result = parse_when(text, now=NOW)
    assert result == expected and result.tzinfo is UTC


@pytest.mark.parametrize("text", ["30d", "-30", "+1y", "yesterday", "", "2027-13-01", "- 1d", 30])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad date .*Hint:"):
        parse_when(text, now=NOW)


def test_validity_defaults() -> None:
    pki = Pki(now=NOW)
    ca = pki.add_ca("ca", subject="CA", key="ec256").certificate
    leaf = pki.add_cert("leaf", issuer="ca", san=["mx.example.com"], key="ec256").certificate
    assert ca.not_valid_before_utc == leaf.not_valid_before_utc == NOW - timedelta(days=1)
    assert ca.not_valid_after_utc == NOW + timedelta(days=3650)
    assert leaf.not_valid_after_utc == NOW + timedelta(days=365)
    expired = pki.add_cert("expired", issuer="ca", san=["x.test"], key="ec256", not_after="-1d").certificate
    assert expired.not_valid_after_utc == NOW - timedelta(days=1)
    assert expired.not_valid_before_utc == NOW - timedelta(days=366)
    future = pki.add_cert("future", issuer="ca", cn="x.test", key="ec256", not_before="+400d").certificate
    assert future.not_valid_after_utc == NOW + timedelta(days=765)


def test_empty_validity_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty validity"):
        Pki(now=NOW).add_ca("ca", subject="CA", key="ec256", not_before="+2d", not_after="+1d")


def test_names_and_inputs_are_checked() -> None:
    pki = Pki(now=NOW)
    pki.add_ca("inter-root", subject="Root", key="ec256")
    with pytest.raises(UnknownNameError, match=r"no CA named 'inter-rot' .*did you mean 'inter-root'"):
        pki.add_cert("leaf", issuer="inter-rot", san=["x.test"])
    with pytest.raises(KeyError):
        pki.cert("missing")
    with pytest.raises(ValueError, match="duplicate CA name"):
        pki.add_ca("inter-root", subject="Root 2", key="ec256")
    with pytest.raises(ValueError, match=r"unknown key type 'rsa2047'.*did you mean 'rsa2048'"):
        pki.add_cert("leaf", issuer="inter-root", san=["x.test"], key="rsa2047")
    with pytest.raises(ValueError, match="no subject"):
        pki.add_cert("leaf", issuer="inter-root", san=["192.0.2.1"], key="ec256")
    with pytest.raises(ValueError, match="both subject and cn"):
        pki.add_cert("leaf", issuer="inter-root", subject="/CN=a", cn="a", key="ec256")
    with pytest.raises(ValueError, match="ASCII"):
        pki.add_cert("leaf", issuer="inter-root", san=["mx.bücher.example"], key="ec256")


def test_unusual_dns_sans_are_kept_verbatim() -> None:
    pki = Pki(now=NOW)
    pki.add_ca("ca", subject="CA", key="ec256")
    names = ["m*.example.com", "mx.example.com.", "*.com"]
    cert = pki.add_cert("odd", issuer="ca", san=names, key="ec256").certificate
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names


# --- TLSA data and fingerprints -------------------------------------------------------------------------


def _der_elements(der: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, content start, element end) of the DER elements between start and end: a
    walker independent of the code under test."""
    out = []
    while start < end:
        tag, length, content = der[start], der[start + 1], start + 2
        if length & 0x80:
            n = length & 0x7F
            length, content = int.from_bytes(der[content : content + n], "big"), content + n
        out.append((tag, start, content, content + length))
        start = content + length
    return out


def _spki_der(cert_der: bytes) -> bytes:
    ((_, _, cert_content, cert_end),) = _der_elements(cert_der, 0, len(cert_der))
    _, _, tbs_content, tbs_end = _der_elements(cert_der, cert_content, cert_end)[0]
    fields = _der_elements(cert_der, tbs_content, tbs_end)
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    _, start, _, end = fields[5]  # serial, signature, issuer, validity, subject, subjectPublicKeyInfo
    return cert_der[start:end]


def _certificates_from_two_sources(pki: Pki) -> list[tuple[x509.Certificate, bytes]]:
    theirs = trustme.CA().issue_cert("mx.example.com").cert_chain_pems[0].bytes()
    ours = pki.cert("fastmail").cert_pem
    return [(x509.load_pem_x509_certificate(p), ssl.PEM_cert_to_DER_cert(p.decode())) for p in (ours, theirs)]


def test_tlsa_data_matches_an_independent_computation(pki: Pki) -> None:
    for cert, der in _certificates_from_two_sources(pki):
        spki = _spki_der(der)
        assert tlsa_data(cert, selector=0, matching_type=0) == der.hex()
        assert tlsa_data(cert, selector=0, matching_type=1) == hashlib.sha256(der).hexdigest()
        assert tlsa_data(cert, selector=0, matching_type=2) == hashlib.sha512(der).hexdigest()
        assert tlsa_data(cert, selector=1, matching_type=0) == spki.hex()
        assert tlsa_data(cert, selector=1, matching_type=1) == hashlib.sha256(spki).hexdigest()
        assert tlsa_data(cert, selector=1, matching_type=2) == hashlib.sha512(spki).hexdigest()


@pytest.mark.parametrize(("selector", "matching_type"), [(2, 1), (1, 3), (-1, 0)])
def test_tlsa_data_rejects_unknown_fields(pki: Pki, selector: int, matching_type: int) -> None:
    with pytest.raises(ValueError, match="Hint:"):
        tlsa_data(pki.cert("fastmail").certificate, selector=selector, matching_type=matching_type)


def test_fingerprint_in_postfix_form(pki: Pki) -> None:
    for cert, der in _certificates_from_two_sources(pki):
        expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        assert fingerprint(cert) == expected
        # The seed log's form: md5 (Postfix ≤ 3.5 default), 16 colon-separated upper-case bytes.
        md5 = fingerprint(cert, digest="MD5")
        assert len(md5.split(":")) == 16 and md5 == md5.upper()
        assert fingerprint(cert, public_key=True) == ":".join(
            f"{b:02X}" for b in hashlib.sha256(_spki_der(der)).digest()
        )


def test_fingerprint_rejects_unknown_digest(pki: Pki) -> None:
    with pytest.raises(ValueError, match="unknown fingerprint digest 'sha3000'"):
        fingerprint(pki.cert("fastmail").certificate, digest="sha3000")


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _aki(cert: x509.Certificate) -> bytes | None:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


# --- KeyPool: a run's keys, shared by position --------------------------------------------------------------


def _spki(pem: bytes) -> bytes:
    return (
        serialization.load_pem_private_key(pem, None)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _pool_pki(pool: KeyPool) -> Pki:
    pki = Pki(now=NOW, keys=pool)
    pki.add_ca("root", subject="/CN=Root", key="ec256")
    pki.add_cert("mx", issuer="root", san=["mx.example.test"], key="ec256")
    pki.add_cert("other", issuer="root", san=["other.example.test"], key="ec256")
    return pki


def test_every_key_of_one_set_is_its_own() -> None:
    pki = _pool_pki(KeyPool())
    keys = [_spki(pki.ca("root").key_pem), _spki(pki.cert("mx").key_pem), _spki(pki.cert("other").key_pem)]
    assert len(set(keys)) == 3


def test_two_sets_of_one_pool_hold_the_same_keys_by_position() -> None:
    pool = KeyPool()
    first, second = _pool_pki(pool), _pool_pki(pool)
    assert _spki(first.cert("mx").key_pem) == _spki(second.cert("mx").key_pem)
    assert first.cert("mx").cert_pem != second.cert("mx").cert_pem  # each certificate is issued anew
    assert _spki(_pool_pki(KeyPool()).cert("mx").key_pem) != _spki(first.cert("mx").key_pem)


def test_a_certificate_added_to_a_copy_has_a_key_no_one_in_the_original_has() -> None:
    # A case that re-issues a certificate (another SAN) while the rest is reused: a TLSA record or a pin for the
    # old key must not match the new certificate.
    original = _pool_pki(KeyPool())
    copy = original.copy(certs=["other"])
    copy.add_cert("mx", issuer="root", san=["mx2.example.test"], key="ec256")
    before = {_spki(original.ca("root").key_pem), _spki(original.cert("mx").key_pem)}
    before.add(_spki(original.cert("other").key_pem))
    assert _spki(copy.cert("mx").key_pem) not in before
