"""Derived values ``{{ fingerprint NAME }}`` … in main.cf and maps: substituted from the case's own certificates,
checked against digests computed here with hashlib over the DER; mistakes reported at the line they are on."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.derived import parse, substitute, substitute_settings
from harness.errors import ScenarioError
from harness.pki import Pki, UnknownNameError
from harness.postfix import PostfixSettings, settings_for
from harness.scenario import load_scenario
from harness.world import build_case_world, build_world


@pytest.fixture(scope="module")
def pki() -> Pki:
    pki = Pki()
    pki.add_ca("root", subject="Root", key="ec256")
    pki.add_cert("mx", issuer="root", san=["mx.example.com"], key="ec256")
    return pki


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def postfix_form(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


@pytest.mark.parametrize("digest", ["md5", "sha1", "sha256", "sha512"])
def test_fingerprint_is_the_digest_of_the_der_certificate(pki: Pki, digest: str) -> None:
    cert = pki.cert("mx").certificate
    expected = postfix_form(hashlib.new(digest, der(cert)).digest())
    template = "{{ fingerprint mx }}" if digest == "sha256" else f"{{{{ fingerprint mx {digest} }}}}"
    assert substitute(template, pki) == expected


def test_the_default_digest_is_sha256_in_upper_case_colon_form(pki: Pki) -> None:
    value = substitute("{{fingerprint mx}}", pki)
    assert len(value.split(":")) == 32 and value == value.upper()
    assert value != substitute("{{ fingerprint root }}", pki)  # negative control: another certificate


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_pubkey_fingerprint_is_the_digest_of_the_subject_public_key_info(pki: Pki, digest: str) -> None:
    cert = pki.cert("mx").certificate
    value = substitute(f"{{{{ pubkey_fingerprint mx {digest} }}}}", pki)
    assert value == postfix_form(hashlib.new(digest, spki(cert)).digest())
    assert value != substitute(f"{{{{ fingerprint mx {digest} }}}}", pki)


@pytest.mark.parametrize(
    ("selector", "mtype", "expected"),
    [
        (0, 0, lambda c: der(c).hex()),
        (0, 1, lambda c: hashlib.sha256(der(c)).hexdigest()),
        (1, 1, lambda c: hashlib.sha256(spki(c)).hexdigest()),
        (1, 2, lambda c: hashlib.sha512(spki(c)).hexdigest()),
    ],
)
def test_tlsa_is_the_association_data_only(pki: Pki, selector: int, mtype: int, expected: object) -> None:
    assert callable(expected)
    assert substitute(f"{{{{ tlsa mx 3 {selector} {mtype} }}}}", pki) == expected(pki.cert("mx").certificate)


def test_a_ca_name_works_too(pki: Pki) -> None:
    expected = postfix_form(hashlib.sha256(der(pki.ca("root").certificate)).digest())
    assert substitute("{{ fingerprint root }}", pki) == expected


def test_chain_file_is_the_key_then_the_chain_as_smtp_tls_chain_files_takes_it(pki: Pki) -> None:
    text = substitute("{{ chain_file mx }}\n", pki)
    mx = pki.cert("mx")
    assert text == (mx.key_pem + mx.chain_pem).decode()
    assert text.startswith(mx.key_pem.decode())  # the key first, then the chain
    key = serialization.load_pem_private_key(text.encode(), password=None)
    leaf = x509.load_pem_x509_certificates(text.encode())[0]
    assert key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == spki(leaf)
    with pytest.raises(UnknownNameError):
        substitute("{{ chain_file root }}", pki)  # a CA's key is not a client certificate


def test_text_around_placeholders_is_kept(pki: Pki) -> None:
    text = "example.com fingerprint match={{ fingerprint mx }}|{{ fingerprint mx sha1 }}\nother.com may\n"
    out = substitute(text, pki)
    first, second = out.splitlines()[0].split("match=")[1].split("|")
    assert out.startswith("example.com fingerprint match=") and out.endswith("|" + second + "\nother.com may\n")
    assert (len(first.split(":")), len(second.split(":"))) == (32, 20)


def test_text_without_placeholders_is_unchanged(pki: Pki) -> None:
    assert substitute("inline:{ a = b }", pki) == "inline:{ a = b }"


def test_settings_are_substituted_in_main_cf_and_maps(pki: Pki) -> None:
    settings = PostfixSettings(
        main_cf={"smtp_tls_fingerprint_cert_match": "{{ fingerprint mx }}", "other": "x"},
        maps={"/etc/postfix/p": "a {{ tlsa mx 3 1 1 }}\n"},
        master_cf=("{{ left alone }}",),
    )
    out = substitute_settings(settings, pki)
    assert out.main_cf == {"smtp_tls_fingerprint_cert_match": substitute("{{ fingerprint mx }}", pki), "other": "x"}
    assert out.maps["/etc/postfix/p"] == f"a {hashlib.sha256(spki(pki.cert('mx').certificate)).hexdigest()}\n"
    assert out.master_cf == settings.master_cf


def test_an_unknown_name_at_run_time_is_an_unknown_name_error(pki: Pki) -> None:
    with pytest.raises(UnknownNameError, match="no certificate or CA named 'nope'"):
        substitute("{{ fingerprint nope }}", pki)


@pytest.mark.parametrize(
    ("inner", "message"),
    [
        ("", "empty {{  }}"),
        ("fingerprnt mx", "unknown function 'fingerprnt' in {{ fingerprnt mx }} (did you mean 'fingerprint'?)"),
        ("fingerprint", "{{ fingerprint }} needs a certificate or CA NAME"),
        ("fingerprint mx sha256 extra", "needs a certificate or CA NAME and optionally a digest"),
        ("fingerprint mx sha3", "unknown digest 'sha3' in {{ fingerprint mx sha3 }} (did you mean 'sha384'?)"),
        ("tlsa mx 3 1", "{{ tlsa mx 3 1 }} needs a NAME, a USAGE 0-255, a SELECTOR 0 or 1 and an MTYPE 0, 1 or 2"),
        ("tlsa mx 3 2 1", "a SELECTOR 0 or 1"),
        ("tlsa mx 256 1 1", "a USAGE 0-255"),
        ("chain_file", "{{ chain_file }} needs one certificate NAME"),
        ("chain_file mx root", "{{ chain_file mx root }} needs one certificate NAME"),
    ],
)
def test_malformed_placeholders_say_what_is_wrong(inner: str, message: str) -> None:
    with pytest.raises(ValueError, match="Hint:") as caught:
        parse(inner)
    assert message in str(caught.value)


def test_a_digest_name_is_case_insensitive() -> None:
    assert parse("fingerprint mx SHA1").digest == "sha1"


# --- load-time checks, at the line ----------------------------------------------------------------------------

SCENARIO = """\
name: derived
pki:
  cas:
    root: {subject: Root, key: ec256}
  certs:
    mx: {issuer: root, san: [mx.example.com], key: ec256}
