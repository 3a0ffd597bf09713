"""The world spec the fault catalogue's keys become (docs/internal/world-spec.md): what the peer is told to serve.

Chains are read back with ``cryptography``, so a test checks certificates, not file names. Keys are ec256 where the
key type does not matter; one module-scoped world serves most tests.
"""

from __future__ import annotations

import itertools
import json
import socket
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.pki import Pki
from harness.scenario import scenario_from_dict
from harness.world import World, build_world

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SCENARIO: dict[str, Any] = {
    "name": "fault-world",
    "pki": {
        "cas": {
            "root": {"subject": "/O=Example/CN=Example Root", "key": "ec256"},
            "inter": {"issuer": "root", "subject": "/O=Example/CN=Example Intermediate", "key": "ec256"},
        },
        "certs": {
            "mx": {"issuer": "inter", "san": ["mx.example.com"], "key": "ec256"},
            "alt": {"issuer": "root", "san": ["alt.example.com"], "key": "ec256"},
            "self": {"self_signed": True, "san": ["self.example.com"], "key": "ec256"},
        },
    },
    "dns": {
        "example.com": {"MX": ["10 mx.example.com", "20 192.0.2.10", "30 gone.example.com"], "dnssec": True},
        "mx.example.com": {"A": "auto", "AAAA": "auto", "dnssec": True, "fault": {"AAAA": "timeout"}},
        "leaf.example.com": {"A": "auto"},
        "root.example.com": {"A": "auto"},
        "self.example.com": {"A": "auto"},
        "plain.example.com": {"A": "auto"},
        "Gone.Example.com.": {"fault": "servfail"},
    },
    "servers": {
        "mx.example.com": {
            "cert": "mx",
            "ports": [25, 465],
            "implicit_tls": [465],
            "sni": {"alt.example.com": "alt", "self.example.com": "self"},
            "tls": {"max_version": "TLSv1.2", "ciphers": "ECDHE+AESGCM", "request_client_cert": True},
        },
        "leaf.example.com": {"cert": "mx", "chain": "leaf"},
        "root.example.com": {"cert": "mx", "chain": "with-root", "starttls": False},
        "self.example.com": {"cert": "self", "chain": "with-root"},
        "plain.example.com": {
            "replies": {
                "greeting": ["220-plain.example.com", "220 ESMTP"],
                "rcpt": {"gone@example.com": "550 5.1.1 no such user"},
                "eom": "drop",
            },
            "delays": {"rcpt": 2, "eom": 0.5},
            "require_starttls": True,
            "auth": True,
        },
    },
    "cases": [{"name": "sends", "send": [{"to": "user@example.com"}]}],
}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(scenario_from_dict(SCENARIO), now=NOW)


@pytest.fixture(scope="module")
def spec(world: World) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(world.peer_files()["/world/world.json"])
    return parsed


def entries(spec: dict[str, Any], host: str) -> list[dict[str, Any]]:
    return [s for s in spec["servers"] if s["host"] == host]


def chain_of(world: World, path: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(world.peer_files()[f"/world/{path}"])


def subjects(chain: list[x509.Certificate]) -> list[str]:
    return [c.subject.rfc4514_string() for c in chain]


# --- chains -------------------------------------------------------------------------------------------------


def test_full_chain_is_the_leaf_then_the_intermediates(world: World, spec: dict[str, Any]) -> None:
    [entry] = [e for e in entries(spec, "mx.example.com") if e["port"] == 25 and ":" not in e["address"]]
    chain = chain_of(world, entry["cert_chain"])
    assert subjects(chain) == ["CN=mx.example.com", "CN=Example Intermediate,O=Example"]
    assert chain[0] == world.pki.cert("mx").certificate


def test_leaf_chain_is_the_leaf_alone(world: World, spec: dict[str, Any]) -> None:
    [entry] = entries(spec, "leaf.example.com")
    assert subjects(chain_of(world, entry["cert_chain"])) == ["CN=mx.example.com"]


def test_with_root_chain_ends_with_the_root(world: World, spec: dict[str, Any]) -> None:
    [entry] = entries(spec, "root.example.com")
    chain = chain_of(world, entry["cert_chain"])
    assert subjects(chain) == [
        "CN=mx.example.com",
        "CN=Example Intermediate,O=Example",
        "CN=Example Root,O=Example",
    ]
    # each certificate is signed by the next one: the order is a real chain
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)


