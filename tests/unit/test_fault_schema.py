"""The fault catalogue's scenario keys: how they load, and each mistake as the user sees it (file:line: key: message
with a hint). No certificates are made here; the world they become is tested in test_fault_world.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from _mutate import mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import ScenarioError
from harness.model import Expect, Scenario
from harness.model_servers import check_reply
from harness.scenario import load_scenario, scenario_from_dict

# Line numbers matter: the tests below name them.
BASE = """\
name: faults
pki:
  cas:
    root: {subject: /O=Example/CN=Example Root, key: ec256}
  certs:
    mx: {issuer: root, san: [mx.example.com], key: ec256}
dns:
  example.com: {MX: 10 mx.example.com}
  mx.example.com: {A: auto}
servers:
  mx.example.com: {cert: mx}
cases:
  - name: sends
    send:
      - to: user@example.com
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Scenario:
    return load_scenario(write(tmp_path, text))


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(issue).replace(f"{path}:", "s.yaml:") for issue in caught.value.issues]


def changed(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def with_server(server: str) -> str:
    """BASE with the server entry replaced (line 11)."""
    return changed("  mx.example.com: {cert: mx}\n", f"  mx.example.com: {server}\n")


def test_the_base_scenario_loads(tmp_path: Path) -> None:
    assert load(tmp_path, BASE).name == "faults"


# --- pki ----------------------------------------------------------------------------------------------------


def test_a_self_signed_certificate_needs_no_issuer(tmp_path: Path) -> None:
    scenario = load(tmp_path, changed("mx: {issuer: root,", "mx: {self_signed: true,"))
    cert = scenario.pki.certs["mx"]
    assert cert.self_signed and cert.issuer is None


def test_a_self_signed_certificate_with_an_issuer_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, changed("mx: {issuer: root,", "mx: {issuer: root, self_signed: true,")) == [
        "s.yaml:6: pki.certs.mx.issuer: a self-signed certificate has no issuer. Hint: remove `issuer`, or "
        "`self_signed: true` to have the CA issue it"
    ]


def test_a_certificate_without_issuer_says_how_to_make_it_self_signed(tmp_path: Path) -> None:
    assert problems(tmp_path, changed("mx: {issuer: root,", "mx: {")) == [
        "s.yaml:6: pki.certs.mx.issuer: this key is required: the NAME of a CA in pki.cas. Hint: for a certificate "
        "that signs itself, write `self_signed: true` instead"
    ]


def test_self_signed_false_still_needs_an_issuer(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, changed("mx: {issuer: root,", "mx: {self_signed: false,"))
    assert problem.startswith("s.yaml:6: pki.certs.mx.issuer: this key is required")


@pytest.mark.parametrize("key", ["rsa1024", "rsa3072", "ec521"])
def test_the_added_key_types_load_for_certificates_and_cas(tmp_path: Path, key: str) -> None:
    text = changed("san: [mx.example.com], key: ec256}", f"san: [mx.example.com], key: {key}}}")
    text = text.replace("CN=Example Root, key: ec256}", f"CN=Example Root, key: {key}}}")
    scenario = load(tmp_path, text)
    assert scenario.pki.certs["mx"].key == scenario.pki.cas["root"].key == key


# --- servers: loading and normalising -----------------------------------------------------------------------


def test_server_fault_keys_have_plain_defaults(tmp_path: Path) -> None:
    server = load(tmp_path, BASE).servers["mx.example.com"]
    assert server.chain == "full"
    assert server.sni == {} and server.implicit_tls == []
    assert server.starttls is True and server.require_starttls is False and server.auth is False
    assert server.tls.handshake == "ok" and server.tls.min_version is None
    assert server.replies.rcpt is None and server.delays.eom == 0


