"""DNS faults, the AD bit, Postfix's DNSSEC probe and several records of one type, checked with real queries over UDP
and TCP on loopback."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from harness._world_spec import WorldSpec
from harness.dns import DnsFault, DnsServer, Record, Zone, ZoneError
from harness.scenario import scenario_from_dict
from harness.world import build_world

RECORDS = [
    Record("broken.example", "MX", "10 mx.broken.example"),
    Record("broken.example", "A", "192.0.2.1"),
    Record("broken.example", "TXT", "v=spf1 -all"),
    Record("refusing.example", "A", "192.0.2.2"),
    Record("gone.example", "A", "192.0.2.3"),
    Record("slow.example", "A", "192.0.2.4"),
    Record("slow.example", "AAAA", "2001:db8::4"),
    Record("alias.example", "CNAME", "target.example"),
    Record("target.example", "A", "192.0.2.5"),
    Record("alias-gone.example", "CNAME", "gone.example"),
    Record("mixed.example", "A", "192.0.2.6"),
    Record("mixed.example", "MX", "10 mx.mixed.example"),
    Record("signed.example", "A", "192.0.2.7", dnssec=True),
    Record("signed-alias.example", "CNAME", "signed.example", dnssec=True),
    Record("half-signed.example", "CNAME", "signed.example"),
]
FAULTS = [
    DnsFault("broken.example", "MX", "servfail"),
    DnsFault("refusing.example", "*", "refused"),
    DnsFault("gone.example", "A", "nxdomain"),
    DnsFault("slow.example", "A", "timeout"),
    DnsFault("target.example", "A", "servfail"),
    DnsFault("mixed.example", "*", "servfail"),
    DnsFault("mixed.example", "A", "nxdomain"),
]
CLIENT_TIMEOUT_S = 0.5

both = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DnsServer, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    zone = Zone(RECORDS, faults=FAULTS)
    with DnsServer(zone, "127.0.0.1", 0, on_query=events.append) as server:
        yield server, events


@pytest.fixture
def server(served: tuple[DnsServer, list[dict[str, Any]]]) -> DnsServer:
    return served[0]


@pytest.fixture
def events(served: tuple[DnsServer, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    served[1].clear()
    return served[1]


def ask(server: DnsServer, name: str, qtype: str = "A", *, tcp: bool = False) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    return DNSRecord.parse(query.send("127.0.0.1", server.port, tcp=tcp, timeout=2.0))


def answers(reply: DNSRecord) -> list[tuple[str, str]]:
    return [(QTYPE[rr.rtype], rr.rdata.toZone()) for rr in reply.rr]


@both
def test_servfail_on_one_type_leaves_the_other_types_answered(server: DnsServer, tcp: bool) -> None:
    mx = ask(server, "broken.example", "MX", tcp=tcp)
    assert (mx.header.rcode, mx.rr) == (RCODE.SERVFAIL, [])
    assert answers(ask(server, "broken.example", "A", tcp=tcp)) == [("A", "192.0.2.1")]
    assert ask(server, "broken.example", "TXT", tcp=tcp).header.rcode == RCODE.NOERROR


@both
def test_refused_for_every_type(server: DnsServer, tcp: bool) -> None:
    for qtype in ("A", "MX", "TLSA"):
        reply = ask(server, "refusing.example", qtype, tcp=tcp)
        assert (reply.header.rcode, reply.rr) == (RCODE.REFUSED, [])


def test_nxdomain_even_though_the_record_exists(server: DnsServer) -> None:
    reply = ask(server, "gone.example", "A")
    assert (reply.header.rcode, reply.rr) == (RCODE.NXDOMAIN, [])
    assert ask(server, "gone.example", "AAAA").header.rcode == RCODE.NOERROR  # control: NODATA, the name exists


def test_timeout_sends_no_udp_reply_and_other_types_still_answer(server: DnsServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT_S)
        sock.sendto(DNSRecord.question("slow.example", "A").pack(), ("127.0.0.1", server.port))
        with pytest.raises(TimeoutError):
            sock.recvfrom(4096)
        sock.sendto(DNSRecord.question("slow.example", "AAAA").pack(), ("127.0.0.1", server.port))
        reply = DNSRecord.parse(sock.recvfrom(4096)[0])
    assert answers(reply) == [("AAAA", "2001:db8::4")]


def test_timeout_over_tcp_closes_the_connection_without_a_reply(server: DnsServer) -> None:
    packed = DNSRecord.question("slow.example", "A").pack()
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S) as sock:
        start = time.monotonic()
        sock.sendall(struct.pack("!H", len(packed)) + packed)
        assert sock.recv(4096) == b""  # EOF, not a length-prefixed reply
        assert time.monotonic() - start < CLIENT_TIMEOUT_S  # closed at once, not left to glibc's (absent) timeout
    assert answers(ask(server, "slow.example", "AAAA", tcp=True)) == [("AAAA", "2001:db8::4")]


def test_tcp_queries_before_a_timeout_on_the_same_connection_are_answered(server: DnsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT_S) as sock:
        for name, qtype in (("slow.example", "AAAA"), ("slow.example", "A")):
            packed = DNSRecord.question(name, qtype).pack()
            sock.sendall(struct.pack("!H", len(packed)) + packed)
        stream = sock.makefile("rb")
        (length,) = struct.unpack("!H", stream.read(2))
        assert answers(DNSRecord.parse(stream.read(length))) == [("AAAA", "2001:db8::4")]
        assert stream.read(2) == b""
        stream.close()


def test_a_fault_on_a_cname_target_fails_the_alias_too(server: DnsServer) -> None:
    reply = ask(server, "alias.example", "A")
    assert (reply.header.rcode, reply.rr) == (RCODE.SERVFAIL, [])  # a resolver chasing the CNAME gets SERVFAIL
    nx = ask(server, "alias-gone.example", "A")
    assert nx.header.rcode == RCODE.NXDOMAIN
    assert answers(nx) == [("CNAME", "gone.example.")]  # RFC 6604: the CNAME, then the last name's rcode
    assert answers(ask(server, "alias.example", "CNAME")) == [("CNAME", "target.example.")]  # control


def test_a_fault_for_the_exact_type_wins_over_a_star_fault(server: DnsServer) -> None:
    assert ask(server, "mixed.example", "A").header.rcode == RCODE.NXDOMAIN
    assert ask(server, "mixed.example", "MX").header.rcode == RCODE.SERVFAIL


@both
def test_faults_are_reported_in_dns_events(server: DnsServer, events: list[dict[str, Any]], tcp: bool) -> None:
    ask(server, "broken.example", "MX", tcp=tcp)
    ask(server, "broken.example", "A", tcp=tcp)
    servfail, ok = events
    assert (servfail["rcode"], servfail["fault"], servfail["answers"]) == ("SERVFAIL", "servfail", [])
    assert (ok["rcode"], ok["fault"]) == ("NOERROR", None)


def test_a_timeout_is_reported_with_no_rcode(server: DnsServer, events: list[dict[str, Any]]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(DNSRecord.question("slow.example", "A").pack(), ("127.0.0.1", server.port))
    deadline = time.monotonic() + 2.0
    while not events and time.monotonic() < deadline:
        time.sleep(0.01)
    (event,) = events
    assert (event["qname"], event["rcode"], event["fault"], event["ad"]) == ("slow.example.", None, "timeout", False)


def test_ad_bit_is_set_only_when_every_record_of_the_answer_is_dnssec(server: DnsServer) -> None:
    assert ask(server, "signed.example", "A").header.ad == 1
    assert ask(server, "signed-alias.example", "A").header.ad == 1  # the CNAME chain counts, all signed
    half = ask(server, "half-signed.example", "A")
    assert answers(half)[-1] == ("A", "192.0.2.7") and half.header.ad == 0


@pytest.mark.parametrize(("name", "qtype"), [("signed.example", "AAAA"), ("unsigned.signed.example", "A")])
def test_negative_answers_have_ad_clear_even_at_a_signed_name(server: DnsServer, name: str, qtype: str) -> None:
    reply = ask(server, name, qtype)
    assert reply.rr == [] and reply.header.ad == 0


@pytest.mark.parametrize("probe", [True, False])
def test_dnssec_probe_answers_root_ns_with_ad(probe: bool) -> None:
    with DnsServer(Zone(RECORDS, dnssec_probe=probe), "127.0.0.1", 0) as server:
        reply = ask(server, ".", "NS")
        assert (reply.header.rcode, reply.rr, reply.header.ad) == (RCODE.NOERROR, [], int(probe))
        assert ask(server, "signed.example", "A").header.ad == 1  # the probe changes nothing else
        assert ask(server, ".", "SOA").header.ad == 0


def test_a_fault_on_the_probe_question_wins() -> None:
    zone = Zone([], faults=[DnsFault(".", "NS", "servfail")], dnssec_probe=True)
    assert zone.answer(".", "NS").rcode == "SERVFAIL"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (("x.example", "MX", "slow"), "unknown fault 'slow'.*Hint: use one of servfail, refused, nxdomain, timeout"),
        (("x.example", "BOGUS", "servfail"), "unknown record type 'BOGUS'.*Hint:"),
        (("bad..example", "A", "servfail"), "bad domain name"),
    ],
)
def test_malformed_faults_are_rejected(fault: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ZoneError, match=message):
        DnsFault(*fault)


def test_two_faults_for_one_question_are_rejected() -> None:
    with pytest.raises(ZoneError, match=r"x\.example A has two faults, servfail and timeout"):
        Zone([], faults=[DnsFault("X.example.", "a", "servfail"), DnsFault("x.example", "A", "timeout")])


def test_fault_names_and_types_are_normalised() -> None:
    assert DnsFault("Broken.Example.", "mx", "servfail") == DnsFault("broken.example", "MX", "servfail")
    assert Zone([], faults=[DnsFault("x.example", "NS", "refused")]).answer("X.EXAMPLE", "ns").rcode == "REFUSED"


def test_a_listed_name_without_records_is_nodata_not_nxdomain() -> None:
    # Format v1: "a listed name without the asked type gets NODATA", also when it owns no record at all.
    zone = Zone([], names=["noaddr.example.net"])
    listed = zone.answer("noaddr.example.net", "A")
    assert (listed.rcode, listed.records) == ("NOERROR", ())
    assert zone.answer("other.example.net", "A").rcode == "NXDOMAIN"  # negative control: not listed


# --- several records of one type: MX preference ties, several A and AAAA per host -------------------------------

# A scenario's layout, read the way the pod reads it: scenario → world → world.json → the peer's zone.
SEVERAL: dict[str, Any] = {
    "name": "several-records",
    "dns": {
        "example.com": {"MX": ["10 a.example.net", "10 b.example.net", "20 c.example.net"]},
        "a.example.net": {"A": ["192.0.2.60", "192.0.2.61", "192.0.2.62"], "AAAA": ["2001:db8::60", "2001:db8::61"]},
        "b.example.net": {"A": "auto"},
        "c.example.net": {"AAAA": ["2001:db8::70", "2001:db8::71"]},
    },
    "servers": {"b.example.net": {}},
    "cases": [{"name": "sends", "send": [{"to": "user@example.com"}]}],
}


@pytest.fixture(scope="module")
def several() -> Iterator[DnsServer]:
    world = build_world(scenario_from_dict(SEVERAL))
    spec = WorldSpec.from_json(world.peer_files()["/world/world.json"].decode())
    with DnsServer(spec.dns.zone(), "127.0.0.1", 0) as server:
        yield server


@both
def test_an_mx_preference_tie_is_answered_in_full(several: DnsServer, tcp: bool) -> None:
    reply = ask(several, "example.com", "MX", tcp=tcp)
    assert (reply.header.rcode, reply.header.tc) == (RCODE.NOERROR, 0)
    assert answers(reply) == [("MX", "10 a.example.net."), ("MX", "10 b.example.net."), ("MX", "20 c.example.net.")]


@both
def test_several_a_and_several_aaaa_records_of_one_host_are_answered_in_full_and_in_order(
    several: DnsServer, tcp: bool
) -> None:
    # In the scenario's order: with smtp_randomize_addresses = no Postfix tries them so (dns-layouts.yaml).
    a = ask(several, "a.example.net", "A", tcp=tcp)
    assert answers(a) == [("A", "192.0.2.60"), ("A", "192.0.2.61"), ("A", "192.0.2.62")]
    aaaa = ask(several, "a.example.net", "AAAA", tcp=tcp)
    assert answers(aaaa) == [("AAAA", "2001:db8::60"), ("AAAA", "2001:db8::61")]
    assert {reply.header.rcode for reply in (a, aaaa)} == {RCODE.NOERROR}


def test_an_ipv6_only_host_of_the_tie_has_two_aaaa_and_no_a(several: DnsServer) -> None:
    assert answers(ask(several, "c.example.net", "AAAA")) == [("AAAA", "2001:db8::70"), ("AAAA", "2001:db8::71")]
    nodata = ask(several, "c.example.net", "A")
    assert (nodata.header.rcode, nodata.rr) == (RCODE.NOERROR, [])  # control: NODATA, not a lost record
    (auto,) = answers(ask(several, "b.example.net", "A"))  # control: one record where one is given
    assert auto[1] not in {"192.0.2.60", "192.0.2.61", "192.0.2.62"}
