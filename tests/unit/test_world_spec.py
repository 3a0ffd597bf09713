"""The world spec's fault keys (docs/internal/world-spec.md): read from the contract's own example, written back
whole, and every bad value named by its key path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness.dns import DnsFault, Record
from harness.peer import DnsSpec, ServerSpec, WorldSpec, WorldSpecError
from harness.smtp import Delays, Replies, SniCertificate, TlsSettings

# The example of docs/internal/world-spec.md, verbatim: the host writes exactly this layout.
CONTRACT = """
{"version": 1,
 "dns": {"listen": "127.0.0.53", "port": 53,
         "records": [{"name": "fastmail.fm", "type": "MX", "value": "10 in1-smtp.messagingengine.com",
                      "ttl": 300, "dnssec": false}],
         "faults": [{"name": "example.com", "type": "MX", "fault": "servfail"}],
         "dnssec_probe": false, "names": ["fastmail.fm"]},
 "addresses": ["66.111.4.74", "2001:db8::1"],
 "servers": [{"host": "mx.example.com", "address": "192.0.2.10", "port": 25,
              "cert_chain": "tls/mx.pem", "key": "tls/mx.key",
              "sni": [{"name": "mx.example.com", "cert_chain": "tls/other.pem", "key": "tls/other.key"}],
              "starttls": true, "implicit_tls": false,
              "tls": {"min_version": null, "max_version": null, "ciphers": null, "seclevel": null,
                      "request_client_cert": false, "handshake": "ok"},
              "replies": {"greeting": null, "ehlo": null, "starttls": null, "mail": null,
                          "rcpt": {"default": null, "user@example.com": "550 5.1.1 no such user"},
                          "data": null, "eom": null},
              "delays": {"greeting": 0, "ehlo": 0, "starttls": 0, "mail": 0, "rcpt": 0, "data": 0, "eom": 0},
              "require_starttls": false, "auth": false}]}