def test_one_certificate_in_two_chain_modes_gets_two_files_and_one_key(spec: dict[str, Any]) -> None:
    paths = {(e["host"], e["cert_chain"], e["key"]) for e in spec["servers"] if e["host"] != "plain.example.com"}
    by_host = {host: (chain, key) for host, chain, key in paths}
    assert by_host["mx.example.com"] == ("tls/mx.pem", "tls/mx.key")
    assert by_host["leaf.example.com"] == ("tls/mx.leaf.pem", "tls/mx.key")
    assert by_host["root.example.com"] == ("tls/mx.with-root.pem", "tls/mx.key")


def test_a_self_signed_certificate_is_sent_alone_in_every_mode(world: World, spec: dict[str, Any]) -> None:
    [entry] = entries(spec, "self.example.com")
    [cert] = chain_of(world, entry["cert_chain"])
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


def test_server_chains_report_what_each_server_sends(world: World) -> None:
    chains = world.server_chains()
    assert chains["leaf.example.com"] == ("/CN=mx.example.com",)
    assert chains["root.example.com"][-1] == "/O=Example/CN=Example Root"
    assert len(chains["mx.example.com"]) == 2


# --- SNI, STARTTLS, implicit TLS, tls --------------------------------------------------------------------------


def test_sni_entries_name_their_certificate_files(world: World, spec: dict[str, Any]) -> None:
    entry = entries(spec, "mx.example.com")[0]
    assert [s["name"] for s in entry["sni"]] == ["alt.example.com", "self.example.com"]
    for sni, name in zip(entry["sni"], ["alt", "self"], strict=True):
        assert chain_of(world, sni["cert_chain"])[0] == world.pki.cert(name).certificate
        assert world.peer_files()[f"/world/{sni['key']}"] == world.pki.cert(name).key_pem


def test_implicit_tls_is_set_on_its_ports_only(spec: dict[str, Any]) -> None:
    by_port = {(e["address"], e["port"]): e for e in entries(spec, "mx.example.com")}
    assert len(by_port) == 4  # two addresses, two ports
    for (_, port), entry in by_port.items():
        assert entry["implicit_tls"] is (port == 465)
        assert entry["starttls"] is (port == 25)  # nothing to upgrade on an implicit-TLS port


def test_starttls_false_and_no_certificate_offer_no_starttls(spec: dict[str, Any]) -> None:
    assert [e["starttls"] for e in entries(spec, "root.example.com")] == [False]
    assert [(e["starttls"], e["cert_chain"], e["sni"]) for e in entries(spec, "plain.example.com")] == [
        (False, None, [])
    ]
    assert [e["starttls"] for e in entries(spec, "leaf.example.com")] == [True]


def test_tls_settings_are_passed_with_defaults_for_the_rest(spec: dict[str, Any]) -> None:
    assert entries(spec, "mx.example.com")[0]["tls"] == {
        "min_version": None,
        "max_version": "TLSv1.2",
        "ciphers": "ECDHE+AESGCM",
        "seclevel": None,
        "request_client_cert": True,
        "handshake": "ok",
    }
    assert entries(spec, "plain.example.com")[0]["tls"]["handshake"] == "ok"


def test_replies_are_normalised(spec: dict[str, Any]) -> None:
    [entry] = entries(spec, "plain.example.com")
    assert entry["replies"] == {
        "greeting": "220-plain.example.com\n220 ESMTP",
        "ehlo": None,
        "starttls": None,
        "mail": None,
        "rcpt": {"default": None, "gone@example.com": "550 5.1.1 no such user"},
        "data": None,
        "eom": "drop",
    }
    assert entries(spec, "leaf.example.com")[0]["replies"]["rcpt"] == {"default": None}


