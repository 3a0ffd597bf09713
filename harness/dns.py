"""The fake DNS of the pod: a zone model and an authoritative dnslib server on UDP and TCP.

Postfix's resolver (``/etc/resolv.conf`` → ``nameserver 127.0.0.53``) asks this server for everything. It
answers like an authoritative server for the whole fake world: records that exist are returned, a CNAME is
chased inside the zone, names that exist without the asked type get NODATA, and every other name NXDOMAIN, so
nothing ever leaks to the real DNS.

Typical use::

    zone = Zone([Record("fastmail.fm", "MX", "10 in1-smtp.messagingengine.com"),
                 Record("in1-smtp.messagingengine.com", "A", "66.111.4.74")])
    with DnsServer(zone, "127.0.0.1", 0, on_query=events.append) as server:
        ...  # query 127.0.0.1:server.port over UDP or TCP

This module imports only the standard library, dnslib and :mod:`harness.errors`: it runs inside the peer
container.
"""

from __future__ import annotations

__all__ = [
    "RECORD_TYPES",
    "Answer",
    "DnsServer",
    "DnsServerError",
    "QueryCallback",
    "Record",
    "Zone",
    "ZoneError",
    "ZoneResolver",
]

import errno
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from dnslib import CLASS, EDNS0, QTYPE, RCODE, RDMAP, RR, TXT, DNSError  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer  # type: ignore[import-untyped]

from harness.errors import HarnessError

RECORD_TYPES = frozenset({"MX", "A", "AAAA", "CNAME", "TXT", "TLSA"})
"""Record types a fake world can publish."""

QueryCallback = Callable[[dict[str, Any]], None]
"""Receives one ``event="dns"`` dict per answered query (see :class:`ZoneResolver`)."""

_TCP_IDLE_TIMEOUT_S = 10.0  # RFC 7766 §6.2.3: servers close idle connections; the stub resolver reconnects.


class ZoneError(HarnessError):
    """A record or a set of records cannot form a zone (bad name, type, value or a CNAME conflict)."""


class DnsServerError(HarnessError):
    """The fake DNS server could not listen, or a query callback raised while it served."""


def _normalize_name(name: str) -> str:
    """Lower-case, strip the trailing dot and check RFC 1035 §2.3.4 limits. The root is ``"."``."""
    folded = name.strip().lower()
    if folded in ("", "."):
        return "."
    folded = folded.removesuffix(".")
    labels = folded.split(".")
    if any(not label for label in labels) or any(len(label) > 63 for label in labels) or len(folded) > 253:
        raise ZoneError(
            f"bad domain name {name!r}: empty label, label over 63 octets or name over 253 octets. "
            "Hint: write a name such as 'mx1.example.com' (trailing dot optional)."
        )
    return folded


def _ancestors(name: str) -> Iterable[str]:
    """``a.b.c`` → ``b.c``, ``c``, ``.``: the empty non-terminals above a name (RFC 8020 §2)."""
    labels = name.split(".") if name != "." else []
    for i in range(1, len(labels)):
        yield ".".join(labels[i:])
    yield "."