"""


def contract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CONTRACT)
    return data


def test_the_contract_example_is_read(tmp_path: Path) -> None:
    spec = WorldSpec.from_json(CONTRACT)
    assert spec.dns.faults == (DnsFault("example.com", "MX", "servfail"),)
    assert spec.dns.dnssec_probe is False and spec.dns.records[0].dnssec is False
    (server,) = spec.servers
    assert server.sni == (SniCertificate("mx.example.com", "tls/other.pem", "tls/other.key"),)
    assert server.tls == TlsSettings() and server.delays == Delays()
    assert server.replies.reply("rcpt", address="USER@example.com") is not None
    assert server.replies.reply("rcpt", address="other@example.com") is None  # default null: the normal reply
    endpoint = server.endpoint(tmp_path)
    assert endpoint.sni[0].cert_chain_file == str(tmp_path / "tls/other.pem")
    assert endpoint.offers_starttls and not endpoint.implicit_tls


def test_the_contract_example_is_written_back_unchanged() -> None:
    assert WorldSpec.from_json(CONTRACT).to_dict() == contract()


def every_key_set() -> WorldSpec:
    return WorldSpec(
        dns=DnsSpec(
            "127.0.0.53",
            53,
            (Record("signed.example", "A", "192.0.2.7", dnssec=True),),
            (DnsFault("a.example", "*", "timeout"), DnsFault("b.example", "TLSA", "nxdomain")),
            dnssec_probe=True,
        ),
        addresses=("192.0.2.10",),
        servers=(
            ServerSpec(
                "mx.example.com",
                "192.0.2.10",
                465,
                "tls/mx.pem",
                "tls/mx.key",
                sni=(SniCertificate("Other.Example.", "tls/o.pem", "tls/o.key"),),
                starttls=False,
                implicit_tls=True,
                tls=TlsSettings("TLSv1", "TLSv1.2", "AES128-SHA", 0, request_client_cert=True, handshake="abort"),
                replies=Replies.from_dict(
                    {
                        "greeting": "220-a\n220 b",
                        "rcpt": {"default": "drop", "x@y.example": "550 no"},
                        "eom": "451 later",
                    }
                ),
                delays=Delays(greeting=1.5, rcpt=2),
                require_starttls=True,
                auth=True,
            ),
        ),
    )


def test_every_fault_key_round_trips_through_json() -> None:
    spec = every_key_set()
    assert WorldSpec.from_json(spec.to_json()) == spec
    server = spec.to_dict()["servers"][0]
    assert server["sni"] == [{"name": "other.example", "cert_chain": "tls/o.pem", "key": "tls/o.key"}]
    assert server["replies"]["rcpt"] == {"default": "drop", "x@y.example": "550 no"}
    assert server["delays"]["rcpt"] == 2.0


def changed(path: str, value: Any) -> dict[str, Any]:
    """The contract with the value at a dotted path (list indexes as numbers) replaced; ``DELETE`` removes it."""
    data = copy.deepcopy(contract())
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value == "DELETE":
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "version 2 is not supported"),
        ("version", True, "version True is not supported"),
        ("surprise", 1, r"the document: unknown key 'surprise'"),
        (
            "dns.faults",
            [{"name": "x.example", "type": "A", "fault": "slow"}],
            r"dns\.faults\[0\]: .*unknown fault 'slow'",
        ),
        ("dns.faults", [{"name": "x.example", "type": "BOGUS", "fault": "timeout"}], "unknown record type 'BOGUS'"),
        ("dns.faults", [{"name": "x.example", "fault": "timeout"}], r"dns\.faults\[0\]: missing key 'type'"),
        ("dns.faults", [{"name": "x.example", "type": "A", "fault": "timeout", "ttl": 1}], "unknown key 'ttl'"),
        ("dns.dnssec_probe", "yes", r"dns\.dnssec_probe: 'yes' is not true or false"),
        ("dns.records.0.dnssec", 1, r"dns\.records\[0\]\.dnssec: 1 is not true or false"),
        ("dns.records.0.dnsec", True, r"unknown key 'dnsec' \(did you mean 'dnssec'\?\)"),
        (
            "servers.0.implict_tls",
            True,
            r"servers\.mx\.example\.com: unknown key 'implict_tls' \(did you mean 'implicit_tls'\?\)",
        ),
        ("servers.0.auth", "no", r"servers\.mx\.example\.com\.auth: 'no' is not true or false"),
        (
            "servers.0.replies.helo",
            "250 hi",
            r"servers\.mx\.example\.com\.replies: 'helo' is not a stage \(did you mean 'ehlo'\?\)",
        ),
        ("servers.0.delays.quit", 1, r"servers\.mx\.example\.com\.delays: 'quit' is not a stage"),
        ("servers.0.delays.rcpt", -1, r"servers\.mx\.example\.com\.delays\.rcpt: -1 is not a number of seconds"),
        ("servers.0.replies.mail", "hello", r"servers\.mx\.example\.com\.replies\.mail: reply line 'hello'"),
        ("servers.0.replies.rcpt", "550 no", r"replies\.rcpt: '550 no' is not a mapping"),
        ("servers.0.tls.min_version", "SSLv3", r"servers\.mx\.example\.com\.tls\.min_version: 'SSLv3' is not a TLS"),
        ("servers.0.tls", {"min_version": "TLSv1.3", "max_version": "TLSv1.2"}, "TLSv1.3 is above max_version TLSv1.2"),
        ("servers.0.tls.handshake", "stall", r"tls\.handshake: 'stall' is not a handshake mode"),
        ("servers.0.tls.seclevel", "0", "not an OpenSSL security level"),
        ("servers.0.tls.sni", [], r"tls: 'sni' is not a TLS setting"),
        (
            "servers.0.sni",
            [{"name": "x.example", "cert_chain": "a.pem"}],
            r"servers\.mx\.example\.com\.sni\[0\]: missing key 'key'\. Hint:",
        ),
        ("servers.0.sni", [{"name": "a.example", "cert_chain": "a", "key": "b"}] * 2, "given twice"),
        ("servers.0.cert_chain", "DELETE", "cert_chain and key go together"),
    ],
)
def test_bad_fault_keys_are_rejected_with_their_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(WorldSpecError, match=message):
        WorldSpec.from_dict(changed(path, value))


@pytest.mark.parametrize("key", ["sni", "implicit_tls", "tls"])
def test_tls_faults_without_a_certificate_are_rejected(key: str) -> None:
    data = changed("servers.0.cert_chain", None)
    data["servers"][0]["key"] = None
    values = {
        "sni": [{"name": "a.example", "cert_chain": "a", "key": "b"}],
        "implicit_tls": True,
        "tls": {"seclevel": 0},
    }
    data["servers"][0]["sni"] = []
    data["servers"][0]["tls"] = None
    data["servers"][0][key] = values[key]
    with pytest.raises(WorldSpecError, match=rf"servers\.mx\.example\.com: {key} need a certificate\. Hint:"):
        WorldSpec.from_dict(data)


def test_null_fault_keys_mean_the_plain_behaviour() -> None:
    data = contract()
    server = data["servers"][0]
    for key in ("tls", "replies", "delays", "sni", "starttls", "implicit_tls", "require_starttls", "auth"):
        server[key] = None
    (parsed,) = WorldSpec.from_dict(data).servers
    assert parsed == ServerSpec("mx.example.com", "192.0.2.10", 25, "tls/mx.pem", "tls/mx.key")