def test_every_server_fault_key_loads(tmp_path: Path) -> None:
    server = """
    cert: mx
    ports: [25, 465]
    chain: with-root
    sni: {mx.example.com: mx}
    starttls: false
    implicit_tls: [465]
    tls: {min_version: TLSv1.2, max_version: TLSv1.3, ciphers: HIGH, request_client_cert: true, handshake: abort}
    replies: {greeting: 554 no service, eom: drop}
    delays: {greeting: 1, eom: 2.5}
    require_starttls: true
    auth: true
"""
    text = changed("  mx.example.com: {cert: mx}\n", "  mx.example.com:" + textwrap.indent(server, "  "))
    s = load(tmp_path, text).servers["mx.example.com"]
    assert (s.chain, s.sni, s.starttls, s.implicit_tls) == ("with-root", {"mx.example.com": "mx"}, False, [465])
    assert (s.tls.min_version, s.tls.max_version, s.tls.ciphers) == ("TLSv1.2", "TLSv1.3", "HIGH")
    assert s.tls.request_client_cert and s.tls.handshake == "abort"
    assert (s.replies.greeting, s.replies.eom) == ("554 no service", "drop")
    assert (s.delays.greeting, s.delays.eom) == (1, 2.5)
    assert s.require_starttls and s.auth


def test_a_multi_line_reply_is_a_list_or_text_with_newlines(tmp_path: Path) -> None:
    listed = load(tmp_path, with_server("{replies: {ehlo: [250-mx.example.com, 250-PIPELINING, 250 8BITMIME]}}"))
    block = load(tmp_path, with_server('{replies: {ehlo: "250-mx.example.com\\n250-PIPELINING\\n250 8BITMIME\\n"}}'))
    expected = "250-mx.example.com\n250-PIPELINING\n250 8BITMIME"
    assert listed.servers["mx.example.com"].replies.ehlo == block.servers["mx.example.com"].replies.ehlo == expected


def test_a_bare_reply_code_is_a_reply(tmp_path: Path) -> None:
    assert load(tmp_path, with_server("{replies: {greeting: 554}}")).servers["mx.example.com"].replies.greeting == "554"


def test_one_rcpt_reply_is_the_default_for_every_recipient(tmp_path: Path) -> None:
    server = load(tmp_path, with_server("{replies: {rcpt: 450 4.7.1 greylisted}}")).servers["mx.example.com"]
    assert server.replies.rcpt == {"default": "450 4.7.1 greylisted"}


def test_rcpt_replies_per_address_with_a_default(tmp_path: Path) -> None:
    text = with_server("{replies: {rcpt: {gone@example.com: 550 5.1.1 no such user, default: drop}}}")
    server = load(tmp_path, text).servers["mx.example.com"]
    assert server.replies.rcpt == {"gone@example.com": "550 5.1.1 no such user", "default": "drop"}


@pytest.mark.parametrize(
    "reply",
    [
        "250 ok",
        "250",
        "250-a\n250 b",
        "550 5.1.1 no such user",
        "421 4.3.2 shutting down",
        "220 192.0.2.1 ESMTP",
        "drop",
    ],
)
def test_well_formed_replies_pass(reply: str) -> None:
    assert check_reply(reply) == reply


# --- servers: mistakes -------------------------------------------------------------------------------------


def test_a_reply_without_a_code_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{replies: {greeting: hello}}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].replies.greeting: reply line 'hello' does not start with a reply "
        "code 200-599 (RFC 5321 §4.2). Hint: write e.g. `550 5.1.1 no such user`, a list of lines (`250-first`, "
        "`250 last`), or `drop`"
    ]


@pytest.mark.parametrize("reply", ["199 too low", "600 too high", "25 short", "250x"])
def test_a_reply_code_outside_2xx_to_5xx_is_an_error(reply: str) -> None:
    with pytest.raises(ValueError, match="does not start with a reply code 200-599"):
        check_reply(reply)


def test_a_multi_line_reply_needs_dashes_before_the_last_line(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{replies: {ehlo: [250 mx.example.com, 250 STARTTLS]}}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].replies.ehlo: line 1 of the reply ('250 mx.example.com') ends the "
        "reply, yet more lines follow. Hint: every line but the last is written `250-text`, the last `250 text` "
        "(RFC 5321 §4.2.1)"
    ]