def test_delays_name_every_stage(spec: dict[str, Any]) -> None:
    [entry] = entries(spec, "plain.example.com")
    assert entry["delays"] == {"greeting": 0, "ehlo": 0, "starttls": 0, "mail": 0, "rcpt": 2, "data": 0, "eom": 0.5}
    assert (entry["require_starttls"], entry["auth"]) == (True, True)
    assert (entries(spec, "leaf.example.com")[0]["require_starttls"], entries(spec, "leaf.example.com")[0]["auth"]) == (
        False,
        False,
    )


# --- DNS ----------------------------------------------------------------------------------------------------


def test_faults_are_listed_per_owner_and_type(spec: dict[str, Any]) -> None:
    assert spec["dns"]["faults"] == [
        {"name": "mx.example.com", "type": "AAAA", "fault": "timeout"},
        {"name": "gone.example.com", "type": "*", "fault": "servfail"},
    ]


def test_dnssec_flags_the_records_of_that_owner_only(spec: dict[str, Any]) -> None:
    flags = {(r["name"], r["type"]): r["dnssec"] for r in spec["dns"]["records"]}
    assert flags[("example.com", "MX")] is True
    assert flags[("mx.example.com", "A")] is True and flags[("mx.example.com", "AAAA")] is True
    assert flags[("leaf.example.com", "A")] is False
    assert spec["dns"]["dnssec_probe"] is True


def test_without_dnssec_owners_there_is_no_probe() -> None:
    data = {**SCENARIO, "pki": {}, "servers": {}, "dns": {"mx.example.com": {"A": "auto"}}}
    spec = json.loads(build_world(scenario_from_dict(data)).peer_files()["/world/world.json"])
    assert spec["dns"]["dnssec_probe"] is False
    assert spec["dns"]["faults"] == []


def test_an_mx_ip_literal_is_bound_and_never_picked_for_auto(world: World, spec: dict[str, Any]) -> None:
    assert "192.0.2.10" in spec["addresses"]
    every_auto = [a for addresses in world.addresses.values() for a in addresses]
    assert "192.0.2.10" not in every_auto
    # the MX record itself is served as written
    assert {r["value"] for r in spec["dns"]["records"] if r["type"] == "MX"} >= {"20 192.0.2.10"}


# --- seclevel for weak keys and old protocols ---------------------------------------------------------------


def _seclevel(servers: dict[str, Any], certs: dict[str, Any]) -> list[object]:
    data = {
        "name": "seclevel",
        "pki": {"cas": {"root": {"subject": "Root", "key": "ec256"}}, "certs": certs},
        "dns": {"mx.example.com": {"A": "auto"}},
        "servers": {"mx.example.com": servers},
        "cases": [{"name": "c", "send": [{"to": "a@example.com"}]}],
    }
    spec = json.loads(build_world(scenario_from_dict(data)).peer_files()["/world/world.json"])
    return [s["tls"]["seclevel"] for s in spec["servers"]]


@pytest.fixture(scope="module")
def weak_certs() -> dict[str, Any]:
    return {
        "weak": {"issuer": "root", "san": ["mx.example.com"], "key": "rsa1024"},
        "strong": {"issuer": "root", "san": ["mx.example.com"], "key": "ec256"},
    }


def test_a_server_presenting_an_rsa1024_key_runs_at_seclevel_0(weak_certs: dict[str, Any]) -> None:
    assert _seclevel({"cert": "weak"}, weak_certs) == [0]


def test_an_rsa1024_key_behind_sni_also_needs_seclevel_0(weak_certs: dict[str, Any]) -> None:
    assert _seclevel({"cert": "strong", "sni": {"old.example.com": "weak"}}, weak_certs) == [0]


