"""The model's certificate name matching: Postfix 3.6+ match lists through OpenSSL's host check.

The table is what Postfix 3.7.11 did (postfix-tls-notes.md "Name matching", scenarios/faults/certs-names.yaml);
every match has a near miss next to it.
"""

from __future__ import annotations

import pytest

from harness._explain_names import certificate_names, check_names, host_matches, references

MATCHES = [
    ("mx.example.com", "mx.example.com", True),
    ("mx.example.com", "MX.Example.COM", True),
    ("MX.Upper.EXAMPLE", "mx.upper.example", True),
    ("mx.example.com", "example.com", False),
    ("mx.example.com", ".example.com", True),
    ("a.b.example.com", ".example.com", True),
    ("example.com", ".example.com", False),
    ("xexample.com", ".example.com", False),
    ("*.example.com", "mx.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", ".example.com", True),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", ".a.example.com", False),
    ("m*.example.com", "mx.example.com", False),
    ("m*.example.com", ".example.com", True),
    ("*.com", "example.com", False),
    ("*.com", "*.com", True),
    ("mx.example.com.", "mx.example.com", False),
    ("mx.dot.example.", "mx.dot.example.", True),
]


@pytest.mark.parametrize(("certificate", "reference", "expected"), MATCHES)
def test_a_certificate_name_matches_a_reference_name_as_openssl_does(
    certificate: str, reference: str, expected: bool
) -> None:
    assert host_matches(certificate, reference) is expected


def test_strategies_become_the_next_hop_its_subdomains_and_the_mx_host_name() -> None:
    refs, warnings = references(
        ["nexthop", "DOT-NEXTHOP", "hostname", ".example.net", "mx.example.org"],
        nexthop="fastmail.fm",
        hostname="in1-smtp.messagingengine.com",
    )
    assert [(r.name, r.kind) for r in refs] == [
        ("fastmail.fm", "host"),
        (".fastmail.fm", "subdomains"),
        ("in1-smtp.messagingengine.com", "host"),
        (".example.net", "subdomains"),
        ("mx.example.org", "host"),
    ]
    assert warnings == []


def test_a_lone_dot_and_a_second_ip_address_are_skipped_with_postfix_warnings() -> None:
    refs, warnings = references([".", "192.0.2.1", "192.0.2.2"], nexthop="n.example", hostname="h.example")
    assert [r.name for r in refs] == ["192.0.2.1"]
    assert warnings == [
        'ignoring invalid match name: "."',
        'error loading match name: "192.0.2.2" (OpenSSL takes one IP address)',
    ]


def test_the_cn_counts_only_without_a_dns_subject_alt_name() -> None:
    cn_only = certificate_names([], ["mx.cnonly.example"])
    san_other = certificate_names(["other.example.net"], ["mx.sanother.example"])
    ip_and_cn = certificate_names(["192.0.2.51"], ["mx.ipcn.example"])
    assert cn_only.host_names == ("mx.cnonly.example",)
    assert san_other.host_names == ("other.example.net",)
    assert ip_and_cn.host_names == ("mx.ipcn.example",) and ip_and_cn.ips == ("192.0.2.51",)
    assert "CN mx.sanother.example is ignored" in san_other.describe()


def test_the_check_passes_when_any_reference_name_matches_and_fails_when_none_does() -> None:
    cert = certificate_names(["*.messagingengine.com", "messagingengine.com"], [])
    secure, _ = references(["nexthop", "dot-nexthop"], nexthop="fastmail.fm", hostname="in1-smtp.messagingengine.com")
    verify, _ = references(["hostname"], nexthop="fastmail.fm", hostname="in1-smtp.messagingengine.com")
    assert not check_names(secure, cert).matched
    check = check_names(verify, cert)
    assert check.matched and check.matches == (("in1-smtp.messagingengine.com", "*.messagingengine.com"),)


def test_an_ip_address_in_the_match_list_must_be_an_ip_subject_alt_name_the_cn_does_not_count() -> None:
    refs, _ = references(["192.0.2.50"], nexthop="iponly.example", hostname="mx.iponly.example")
    assert check_names(refs, certificate_names(["192.0.2.50"], ["server.example.net"])).matched
    miss = check_names(refs, certificate_names([], ["192.0.2.50"]))
    assert not miss.matched and not miss.ip_ok


def test_an_empty_match_list_fails_the_check() -> None:
    assert not check_names((), certificate_names(["mx.example.com"], [])).matched