@dataclass(frozen=True)
class Record:
    """One resource record of the fake world.

    Attributes:
        name: owner name, case-insensitive, trailing dot optional; stored lower-case without the dot.
        rtype: one of :data:`RECORD_TYPES`, case-insensitive; stored upper-case.
        value: presentation form: A ``192.0.2.1``, AAAA ``2001:db8::1``, MX ``10 mx1.example.com``,
            CNAME ``target.example.com``, TXT the text itself (no quotes; split into 255-octet strings),
            TLSA ``3 1 1 <hex>`` (usage selector matching-type data, RFC 6698 §2.2).
        ttl: time to live in seconds.
        dnssec: hook for DNSSEC scenarios: when every record of every RRset in an answer has it, the reply
            carries AD=1 (RFC 4035 §3.2.3), which is what Postfix's DANE support trusts. Nothing is signed.

    Raises:
        ZoneError: the name, type, value or TTL is malformed.
    """

    name: str
    rtype: str
    value: str
    ttl: int = 300
    dnssec: bool = False

    def __post_init__(self) -> None:
        # Normalised at construction so that equal records compare equal and the zone indexes one spelling.
        object.__setattr__(self, "name", _normalize_name(self.name))
        object.__setattr__(self, "rtype", self.rtype.strip().upper())
        if self.rtype not in RECORD_TYPES:
            raise ZoneError(
                f"record {self.name}: unsupported type {self.rtype!r}. "
                f"Hint: use one of {', '.join(sorted(RECORD_TYPES))}."
            )
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ZoneError(f"record {self.name} {self.rtype}: ttl {self.ttl} outside 0..2147483647 seconds.")
        self.rdata()  # parse once so that a bad value fails here, not at query time in the peer

    def rdata(self) -> Any:
        """Return the dnslib RDATA object for :attr:`value`.

        Raises:
            ZoneError: the value does not parse for the record type.
        """
        if self.rtype == "TXT":
            raw = self.value.encode()
            return TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
        try:
            if self.rtype == "A":
                ipaddress.IPv4Address(self.value.strip())
            elif self.rtype == "AAAA":
                ipaddress.IPv6Address(self.value.strip())
            elif self.rtype == "TLSA":
                _usage, _selector, _mtype, data = self.value.split(maxsplit=3)
                bytes.fromhex(data.replace(" ", ""))
            return RDMAP[self.rtype].fromZone(self.value.split())
        except (ValueError, IndexError, TypeError, DNSError) as exc:
            raise ZoneError(
                f"record {self.name} {self.rtype}: cannot parse value {self.value!r}: {exc}. "
                f"Hint: {_VALUE_HINTS[self.rtype]}."
            ) from exc

    @property
    def target(self) -> str:
        """The normalised target host of a CNAME or MX record (empty for other types)."""
        if self.rtype == "CNAME":
            return _normalize_name(self.value)
        if self.rtype == "MX":
            return _normalize_name(self.value.split()[1])
        return ""

    def to_rr(self) -> Any:
        """Return this record as a dnslib ``RR``."""
        return RR(self.name, getattr(QTYPE, self.rtype), rdata=self.rdata(), ttl=self.ttl)


_VALUE_HINTS = {
    "A": "an IPv4 address such as '192.0.2.1'",
    "AAAA": "an IPv6 address such as '2001:db8::1'",
    "MX": "'<preference> <host>', e.g. '10 mx1.example.com'",
    "CNAME": "a host name such as 'target.example.com'",
    "TLSA": "'<usage> <selector> <matching type> <hex>', e.g. '3 1 1 0a1b…'",
}


@dataclass(frozen=True)
class Answer:
    """What the zone answers to one question.

    Attributes:
        rcode: ``"NOERROR"`` (records or NODATA) or ``"NXDOMAIN"``.
        records: answer section in order: the CNAME chain first, then the records of the final name.
        ad: the Authenticated Data bit: True only for a non-empty NOERROR answer whose records are all
            flagged ``dnssec``.
    """

    rcode: str
    records: tuple[Record, ...] = ()
    ad: bool = False


class Zone:
    """An authoritative view of every name in the fake world.

    Args:
        records: the world's records, in any order. Duplicates are kept once.

    Raises:
        ZoneError: a name has a CNAME together with other data, or two CNAMEs (RFC 1034 §3.6.2, RFC 2181
            §10.1).
    """

    def __init__(self, records: Iterable[Record]) -> None:
        self._records = tuple(dict.fromkeys(records))
        self._rrsets: dict[tuple[str, str], list[Record]] = {}
        self._names: set[str] = {"."}
        for record in self._records:
            self._rrsets.setdefault((record.name, record.rtype), []).append(record)
            self._names.add(record.name)
            self._names.update(_ancestors(record.name))
        for (name, rtype), rrset in self._rrsets.items():
            if rtype != "CNAME":
                continue
            others = sorted(t for (n, t) in self._rrsets if n == name and t != "CNAME")
            if others or len(rrset) > 1:
                clash = f"other data ({', '.join(others)})" if others else "a second CNAME"
                raise ZoneError(
                    f"zone: {name} has a CNAME and {clash}, which RFC 1034 §3.6.2 forbids. "
                    "Hint: keep either the CNAME or the other records."
                )

    @property
    def records(self) -> tuple[Record, ...]:
        """Every record of the zone, in the order first given."""
        return self._records

    def exists(self, name: str) -> bool:
        """Whether ``name`` owns records or is an empty non-terminal above one (or the root)."""
        return _normalize_name(name) in self._names

    def answer(self, qname: str, qtype: str) -> Answer:
        """Answer one question like an authoritative server (RFC 1034 §4.3.2).

        Args:
            qname: the queried name (any case, trailing dot optional).
            qtype: the queried type mnemonic, e.g. ``"MX"``; ``"ANY"`` returns every record at the name.
                Types the zone cannot hold (NS, SOA, ``TYPE65``…) get NODATA or NXDOMAIN like any other.

        Returns:
            The records of that type (NOERROR); a CNAME at the name, chased through the zone (loops end the
            chase), followed by the target's records; NODATA (NOERROR, no records) when the name exists
            without that type; otherwise NXDOMAIN. After a CNAME the rcode is that of the last name in the
            chain (RFC 6604 §3), so a dangling CNAME answers NXDOMAIN with the CNAME in the answer.

        Raises:
            ZoneError: ``qname`` is not a valid domain name.
        """
        qtype = qtype.upper()
        name = _normalize_name(qname)
        chain: list[Record] = []
        seen: set[str] = set()
        while True:
            if qtype == "ANY":
                found = [r for r in self._records if r.name == name]
            else:
                found = list(self._rrsets.get((name, qtype), ()))
            if found:
                chain.extend(found)
                rcode = "NOERROR"
                break
            cname = self._rrsets.get((name, "CNAME"))
            if cname and qtype != "CNAME":
                chain.extend(cname)
                seen.add(name)
                name = cname[0].target
                if name in seen:  # a CNAME loop: return the chain so far rather than spin
                    rcode = "NOERROR"
                    break
                continue
            rcode = "NOERROR" if name in self._names else "NXDOMAIN"
            break
        ad = rcode == "NOERROR" and bool(chain) and all(r.dnssec for r in chain)
        return Answer(rcode, tuple(chain), ad)