def test_a_last_line_with_a_dash_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{replies: {data: 354-go ahead}}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].replies.data: reply line '354-go ahead' is the last line but "
        "continues with '-': the client would wait for more. Hint: write the last line `354 go ahead`"
    ]


@pytest.mark.parametrize("code", ["5.1", "5.1.1.1", "5.1.1234", "6.1.1"])
def test_a_malformed_enhanced_status_code_is_an_error(tmp_path: Path, code: str) -> None:
    assert problems(tmp_path, with_server(f"{{replies: {{mail: '550 {code} no'}}}}")) == [
        f"s.yaml:11: servers[\"mx.example.com\"].replies.mail: reply line '550 {code} no': '{code}' is not an "
        "enhanced status code class.subject.detail (RFC 3463). Hint: write e.g. `4.7.1`, or leave it out"
    ]


def test_an_rcpt_key_that_is_no_address_is_an_error(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, with_server("{replies: {rcpt: {nobody: 550 5.1.1 x}}}"))
    assert problem.startswith(
        "s.yaml:11: servers[\"mx.example.com\"].replies.rcpt: 'nobody' is neither a recipient address nor `default`."
    )
    assert "Hint: write `user@example.com: 550 5.1.1 no such user`" in problem


def test_an_rcpt_reply_error_names_the_address(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, with_server("{replies: {rcpt: {gone@example.com: oops}}}"))
    assert problem.startswith('s.yaml:11: servers["mx.example.com"].replies.rcpt["gone@example.com"]: reply line')


def test_an_unknown_reply_stage_suggests_the_closest(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{replies: {helo: 250 hi}}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].replies.helo: unknown key 'helo' (did you mean 'ehlo'?). "
        "Allowed here: data, ehlo, eom, greeting, mail, rcpt, starttls"
    ]


@pytest.mark.parametrize(
    ("delay", "bound"), [("-1", "greater than or equal to 0"), ("601", "less than or equal to 600")]
)
def test_a_delay_outside_0_to_600_seconds_is_an_error(tmp_path: Path, delay: str, bound: str) -> None:
    [problem] = problems(tmp_path, with_server(f"{{delays: {{eom: {delay}}}}}"))
    assert problem.startswith(f's.yaml:11: servers["mx.example.com"].delays.eom: Input should be {bound}')


def test_an_unknown_chain_mode_lists_the_modes(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{cert: mx, chain: leaf-only}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].chain: expected 'full', 'leaf' or 'with-root', found 'leaf-only' "
        "(did you mean 'leaf'?)"
    ]


def test_tls_bounds_in_the_wrong_order_are_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{cert: mx, tls: {min_version: TLSv1.3, max_version: TLSv1.2}}")) == [
        's.yaml:11: servers["mx.example.com"].tls: min_version TLSv1.3 is above max_version TLSv1.2. Hint: swap them'
    ]


def test_an_unknown_handshake_fault_is_an_error(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{cert: mx, tls: {handshake: reset}}")) == [
        "s.yaml:11: servers[\"mx.example.com\"].tls.handshake: expected 'ok' or 'abort', found 'reset'"
    ]


def test_an_implicit_tls_port_must_be_one_of_the_ports(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{cert: mx, implicit_tls: [465]}")) == [
        's.yaml:11: servers["mx.example.com"].implicit_tls[0]: port 465 is not one of the server\'s ports (25). '
        "Hint: add it to `ports`, e.g. `ports: [25, 465]`"
    ]


def test_an_sni_certificate_must_exist(tmp_path: Path) -> None:
    assert problems(tmp_path, with_server("{cert: mx, sni: {other.example.com: mxx}}")) == [
        's.yaml:11: servers["mx.example.com"].sni["other.example.com"]: no certificate named \'mxx\' in pki.certs '
        "(did you mean 'mx'?)"
    ]


def test_an_sni_name_must_be_a_host_name(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, with_server("{cert: mx, sni: {'192.0.2.1:25': mx}}"))
    assert problem.startswith("s.yaml:11: servers[\"mx.example.com\"].sni: SNI name '192.0.2.1:25' is not a host name")


