"""Worlds that change between cases: a case's servers, dns and pki.certs merged over the scenario's, checked on each
case's merged world, and built per case with the unchanged certificates reused."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from harness.errors import ScenarioError
from harness.model import Scenario
from harness.overrides import merge_entries, merged_world, owner_key
from harness.scenario import load_scenario, scenario_from_dict
from harness.world import build_case_world, build_world

# Line numbers matter: the tests below name them.
BASE = """\
name: case-worlds
pki:
  cas:
    root: {subject: /O=Example/CN=Example Root, key: ec256}
  certs:
    mx: {issuer: root, san: [mx.example.com], key: ec256}
    spare: {issuer: root, san: [spare.example.com], key: ec256}
dns:
  example.com: {MX: 10 mx.example.com}
  mx.example.com: {A: auto}
servers:
  mx.example.com: {cert: mx}
cases:
  - name: plain
    send: [{to: a@example.com}]
  - name: changed
    pki:
      certs:
        mx: {issuer: root, san: [mx.example.com, other.example.com], key: ec256}
    dns:
      Example.COM.: {MX: [10 mx.example.com, 20 mx2.example.com]}
      mx2.example.com: {A: auto}
    servers:
      mx.example.com: {cert: mx, chain: leaf}
      mx2.example.com: {}
    send: [{to: a@example.com}]
