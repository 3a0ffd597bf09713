"""The model's TLS policy (level, match list, where each came from) and route (transport, next-hop, MX hosts).

Rules from Postfix 3.7 src/smtp/smtp_tls_policy.c and smtp_connect.c; each rule has its opposite next to it.
"""

from __future__ import annotations

from typing import Any

from _explain_world import decision, world


def test_a_policy_entry_for_the_next_hop_overrides_main_cf() -> None:
    d = decision(world(main_cf={"smtp_tls_security_level": "may"}, policy="example.com secure ciphers=high\n"))
    assert d.policy is not None and d.policy.level == "secure"
    assert 'policy table entry "example.com secure ciphers=high" (/etc/postfix/tls_policy line 1)' in (
        d.policy.level_origin
    )
    assert d.policy.match == ("nexthop", "dot-nexthop")
    assert "smtp_tls_secure_cert_match" in d.policy.match_origin and "default" in d.policy.match_origin


def test_without_an_entry_main_cf_decides_and_says_so() -> None:
    d = decision(world(main_cf={"smtp_tls_security_level": "encrypt"}, policy="other.example secure\n"))
    assert d.policy is not None and d.policy.level == "encrypt"
    assert d.policy.level_origin == "main.cf, set by the scenario" and d.policy.entry is None


def test_a_parent_domain_entry_covers_subdomains_but_not_the_domain_itself() -> None:
    policy = ".example.com verify\n"
    sub = world(dns={"sub.example.com": {"MX": "10 mx.example.com"}, "mx.example.com": {"A": "auto"}}, policy=policy)
    below = decision(sub, "user@sub.example.com")
    assert below.policy is not None and below.policy.level == "verify"
    assert below.policy.keys == ("sub.example.com", ".example.com", ".com")
    assert "a parent-domain entry for sub.example.com" in below.policy.level_origin
    same = decision(world(policy=policy))
    assert same.policy is not None and same.policy.level == "none"


def test_the_exact_entry_wins_over_a_parent_entry() -> None:
    d = decision(world(policy=".com verify\nexample.com encrypt\n"))
    assert d.policy is not None and d.policy.level == "encrypt"


def test_a_bracketed_next_hop_is_looked_up_verbatim_without_parent_domains() -> None:
    d = decision(world(transport="example.com smtp:[mx.example.com]\n", policy="[mx.example.com] verify\n"))
    assert d.route.destination == "[mx.example.com]" and not d.route.mx_lookup and d.route.nexthop == "mx.example.com"
    assert d.policy is not None and d.policy.level == "verify" and d.policy.keys == ("[mx.example.com]",)
    bare = decision(world(transport="example.com smtp:[mx.example.com]\n", policy="mx.example.com verify\n"))
    assert bare.policy is not None and bare.policy.level == "none"


def test_relayhost_with_port_is_the_next_hop_and_the_policy_key() -> None:
    data = world(
        main_cf={"relayhost": "[relay.example.net]:587"},
        policy="[relay.example.net]:587 secure\n",
        dns={"relay.example.net": {"A": "auto"}},
        servers={"relay.example.net": {"cert": "relay", "ports": [587]}},
    )
    data["pki"]["certs"]["relay"] = {"issuer": "inter", "san": ["relay.example.net"], "key": "ec256"}
    d = decision(data, "user@anywhere.example")
    assert (d.route.destination, d.route.nexthop, d.route.port) == ("[relay.example.net]:587", "relay.example.net", 587)
    assert "relayhost" in d.route.origin
    assert d.prediction.status == "sent" and d.prediction.tls == "Verified"


def test_a_transport_entry_with_an_empty_next_hop_resets_it_to_the_recipient_domain() -> None:
    d = decision(world(main_cf={"relayhost": "[relay.example.net]"}, transport="example.com smtp:\n"))
    assert d.route.destination == "example.com" and d.route.mx_lookup


