"""The fake DNS: zone semantics checked with real queries over UDP and TCP on loopback."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from harness.dns import DnsServer, DnsServerError, Record, Zone, ZoneError

TLSA_HEX = "a1" * 32

RECORDS = [
    Record("fastmail.fm", "MX", "10 in1-smtp.messagingengine.com"),
    Record("fastmail.fm", "TXT", "v=spf1 include:spf.messagingengine.com ?all"),
    Record("in1-smtp.messagingengine.com", "A", "66.111.4.74"),
    Record("in1-smtp.messagingengine.com", "AAAA", "2001:db8::1"),
    Record("_25._tcp.in1-smtp.messagingengine.com", "TLSA", f"3 1 1 {TLSA_HEX}"),
    Record("alias.example", "CNAME", "in1-smtp.messagingengine.com"),
    Record("hop1.example", "CNAME", "hop2.example"),
    Record("hop2.example", "CNAME", "in1-smtp.messagingengine.com"),
    Record("loop-a.example", "CNAME", "loop-b.example"),
    Record("loop-b.example", "CNAME", "loop-a.example"),
    Record("dangling.example", "CNAME", "nowhere.example"),
    Record("signed.example", "A", "192.0.2.7", dnssec=True),
    Record("signed-alias.example", "CNAME", "signed.example", dnssec=True),
    Record("half-signed.example", "CNAME", "signed.example"),
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DnsServer, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    with DnsServer(Zone(RECORDS), "127.0.0.1", 0, on_query=events.append) as server:
        yield server, events


@pytest.fixture
def server(served: tuple[DnsServer, list[dict[str, Any]]]) -> DnsServer:
    return served[0]


@pytest.fixture
def events(served: tuple[DnsServer, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    served[1].clear()
    return served[1]


def ask(server: DnsServer, name: str, qtype: str = "A", *, tcp: bool = False, ad: bool = False) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    query.header.ad = int(ad)
    return DNSRecord.parse(query.send("127.0.0.1", server.port, tcp=tcp, timeout=2.0))


def rdatas(reply: DNSRecord, qtype: str) -> list[str]:
    return [rr.rdata.toZone() for rr in reply.rr if rr.rtype == getattr(QTYPE, qtype)]


both = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


@both
def test_mx_query_answers_the_mx_record_authoritatively(server: DnsServer, tcp: bool) -> None:
    reply = ask(server, "fastmail.fm", "MX", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1 and reply.header.ra == 1
    assert rdatas(reply, "MX") == ["10 in1-smtp.messagingengine.com."]


@both
def test_mx_query_for_unknown_domain_is_nxdomain(server: DnsServer, tcp: bool) -> None:
    reply = ask(server, "gmail.com", "MX", tcp=tcp)
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert reply.rr == []


@both
def test_a_and_aaaa_queries_answer_their_addresses(server: DnsServer, tcp: bool) -> None:
    assert rdatas(ask(server, "in1-smtp.messagingengine.com", "A", tcp=tcp), "A") == ["66.111.4.74"]
    assert rdatas(ask(server, "in1-smtp.messagingengine.com", "AAAA", tcp=tcp), "AAAA") == ["2001:db8::1"]


def test_txt_and_tlsa_queries_answer_their_data(server: DnsServer) -> None:
    assert rdatas(ask(server, "fastmail.fm", "TXT"), "TXT") == ['"v=spf1 include:spf.messagingengine.com ?all"']
    tlsa = rdatas(ask(server, "_25._tcp.in1-smtp.messagingengine.com", "TLSA"), "TLSA")
    assert tlsa == [f"3 1 1 {TLSA_HEX.upper()}"]


def test_known_name_without_the_type_is_nodata(server: DnsServer) -> None:
    reply = ask(server, "fastmail.fm", "A")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


def test_unknown_name_is_nxdomain_not_nodata(server: DnsServer) -> None:
    assert ask(server, "in2-smtp.messagingengine.com", "A").header.rcode == RCODE.NXDOMAIN


@pytest.mark.parametrize("name", ["messagingengine.com", "_tcp.in1-smtp.messagingengine.com", "com", "."])
def test_empty_non_terminal_and_root_are_nodata(server: DnsServer, name: str) -> None:
    reply = ask(server, name, "NS" if name == "." else "A")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


@both
def test_cname_is_chased_to_the_target_records(server: DnsServer, tcp: bool) -> None:
    reply = ask(server, "alias.example", "A", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert [(str(rr.rname), QTYPE[rr.rtype], rr.rdata.toZone()) for rr in reply.rr] == [
        ("alias.example.", "CNAME", "in1-smtp.messagingengine.com."),
        ("in1-smtp.messagingengine.com.", "A", "66.111.4.74"),
    ]


def test_cname_chain_is_followed_hop_by_hop(server: DnsServer) -> None:
    reply = ask(server, "hop1.example", "AAAA")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME", "CNAME", "AAAA"]
    assert rdatas(reply, "AAAA") == ["2001:db8::1"]


def test_cname_query_returns_the_cname_only(server: DnsServer) -> None:
    reply = ask(server, "alias.example", "CNAME")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["CNAME"]


def test_cname_loop_ends_instead_of_hanging(server: DnsServer) -> None:
    reply = ask(server, "loop-a.example", "A")
    assert reply.header.rcode == RCODE.NOERROR
    assert [rr.rdata.toZone() for rr in reply.rr] == ["loop-b.example.", "loop-a.example."]


def test_dangling_cname_is_nxdomain_with_the_cname(server: DnsServer) -> None:
    reply = ask(server, "dangling.example", "A")
    assert reply.header.rcode == RCODE.NXDOMAIN  # RFC 6604: the rcode of the last name in the chain
    assert rdatas(reply, "CNAME") == ["nowhere.example."]


@pytest.mark.parametrize("name", ["FastMail.FM", "fastmail.fm.", "FASTMAIL.FM."])
def test_names_match_case_insensitively_with_or_without_trailing_dot(server: DnsServer, name: str) -> None:
    assert rdatas(ask(server, name, "MX"), "MX") == ["10 in1-smtp.messagingengine.com."]


def test_record_names_are_normalised() -> None:
    assert Record("MX1.Example.COM.", "mx", "10 a.example") == Record("mx1.example.com", "MX", "10 a.example")
    assert Record("mx1.example.com", "A", "192.0.2.1") != Record("mx2.example.com", "A", "192.0.2.1")


@both
def test_ad_bit_is_clear_even_when_the_query_sets_it(server: DnsServer, tcp: bool) -> None:
    reply = ask(server, "fastmail.fm", "MX", tcp=tcp, ad=True)
    assert rdatas(reply, "MX")  # a real answer, not an error
    assert reply.header.ad == 0


def test_ad_bit_is_set_when_every_answer_rrset_is_flagged_dnssec(server: DnsServer) -> None:
    assert ask(server, "signed.example", "A").header.ad == 1
    assert ask(server, "signed-alias.example", "A").header.ad == 1


def test_ad_bit_is_clear_when_one_rrset_of_the_answer_is_not_flagged(server: DnsServer) -> None:
    reply = ask(server, "half-signed.example", "A", ad=True)
    assert rdatas(reply, "A") == ["192.0.2.7"]
    assert reply.header.ad == 0


def test_edns_query_gets_an_opt_record_back(server: DnsServer) -> None:
    query = DNSRecord.question("fastmail.fm", "MX")
    query.add_ar(EDNS0(udp_len=1232, flags="do"))
    reply = DNSRecord.parse(query.send("127.0.0.1", server.port, timeout=2.0))
    assert [rr.rtype for rr in reply.ar] == [QTYPE.OPT]
    assert ask(server, "fastmail.fm", "MX").ar == []  # control: no OPT asked, none given


@both
def test_each_query_is_reported_as_a_dns_event(server: DnsServer, events: list[dict[str, Any]], tcp: bool) -> None:
    ask(server, "FastMail.fm", "MX", tcp=tcp, ad=True)
    ask(server, "nope.example", "A", tcp=tcp)
    mx, nx = events
    assert mx["event"] == "dns" and isinstance(mx["t"], float)
    assert mx["proto"] == ("tcp" if tcp else "udp")
    host, port = mx["client"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert (mx["qname"], mx["qtype"], mx["rcode"], mx["ad"]) == ("FastMail.fm.", "MX", "NOERROR", False)
    assert mx["answers"] == ["fastmail.fm. 300 IN MX 10 in1-smtp.messagingengine.com."]
    assert (nx["rcode"], nx["answers"]) == ("NXDOMAIN", [])


def test_several_queries_on_one_tcp_connection_are_all_answered(server: DnsServer) -> None:
    queries = [DNSRecord.question("in1-smtp.messagingengine.com", t) for t in ("A", "AAAA")]
    with socket.create_connection(("127.0.0.1", server.port), timeout=2.0) as sock:
        for query in queries:  # glibc pipelines its A and AAAA queries like this (RFC 7766 §6.2.1)
            packed = query.pack()
            sock.sendall(struct.pack("!H", len(packed)) + packed)
        stream = sock.makefile("rb")
        replies = []
        for _ in queries:
            (length,) = struct.unpack("!H", stream.read(2))
            replies.append(DNSRecord.parse(stream.read(length)))
        stream.close()
    assert [rdatas(r, t) for r, t in zip(replies, ("A", "AAAA"), strict=True)] == [
        ["66.111.4.74"],
        ["2001:db8::1"],
    ]


def test_port_zero_binds_udp_and_tcp_on_the_same_free_port() -> None:
    with DnsServer(Zone(RECORDS), "127.0.0.1", 0) as server:
        assert server.port > 0
        assert rdatas(ask(server, "fastmail.fm", "MX"), "MX") == rdatas(
            ask(server, "fastmail.fm", "MX", tcp=True), "MX"
        )


def test_a_port_already_served_fails_to_start_with_a_hint(server: DnsServer) -> None:
    second = DnsServer(Zone(RECORDS), "127.0.0.1", server.port)
    with pytest.raises(DnsServerError, match=rf"127\.0\.0\.1:{server.port}/tcp: .*Hint:"):
        with second:
            pass


def test_a_failing_callback_does_not_stop_answers_and_is_raised_at_stop() -> None:
    def broken(_event: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    server = DnsServer(Zone(RECORDS), "127.0.0.1", 0, on_query=broken)
    server.start()
    try:
        assert rdatas(ask(server, "fastmail.fm", "MX"), "MX")
    finally:
        with pytest.raises(DnsServerError, match="boom"):
            server.stop()


@pytest.mark.parametrize(
    ("name", "rtype", "value"),
    [
        ("mx.example", "A", "300.1.1.1"),
        ("mx.example", "AAAA", "192.0.2.1"),
        ("mx.example", "MX", "mx.example"),
        ("mx.example", "TLSA", "3 1 1 zz"),
        ("mx.example", "SRV", "0 5 25 mx.example"),
        ("bad..example", "A", "192.0.2.1"),
        ("x" * 64 + ".example", "A", "192.0.2.1"),
    ],
)
def test_malformed_records_are_rejected(name: str, rtype: str, value: str) -> None:
    with pytest.raises(ZoneError, match="Hint:"):
        Record(name, rtype, value)


def test_long_txt_is_split_into_255_octet_strings() -> None:
    record = Record("long.example", "TXT", "a" * 600)
    assert [len(s) for s in record.rdata().data] == [255, 255, 90]


@pytest.mark.parametrize(
    "other",
    [Record("alias.example", "A", "192.0.2.1"), Record("alias.example", "CNAME", "elsewhere.example")],
)
def test_cname_with_other_data_at_the_same_name_is_rejected(other: Record) -> None:
    with pytest.raises(ZoneError, match=r"RFC 1034 §3\.6\.2"):
        Zone([Record("alias.example", "CNAME", "in1-smtp.messagingengine.com"), other])


def test_zone_model_answers_without_a_server() -> None:
    zone = Zone(RECORDS)
    answer = zone.answer("FASTMAIL.FM.", "mx")
    assert (answer.rcode, [r.value for r in answer.records], answer.ad) == (
        "NOERROR",
        ["10 in1-smtp.messagingengine.com"],
        False,
    )
    assert zone.answer("fastmail.fm", "ANY").records == (RECORDS[0], RECORDS[1])
    assert zone.exists("messagingengine.com") and not zone.exists("gmail.com")