dns:
  example.com: {MX: 10 mx.example.com}
  mx.example.com: {A: auto}
servers:
  mx.example.com: {cert: mx}
postfix:
  main.cf:
    smtp_tls_fingerprint_cert_match: "{{ fingerprint mx }}"
  maps:
    /etc/postfix/tls_policy: |
      example.com fingerprint match={{ fingerprint mx }}
      example.net fingerprint match={{ pubkey_fingerprint mx sha1 }}
cases:
  - name: base
    send: [{to: a@example.com}]
  - name: own-cert
    pki:
      certs:
        mx: {issuer: root, san: [mx.example.com, mx2.example.com], key: ec256}
        extra: {self_signed: true, cn: extra.example.com, key: ec256}
    postfix:
      main.cf: {smtp_tls_fingerprint_cert_match: "{{ fingerprint extra }}"}
    send: [{to: a@example.com}]
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(issue).replace(f"{path}:", "s.yaml:") for issue in caught.value.issues]


def test_the_scenario_loads(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    assert len(load_scenario(tmp_path / "s.yaml").cases) == 2


def test_an_unknown_name_in_main_cf_is_reported_at_its_key(tmp_path: Path) -> None:
    text = SCENARIO.replace('match: "{{ fingerprint mx }}"', 'match: "{{ fingerprint mxx }}"')
    assert problems(tmp_path, text) == [
        "s.yaml:14: postfix[\"main.cf\"].smtp_tls_fingerprint_cert_match: no certificate or CA named 'mxx' in pki "
        "(did you mean 'mx'?). Hint: {{ fingerprint NAME }} takes a pki.certs or pki.cas NAME"
    ]


def test_chain_file_of_a_ca_name_is_reported_at_its_key(tmp_path: Path) -> None:
    text = SCENARIO.replace('match: "{{ fingerprint mx }}"', 'match: "{{ chain_file root }}"')
    [problem] = problems(tmp_path, text)
    assert problem.startswith('s.yaml:14: postfix["main.cf"].smtp_tls_fingerprint_cert_match: no certificate named ')
    assert problem.endswith("Hint: {{ chain_file NAME }} takes a pki.certs NAME")


def test_a_mistake_in_a_map_block_is_reported_at_its_own_line(tmp_path: Path) -> None:
    text = SCENARIO.replace("{{ pubkey_fingerprint mx sha1 }}", "{{ pubkey_fingerprnt mx sha1 }}")
    [problem] = problems(tmp_path, text)
    assert problem.startswith(
        "s.yaml:18: postfix.maps[\"/etc/postfix/tls_policy\"]: unknown function 'pubkey_fingerprnt' in "
        "{{ pubkey_fingerprnt mx sha1 }} (did you mean 'pubkey_fingerprint'?). Hint:"
    )


def test_an_unclosed_placeholder_is_an_error(tmp_path: Path) -> None:
    text = SCENARIO.replace("match={{ fingerprint mx }}\n", "match={{ fingerprint mx\n")
    assert problems(tmp_path, text) == [
        "s.yaml:17: postfix.maps[\"/etc/postfix/tls_policy\"]: '{{' without a closing '}}'. Hint: write "
        "{{ fingerprint NAME }} on one line"
    ]


def test_a_case_may_name_its_own_certificates(tmp_path: Path) -> None:
    # `extra` exists only in the case's world: the scenario's main.cf may not name it.
    text = SCENARIO.replace('match: "{{ fingerprint mx }}"', 'match: "{{ fingerprint extra }}"')
    assert problems(tmp_path, text) == [
        "s.yaml:14: postfix[\"main.cf\"].smtp_tls_fingerprint_cert_match: no certificate or CA named 'extra' in "
        "pki. Hint: {{ fingerprint NAME }} takes a pki.certs or pki.cas NAME"
    ]


def test_a_name_of_both_a_certificate_and_a_ca_is_ambiguous(tmp_path: Path) -> None:
    text = SCENARIO.replace(
        "    root: {subject: Root, key: ec256}\n",
        "    root: {subject: Root, key: ec256}\n    mx: {subject: MX CA, key: ec256}\n",
    )
    found = problems(tmp_path, text)
    assert found[0] == (
        "s.yaml:15: postfix[\"main.cf\"].smtp_tls_fingerprint_cert_match: 'mx' names both a certificate and a CA, so "
        "it is ambiguous here. Hint: rename one of them"
    )
    assert [p.split(":")[1] for p in found] == ["15", "18", "19"]  # main.cf, then each line of the map


# --- substituted per case, from the case's world ---------------------------------------------------------------


def test_each_case_gets_the_values_of_its_own_certificates(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    scenario = load_scenario(tmp_path / "s.yaml")
    shared = build_world(scenario)
    lines = []
    for case in scenario.cases:
        world = build_case_world(scenario, case, shared=shared)
        settings = substitute_settings(settings_for(scenario.postfix, case.postfix), world.pki)
        mx = world.pki.cert("mx").certificate
        line = settings.maps["/etc/postfix/tls_policy"].splitlines()[0]
        assert line == f"example.com fingerprint match={postfix_form(hashlib.sha256(der(mx)).digest())}"
        lines.append(line)
        if case.name == "own-cert":  # the case's main.cf names a certificate only its world has
            extra = world.pki.cert("extra").certificate
            expected = postfix_form(hashlib.sha256(der(extra)).digest())
            assert settings.main_cf["smtp_tls_fingerprint_cert_match"] == expected
    assert lines[0] != lines[1]  # the case replaced `mx`: a new certificate, a new fingerprint
    assert "extra" not in shared.pki.cert_names


def test_an_unquoted_placeholder_value_says_to_quote_it(tmp_path: Path) -> None:
    # YAML reads `{{ fingerprint mx }}` unquoted as a mapping inside a mapping.
    text = SCENARIO.replace('match: "{{ fingerprint mx }}"', "match: {{ fingerprint mx }}")
    assert problems(tmp_path, text) == [
        's.yaml:14: postfix["main.cf"].smtp_tls_fingerprint_cert_match: found a YAML mapping where a value belongs. '
        'Hint: quote a value that starts with `{`, e.g. `"{{ fingerprint mx }}"`'
    ]