def test_match_is_invalid_at_may_and_encrypt_and_the_delivery_is_deferred_without_a_connection() -> None:
    for level in ("may", "encrypt"):
        d = decision(world(policy=f"example.com {level} match=nexthop\n"))
        assert d.policy is not None and d.policy.level == "invalid"
        assert f'attribute "match" invalid at security level "{level}"' in (d.policy.problem or "")
        p = d.prediction
        assert (p.status, p.dsn, p.reason, p.relays) == (
            "deferred",
            "4.7.5",
            "client TLS configuration problem",
            ("none",),
        )
    fine = decision(world(policy="example.com verify match=mx.example.com\n"))
    assert fine.prediction.status == "sent"


def test_other_invalid_entries_name_postfixs_warning() -> None:
    cases = {
        "example.com bogus\n": 'invalid security level "bogus"',
        "example.com secure colour=red\n": 'invalid attribute name: "colour"',
        "example.com secure ciphers=high ciphers=medium\n": 'attribute "ciphers" is specified multiple times',
        "example.com secure match\n": 'malformed attribute/value pair "match"',
        "example.com fingerprint\n": "configured at fingerprint security level, but with no fingerprints to match",
    }
    for policy, warning in cases.items():
        d = decision(world(policy=policy))
        assert d.policy is not None and d.policy.level == "invalid", policy
        assert warning in (d.policy.problem or ""), policy


def test_none_ignores_its_attributes() -> None:
    d = decision(world(policy="example.com none match=whatever\n"))
    assert d.policy is not None and d.policy.level == "none" and d.prediction.tls == "none"


def test_several_match_attributes_add_up_and_split_on_colons() -> None:
    d = decision(world(policy="example.com secure match=nexthop:hostname match=.example.net\n"))
    assert d.policy is not None and d.policy.match == ("nexthop", "hostname", ".example.net")


def test_obsolete_parameters_give_the_global_level() -> None:
    assert decision(world(main_cf={"smtp_enforce_tls": "yes"})).policy.level == "verify"  # type: ignore[union-attr]
    encrypt = decision(world(main_cf={"smtp_enforce_tls": "yes", "smtp_tls_enforce_peername": "no"}))
    assert encrypt.policy is not None and encrypt.policy.level == "encrypt"
    may = decision(world(main_cf={"smtp_use_tls": "yes"}))
    assert may.policy is not None and may.policy.level == "may"
    assert decision(world()).policy.level == "none"  # type: ignore[union-attr]


def test_a_master_cf_o_of_the_transport_overrides_main_cf() -> None:
    data = world(
        main_cf={"smtp_tls_security_level": "may"},
        transport="example.com smtp-verify:\n",
        master_cf="smtp-verify unix - - n - - smtp\n  -o smtp_tls_security_level=verify",
    )
    d = decision(data)
    assert d.route.transport == "smtp-verify"
    assert d.policy is not None and d.policy.level == "verify"
    assert d.policy.level_origin == "master.cf: service smtp-verify has -o smtp_tls_security_level=verify"
    plain = decision(world(main_cf={"smtp_tls_security_level": "may"}, master_cf=data["postfix"]["master.cf"]))
    assert plain.policy is not None and plain.policy.level == "may"


def test_dane_without_dnssec_lookups_is_may_and_dane_only_a_configuration_problem() -> None:
    dane = decision(world(policy="example.com dane\n"))
    assert dane.policy is not None and dane.policy.level == "may" and dane.prediction.tls == "Trusted"
    only = decision(world(policy="example.com dane-only\n"))
    assert only.policy is not None and only.policy.level == "invalid"
    # With DNSSEC lookups the level stays; this MX answer has no AD bit, so (3.7.11, dane from a policy table) DANE
    # falls back to may for the host (tests/unit/test_explain_dane.py has the rest).
    dnssec = decision(world(policy="example.com dane\n", main_cf={"smtp_dns_support_level": "dnssec"}))
    assert dnssec.policy is not None and dnssec.policy.level == "dane"
    assert dnssec.prediction.certain and (dnssec.prediction.status, dnssec.prediction.tls) == ("sent", "Trusted")


