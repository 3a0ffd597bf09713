"""The scenario loader and schema: every documented example loads, each mistake is reported as file:line: key.

No Docker and no certificates: the loader only reads YAML and checks it. Scenario files are written to a
temporary folder that is the working directory, so the file in a message is exactly the name given.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ScenarioError
from harness.model import DnsNode, Expect, PostfixSpec
from harness.scenario import load_scenario, load_scenarios, scenario_files, scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]
FORMAT_DOC = ROOT / "docs" / "scenario-format.md"
YAML_BLOCKS = re.findall(r"^```yaml\n(.*?)^```", FORMAT_DOC.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
SCENARIO_FILES = sorted((ROOT / "scenarios").rglob("*.yaml"))

# A valid scenario that the error tests change one place of. Line numbers matter: keep it in sync with them.
VALID = """\
name: base
pki:
  cas:
    root: {subject: /O=Example/CN=Example Root, key: ec256}
    inter: {issuer: root, subject: /O=Example/CN=Example Intermediate, key: ec256}
  certs:
    mx1: {issuer: inter, san: [mx1.example.com], key: ec256}
dns:
  example.com:
    MX: 10 mx1.example.com
  mx1.example.com:
    A: auto
servers:
  mx1.example.com: {cert: mx1}
postfix:
  trust: [root]
cases:
  - name: sends
    send:
      - to: user@example.com
        expect: {status: sent, tls: Verified}