"""


def load(tmp_path: Path, text: str = BASE) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_scenario(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(issue).replace(f"{path}:", "s.yaml:") for issue in caught.value.issues]


def changed(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


# --- merging ------------------------------------------------------------------------------------------------


def test_merge_replaces_entries_in_place_and_appends_new_ones() -> None:
    base = {"a.example": 1, "B.example.": 2, "c.example": 3}
    assert merge_entries(base, {"b.example": 20, "d.example": 4}, owner_key) == {
        "a.example": 1,
        "b.example": 20,
        "c.example": 3,
        "d.example": 4,
    }
    assert merge_entries(base, None) == base
    assert merge_entries(base, {"b.example": 5}) == {**base, "b.example": 5}  # exact names: no match, added


def test_a_case_without_world_keys_sees_the_scenario_itself(tmp_path: Path) -> None:
    scenario = load(tmp_path)
    assert not scenario.cases[0].changes_world
    assert merged_world(scenario, scenario.cases[0]) is scenario


def test_a_case_entry_replaces_the_scenario_entry_as_a_whole(tmp_path: Path) -> None:
    scenario = load(tmp_path)
    case = scenario.cases[1]
    assert case.changes_world
    merged = merged_world(scenario, case)
    assert merged.pki.certs["mx"].san == ["mx.example.com", "other.example.com"]
    assert merged.pki.certs["spare"] == scenario.pki.certs["spare"]
    assert list(merged.dns) == ["Example.COM.", "mx.example.com", "mx2.example.com"]  # in place, under the case's name
    assert merged.dns["Example.COM."].MX == ["10 mx.example.com", "20 mx2.example.com"]
    assert merged.servers["mx.example.com"].chain == "leaf"
    assert set(merged.servers) == {"mx.example.com", "mx2.example.com"}
    assert merged.pki.cas == scenario.pki.cas
    # the scenario itself is unchanged
    assert scenario.servers["mx.example.com"].chain == "full" and "mx2.example.com" not in scenario.dns


def test_server_hosts_merge_by_address_too() -> None:
    data: dict[str, Any] = {
        "name": "literal",
        "servers": {"192.0.2.25": {}},
        "cases": [{"name": "c", "servers": {"[192.0.2.25]": {"ports": [587]}}, "send": [{"to": "a@example.com"}]}],
    }
    scenario = scenario_from_dict(data)
    servers = merged_world(scenario, scenario.cases[0]).servers
    assert list(servers) == ["[192.0.2.25]"] and servers["[192.0.2.25]"].ports == [587]


# --- checks on each case's merged world ----------------------------------------------------------------------


def test_the_base_scenario_loads(tmp_path: Path) -> None:
    assert [c.name for c in load(tmp_path).cases] == ["plain", "changed"]


def test_a_case_may_use_its_own_dns_and_servers(tmp_path: Path) -> None:
    # mx2.example.com exists only in the case: its MX target and server are checked against the merged world.
    servers = load(tmp_path).cases[1].servers
    assert servers is not None and servers["mx2.example.com"].cert is None


def test_a_case_certificate_with_an_unknown_issuer_is_reported_at_the_case(tmp_path: Path) -> None:
    text = changed("mx: {issuer: root, san: [mx.example.com, other", "mx: {issuer: rot, san: [mx.example.com, other")
    assert problems(tmp_path, text) == [
        "s.yaml:19: cases[1].pki.certs.mx.issuer: no CA named 'rot' in pki.cas (did you mean 'root'?)"
    ]


def test_a_case_server_with_an_unknown_certificate_is_reported_at_the_case(tmp_path: Path) -> None:
    assert problems(tmp_path, changed("mx.example.com: {cert: mx, chain: leaf}", "mx.example.com: {cert: mxx}")) == [
        "s.yaml:24: cases[1].servers[\"mx.example.com\"].cert: no certificate named 'mxx' in pki.certs "
        "(did you mean 'mx'?)"
    ]


def test_a_case_mx_target_not_in_the_merged_dns_is_reported_at_the_case(tmp_path: Path) -> None:
    text = changed("      mx2.example.com: {A: auto}\n", "").replace("      mx2.example.com: {}\n", "")
    [problem] = problems(tmp_path, text)
    assert problem.startswith(
        "s.yaml:21: cases[1].dns[\"Example.COM.\"].MX: MX target 'mx2.example.com' is not in dns. Hint:"
    )


def test_a_case_that_breaks_a_scenario_entry_is_named(tmp_path: Path) -> None:
    # The case takes mx.example.com's address away: the scenario's server entry is the one left without one.
    text = changed(
        "      mx2.example.com: {A: auto}\n",
        "      mx.example.com: {fault: servfail}\n      mx2.example.com: {A: auto}\n",
    )
    text = text.replace("      mx.example.com: {cert: mx, chain: leaf}\n", "")
    assert problems(tmp_path, text) == [
        "s.yaml:12: servers[\"mx.example.com\"]: server host 'mx.example.com' has no address in dns (it has no A or "
        "AAAA record) (in case 'changed', whose world entries replace the scenario's). Hint: add `A: auto`"
    ]


def test_a_problem_of_the_scenario_is_reported_once(tmp_path: Path) -> None:
    text = changed("    spare: {issuer: root,", "    spare: {issuer: rot,")
    assert problems(tmp_path, text) == [
        "s.yaml:7: pki.certs.spare.issuer: no CA named 'rot' in pki.cas (did you mean 'root'?)"
    ]


def test_a_case_may_not_define_cas(tmp_path: Path) -> None:
    text = changed("    pki:\n      certs:\n", "    pki:\n      cas: {x: {subject: X}}\n      certs:\n")
    assert problems(tmp_path, text) == [
        "s.yaml:18: cases[1].pki.cas: unknown key 'cas'. Allowed here: certs. Hint: CAs are shared by every case; "
        "define them in the scenario's pki.cas"
    ]


def test_a_case_entry_that_fails_the_schema_causes_no_second_error(tmp_path: Path) -> None:
    # the case's mx fails the schema; the case's server that presents it must not also say "no certificate named"
    text = changed("san: [mx.example.com, other.example.com], key: ec256}", "san: [mx.example.com], kye: ec256}")
    text = text.replace("mx2.example.com: {}", "mx2.example.com: {cert: mx}")
    assert [p.split(": ")[1] for p in problems(tmp_path, text)] == ["cases[1].pki.certs.mx.kye"]


# --- the world of each case ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return load(tmp_path_factory.mktemp("cw"))


def test_a_case_without_world_keys_runs_in_the_shared_world(scenario: Scenario) -> None:
    shared = build_world(scenario)
    assert build_case_world(scenario, scenario.cases[0], shared=shared) is shared


def test_a_case_with_world_keys_gets_its_own_world(scenario: Scenario) -> None:
    shared = build_world(scenario)
    world = build_case_world(scenario, scenario.cases[1], shared=shared)
    assert world is not shared
    spec = json.loads(world.peer_files()["/world/world.json"])
    assert {s["host"] for s in spec["servers"]} == {"mx.example.com", "mx2.example.com"}
    [mx] = [s for s in spec["servers"] if s["host"] == "mx.example.com"]
    [leaf] = x509.load_pem_x509_certificates(world.peer_files()[f"/world/{mx['cert_chain']}"])
    assert leaf == world.pki.cert("mx").certificate
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mx.example.com", "other.example.com"]
    # the shared world is untouched
    assert json.loads(shared.peer_files()["/world/world.json"])["servers"][0]["cert_chain"] == "tls/mx.pem"


def test_unchanged_certificates_and_every_ca_are_reused(scenario: Scenario) -> None:
    shared = build_world(scenario)
    world = build_case_world(scenario, scenario.cases[1], shared=shared)
    assert world.pki.ca("root") is shared.pki.ca("root")
    assert world.pki.cert("spare") is shared.pki.cert("spare")
    assert world.pki.cert("mx") is not shared.pki.cert("mx")  # the case changed it


def test_a_case_world_without_a_shared_world_is_built_whole(scenario: Scenario) -> None:
    world = build_case_world(scenario, scenario.cases[1])
    assert set(world.pki.cert_names) == {"mx", "spare"}
    assert build_case_world(scenario, scenario.cases[0]).pki.cert_names == ("mx", "spare")


def test_a_case_world_keeps_the_auto_addresses_of_unchanged_hosts(scenario: Scenario) -> None:
    shared = build_world(scenario)
    world = build_case_world(scenario, scenario.cases[1], shared=shared)
    assert world.addresses["mx.example.com"] == shared.addresses["mx.example.com"]
    assert world.addresses["mx2.example.com"] != shared.addresses["mx.example.com"]