def test_mx_hosts_are_tried_in_preference_order_and_a_domain_without_mx_is_its_own_host() -> None:
    two = decision(world(dns={"example.com": {"MX": ["20 b.example.com", "10 a.example.com"]},
                              "a.example.com": {"A": "auto"}, "b.example.com": {"A": "auto"}},
                         servers={"a.example.com": {}}))  # fmt: skip
    assert [h.name for h in two.resolution.hosts] == ["a.example.com", "b.example.com"]
    bare = decision(world(dns={"example.com": {"A": "auto"}}, servers={"example.com": {}}))
    assert [(h.name, h.preference) for h in bare.resolution.hosts] == [("example.com", None)]


def test_an_unknown_domain_bounces_and_a_host_without_a_server_refuses() -> None:
    nx = decision(world(), "user@nowhere.example")
    assert (nx.prediction.status, nx.prediction.dsn) == ("bounced", "5.4.4")
    refused = decision(world(servers={}))
    p = refused.prediction
    assert (p.status, p.dsn, p.relays) == ("deferred", "4.4.1", ("none",))
    assert p.reason is not None and p.reason.endswith("Connection refused")


def test_a_dns_fault_is_not_guessed() -> None:
    d = decision(world(dns={"example.com": {"MX": "10 mx.example.com", "fault": "servfail"},
                            "mx.example.com": {"A": "auto"}}))  # fmt: skip
    assert not d.prediction.certain and d.prediction.status is None
    assert "DNS fault" in d.prediction.caveats[0]


def test_a_content_filter_without_an_smtp_service_for_it_is_not_guessed() -> None:
    p = decision(world(main_cf={"content_filter": "smtp-amavis:[127.0.0.1]:10024"})).prediction
    assert not p.certain and p.status is None and "content_filter" in p.caveats[0]


AMAVIS = "smtp-amavis unix - - n - 2 smtp\n  -o smtp_data_done_timeout=1200\n"


def _filtered(**changes: Any) -> dict[str, Any]:
    """The base world with a plain-SMTP content filter on 127.0.0.1:10024 (amavisd-new) and its service."""
    data = world(**changes)
    data["servers"]["127.0.0.1"] = {"ports": [10024]}
    data["postfix"]["master.cf"] = AMAVIS + data["postfix"].get("master.cf", "")
    return data


def test_a_content_filter_is_the_next_hop_of_the_first_attempt() -> None:
    filtered = _filtered(main_cf={"content_filter": "smtp-amavis:[127.0.0.1]:10024"})
    d = decision(filtered)
    assert (d.route.transport, d.route.destination, d.route.port) == ("smtp-amavis", "[127.0.0.1]:10024", 10024)
    assert d.route.content_filter is not None and d.policy is not None and d.policy.keys == ("[127.0.0.1]:10024",)
    p = d.prediction
    assert (p.certain, p.status, p.dsn, p.tls, p.relays) == (True, "sent", "2.0.0", "none", ("127.0.0.1",))
    encrypt = decision(_filtered(main_cf={"content_filter": "smtp-amavis:[127.0.0.1]:10024",
                                          "smtp_tls_security_level": "encrypt"})).prediction  # fmt: skip
    assert (encrypt.status, encrypt.dsn, encrypt.tls) == ("deferred", "4.7.4", "none")
    assert encrypt.reason == "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"  # no port


def test_the_receiving_service_decides_whether_the_content_filter_applies() -> None:
    on_smtpd = "smtp inet n - - - - smtpd\n  -o content_filter=smtp-amavis:[127.0.0.1]:10024\n"
    data = _filtered(master_cf=on_smtpd)
    sendmail, smtp = decision(data), decision(data, via="smtp")
    assert sendmail.route.content_filter is None and sendmail.route.destination == "example.com"
    assert sendmail.prediction.certain and sendmail.prediction.relays == ("mx.example.com",)
    assert smtp.route.content_filter is not None and smtp.route.destination == "[127.0.0.1]:10024"
    assert smtp.prediction.tls == "none"
    cleared = decision(_filtered(main_cf={"content_filter": "smtp-amavis:[127.0.0.1]:10024"},
                                 master_cf="pickup unix n - - 60 1 pickup\n  -o content_filter=\n"))  # fmt: skip
    assert cleared.route.content_filter is None and cleared.prediction.certain
    assert "pickup" in cleared.route.note and "-o content_filter=" in cleared.route.note