@pytest.mark.parametrize(
    "key", ["chain: leaf", "sni: {mx.example.com: mx}", "implicit_tls: [25]", "tls: {max_version: TLSv1.2}"]
)
def test_tls_keys_without_a_certificate_are_an_error(tmp_path: Path, key: str) -> None:
    name = key.split(":")[0]
    assert problems(tmp_path, with_server(f"{{{key}}}")) == [
        f's.yaml:11: servers["mx.example.com"].{name}: `{name}` has no effect without `cert`: the server offers no '
        f"TLS. Hint: add `cert: NAME`, or remove `{name}`"
    ]


def test_plaintext_faults_need_no_certificate(tmp_path: Path) -> None:
    text = with_server("{starttls: false, require_starttls: true, auth: true, replies: {rcpt: 550 5.7.1 no}}")
    assert load(tmp_path, text).servers["mx.example.com"].require_starttls


# --- dns ----------------------------------------------------------------------------------------------------


def test_a_fault_for_every_type_or_per_type(tmp_path: Path) -> None:
    text = changed(
        "  mx.example.com: {A: auto}\n", "  mx.example.com: {A: auto, fault: {AAAA: timeout, MX: refused}}\n"
    )
    text = text.replace("example.com: {MX: 10 mx.example.com}", "example.com: {MX: 10 mx.example.com, fault: nxdomain}")
    dns = load(tmp_path, text).dns
    assert dns["example.com"].fault == {"*": "nxdomain"}
    assert dns["mx.example.com"].fault == {"AAAA": "timeout", "MX": "refused"}


def test_an_unknown_fault_suggests_the_closest(tmp_path: Path) -> None:
    assert problems(tmp_path, changed("mx.example.com: {A: auto}", "mx.example.com: {A: auto, fault: timout}")) == [
        "s.yaml:9: dns[\"mx.example.com\"].fault: unknown DNS fault 'timout' (did you mean 'timeout'?). "
        "Hint: one of servfail, timeout, nxdomain, refused"
    ]


def test_an_unknown_fault_record_type_suggests_the_closest(tmp_path: Path) -> None:
    text = changed("mx.example.com: {A: auto}", "mx.example.com: {A: auto, fault: {AAA: servfail}}")
    assert problems(tmp_path, text) == [
        "s.yaml:9: dns[\"mx.example.com\"].fault: unknown record type 'AAA' (did you mean 'AAAA'?). Hint: one of "
        "MX, A, AAAA, CNAME, TXT, TLSA; `fault: servfail` alone stands for every type"
    ]


def test_dnssec_is_a_boolean_per_owner(tmp_path: Path) -> None:
    dns = load(tmp_path, changed("mx.example.com: {A: auto}", "mx.example.com: {A: auto, dnssec: true}")).dns
    assert dns["mx.example.com"].dnssec and not dns["example.com"].dnssec


@pytest.mark.parametrize(
    "target", ["mx.example.com: {}", "mx.example.com: {fault: servfail}", "mx.example.com: {TXT: x}"]
)
def test_an_mx_target_listed_without_an_address_is_a_deliberate_fault(tmp_path: Path, target: str) -> None:
    text = changed("  mx.example.com: {A: auto}\n", f"  {target}\n  mx2.example.com: {{A: auto}}\n")
    text = text.replace("servers:\n  mx.example.com:", "servers:\n  mx2.example.com:")
    assert load(tmp_path, text).dns["example.com"].MX == ["10 mx.example.com"]


@pytest.mark.parametrize("literal", ["192.0.2.1", "2001:db8::25"])
def test_an_mx_target_that_is_an_ip_literal_is_allowed(tmp_path: Path, literal: str) -> None:
    text = changed("MX: 10 mx.example.com}", f"MX: [10 mx.example.com, '20 {literal}']}}")
    assert load(tmp_path, text).dns["example.com"].MX == ["10 mx.example.com", f"20 {literal}"]


