"""The concrete world of a scenario: auto addresses, DNS records, TLSA data, the peer's servers and files.

Keys are the cost here, so the scenarios use ec256 and one module-scoped world serves most tests.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from harness.pki import tlsa_data
from harness.scenario import scenario_from_dict
from harness.world import AUTO_V4, AUTO_V6, World, build_world

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TLSA_HEX = "ab" * 32

SCENARIO: dict[str, Any] = {
    "name": "world",
    "pki": {
        "cas": {
            # the intermediate first: issuing must still go parents before children
            "inter": {"issuer": "root", "subject": "/O=Example/CN=Example Intermediate", "key": "ec256"},
            "root": {"subject": "/O=Example/CN=Example Root", "key": "ec256"},
            "other-root": {"subject": "Other Root", "key": "ec256"},
        },
        "certs": {
            "mx1": {"issuer": "inter", "san": ["mx1.example.com"], "key": "ec256"},
            "mx2": {"issuer": "root", "san": ["mx2.example.com", "192.0.2.11"], "key": "ec256"},
        },
    },
    "dns": {
        "Example.COM.": {"MX": ["10 mx1.example.com", "20 mx2.example.com"], "TXT": "v=spf1 -all"},
        # 192.0.2.10 and 2001:db8::1 are the first addresses `auto` would pick: they are taken here.
        "mx1.example.com": {"A": ["auto", "192.0.2.10"], "AAAA": ["auto", "2001:DB8:0::1"]},
        "mx2.example.com": {"A": "auto", "AAAA": "auto"},
        "alias.example.com": {"CNAME": "mx1.example.com"},
        "_25._tcp.mx1.example.com": {"TLSA": ["3 1 1 cert:mx1", "2 0 1 ca:inter", f"3 1 1 {TLSA_HEX}"]},
    },
    "servers": {
        "mx1.example.com": {"cert": "mx1", "ports": [25, 587]},
        "mx2.example.com": {},
        "192.0.2.11": {"cert": "mx2"},  # an IP literal: auto must not pick it either
        "[2001:db8::99]": {},
    },
    "cases": [{"name": "sends", "send": [{"to": "user@example.com"}]}],
}


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(scenario_from_dict(SCENARIO), now=NOW)


def records(world: World, name: str, rtype: str) -> list[object]:
    return [r["value"] for r in world.records if r["name"] == name and r["type"] == rtype]


def servers(world: World, host: str) -> list[dict[str, object]]:
    return [s for s in world.servers if s["host"] == host]


# --- addresses ----------------------------------------------------------------------------------------------


def test_auto_addresses_come_from_the_documentation_ranges(world: World) -> None:
    assert world.addresses["mx2.example.com"] == ["192.0.2.13", "2001:db8::3"]
    v4, v6 = (ipaddress.ip_address(a) for a in world.addresses["mx2.example.com"])
    assert v4 in AUTO_V4 and int(v4) & 0xFF >= 10
    assert v6 in AUTO_V6


def test_auto_addresses_skip_the_addresses_the_scenario_uses(world: World) -> None:
    # .10 is written in dns, .11 is a server's IP literal, ::1 is written (in a non-canonical form)
    assert world.addresses["mx1.example.com"] == ["192.0.2.12", "192.0.2.10", "2001:db8::2", "2001:db8::1"]


def test_every_address_is_unique(world: World) -> None:
    every = [a for addrs in world.addresses.values() for a in addrs]
    assert len(every) == len(set(every))
    literals = {"192.0.2.11", "2001:db8::99"}
    assert not literals & set(every)


def test_addresses_are_keyed_by_lower_case_names_without_the_trailing_dot(world: World) -> None:
    assert set(world.addresses) == {"mx1.example.com", "mx2.example.com"}


def test_auto_addresses_are_the_same_at_every_build() -> None:
    data = {**SCENARIO, "pki": {}, "servers": {"mx2.example.com": {}}}
    data["dns"] = {k: v for k, v in SCENARIO["dns"].items() if not k.startswith("_25")}
    scenario = scenario_from_dict(data)
    assert build_world(scenario).addresses == build_world(scenario).addresses


def test_many_auto_hosts_get_distinct_addresses() -> None:
    dns = {f"mx{i}.example.com": {"A": "auto", "AAAA": "auto"} for i in range(30)}
    world = build_world(scenario_from_dict({**SCENARIO, "pki": {}, "dns": dns, "servers": {}}))
    every = [a for addrs in world.addresses.values() for a in addrs]
    assert len(set(every)) == 60


# --- records ------------------------------------------------------------------------------------------------


def test_a_and_aaaa_records_carry_the_resolved_addresses(world: World) -> None:
    assert records(world, "mx1.example.com", "A") == ["192.0.2.12", "192.0.2.10"]
    assert records(world, "mx1.example.com", "AAAA") == ["2001:db8::2", "2001:db8::1"]
    assert "auto" not in [r["value"] for r in world.records]


def test_mx_cname_and_txt_records_are_kept_verbatim(world: World) -> None:
    assert records(world, "example.com", "MX") == ["10 mx1.example.com", "20 mx2.example.com"]
    assert records(world, "example.com", "TXT") == ["v=spf1 -all"]
    assert records(world, "alias.example.com", "CNAME") == ["mx1.example.com"]


def test_every_record_has_name_type_value_ttl_and_dnssec(world: World) -> None:
    for record in world.records:
        assert set(record) == {"name", "type", "value", "ttl", "dnssec"}
        assert record["ttl"] == 300
        assert record["dnssec"] is False  # no owner of this scenario has `dnssec: true`
        assert record["name"] == str(record["name"]).lower().rstrip(".")


def test_tlsa_cert_data_is_computed_from_that_certificate(world: World) -> None:
    leaf = world.pki.cert("mx1").certificate
    expected = tlsa_data(leaf, selector=1, matching_type=1)
    assert records(world, "_25._tcp.mx1.example.com", "TLSA")[0] == f"3 1 1 {expected}"


def test_tlsa_ca_data_is_computed_from_that_ca(world: World) -> None:
    ca = world.pki.ca("inter").certificate
    expected = tlsa_data(ca, selector=0, matching_type=1)
    assert records(world, "_25._tcp.mx1.example.com", "TLSA")[1] == f"2 0 1 {expected}"
    # negative control: another certificate gives other data
    assert tlsa_data(world.pki.ca("root").certificate, selector=0, matching_type=1) != expected


def test_tlsa_hex_data_is_kept(world: World) -> None:
    assert records(world, "_25._tcp.mx1.example.com", "TLSA")[2] == f"3 1 1 {TLSA_HEX}"


# --- servers and their files --------------------------------------------------------------------------------


def test_a_server_listens_on_every_address_and_port_of_its_host(world: World) -> None:
    entries = servers(world, "mx1.example.com")
    assert {(s["address"], s["port"]) for s in entries} == {
        (a, p) for a in world.addresses["mx1.example.com"] for p in (25, 587)
    }
    assert len(entries) == 8
    assert {(s["cert_chain"], s["key"]) for s in entries} == {("tls/mx1.pem", "tls/mx1.key")}


def test_a_server_without_cert_offers_no_tls(world: World) -> None:
    entries = servers(world, "mx2.example.com")
    assert [(s["address"], s["port"], s["cert_chain"], s["key"]) for s in entries] == [
        ("192.0.2.13", 25, None, None),
        ("2001:db8::3", 25, None, None),
    ]


def test_servers_keyed_by_ip_literals_listen_on_that_address(world: World) -> None:
    assert [(s["address"], s["port"], s["cert_chain"]) for s in servers(world, "192.0.2.11")] == [
        ("192.0.2.11", 25, "tls/mx2.pem")
    ]
    assert [(s["address"], s["port"]) for s in servers(world, "[2001:db8::99]")] == [("2001:db8::99", 25)]


def test_the_certificate_files_hold_the_chain_and_the_key(world: World) -> None:
    issued = world.pki.cert("mx1")
    assert world.files["/world/tls/mx1.pem"] == issued.chain_pem
    assert world.files["/world/tls/mx1.key"] == issued.key_pem
    chain = x509.load_pem_x509_certificates(world.files["/world/tls/mx1.pem"])
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=mx1.example.com",
        "CN=Example Intermediate,O=Example",
    ]


def test_a_leaf_of_a_root_is_sent_alone(world: World) -> None:
    assert len(x509.load_pem_x509_certificates(world.files["/world/tls/mx2.pem"])) == 1


def test_certificates_count_validity_from_now(world: World) -> None:
    leaf = world.pki.cert("mx1").certificate
    assert leaf.not_valid_before_utc == NOW - timedelta(days=1)


def test_peer_files_hold_a_world_json_that_names_every_address(world: World) -> None:
    files = world.peer_files()
    spec = json.loads(files["/world/world.json"])
    every = {a for addrs in world.addresses.values() for a in addrs} | {"192.0.2.11", "2001:db8::99"}
    assert spec["version"] == 1
    assert spec["dns"] == {
        "listen": "127.0.0.53",
        "port": 53,
        "records": world.records,
        "faults": [],
        "dnssec_probe": False,
        "names": sorted(world.names),
    }
    assert set(spec["addresses"]) == every
    assert len(spec["addresses"]) == len(every)
    assert spec["servers"] == world.servers


def test_peer_files_hold_the_certificate_files_the_spec_names(world: World) -> None:
    files = world.peer_files()
    spec = json.loads(files["/world/world.json"])
    named = {f"/world/{s[k]}" for s in spec["servers"] for k in ("cert_chain", "key") if s[k] is not None}
    assert named == {"/world/tls/mx1.pem", "/world/tls/mx1.key", "/world/tls/mx2.pem", "/world/tls/mx2.key"}
    assert named <= set(files)


# --- trust --------------------------------------------------------------------------------------------------


def test_trust_defaults_to_every_root_ca(world: World) -> None:
    assert world.root_cas == ("root", "other-root")
    pems = world.trust_pems(None)
    assert pems == {"root": world.pki.ca("root").cert_pem, "other-root": world.pki.ca("other-root").cert_pem}


def test_trust_names_select_those_cas(world: World) -> None:
    assert world.trust_pems(("inter",)) == {"inter": world.pki.ca("inter").cert_pem}
    assert world.trust_pems(()) == {}