def test_a_filter_service_option_overrides_main_cf_for_that_hop_only_and_the_last_o_wins() -> None:
    data = _filtered(main_cf={"content_filter": "smtp-amavis:[127.0.0.1]:10024", "smtp_tls_security_level": "encrypt"})
    data["postfix"]["master.cf"] = AMAVIS + "  -o smtp_tls_security_level=encrypt -o smtp_tls_security_level=may\n"
    d = decision(data)
    assert d.policy is not None and d.policy.level == "may" and d.prediction.status == "sent"
    assert "service smtp-amavis has -o smtp_tls_security_level=may" in d.policy.level_origin


def test_tables_that_may_rewrite_or_redirect_the_message_are_not_guessed() -> None:
    rewriting = world(main_cf={"virtual_alias_maps": "texthash:/etc/postfix/valias"})
    rewriting["postfix"]["maps"]["/etc/postfix/valias"] = "@example.com other@example.net\n"
    unrelated = world(main_cf={"virtual_alias_maps": "texthash:/etc/postfix/valias"})
    unrelated["postfix"]["maps"]["/etc/postfix/valias"] = "@example.org other@example.net\n"
    checks = world(main_cf={"header_checks": "regexp:/etc/postfix/header_checks"})
    checks["postfix"]["maps"]["/etc/postfix/header_checks"] = "/^Subject:/ REDIRECT x@example.net\n"
    access = world(main_cf={"smtpd_recipient_restrictions": "check_recipient_access texthash:/etc/postfix/a"})
    access["postfix"]["maps"]["/etc/postfix/a"] = "example.com FILTER smtp:[192.0.2.1]\n"
    assert "virtual_alias_maps" in decision(rewriting).prediction.caveats[0]
    assert decision(unrelated).prediction.certain
    assert "header_checks" in decision(checks).prediction.caveats[0]
    assert decision(access).prediction.certain  # smtpd's tables concern mail via smtp only
    assert "smtpd_recipient_restrictions" in decision(access, via="smtp").prediction.caveats[0]


def test_the_address_class_of_the_recipient_domain() -> None:
    local = decision(world(main_cf={"mydestination": "$myhostname, example.com"}))
    assert not local.prediction.certain and "local delivery" in local.prediction.caveats[0]
    relay = decision(world(main_cf={"relay_domains": "com"}, master_cf="relay unix - - n - - smtp\n"))
    assert relay.prediction.certain and relay.route.transport == "relay"  # a parent matches its subdomains
    assert "in relay_domains" in relay.route.origin
    dotted = decision(world(main_cf={"relay_domains": ".com", "mydestination": "example.org"}))
    assert dotted.route.transport == "relay"
    elsewhere = decision(world(main_cf={"relay_domains": "!example.com, com"}))
    assert elsewhere.route.transport == "smtp"
    mailboxes = world(main_cf={"virtual_mailbox_domains": "texthash:/etc/postfix/vd"})
    mailboxes["postfix"]["maps"]["/etc/postfix/vd"] = "example.com x\n"
    table = decision(mailboxes)
    assert not table.prediction.certain and "virtual_mailbox_domains" in table.prediction.caveats[0]
    regexp = world(main_cf={"virtual_mailbox_domains": "regexp:/etc/postfix/vd"})
    regexp["postfix"]["maps"]["/etc/postfix/vd"] = "/^example\\.org$/ x\n"
    pattern = decision(regexp)
    assert not pattern.prediction.certain and "regexp:/etc/postfix/vd" in pattern.prediction.caveats[0]
    listed = world(main_cf={"relay_domains": "/etc/postfix/relay"})
    listed["postfix"]["maps"]["/etc/postfix/relay"] = "# ours\nexample.org\n"
    files = decision(listed)
    assert files.prediction.certain and files.route.transport == "smtp"