def test_a_cname_target_listed_with_a_fault_is_allowed(tmp_path: Path) -> None:
    text = changed(
        "  mx.example.com: {A: auto}\n", "  mx.example.com: {A: auto}\n  alias.example.com: {CNAME: x.example.com}\n"
    )
    text = text.replace("  alias.example.com", "  x.example.com: {fault: servfail}\n  alias.example.com")
    assert load(tmp_path, text).dns["alias.example.com"].CNAME == ["x.example.com"]


# --- expect -------------------------------------------------------------------------------------------------


def test_the_server_side_expect_keys_load(tmp_path: Path) -> None:
    text = (
        BASE
        + "        expect: {starttls: true, sni: mx.example.com, protocol: TLSv1.3, cipher: TLS_AES_256_GCM_SHA384}\n"
    )
    expect = load(tmp_path, text).cases[0].send[0].expect
    assert (expect.starttls, expect.sni, expect.protocol, expect.cipher) == (
        True,
        "mx.example.com",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
    )


def test_sni_none_and_protocol_none_are_values(tmp_path: Path) -> None:
    expect = (
        load(tmp_path, BASE + "        expect: {sni: none, protocol: none, starttls: false}\n").cases[0].send[0].expect
    )
    assert (expect.sni, expect.protocol, expect.starttls) == ("none", "none", False)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{protocol: TLSv1.4}", "expect.protocol: expected 'none', 'TLSv1', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3', found"),
        ("{sni: 'a b'}", "expect.sni: 'a b' is not a host name. Hint: write `sni: mx.example.com`, or `sni: none`"),
        ("{cipher: 'AES 256'}", "expect.cipher: 'AES 256' is not a cipher name. Hint: write OpenSSL's name"),
        ("{starttls: maybe}", "expect.starttls: expected true or false, found 'maybe'"),
        ("{client_cert: maybe}", "expect.client_cert: expected true or false, found 'maybe'"),
    ],
)
def test_bad_server_side_expect_values_are_errors(tmp_path: Path, value: str, message: str) -> None:
    [problem] = problems(tmp_path, BASE + f"        expect: {value}\n")
    assert problem.startswith(f"s.yaml:16: cases[0].send[0].{message}")


@pytest.mark.parametrize(
    ("value", "found"), [("maybe", "'maybe'"), ("none", "'none'"), ("2", "2"), ("[true]", "[True]")]
)
def test_a_client_cert_that_is_not_true_or_false_is_an_error(tmp_path: Path, value: str, found: str) -> None:
    [problem] = problems(tmp_path, BASE + f"        expect: {{client_cert: {value}}}\n")
    assert problem == f"s.yaml:16: cases[0].send[0].expect.client_cert: expected true or false, found {found}"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("null", None)])
def test_client_cert_is_true_or_false(tmp_path: Path, value: str, expected: bool | None) -> None:
    expect = load(tmp_path, BASE + f"        expect: {{client_cert: {value}}}\n").cases[0].send[0].expect
    assert expect.client_cert is expected
    assert Expect().client_cert is None  # not checked unless given


def test_client_cert_may_differ_per_release(tmp_path: Path) -> None:
    message = load(tmp_path, BASE + '        expect: {client_cert: {default: true, "3.5": false}}\n').cases[0].send[0]
    assert message.expect_for("3.5.25").client_cert is False
    assert message.expect_for("3.7.11").client_cert is True and message.expect_for("3.10.13").client_cert is True
    assert message.expect_releases == ("3.5",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '{"3.5": maybe}',
            "s.yaml:15: cases[0].send[0]: expect.client_cert for release 3.5: Input should be a valid boolean",
        ),
        (
            '{default: true, "3.4": false}',
            "s.yaml:15: cases[0].send[0]: expect.client_cert: '3.4' is not a Postfix release the harness has. "
            "Hint: use one of default, 3.5, 3.7, 3.10",
        ),
    ],
)
def test_bad_per_release_client_cert_values_are_errors(tmp_path: Path, value: str, message: str) -> None:
    [problem] = problems(tmp_path, BASE + f"        expect: {{client_cert: {value}}}\n")
    assert problem.startswith(message)