def _format_address(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _presentation(rr: Any) -> str:
    return f"{rr.rname} {rr.ttl} {CLASS[rr.rclass]} {QTYPE[rr.rtype]} {rr.rdata.toZone()}"


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """dnslib resolver answering from a :class:`Zone` and reporting each query.

    Each answered query is passed to ``on_query`` as::

        {"event": "dns", "t": 1764500000.123, "proto": "udp", "client": "127.0.0.1:40123",
         "qname": "fastmail.fm.", "qtype": "MX", "rcode": "NOERROR", "ad": False,
         "answers": ["fastmail.fm. 300 IN MX 10 in1-smtp.messagingengine.com."]}

    ``t`` is Unix time in seconds; ``client`` is ``ip:port`` (``[ip]:port`` for IPv6); ``qname`` is as asked.
    The reply has AA=1, RA=1, the query's RD/CD bits, TC=0 and AD set from :attr:`Answer.ad` (never copied
    from the query: Postfix sets AD in its queries and dnslib's ``reply()`` would echo it). A query with an
    OPT record gets one back (RFC 6891 §7). Other opcodes get NOTIMP, classes other than IN get REFUSED.

    Args:
        zone: the zone to answer from.
        on_query: called in the server's handler thread; an exception it raises is kept for
            :meth:`take_errors` (:meth:`DnsServer.stop` re-raises it) so that the client still gets its reply.
    """

    def __init__(self, zone: Zone, *, on_query: QueryCallback | None = None) -> None:
        self.zone = zone
        self.on_query = on_query
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()  # handler threads run concurrently

    def take_errors(self) -> list[BaseException]:
        """Return the exceptions ``on_query`` raised since the last call, and forget them."""
        with self._lock:
            errors, self._errors = self._errors, []
            return errors

    def resolve(self, request: Any, handler: Any) -> Any:
        """Build the reply to a parsed dnslib request (called by dnslib's handler)."""
        reply = request.reply(ra=1, aa=1)
        reply.header.tc = 0
        reply.header.ad = 0
        if request.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
        elif not request.questions:
            reply.header.rcode = RCODE.FORMERR
        elif request.q.qclass != CLASS.IN:
            reply.header.rcode = RCODE.REFUSED
        else:
            answer = self.zone.answer(str(request.q.qname), QTYPE[request.q.qtype])
            for record in answer.records:
                reply.add_answer(record.to_rr())
            reply.header.rcode = getattr(RCODE, answer.rcode)
            reply.header.ad = int(answer.ad)
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None:
            # Echo EDNS0 and the DO bit (RFC 3225 §3): resolvers asking for DNSSEC then see a normal server.
            reply.add_ar(EDNS0(udp_len=1232, flags="do" if opt.ttl & 0x8000 else ""))
        self._report(request, reply, handler)
        return reply

    def _report(self, request: Any, reply: Any, handler: Any) -> None:
        if self.on_query is None:
            return
        question = request.questions[0] if request.questions else None
        event = {
            "event": "dns",
            "t": time.time(),
            "proto": getattr(handler, "protocol", "udp"),
            "client": _format_address(handler.client_address),
            "qname": str(question.qname) if question else "",
            "qtype": QTYPE[question.qtype] if question else "",
            "rcode": RCODE[reply.header.rcode],
            "ad": bool(reply.header.ad),
            "answers": [_presentation(rr) for rr in reply.rr],
        }
        try:
            self.on_query(event)
        except Exception as exc:  # a broken callback must not leave Postfix waiting for a reply
            with self._lock:
                self._errors.append(exc)


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler, but reading every length-prefixed query on a TCP connection (RFC 7766 §6.2.1):
    glibc sends its A and AAAA queries over one connection, and dnslib's handler answers only the first."""

    def handle(self) -> None:
        if self.server.socket_type != socket.SOCK_STREAM:
            super().handle()
            return
        self.protocol = "tcp"
        self.request.settimeout(_TCP_IDLE_TIMEOUT_S)
        while True:
            try:
                header = self._recv_exactly(2)
                if header is None:
                    return
                data = self._recv_exactly(struct.unpack("!H", header)[0])
                if data is None:
                    return
                rdata = self.get_reply(data)
                self.request.sendall(struct.pack("!H", len(rdata)) + rdata)
            except (OSError, DNSError):
                return  # client went away or sent garbage: close this connection only

    def _recv_exactly(self, size: int) -> bytes | None:
        buf = b""
        while len(buf) < size:
            chunk = self.request.recv(size - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf


def _silent_logger() -> Any:
    return DNSLogger(prefix=False, logf=lambda _message: None)


class DnsServer:
    """The fake DNS server: one :class:`ZoneResolver` served on UDP and TCP at the same address and port.

    A context manager that also has :meth:`start` / :meth:`stop`; ``__enter__`` stops what it started if
    :meth:`start` fails. Each protocol is served by a daemon thread.

    Args:
        zone: the zone to serve.
        address: IPv4 or IPv6 address to listen on (the pod's resolv.conf points to ``127.0.0.53``).
        port: UDP and TCP port; 0 picks a free port that is free for both, read it from :attr:`port`.
        on_query: receives an ``event="dns"`` dict per query (see :class:`ZoneResolver`), in a server thread.

    Raises:
        DnsServerError: from :meth:`start` when a socket cannot be bound; from :meth:`stop` when
            ``on_query`` raised while serving.
    """

    def __init__(
        self,
        zone: Zone,
        address: str = "127.0.0.53",
        port: int = 53,
        *,
        on_query: QueryCallback | None = None,
    ) -> None:
        self.zone = zone
        self.address = address
        self.port = port
        self.resolver = ZoneResolver(zone, on_query=on_query)
        self._servers: list[Any] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Bind UDP and TCP and start serving in background threads.

        Raises:
            DnsServerError: a socket could not be bound (address not local, port taken, port < 1024 without
                privileges).
        """
        if self._servers:
            return
        attempts = 20 if self.port == 0 else 1  # with port 0, the UDP port may already be taken over TCP
        for attempt in range(attempts):
            udp = self._bind(self.port, tcp=False)
            port = udp.server.server_address[1]
            try:
                tcp = self._bind(port, tcp=True)
            except DnsServerError as exc:
                udp.server.server_close()
                cause = exc.__cause__
                if attempt + 1 < attempts and isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                    continue
                raise
            break
        self.port = port
        self._servers = [udp, tcp]
        for server, proto in ((udp, "udp"), (tcp, "tcp")):
            thread = threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.05},  # bounds how long stop() waits for each thread
                name=f"dns-{proto}-{self.address}:{port}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def _bind(self, port: int, *, tcp: bool) -> Any:
        try:
            return DNSServer(
                self.resolver,
                address=self.address,
                port=port,
                tcp=tcp,
                logger=_silent_logger(),
                handler=_Handler,
            )
        except OSError as exc:
            proto = "tcp" if tcp else "udp"
            raise DnsServerError(
                f"fake DNS could not listen on {self.address}:{port}/{proto}: {exc}. "
                "Hint: the address must be local (the peer adds world addresses to lo), the port free, "
                "and ports below 1024 need root; tests use 127.0.0.1 and port 0."
            ) from exc

    def stop(self) -> None:
        """Stop serving, close the sockets and join the threads. Safe to call twice or before start.

        Raises:
            DnsServerError: ``on_query`` raised while serving (the first such error is the cause).
        """
        servers, self._servers = self._servers, []
        threads, self._threads = self._threads, []
        for server, thread in zip(servers, threads, strict=False):
            if thread.is_alive():
                server.server.shutdown()
        for server in servers:
            server.server.server_close()
        for thread in threads:
            thread.join(timeout=5.0)
        errors = self.resolver.take_errors()
        if errors:
            raise DnsServerError(
                f"fake DNS: the on_query callback raised {len(errors)} time(s), first: {errors[0]!r}. "
                "Hint: fix the callback; queries were still answered."
            ) from errors[0]

    def __enter__(self) -> DnsServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