"""

Load = Callable[[str], Any]
Problems = Callable[[str], list[str]]


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Load:
    """Write ``text`` to s.yaml in a fresh working directory and load it."""
    monkeypatch.chdir(tmp_path)

    def _load(text: str) -> Any:
        Path("s.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
        return load_scenario("s.yaml")

    return _load


@pytest.fixture
def problems(load: Load) -> Problems:
    """The issues of an invalid file, each as the user sees it: ``s.yaml:LINE: KEY: MESSAGE``."""

    def _problems(text: str) -> list[str]:
        with pytest.raises(ScenarioError) as caught:
            load(text)
        assert str(caught.value) == "\n".join(str(i) for i in caught.value.issues)
        return [str(issue) for issue in caught.value.issues]

    return _problems


def changed(old: str, new: str) -> str:
    """VALID with one text replaced (exactly once, so a test cannot silently change nothing)."""
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def minimal(**sections: Any) -> dict[str, Any]:
    """The smallest valid scenario as plain data, with ``sections`` set over it."""
    data: dict[str, Any] = {
        "name": "base",
        "cases": [{"name": "sends", "send": [{"to": "user@example.com"}]}],
    }
    data.update(sections)
    return data


# --- what must load -----------------------------------------------------------------------------------------


def test_the_format_document_has_yaml_examples() -> None:
    assert YAML_BLOCKS, f"no ```yaml blocks found in {FORMAT_DOC}"


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"block{i}" for i in range(len(YAML_BLOCKS))])
def test_every_yaml_example_of_the_format_document_loads(block: str, load: Load) -> None:
    scenario = load(block)
    assert scenario.cases


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[str(p.relative_to(ROOT)) for p in SCENARIO_FILES])
def test_every_scenario_file_of_the_project_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.source_file == str(path)


def test_the_seed_scenarios_load_together_with_unique_names() -> None:
    scenarios = load_scenarios([ROOT / "scenarios"])
    assert len({s.name for s in scenarios}) == len(scenarios) == len(SCENARIO_FILES)


def test_the_base_scenario_of_these_tests_is_valid(load: Load) -> None:
    scenario = load(VALID)
    assert scenario.name == "base"
    assert scenario.source_file == "s.yaml"


def test_a_file_named_twice_is_loaded_once(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(VALID)
    scenarios = load_scenarios([tmp_path, tmp_path / "s.yaml"])
    assert [s.name for s in scenarios] == ["base"]


def test_scenario_files_finds_yaml_and_yml_recursively_sorted(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/z.yml", "a.yaml", "notes.txt"):
        (tmp_path / name).write_text(VALID)
    assert scenario_files([tmp_path]) == [tmp_path / "a.yaml", tmp_path / "b" / "z.yml"]


def test_a_missing_path_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file or folder\. Hint: give a scenario file"):
        scenario_files([tmp_path / "nope.yaml"])


def test_a_folder_without_scenarios_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"no \*\.yaml scenario files in this folder"):
        scenario_files([tmp_path])


# --- model: how values are read -----------------------------------------------------------------------------


def test_status_delivered_is_an_alias_of_sent() -> None:
    assert Expect.model_validate({"status": "delivered"}).status == "sent"


def test_a_dsn_written_as_a_yaml_float_is_the_dsn_text(load: Load) -> None:
    scenario = load(changed("{status: sent, tls: Verified}", "{status: deferred, dsn: 4.7}"))
    assert scenario.cases[0].send[0].expect.dsn == "4.7"


def test_a_dsn_given_as_a_python_float_is_the_dsn_text() -> None:
    assert Expect.model_validate({"dsn": 4.7}).dsn == "4.7"
    assert Expect.model_validate({"dsn": 5}).dsn == "5"


def test_a_yaml_float_keeps_the_text_written(load: Load) -> None:
    # compatibility_level 3.10 is not 3.1 (nor is a release 3.10).
    scenario = load(changed("  trust: [root]\n", "  release: 3.7\n  main.cf: {compatibility_level: 3.10}\n"))
    assert scenario.postfix.release == "3.7"
    assert scenario.postfix.main_cf == {"compatibility_level": "3.10"}


def test_an_unknown_release_is_an_input_error(problems: Problems) -> None:
    assert problems(changed("  trust: [root]\n", "  release: 3.99\n")) == [
        "s.yaml:16: postfix.release: no Postfix image for release '3.99'. "
        "Hint: known releases are 3.5 (Debian bullseye), 3.7 (Debian bookworm), 3.10 (Debian trixie)"
    ]


def test_a_master_cf_entry_with_too_few_fields_is_an_error(problems: Problems) -> None:
    assert problems(changed("  trust: [root]\n", "  master.cf: |\n    strict unix - - n smtp\n")) == [
        "s.yaml:16: postfix[\"master.cf\"]: line 1 of master.cf has 6 fields: 'strict unix - - n smtp'. Hint: an "
        "entry is `service type private unpriv chroot wakeup maxproc command [args]`, e.g. `out unix - - n - - "
        "smtp`; arguments go on lines that start with white space"
    ]


def test_a_message_id_header_is_refused(problems: Problems) -> None:
    text = changed(
        "      - to: user@example.com\n", "      - to: user@example.com\n        headers: {Message-ID: <x@y>}\n"
    )
    assert problems(text) == [
        "s.yaml:21: cases[0].send[0].headers: the harness sets Message-ID itself: it finds the message in Postfix's "
        "log by it. Hint: remove this header"
    ]


def test_a_quoted_local_part_is_a_mail_address(load: Load) -> None:
    scenario = load(changed("      - to: user@example.com\n", "      - to: '\"john doe\"@example.com'\n"))
    assert scenario.cases[0].send[0].to == '"john doe"@example.com'


def test_a_name_longer_than_a_dns_label_is_refused(problems: Problems) -> None:
    found = problems(changed("  - name: sends\n", f"  - name: {'x' * 64}\n"))
    assert found == [
        f"s.yaml:18: cases[0].name: '{'x' * 40}'… is longer than 63 characters (it becomes part of a DNS label in "
        "the Message-ID). Hint: a short slug such as `secure-defers`"
    ]


def test_main_cf_booleans_become_yes_and_no_and_numbers_become_text(load: Load) -> None:
    scenario = load(
        changed(
            "  trust: [root]\n",
            "  main.cf:\n    smtp_enforce_tls: true\n    smtp_tls_note_starttls_offer: false\n"
            "    smtp_tls_loglevel: 2\n    smtp_tls_security_level: may\n",
        )
    )
    assert scenario.postfix.main_cf == {
        "smtp_enforce_tls": "yes",
        "smtp_tls_note_starttls_offer": "no",
        "smtp_tls_loglevel": "2",
        "smtp_tls_security_level": "may",
    }


def test_main_cf_values_from_python_are_converted_the_same_way() -> None:
    spec = PostfixSpec.model_validate({"main.cf": {"a": True, "b": False, "c": 3, "d": 0.5}})
    assert spec.main_cf == {"a": "yes", "b": "no", "c": "3", "d": "0.5"}


def test_a_record_value_is_one_string_or_a_list() -> None:
    one = DnsNode.model_validate({"MX": "10 mx.example.com", "A": "192.0.2.1"})
    many = DnsNode.model_validate({"MX": ["10 mx.example.com", "20 mx2.example.com"], "A": ["192.0.2.1"]})
    assert one.MX == ["10 mx.example.com"]
    assert many.MX == ["10 mx.example.com", "20 mx2.example.com"]
    assert one.A == many.A == ["192.0.2.1"]
    assert one.records() == [("MX", "10 mx.example.com"), ("A", "192.0.2.1")]


def test_a_txt_record_given_as_a_number_is_text() -> None:
    assert DnsNode.model_validate({"TXT": 42}).TXT == ["42"]


def test_unquoted_iso_dates_are_validity_bounds(load: Load) -> None:
    scenario = load(
        changed(
            "mx1: {issuer: inter, san: [mx1.example.com], key: ec256}",
            "mx1: {issuer: inter, san: [mx1.example.com], key: ec256, not_before: 2024-01-31,"
            " not_after: 2030-01-01T12:00:00Z}",
        )
    )
    cert = scenario.pki.certs["mx1"]
    assert cert.not_before == "2024-01-31"
    assert cert.not_after == "2030-01-01T12:00:00+00:00"


def test_from_defaults_to_the_documented_sender(load: Load) -> None:
    assert load(VALID).cases[0].send[0].from_ == "sender@example.test"


def test_server_ports_default_to_25(load: Load) -> None:
    assert load(VALID).servers["mx1.example.com"].ports == [25]


def test_a_loaded_scenario_is_frozen(load: Load) -> None:
    scenario = load(VALID)
    with pytest.raises(ValueError, match="frozen"):
        scenario.name = "other"


# --- loader errors: YAML and the shape of the file ----------------------------------------------------------


def test_malformed_yaml_names_the_line(problems: Problems) -> None:
    [problem] = problems("name: s\ncases:\n  - name: a\n   send: []\n")
    assert problem.startswith("s.yaml:4: malformed YAML: expected <block end>")
    assert problem.endswith(". Hint: check indentation and quoting")


def test_a_duplicate_yaml_key_is_malformed_yaml(problems: Problems) -> None:
    [problem] = problems("name: s\nname: t\ncases: []\n")
    assert problem.startswith("s.yaml:2: malformed YAML: ")
    assert "duplicate key" in problem


def test_an_empty_file_is_an_error(problems: Problems) -> None:
    assert problems("") == ["s.yaml:1: a scenario is a mapping of keys, found an empty file"]


def test_a_list_at_the_top_level_is_an_error(problems: Problems) -> None:
    assert problems("- name: s\n- name: t\n") == ["s.yaml:1: a scenario is a mapping of keys, found a list"]


def test_text_at_the_top_level_is_an_error(problems: Problems) -> None:
    assert problems("just some words\n") == [
        "s.yaml:1: a scenario is a mapping of keys, found the text 'just some words'"
    ]


def test_an_unknown_top_level_key_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("name: base\n", "name: base\ndescriptoin: typo\n")) == [
        "s.yaml:2: descriptoin: unknown key 'descriptoin' (did you mean 'description'?). "
        "Allowed here: cases, description, destinations, dns, include, name, pki, postfix, servers, source"
    ]


def test_an_unknown_key_in_a_certificate_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("san: [mx1.example.com], key: ec256}", "san: [mx1.example.com], kye: ec256}")) == [
        "s.yaml:7: pki.certs.mx1.kye: unknown key 'kye' (did you mean 'key'?). "
        "Allowed here: cn, issuer, key, not_after, not_before, san, self_signed, subject"
    ]


def test_an_unknown_key_in_a_server_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx1, port: 587}")) == [
        "s.yaml:14: servers[\"mx1.example.com\"].port: unknown key 'port' (did you mean 'ports'?). "
        "Allowed here: auth, cert, chain, delays, implicit_tls, ports, replies, require_starttls, sni, starttls, tls"
    ]


def test_an_unknown_key_in_expect_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("{status: sent, tls: Verified}", "{status: sent, dns: 4.7.5}")) == [
        "s.yaml:21: cases[0].send[0].expect.dns: unknown key 'dns' (did you mean 'dsn'?). "
        "Allowed here: cipher, client_cert, dsn, protocol, reason, received, relay, sni, starttls, status, tls"
    ]


def test_an_unknown_key_without_a_close_one_lists_the_allowed_keys(problems: Problems) -> None:
    [problem] = problems(changed("key: ec256}\n    inter", "key: ec256, colour: red}\n    inter"))
    assert problem == (
        "s.yaml:4: pki.cas.root.colour: unknown key 'colour'. Allowed here: issuer, key, not_after, not_before, subject"
    )


def test_a_wrong_type_names_what_was_found(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx1, ports: 25}")) == [
        's.yaml:14: servers["mx1.example.com"].ports: expected a list (`- item` lines or `[a, b]`), found 25'
    ]


def test_a_port_out_of_range_is_an_error(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx1, ports: [25, 0]}")) == [
        's.yaml:14: servers["mx1.example.com"].ports[1]: Input should be greater than or equal to 1, found 0'
    ]


def test_a_missing_required_key_is_an_error(problems: Problems) -> None:
    assert problems(changed("name: base\n", "")) == ["s.yaml:1: name: this key is required"]


def test_a_bad_scenario_slug_has_a_hint(problems: Problems) -> None:
    assert problems(changed("name: base", "name: Base_Scenario")) == [
        "s.yaml:1: name: 'Base_Scenario' does not have the required form '^[a-z0-9][a-z0-9-]*$'. "
        "Hint: lower-case letters, digits and '-', e.g. `secure-defers`"
    ]


def test_a_bad_case_slug_has_a_hint(problems: Problems) -> None:
    [problem] = problems(changed("- name: sends", "- name: Sends OK"))
    assert problem.startswith("s.yaml:18: cases[0].name: 'Sends OK' does not have the required form")
    assert problem.endswith("Hint: lower-case letters, digits and '-', e.g. `secure-defers`")


def test_a_recipient_that_is_not_an_address_is_an_error(problems: Problems) -> None:
    assert problems(changed("- to: user@example.com", "- to: user")) == [
        "s.yaml:20: cases[0].send[0].to: 'user' is not a mail address. Hint: write `user@example.com`"
    ]


def test_a_key_type_outside_the_list_is_an_error(problems: Problems) -> None:
    assert problems(changed("san: [mx1.example.com], key: ec256}", "san: [mx1.example.com], key: ec512}")) == [
        "s.yaml:7: pki.certs.mx1.key: expected 'rsa2048', 'rsa4096', 'ec256', 'ec384', 'rsa1024', 'rsa3072' or "
        "'ec521', found 'ec512' (did you mean 'ec521'?)"
    ]


def test_a_certificate_without_any_name_is_an_error(problems: Problems) -> None:
    assert problems(changed("san: [mx1.example.com], key: ec256}", "key: ec256}")) == [
        "s.yaml:7: pki.certs.mx1: a certificate needs `san`, `subject` or `cn`. Hint: add `san: [mx.example.com]`"
    ]


def test_duplicate_case_names_are_an_error(problems: Problems) -> None:
    text = VALID + "  - name: sends\n    send: [{to: other@example.com}]\n"
    assert problems(text) == ["s.yaml:22: cases[1].name: case name 'sends' is used twice in this scenario"]


def test_empty_cases_are_an_error(problems: Problems) -> None:
    assert problems("name: s\ncases: []\n") == [
        "s.yaml:2: cases: expected at least 1 entry, found none. Hint: add a case, e.g. `- name: secure-delivers` "
        "with `send: [{to: …, expect: {status: sent}}]`"
    ]


def test_a_case_without_messages_is_an_error(problems: Problems) -> None:
    assert problems("name: s\ncases:\n  - name: c\n    send: []\n") == [
        "s.yaml:4: cases[0].send: expected at least 1 entry, found none"
    ]


# --- loader errors: values ----------------------------------------------------------------------------------


def test_a_bad_subject_dn_is_an_error(problems: Problems) -> None:
    assert problems(changed("subject: /O=Example/CN=Example Root", "subject: /O=Example/XX=Root")) == [
        "s.yaml:4: pki.cas.root.subject: subject DN '/O=Example/XX=Root': unknown attribute 'XX'. "
        "Hint: known attributes are C, ST, L, O, OU, CN, emailAddress, serialNumber, DC, street, postalCode."
    ]


def test_an_rfc4514_dn_is_an_error_with_a_hint(problems: Problems) -> None:
    [problem] = problems(changed("subject: /O=Example/CN=Example Root", "subject: 'CN=Root,O=Example'"))
    assert problem.startswith("s.yaml:4: pki.cas.root.subject: subject DN 'CN=Root,O=Example' has '='")
    assert "Hint: use the OpenSSL form" in problem


def test_a_bad_date_is_an_error(problems: Problems) -> None:
    [problem] = problems(changed("key: ec256}\n    inter", "key: ec256, not_before: yesterday}\n    inter"))
    assert problem.startswith(
        "s.yaml:4: pki.cas.root.not_before: bad date 'yesterday': not an ISO date/date-time nor an offset. Hint:"
    )


def test_a_bad_offset_is_an_error(problems: Problems) -> None:
    [problem] = problems(changed("san: [mx1.example.com], key: ec256}", "san: [mx1.example.com], not_after: +3y}"))
    assert problem.startswith("s.yaml:7: pki.certs.mx1.not_after: bad date '+3y'")


def test_not_after_before_not_before_is_an_error(problems: Problems) -> None:
    text = changed("san: [mx1.example.com], key: ec256}", "san: [mx1.example.com], not_before: +1d, not_after: -1d}")
    assert problems(text) == ["s.yaml:7: pki.certs.mx1.not_after: not_after (-1d) is not later than not_before (+1d)"]


def test_an_invalid_ipv4_address_is_an_error(problems: Problems) -> None:
    assert problems(changed("A: auto", "A: 192.0.2.300")) == [
        "s.yaml:12: dns[\"mx1.example.com\"].A: '192.0.2.300' is not an IPv4 address. "
        "Hint: write `192.0.2.10` or `auto`"
    ]


def test_an_ipv6_address_in_an_a_record_is_an_error(problems: Problems) -> None:
    [problem] = problems(changed("A: auto", "A: [auto, '2001:db8::1']"))
    assert problem.startswith("s.yaml:12: dns[\"mx1.example.com\"].A: '2001:db8::1' is not an IPv4 address.")


def test_an_invalid_ipv6_address_is_an_error(problems: Problems) -> None:
    assert problems(changed("A: auto", "AAAA: 2001:db8::zz")) == [
        "s.yaml:12: dns[\"mx1.example.com\"].AAAA: '2001:db8::zz' is not an IPv6 address. "
        "Hint: write `2001:db8::10` or `auto`"
    ]


def test_an_mx_value_without_preference_is_an_error(problems: Problems) -> None:
    assert problems(changed("MX: 10 mx1.example.com", "MX: mx1.example.com")) == [
        "s.yaml:10: dns[\"example.com\"].MX: MX value 'mx1.example.com' is not 'PREFERENCE HOST'. "
        "Hint: write `10 mx1.example.com`"
    ]


@pytest.mark.parametrize("value", ["3 1 1", "3 1 1 zz", "3 1 1 abc", "300 1 1 ab", "3 x 1 ab", "3 1 1 cert:"])
def test_a_tlsa_value_with_bad_fields_is_an_error(value: str, problems: Problems) -> None:
    text = VALID.replace("servers:", f"  _25._tcp.mx1.example.com:\n    TLSA: '{value}'\nservers:")
    assert problems(text) == [
        f's.yaml:14: dns["_25._tcp.mx1.example.com"].TLSA: TLSA value {value!r} is not '
        "'USAGE SELECTOR MTYPE DATA'. Hint: write `3 1 1 cert:mx1` or `3 1 1 <hex digest>`"
    ]


def test_tlsa_data_from_a_certificate_needs_a_known_selector_and_matching_type(problems: Problems) -> None:
    text = VALID.replace("servers:", "  _25._tcp.mx1.example.com:\n    TLSA: 3 1 3 cert:mx1\nservers:")
    [problem] = problems(text)
    assert problem.startswith(
        "s.yaml:14: dns[\"_25._tcp.mx1.example.com\"].TLSA: TLSA value '3 1 3 cert:mx1': "
        "data computed from a certificate needs selector 0 or 1 and matching type 0, 1 or 2"
    )


def test_tlsa_hex_data_may_use_any_selector_and_matching_type(load: Load) -> None:
    # A deliberately odd record is a valid scenario: only data computed from a certificate must be computable.
    load(VALID.replace("servers:", "  _25._tcp.mx1.example.com:\n    TLSA: 3 7 9 abcd\nservers:"))


def test_a_relative_map_path_is_an_error_with_a_hint(problems: Problems) -> None:
    assert problems(changed("  trust: [root]\n", "  maps:\n    tls_policy: 'example.com secure'\n")) == [
        "s.yaml:16: postfix.maps: map path 'tls_policy' is not absolute. Hint: write `/etc/postfix/tls_policy`"
    ]


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("etc/postfix/tls_policy", "/etc/postfix/tls_policy"),
        ("./etc/postfix/tls_policy", "/etc/postfix/tls_policy"),
        ("postfix/tls_policy", "/etc/postfix/tls_policy"),
        ("var/lib/postfix/tls_policy", "/var/lib/postfix/tls_policy"),
        ("maps/tls_policy", "/etc/postfix/maps/tls_policy"),
    ],
)
def test_a_relative_map_path_hint_does_not_double_a_top_level_folder(path: str, hint: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(minimal(postfix={"maps": {path: "example.com secure\n"}}))
    assert [str(i) for i in caught.value.issues] == [
        f"<dict>: postfix.maps: map path {path!r} is not absolute. Hint: write `{hint}`"
    ]


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("192.0.2.999", "IPv4 address (Octet 999 (> 255) not permitted in '192.0.2.999')"),
        ("[192.0.2.999]", "IPv4 address (Octet 999 (> 255) not permitted in '192.0.2.999')"),
        ("192.0.2", "IPv4 address (Expected 4 octets in '192.0.2')"),
        ("2001:db8::zz", "IPv6 address (Only hex digits permitted in 'zz' in '2001:db8::zz')"),
    ],
)
def test_a_server_keyed_by_an_invalid_ip_address_is_reported_as_one(host: str, why: str, problems: Problems) -> None:
    found = problems(
        changed("  mx1.example.com: {cert: mx1}\n", f"  mx1.example.com: {{cert: mx1}}\n  '{host}': {{}}\n")
    )
    assert (
        f"s.yaml:13: servers: server {host!r} is not a valid {why}. Hint: write a valid address, e.g. "
        f"`{'2001:db8::10' if ':' in host else '192.0.2.10'}`, or a host name with an address in dns"
    ) in found


def test_a_server_keyed_by_an_invalid_ip_address_gets_no_host_name_hint(problems: Problems) -> None:
    found = problems(changed("  mx1.example.com: {cert: mx1}\n", "  mx1.example.com: {cert: mx1}\n  192.0.2.999: {}\n"))
    assert not [p for p in found if "add `A: auto`" in p], found


def test_a_server_key_that_only_resembles_an_address_is_a_host_name(load: Load) -> None:
    # Valid addresses, and names with letters, are not taken for broken addresses.
    text = changed(
        "  mx1.example.com: {cert: mx1}\n", "  mx1.example.com: {cert: mx1}\n  192.0.2.10: {}\n  '[2001:db8::1]': {}\n"
    )
    assert set(load(text).servers) == {"mx1.example.com", "192.0.2.10", "[2001:db8::1]"}


def test_an_unknown_expect_status_is_an_error(problems: Problems) -> None:
    assert problems(changed("{status: sent, tls: Verified}", "{status: delivred}")) == [
        "s.yaml:21: cases[0].send[0].expect.status: "
        "expected 'sent', 'delivered', 'deferred' or 'bounced', found 'delivred' (did you mean 'delivered'?)"
    ]


@pytest.mark.parametrize("dsn", ["4.7.5.1", "6.0.0", "4.x", "'4.'"])
def test_an_invalid_expect_dsn_is_an_error(dsn: str, problems: Problems) -> None:
    shown = dsn.strip("'")
    assert problems(changed("{status: sent, tls: Verified}", f"{{dsn: {dsn}}}")) == [
        f"s.yaml:21: cases[0].send[0].expect.dsn: {shown!r} is not a DSN or DSN prefix (RFC 3463). "
        "Hint: write `4.7.5`, `4.7` or `4`"
    ]


def test_an_unknown_expect_tls_level_is_an_error(problems: Problems) -> None:
    assert problems(changed("{status: sent, tls: Verified}", "{tls: verified}")) == [
        "s.yaml:21: cases[0].send[0].expect.tls: "
        "expected 'none', 'Anonymous', 'Untrusted', 'Trusted' or 'Verified', found 'verified' "
        "(did you mean 'Verified'?)"
    ]


def test_an_expect_reason_regex_that_does_not_compile_is_an_error(problems: Problems) -> None:
    assert problems(changed("{status: sent, tls: Verified}", "{reason: '/not (verified/'}")) == [
        "s.yaml:21: cases[0].send[0].expect.reason: the regular expression /not (verified/ does not compile: "
        "missing ), unterminated subpattern at position 4"
    ]


def test_an_expect_received_that_is_not_a_boolean_is_an_error(problems: Problems) -> None:
    [problem] = problems(changed("{status: sent, tls: Verified}", "{received: maybe}"))
    assert problem == "s.yaml:21: cases[0].send[0].expect.received: expected true or false, found 'maybe'"


# --- loader errors: cross-references ------------------------------------------------------------------------


def test_an_unknown_ca_issuer_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("{issuer: root,", "{issuer: rot,")) == [
        "s.yaml:5: pki.cas.inter.issuer: no CA named 'rot' in pki.cas (did you mean 'root'?)"
    ]


def test_an_unknown_certificate_issuer_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("mx1: {issuer: inter,", "mx1: {issuer: intre,")) == [
        "s.yaml:7: pki.certs.mx1.issuer: no CA named 'intre' in pki.cas (did you mean 'inter'?)"
    ]


def test_an_unknown_server_certificate_suggests_the_closest(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx}")) == [
        "s.yaml:14: servers[\"mx1.example.com\"].cert: no certificate named 'mx' in pki.certs (did you mean 'mx1'?)"
    ]


def test_a_ca_issuer_cycle_is_an_error(problems: Problems) -> None:
    text = changed("root: {subject:", "root: {issuer: inter, subject:")
    assert problems(text) == [
        "s.yaml:4: pki.cas.root.issuer: CA 'root' is its own issuer through a cycle of issuers",
        "s.yaml:5: pki.cas.inter.issuer: CA 'inter' is its own issuer through a cycle of issuers",
    ]


def test_a_ca_that_issues_itself_is_a_cycle(problems: Problems) -> None:
    # inter is issued by root, which is on the cycle; inter itself is not its own issuer.
    assert problems(changed("root: {subject:", "root: {issuer: root, subject:")) == [
        "s.yaml:4: pki.cas.root.issuer: CA 'root' is its own issuer through a cycle of issuers"
    ]


def test_an_mx_target_not_listed_in_dns_is_an_error(problems: Problems) -> None:
    assert problems(changed("MX: 10 mx1.example.com", "MX: [10 mx1.example.com, 20 mx2.example.com]")) == [
        "s.yaml:10: dns[\"example.com\"].MX: MX target 'mx2.example.com' is not in dns. Hint: give it an address "
        "(`mx2.example.com: {A: auto}`); to test a target that does not resolve on purpose, list it without one "
        "(`mx2.example.com: {}`) or with a `fault:`"
    ]


def test_mx_targets_match_owners_case_insensitively_and_without_the_trailing_dot(load: Load) -> None:
    load(changed("MX: 10 mx1.example.com", "MX: 10 MX1.Example.COM."))


def test_a_null_mx_needs_no_address(load: Load) -> None:
    load(changed("MX: 10 mx1.example.com", "MX: [10 mx1.example.com, 0 .]"))


def test_a_server_keyed_by_a_name_without_an_address_is_an_error(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx1}\n  mx2.example.com: {}")) == [
        "s.yaml:15: servers[\"mx2.example.com\"]: server host 'mx2.example.com' has no address in dns "
        "(did you mean 'mx1.example.com'?). Hint: add `A: auto`"
    ]


def test_a_server_keyed_by_an_owner_with_only_an_mx_says_so(problems: Problems) -> None:
    assert problems(changed("{cert: mx1}", "{cert: mx1}\n  example.com: {}")) == [
        "s.yaml:15: servers[\"example.com\"]: server host 'example.com' has no address in dns "
        "(it has no A or AAAA record). Hint: add `A: auto`"
    ]


def test_servers_keyed_by_ip_literals_need_no_dns(load: Load) -> None:
    scenario = load(changed("{cert: mx1}", "{cert: mx1}\n  192.0.2.99: {}\n  '[2001:db8::99]': {ports: [25, 2525]}"))
    assert set(scenario.servers) == {"mx1.example.com", "192.0.2.99", "[2001:db8::99]"}


def test_a_tlsa_cert_reference_to_an_unknown_certificate_is_an_error(problems: Problems) -> None:
    text = VALID.replace("servers:", "  _25._tcp.mx1.example.com:\n    TLSA: 3 1 1 cert:mx\nservers:")
    assert problems(text) == [
        "s.yaml:14: dns[\"_25._tcp.mx1.example.com\"].TLSA: no certificate named 'mx' in pki.certs "
        "(did you mean 'mx1'?)"
    ]


def test_a_tlsa_ca_reference_to_an_unknown_ca_is_an_error(problems: Problems) -> None:
    text = VALID.replace("servers:", "  _25._tcp.mx1.example.com:\n    TLSA: 2 0 1 ca:inters\nservers:")
    assert problems(text) == [
        "s.yaml:14: dns[\"_25._tcp.mx1.example.com\"].TLSA: no CA named 'inters' in pki.cas (did you mean 'inter'?)"
    ]


def test_an_unknown_ca_in_trust_is_an_error(problems: Problems) -> None:
    assert problems(changed("trust: [root]", "trust: [root, roots]")) == [
        "s.yaml:16: postfix.trust[1]: no CA named 'roots' in pki.cas (did you mean 'root'?)"
    ]


def test_an_unknown_ca_in_a_case_trust_is_an_error(problems: Problems) -> None:
    assert problems(changed("  - name: sends\n", "  - name: sends\n    postfix: {trust: [interr]}\n")) == [
        "s.yaml:19: cases[0].postfix.trust[0]: no CA named 'interr' in pki.cas (did you mean 'inter'?)"
    ]


def test_a_certificate_with_subject_and_cn_is_an_error(problems: Problems) -> None:
    text = changed("san: [mx1.example.com], key: ec256}", "subject: /CN=mx1, cn: mx1, key: ec256}")
    assert problems(text) == ["s.yaml:7: pki.certs.mx1.cn: both `subject` and `cn` given. Hint: give one of them"]


def test_a_certificate_with_only_ip_sans_and_no_subject_is_an_error(problems: Problems) -> None:
    text = changed("san: [mx1.example.com], key: ec256}", "san: [192.0.2.1], key: ec256}")
    assert problems(text) == [
        "s.yaml:7: pki.certs.mx1.san: no DNS name in `san` to take the subject from. Hint: add `cn:` or a DNS name"
    ]


def test_a_san_entry_with_a_space_is_an_error(problems: Problems) -> None:
    [problem] = problems(changed("san: [mx1.example.com]", "san: [mx1.example.com, 'bad name']"))
    assert problem.startswith("s.yaml:7: pki.certs.mx1.san[1]: bad SAN entry 'bad name'")


def test_a_cn_that_is_a_dn_is_an_error(problems: Problems) -> None:
    assert problems(changed("san: [mx1.example.com], key: ec256}", "cn: /CN=mx1, key: ec256}")) == [
        "s.yaml:7: pki.certs.mx1.cn: cn '/CN=mx1' looks like a DN. Hint: use `subject:` for a full DN"
    ]


def test_scenario_names_must_be_unique_across_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.yaml").write_text(VALID)
    Path("b.yaml").write_text("# the same name as a.yaml\n" + VALID)
    with pytest.raises(ScenarioError) as caught:
        load_scenarios(["a.yaml", "b.yaml"])
    assert [str(i) for i in caught.value.issues] == [
        "b.yaml:2: name: scenario name 'base' is also used by a.yaml. Hint: scenario names are unique in a run"
    ]


def test_load_scenarios_reports_the_problems_of_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("a.yaml").write_text(changed("{cert: mx1}", "{cert: mx}"))
    Path("b.yaml").write_text("")
    Path("c.yaml").write_text(VALID.replace("cases:", "case:"))  # a misspelt `cases` is still a scenario
    with pytest.raises(ScenarioError) as caught:
        load_scenarios([".", "b.yaml"])  # a file named explicitly is taken even when it does not look like one
    assert [(i.file, i.line) for i in caught.value.issues] == [
        ("a.yaml", 14),
        ("c.yaml", 1),
        ("c.yaml", 17),
        ("b.yaml", 1),
    ]


def test_a_folder_passes_over_yaml_that_is_not_a_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(VALID)
    Path("docker-compose.yml").write_text("services:\n  web: {image: nginx}\n")
    Path(".github/workflows").mkdir(parents=True)
    Path(".github/workflows/ci.yaml").write_text(VALID)  # hidden folders are passed over
    assert [str(p) for p in scenario_files(["."])] == ["s.yaml"]


# --- several problems at once -------------------------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_in_one_error_in_file_order(problems: Problems) -> None:
    text = changed("name: base\n", "name: Base\ndescriptoin: x\n")
    text = text.replace("A: auto", "A: 1.2.3")
    text = text.replace("{status: sent, tls: Verified}", "{status: sent, dns: 4.7.5}")
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["1", "2", "13", "22"]
    assert found[0].startswith("s.yaml:1: name: 'Base' does not have the required form")
    assert found[1].startswith("s.yaml:2: descriptoin: unknown key 'descriptoin' (did you mean 'description'?)")
    assert found[2].startswith("s.yaml:13: dns[\"mx1.example.com\"].A: '1.2.3' is not an IPv4 address")
    assert found[3].startswith("s.yaml:22: cases[0].send[0].expect.dns: unknown key 'dns' (did you mean 'dsn'?)")


def test_schema_and_reference_problems_are_reported_together(problems: Problems) -> None:
    text = changed("{status: sent, tls: Verified}", "{status: sent, dns: 4.7.5}")
    text = text.replace("{cert: mx1}", "{cert: mx}")
    assert problems(text) == [
        "s.yaml:14: servers[\"mx1.example.com\"].cert: no certificate named 'mx' in pki.certs (did you mean 'mx1'?)",
        "s.yaml:21: cases[0].send[0].expect.dns: unknown key 'dns' (did you mean 'dsn'?). "
        "Allowed here: cipher, client_cert, dsn, protocol, reason, received, relay, sni, starttls, status, tls",
    ]


def test_an_entry_that_fails_the_schema_causes_no_second_error_where_it_is_used(problems: Problems) -> None:
    # mx1 is invalid (unknown key), the server that uses it must not also say "no certificate named 'mx1'";
    # mx1.example.com has a bad address, the MX pointing at it must not also say "has no A or AAAA record".
    text = changed("san: [mx1.example.com], key: ec256}", "san: [mx1.example.com], kye: ec256}")
    text = text.replace("A: auto", "A: 1.2.3")
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["pki.certs.mx1.kye", 'dns["mx1.example.com"].A']


def test_a_server_with_a_schema_error_still_has_its_host_checked(problems: Problems) -> None:
    found = problems(changed("{cert: mx1}", "{cert: mx1}\n  mx9.example.com: {port: 25}"))
    assert [p.split(": ")[1] for p in found] == [
        'servers["mx9.example.com"].port',
        'servers["mx9.example.com"]',
    ]


# --- scenario_from_dict -------------------------------------------------------------------------------------


def test_scenario_from_dict_builds_a_scenario() -> None:
    scenario = scenario_from_dict(minimal(), source="built-in")
    assert scenario.source_file == "built-in"
    assert scenario.cases[0].send[0].to == "user@example.com"


def test_scenario_from_dict_reports_schema_errors_without_a_line() -> None:
    data = minimal(servers={"mx.example.com": {"crt": "mx"}}, dns={"mx.example.com": {"A": "auto"}})
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    [issue] = caught.value.issues
    assert issue.line is None
    assert str(issue) == (
        "<dict>: servers[\"mx.example.com\"].crt: unknown key 'crt' (did you mean 'cert'?). Allowed here: auth, cert, "
        "chain, delays, implicit_tls, ports, replies, require_starttls, sni, starttls, tls"
    )


def test_scenario_from_dict_reports_reference_errors_without_a_line() -> None:
    data = minimal(
        pki={
            "cas": {"root": {"subject": "Root", "key": "ec256"}},
            "certs": {"mx": {"issuer": "rot", "cn": "mx"}},
        },
        dns={"example.com": {"MX": "10 mx.example.com"}},
    )
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data, source="code")
    assert [str(i) for i in caught.value.issues] == [
        "code: pki.certs.mx.issuer: no CA named 'rot' in pki.cas (did you mean 'root'?)",
        "code: dns[\"example.com\"].MX: MX target 'mx.example.com' is not in dns. Hint: give it an address "
        "(`mx.example.com: {A: auto}`); to test a target that does not resolve on purpose, list it without one "
        "(`mx.example.com: {}`) or with a `fault:`",
    ]
    assert all(i.line is None for i in caught.value.issues)


def test_scenario_from_dict_rejects_what_is_not_a_mapping() -> None:
    with pytest.raises(ScenarioError, match=r"^<dict>: a scenario is a mapping of keys, found a list$"):
        scenario_from_dict([minimal()])  # type: ignore[arg-type]


def test_scenario_from_dict_reports_schema_and_reference_errors_together() -> None:
    data = minimal(servers={"mx.example.com": {"cert": "mx"}}, name="Bad")
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(data)
    assert [i.key for i in caught.value.issues] == [
        "name",
        'servers["mx.example.com"]',
        'servers["mx.example.com"].cert',
    ]


def test_two_dns_owners_that_are_one_name_are_an_error(problems: Problems) -> None:
    assert problems(
        changed(
            "  mx1.example.com:\n    A: auto\n",
            "  mx1.example.com:\n    A: auto\n  MX1.example.com.:\n    A: auto\n",
        )
    ) == [
        "s.yaml:13: dns[\"MX1.example.com.\"]: 'MX1.example.com.' is the same name as 'mx1.example.com' "
        "(owner names are case-insensitive, trailing dot optional). Hint: merge them"
    ]


def test_two_servers_that_are_one_host_are_an_error(problems: Problems) -> None:
    text = changed("{cert: mx1}", "{cert: mx1}\n  Mx1.Example.com: {}\n  192.0.2.5: {}\n  '[192.0.2.5]': {}")
    assert problems(text) == [
        "s.yaml:15: servers[\"Mx1.Example.com\"]: 'Mx1.Example.com' is the same name as 'mx1.example.com' "
        "(host names are case-insensitive, [ ] optional). Hint: merge them",
        "s.yaml:17: servers[\"[192.0.2.5]\"]: '[192.0.2.5]' is the same name as '192.0.2.5' "
        "(host names are case-insensitive, [ ] optional). Hint: merge them",
    ]


# --- a file read again (the report's TLS model re-reads the run's files) ------------------------------------------

_SMALL = (Path(__file__).resolve().parents[1] / "data" / "one-case-scenario.txt").read_text()


def test_an_unchanged_file_is_not_parsed_again_and_a_changed_one_is(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(_SMALL)
    first = load_scenario(path)
    assert load_scenario(path) is first
    path.write_text(_SMALL.replace("name: only", "name: other"))
    assert [c.name for c in load_scenario(path).cases] == ["other"]


def test_a_caller_collecting_warnings_and_a_file_naming_other_files_are_read_again(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(_SMALL)
    first = load_scenario(path)
    assert load_scenario(path, warnings=[]) is not first
    path.write_text(_SMALL.replace("name: one-case", "name: one-case\ninclude: []"))
    assert load_scenario(path) is not load_scenario(path)