def test_tlsv1_needs_seclevel_0_and_a_strong_key_alone_does_not(weak_certs: dict[str, Any]) -> None:
    assert _seclevel({"cert": "strong", "tls": {"min_version": "TLSv1"}}, weak_certs) == [0]
    assert _seclevel({"cert": "strong"}, weak_certs) == [None]  # negative control


# --- the certificates themselves ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> Pki:
    pki = Pki()
    pki.add_ca("root", subject="Root", key="ec256")
    pki.add_cert("cn-only", issuer="root", cn="mx.example.com", key="ec256")
    pki.add_cert("exact", issuer="root", san=["MX.Example.COM.", "mx*.example.com", "*.sub.example.com"], key="ec256")
    pki.add_cert("ip", issuer="root", san=["192.0.2.25", "2001:db8::25"], cn="mx.example.com", key="ec256")
    pki.add_cert("self", issuer=None, san=["localhost"], key="ec256")
    return pki


def test_a_certificate_with_cn_and_no_san_has_no_subject_alt_name(pki: Pki) -> None:
    cert = pki.cert("cn-only").certificate
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.subject.rfc4514_string() == "CN=mx.example.com"


def test_san_entries_keep_case_trailing_dot_and_wildcards_as_written(pki: Pki) -> None:
    san = pki.cert("exact").certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["MX.Example.COM.", "mx*.example.com", "*.sub.example.com"]


def test_ip_sans_are_ip_addresses(pki: Pki) -> None:
    san = pki.cert("ip").certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.25", "2001:db8::25"]
    assert san.get_values_for_type(x509.DNSName) == []


@pytest.mark.parametrize(("key", "bits"), [("rsa1024", 1024), ("rsa3072", 3072)])
def test_rsa_key_sizes(key: str, bits: int) -> None:
    pki = Pki()
    pki.add_ca("root", subject="Root", key="ec256")
    public = pki.add_cert("leaf", issuer="root", cn="mx.example.com", key=key).certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == bits


def test_ec521_is_p521() -> None:
    pki = Pki()
    ca = pki.add_ca("root", subject="Root", key="ec521")
    assert ca.certificate.public_key().curve.name == "secp521r1"  # type: ignore[union-attr]


def test_a_self_signed_certificate_issues_itself(pki: Pki) -> None:
    issued = pki.cert("self")
    assert issued.self_signed and issued.root is None and issued.intermediates == ()
    assert issued.chain_pem == issued.cert_pem
    issued.certificate.verify_directly_issued_by(issued.certificate)


def _handshake(tmp_path: Path, pki: Pki, name: str, client: ssl.SSLContext) -> None:
    (tmp_path / "c.pem").write_bytes(pki.cert(name).chain_pem)
    (tmp_path / "k.pem").write_bytes(pki.cert(name).key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn, server.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass
        finally:
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()[:2], timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="localhost"),
        ):
            pass
    finally:
        thread.join(5)


def test_an_untrusted_self_signed_certificate_fails_as_self_signed(tmp_path: Path, pki: Pki) -> None:
    client = ssl.create_default_context(cadata=pki.ca("root").cert_pem.decode())
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
        _handshake(tmp_path, pki, "self", client)


def test_a_trusted_self_signed_certificate_verifies(tmp_path: Path, pki: Pki) -> None:
    client = ssl.create_default_context(cadata=pki.cert("self").cert_pem.decode())
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    _handshake(tmp_path, pki, "self", client)  # no exception: the profile is one OpenSSL accepts


def test_pki_copy_shares_cas_and_the_named_certificates(pki: Pki) -> None:
    copy = pki.copy(certs=["exact"])
    assert copy.ca("root") is pki.ca("root")
    assert copy.cert("exact") is pki.cert("exact")
    assert copy.cert_names == ("exact",)
    copy.add_cert("new", issuer="root", cn="new.example.com", key="ec256")
    assert "new" not in pki.cert_names