# --- property: the new keys never raise anything but ScenarioError -----------------------------------------


@pytest.mark.parametrize(
    "server",
    [
        {"replies": {"rcpt": ["550 x", 3, None]}},
        {"replies": {"rcpt": {"a@b": {"x": 1}}}},
        {"replies": {"ehlo": [[1]]}},
        {"delays": {"eom": "soon"}},
        {"sni": ["a"]},
        {"sni": {"a.example": None}},
        {"tls": "TLSv1.2"},
        {"implicit_tls": "465"},
        {"chain": None},
    ],
)
def test_odd_server_values_are_scenario_errors(server: dict[str, Any]) -> None:
    data = {
        "name": "odd",
        "dns": {"mx.example.com": {"A": "auto", "fault": {"A": ["x"]}}},
        "servers": {"mx.example.com": server},
        "cases": [{"name": "c", "send": [{"to": "a@example.com"}], "dns": {"x.example.com": {"fault": 3}}}],
    }
    with pytest.raises(ScenarioError):
        scenario_from_dict(data)


FAULT_BASE: dict[str, Any] = {
    "name": "fault-property",
    "pki": {
        "cas": {"root": {"subject": "Root", "key": "ec256"}},
        "certs": {"mx": {"issuer": "root", "san": ["mx.example.com"]}, "me": {"self_signed": True, "cn": "me"}},
    },
    "dns": {
        "example.com": {"MX": ["10 mx.example.com", "20 192.0.2.9"], "dnssec": True},
        "mx.example.com": {"A": "auto", "fault": {"AAAA": "timeout"}},
    },
    "servers": {
        "mx.example.com": {
            "cert": "mx",
            "ports": [25, 465],
            "implicit_tls": [465],
            "sni": {"me.example.com": "me"},
            "replies": {"rcpt": {"a@example.com": "550 5.1.1 x"}, "ehlo": ["250-a", "250 b"]},
            "delays": {"eom": 1},
            "tls": {"max_version": "TLSv1.2"},
        }
    },
    "postfix": {"main.cf": {"smtp_tls_fingerprint_cert_match": "{{ fingerprint mx }}"}},
    "cases": [
        {
            "name": "c",
            "pki": {"certs": {"mx": {"issuer": "root", "cn": "x"}}},
            "dns": {"x.example.com": {"fault": "servfail"}},
            "servers": {"mx.example.com": {"cert": "mx", "chain": "leaf"}},
            "send": [
                {
                    "to": "a@example.com",
                    "expect": {"starttls": True, "sni": "none", "protocol": "TLSv1.2", "client_cert": False},
                }
            ],
        }
    ],
}
FAULT_KEYS = [
    "self_signed", "issuer", "chain", "sni", "starttls", "implicit_tls", "tls", "min_version", "handshake",
    "replies", "rcpt", "default", "greeting", "delays", "eom", "fault", "dnssec", "AAAA", "MX", "pki", "certs",
    "servers", "dns", "cert", "ports", "protocol", "cipher", "client_cert", "main.cf",
]  # fmt: skip


def test_the_property_base_is_valid() -> None:
    assert scenario_from_dict(FAULT_BASE).cases[0].changes_world


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_of_fault_keys_raises_nothing_but_scenario_error(data: st.DataObject) -> None:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 70000),
        st.text(max_size=10),
        st.sampled_from(
            ["drop", "550 5.1.1 x", "250-a", "servfail", "timeout", "leaf", "TLSv1", "{{ fingerprint mx }}",
             "{{ tlsa mx 3 1 1 }}", "{{ nope }}", "{{", "mx", "me", "465", "*", "abort"]
        ),
    )  # fmt: skip
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FAULT_KEYS), inner, max_size=3)
        ),
        max_leaves=6,
    )
    scenario = mutate(data, FAULT_BASE, values)
    try:
        scenario_from_dict(scenario)
    except ScenarioError:
        pass
