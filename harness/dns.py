"""The fake DNS of the pod: an authoritative dnslib server on UDP and TCP answering from a zone.

Postfix's resolver (``/etc/resolv.conf`` → ``nameserver 127.0.0.53``) asks this server for everything. It
answers like an authoritative server for the whole fake world: records that exist are returned, a CNAME is
chased inside the zone, names that exist without the asked type get NODATA, and every other name NXDOMAIN, so
nothing ever leaks to the real DNS. Faults (SERVFAIL, REFUSED, NXDOMAIN, no reply) and the AD bit come from the
zone (see :class:`Zone`, :class:`DnsFault`).

Typical use::

    zone = Zone([Record("fastmail.fm", "MX", "10 in1-smtp.messagingengine.com"),
                 Record("in1-smtp.messagingengine.com", "A", "66.111.4.74")],
                faults=[DnsFault("fastmail.fm", "TLSA", "servfail")])
    with DnsServer(zone, "127.0.0.1", 0, on_query=events.append) as server:
        ...  # query 127.0.0.1:server.port over UDP or TCP

This module imports only the standard library, dnslib, :mod:`harness.errors` and :mod:`harness._dns_zone`: it
runs inside the peer container.
"""

from __future__ import annotations

__all__ = [
    "DNS_FAULTS",
    "RECORD_TYPES",
    "Answer",
    "DnsFault",
    "DnsServer",
    "DnsServerError",
    "QueryCallback",
    "Record",
    "Zone",
    "ZoneError",
    "ZoneResolver",
]

import errno
import socket
import struct
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from dnslib import CLASS, EDNS0, QTYPE, RCODE, DNSError, DNSRecord  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer  # type: ignore[import-untyped]

from harness._dns_zone import DNS_FAULTS, RECORD_TYPES, Answer, DnsFault, Record, Zone, ZoneError
from harness.errors import HarnessError

QueryCallback = Callable[[dict[str, Any]], None]
"""Receives one ``event="dns"`` dict per query (see :class:`ZoneResolver`)."""

_TCP_IDLE_TIMEOUT_S = 10.0  # RFC 7766 §6.2.3: servers close idle connections; the stub resolver reconnects.


class DnsServerError(HarnessError):
    """The fake DNS server could not listen, or a query callback raised while it served."""


def _format_address(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _presentation(rr: Any) -> str:
    return f"{rr.rname} {rr.ttl} {CLASS[rr.rclass]} {QTYPE[rr.rtype]} {rr.rdata.toZone()}"


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """dnslib resolver answering from a :class:`Zone` and reporting each query.

    Each query is passed to ``on_query`` as::

        {"event": "dns", "t": 1764500000.123, "proto": "udp", "client": "127.0.0.1:40123",
         "qname": "fastmail.fm.", "qtype": "MX", "rcode": "NOERROR", "ad": False, "fault": None,
         "answers": ["fastmail.fm. 300 IN MX 10 in1-smtp.messagingengine.com."]}

    ``t`` is Unix time in seconds; ``client`` is ``ip:port`` (``[ip]:port`` for IPv6); ``qname`` is as asked;
    ``fault`` names the :class:`DnsFault` that decided the answer (``servfail``, ``refused``, ``nxdomain``,
    ``timeout``) or is None. A ``timeout`` query is reported with ``rcode`` None: no reply was sent.

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
        """Build the reply to a parsed dnslib request, or return None when no reply must be sent (a
        ``timeout`` fault; only this module's handler knows that case)."""
        reply = request.reply(ra=1, aa=1)
        reply.header.tc = 0
        reply.header.ad = 0
        fault = None
        if request.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
        elif not request.questions:
            reply.header.rcode = RCODE.FORMERR
        elif request.q.qclass != CLASS.IN:
            reply.header.rcode = RCODE.REFUSED
        else:
            answer = self.zone.answer(str(request.q.qname), QTYPE[request.q.qtype])
            fault = answer.fault
            if answer.rcode is None:
                self._report(request, None, handler, fault)
                return None
            for record in answer.records:
                reply.add_answer(record.to_rr())
            reply.header.rcode = getattr(RCODE, answer.rcode)
            reply.header.ad = int(answer.ad)
        opt = next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)
        if opt is not None:
            # Echo EDNS0 and the DO bit (RFC 3225 §3): resolvers asking for DNSSEC then see a normal server.
            reply.add_ar(EDNS0(udp_len=1232, flags="do" if opt.ttl & 0x8000 else ""))
        self._report(request, reply, handler, fault)
        return reply

    def _report(self, request: Any, reply: Any, handler: Any, fault: str | None) -> None:
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
            "rcode": RCODE[reply.header.rcode] if reply is not None else None,
            "ad": bool(reply is not None and reply.header.ad),
            "fault": fault,
            "answers": [_presentation(rr) for rr in reply.rr] if reply is not None else [],
        }
        try:
            self.on_query(event)
        except Exception as exc:  # a broken callback must not leave Postfix waiting for a reply
            with self._lock:
                self._errors.append(exc)


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler, changed in two ways.

    * Over TCP it reads every length-prefixed query of a connection (RFC 7766 §6.2.1): glibc sends its A and
      AAAA queries over one connection, and dnslib's handler answers only the first.
    * A query the resolver leaves unanswered (a ``timeout`` fault) gets nothing over UDP; over TCP the
      connection is closed right after reading it, without a reply. glibc's stub resolver (``send_vc`` in
      ``res_send.c``) reads TCP replies with no timeout of its own, so a connection left open would stall
      Postfix until this server's idle timeout; closed, glibc moves on to its next try at once and, like
      after UDP timeouts, finally fails with TRY_AGAIN (Postfix: ``Host or domain name not found ... try
      again``, a temporary failure).
    """

    def handle(self) -> None:
        if self.server.socket_type != socket.SOCK_STREAM:
            self.protocol = "udp"
            data, connection = self.request
            try:
                rdata = self._reply(data)
            except DNSError:
                return  # garbage: no reply, like a real server
            if rdata is not None:
                connection.sendto(rdata, self.client_address)
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
                rdata = self._reply(data)
                if rdata is None:
                    return  # socketserver closes the connection when handle() returns
                self.request.sendall(struct.pack("!H", len(rdata)) + rdata)
            except (OSError, DNSError):
                return  # client went away or sent garbage: close this connection only

    def _reply(self, data: bytes) -> bytes | None:
        reply = self.server.resolver.resolve(DNSRecord.parse(data), self)
        return None if reply is None else bytes(reply.pack())

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

    def serve(self, zone: Zone, on_query: QueryCallback | None = None) -> None:
        """Answer from ``zone`` from now on (and report queries to ``on_query``), without closing the sockets: a
        query never falls into a gap between two zones (a lost query costs a resolver its whole timeout)."""
        self.zone = zone
        self.resolver.on_query = on_query
        self.resolver.zone = zone

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
