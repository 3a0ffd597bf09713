"""Cross-references between scenario sections (harness/references.py), and a property: whatever a user writes,
the loader raises nothing but ScenarioError."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from _mutate import mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from harness.errors import ScenarioError, ScenarioIssue
from harness.scenario import load_scenario, scenario_from_dict, warning_text

BASE = """\
name: base
pki:
  cas:
    root: {subject: /CN=Root, key: ec256}
  certs:
    mx1: {issuer: root, san: [mx1.example.com], key: ec256}
dns:
  example.com:
    MX: 10 mx1.example.com
  mx1.example.com:
    A: 192.0.2.5
servers:
  mx1.example.com: {cert: mx1}
postfix:
  main.cf:
    smtp_tls_policy_maps: hash:/etc/postfix/tls_policy
  maps:
    /etc/postfix/tls_policy: "example.com secure\\n"
cases:
  - name: one
    send:
      - to: user@example.com
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(issue).replace(f"{path}:", "s.yaml:") for issue in caught.value.issues]


def test_the_base_scenario_loads(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(BASE, encoding="utf-8")
    assert load_scenario(tmp_path / "s.yaml").name == "base"


def test_a_cname_whose_target_is_not_in_dns_is_an_error(tmp_path: Path) -> None:
    # The MX target mx1.example.com is listed (with a CNAME): only the CNAME's target is missing.
    text = BASE.replace("  mx1.example.com:\n    A: 192.0.2.5\n", "  mx1.example.com:\n    CNAME: mx9.example.com\n")
    assert problems(tmp_path, text) == [
        "s.yaml:11: dns[\"mx1.example.com\"].CNAME: CNAME target 'mx9.example.com' is not in dns. Hint: give it an "
        "address (`mx9.example.com: {A: auto}`); to test a target that does not resolve on purpose, list it without "
        "one (`mx9.example.com: {}`) or with a `fault:`",
        "s.yaml:13: servers[\"mx1.example.com\"]: server host 'mx1.example.com' has no address in dns "
        "(it has no A or AAAA record). Hint: add `A: auto`",
    ]


def test_an_mx_target_reached_through_a_cname_chain_is_fine(tmp_path: Path) -> None:
    text = BASE.replace("MX: 10 mx1.example.com", "MX: 10 alias.example.com").replace(
        "dns:\n",
        "dns:\n  alias.example.com: {CNAME: alias2.example.com}\n  alias2.example.com: {CNAME: mx1.example.com}\n",
    )
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    assert load_scenario(tmp_path / "s.yaml").dns["alias.example.com"].CNAME == ["alias2.example.com"]


def test_one_address_served_by_two_hosts_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace("    A: 192.0.2.5\n", "    A: 192.0.2.5\n  mx2.example.com:\n    A: 192.0.2.5\n").replace(
        "  mx1.example.com: {cert: mx1}\n", "  mx1.example.com: {cert: mx1}\n  mx2.example.com: {}\n"
    )
    assert problems(tmp_path, text) == [
        "s.yaml:16: servers[\"mx2.example.com\"]: address 192.0.2.5 port 25 is served by 'mx1.example.com' "
        "already. Hint: a server listens on every address of its host; give one server entry, under one of the names"
    ]


def test_two_names_on_one_address_with_one_server_are_fine(tmp_path: Path) -> None:
    text = BASE.replace("    A: 192.0.2.5\n", "    A: 192.0.2.5\n  mx2.example.com:\n    A: 192.0.2.5\n")
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    assert len(load_scenario(tmp_path / "s.yaml").dns) == 3


def test_a_map_that_main_cf_uses_but_nobody_defines_is_an_error(tmp_path: Path) -> None:
    text = BASE.replace("hash:/etc/postfix/tls_policy", "hash:/etc/postfix/tls_polcy")
    assert problems(tmp_path, text) == [
        's.yaml:16: postfix["main.cf"].smtp_tls_policy_maps: the map hash:/etc/postfix/tls_polcy is used but the '
        "scenario does not define it. Hint: add it under postfix.maps, e.g. `/etc/postfix/tls_polcy: |` followed "
        "by its lines"
    ]


def test_a_map_defined_by_every_case_instead_of_the_scenario_is_fine(tmp_path: Path) -> None:
    text = BASE.replace('  maps:\n    /etc/postfix/tls_policy: "example.com secure\\n"\n', "").replace(
        "  - name: one\n", '  - name: one\n    postfix:\n      maps: {/etc/postfix/tls_policy: "x secure"}\n'
    )
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    assert load_scenario(tmp_path / "s.yaml").cases[0].postfix.maps == {"/etc/postfix/tls_policy": "x secure"}


def test_a_map_named_in_a_master_cf_option_is_checked_too(tmp_path: Path) -> None:
    text = BASE.replace(
        "  maps:\n",
        "  master.cf: |\n    out unix - - n - - smtp\n      -o smtp_tls_policy_maps=cdb:/etc/postfix/x\n  maps:\n",
    )
    assert problems(tmp_path, text)[0].startswith(
        's.yaml:17: postfix["master.cf"]: the map cdb:/etc/postfix/x is used but the scenario does not define it.'
    )


def warned(tmp_path: Path, text: str) -> list[str]:
    """The loader's warnings about a scenario that loads, as the command line prints them."""
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    warnings: list[ScenarioIssue] = []
    load_scenario(path, warnings=warnings)
    return [warning_text(w).replace(f"{path}:", "s.yaml:") for w in warnings]


def test_a_policy_table_level_typo_is_a_warning_with_line_key_and_the_closest_level(tmp_path: Path) -> None:
    text = BASE.replace(
        '    /etc/postfix/tls_policy: "example.com secure\\n"\n',
        "    /etc/postfix/tls_policy: |\n      # partners\n      example.com secure\n      acme.example sekure\n",
    )
    [warning] = warned(tmp_path, text)
    assert warning.startswith(
        "s.yaml:21: WARNING: postfix.maps[\"/etc/postfix/tls_policy\"]: policy table entry 'acme.example': unknown "
        "security level 'sekure' (did you mean 'secure'?). Postfix logs 'invalid security level \"sekure\"'"
    )
    assert load_scenario(tmp_path / "s.yaml").name == "base"  # not an error: a scenario may mean it


def test_a_level_typo_in_a_case_s_own_table_named_by_a_master_cf_option_is_warned_at_the_case(tmp_path: Path) -> None:
    text = BASE.replace(
        "    smtp_tls_policy_maps: hash:/etc/postfix/tls_policy\n", "    smtp_tls_security_level: may\n"
    )
    text = text.replace(
        "  maps:\n",
        "  master.cf: |\n    out unix - - n - - smtp\n      -o smtp_tls_policy_maps=texthash:/etc/postfix/p\n  maps:\n",
    ).replace(
        "  - name: one\n", '  - name: one\n    postfix:\n      maps: {/etc/postfix/p: "example.com Verify\\n.com"}\n'
    )
    assert [w.split(". Postfix")[0] for w in warned(tmp_path, text)] == [
        "s.yaml:25: WARNING: cases[0].postfix.maps[\"/etc/postfix/p\"]: policy table entry '.com' has no security level"
    ]  # a level is case-insensitive to Postfix: Verify is fine


def test_a_table_no_case_uses_as_its_policy_table_is_not_read_for_levels(tmp_path: Path) -> None:
    text = BASE.replace("smtp_tls_policy_maps: hash:", "transport_maps: hash:")
    assert warned(tmp_path, text.replace("example.com secure", "example.com smtp:[relay]")) == []


# --- property: mutated scenarios never raise anything but ScenarioError -------------------------------------

BASE_DATA: dict[str, Any] = YAML(typ="safe").load(BASE)
KEYS = [
    "name",
    "pki",
    "cas",
    "certs",
    "issuer",
    "subject",
    "san",
    "dns",
    "MX",
    "A",
    "AAAA",
    "CNAME",
    "TLSA",
    "servers",
    "cert",
    "ports",
    "postfix",
    "main.cf",
    "maps",
    "trust",
    "cases",
    "send",
    "to",
    "expect",
    "status",
    "dsn",
    "tls",
    "relay",
    "reason",
    "received",
    "not_before",
    "not_after",
    "key",
    "release",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "auto",
            "10 mx1.example.com",
            "3 1 1 cert:mx1",
            "/CN=x",
            "-30d",
            "2024-13-40",
            "/(/",
            "4.7.5",
            "Verified",
            "::1",
            "999.1.1.1",
            "cert:nope",
            "[192.0.2.5]",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_raises_nothing_but_scenario_error(data: st.DataObject) -> None:
    scenario = mutate(data, BASE_DATA, values)
    try:
        scenario_from_dict(scenario, warnings=[])  # type: ignore[arg-type]  (the warnings' checks run too)
    except ScenarioError:
        pass
