"""Fake receiving SMTP servers of the pod, on aiosmtpd, with STARTTLS and recorded sessions.

Each :class:`SmtpEndpoint` is one listening server (host name, address, port, optional certificate). A
:class:`SessionRecorder` sees every SMTP session and emits JSON-able events; :class:`SmtpRunner` serves many
endpoints in one asyncio loop (the peer runs it in its main loop), and :class:`SmtpController` runs that loop
in a background thread for tests::

    endpoint = SmtpEndpoint("mx1.example.com", "127.0.0.1", 0, cert_chain_file="mx1.pem", key_file="mx1.key")
    with SmtpController([endpoint], on_event=events.append) as controller:
        port = controller.ports[0]
        ...  # deliver with smtplib
        summary = controller.recorder.wait_sessions(1)[0]

Every message is accepted with ``250 2.0.0 Ok: queued as <ID>``, as Postfix's own smtpd answers.

This module imports only the standard library, aiosmtpd and :mod:`harness.errors`: it runs inside the peer
container.
"""

from __future__ import annotations

__all__ = [
    "Event",
    "EventCallback",
    "SessionRecorder",
    "SmtpController",
    "SmtpEndpoint",
    "SmtpRunner",
    "SmtpServerError",
    "server_tls_context",
]

import asyncio
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException, syntax

from harness.errors import HarnessError

Event = dict[str, Any]
"""One JSON-able event: ``{"event": "smtp" | "session", ...}`` (see :class:`SessionRecorder`)."""

EventCallback = Callable[[Event], None]

_SNI_ATTRIBUTE = "_mxharness_sni"


class SmtpServerError(HarnessError):
    """An SMTP endpoint could not start (bad certificate, address not local, port taken), its background loop
    failed, or a wait for sessions timed out."""


@dataclass(frozen=True)
class SmtpEndpoint:
    """One fake receiving SMTP server.

    Attributes:
        host: the server's name, given in the 220 greeting and the EHLO reply (Postfix logs it).
        address: IPv4 or IPv6 address to listen on.
        port: TCP port; 0 picks a free one (read it from :attr:`SmtpRunner.ports`).
        cert_chain_file: PEM file, leaf first then intermediates; None means no STARTTLS is offered.
        key_file: PEM private key of the leaf; required exactly when ``cert_chain_file`` is given.

    Raises:
        SmtpServerError: only one of ``cert_chain_file`` and ``key_file`` is given, or the port is outside
            0..65535.
    """

    host: str
    address: str
    port: int = 25
    cert_chain_file: str | None = None
    key_file: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_chain_file is None) != (self.key_file is None):
            raise SmtpServerError(
                f"SMTP endpoint {self.host}: cert_chain_file and key_file go together. "
                "Hint: give both for a STARTTLS server, neither for a plaintext-only one."
            )
        if not 0 <= self.port <= 65535:
            raise SmtpServerError(f"SMTP endpoint {self.host}: port {self.port} outside 0..65535.")

    @property
    def tls(self) -> bool:
        """Whether this endpoint offers STARTTLS."""
        return self.cert_chain_file is not None


def server_tls_context(cert_chain_file: str, key_file: str) -> ssl.SSLContext:
    """Build the server-side TLS context of an endpoint, recording the SNI each client sends.

    The context comes from ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)``: TLS 1.2 or later, no
    client certificate requested (Postfix's SMTP client sends none unless configured to).

    Args:
        cert_chain_file: PEM, leaf first then intermediates.
        key_file: PEM private key of the leaf.

    Raises:
        SmtpServerError: a file is missing or unreadable, or the key does not match the certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_chain_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SmtpServerError(
            f"cannot load TLS certificate {cert_chain_file} with key {key_file}: {exc}. "
            "Hint: check that both files exist, are PEM, and that the key belongs to the first certificate."
        ) from exc
    context.sni_callback = _record_sni
    return context


def _record_sni(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
    # Called during the handshake with the very SSLObject the transport keeps, so the name can be read back
    # from it once the handshake is done.
    setattr(ssl_object, _SNI_ATTRIBUTE, server_name)


def _format_address(address: Any) -> str:
    if not isinstance(address, tuple):
        return str(address)
    return f"[{address[0]}]:{address[1]}" if ":" in str(address[0]) else f"{address[0]}:{address[1]}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _message_id(content: bytes) -> str | None:
    header = BytesHeaderParser(policy=compat32).parsebytes(content).get("Message-ID")
    if header is None:
        return None
    return " ".join(str(header).split()).strip("<>") or None


@dataclass
class _Session:
    """What one connection did; its fields are the ``session`` summary."""

    session: str
    server: str
    local_address: str
    local_port: int
    client: str
    ehlo: str | None = None
    starttls: bool = False
    tls: dict[str, Any] | None = None
    tls_error: str | None = None
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.time)

    def event(self, stage: str, **fields: Any) -> Event:
        local = _format_address((self.local_address, self.local_port))
        return {
            "event": "smtp",
            "stage": stage,
            "t": time.time(),
            "session": self.session,
            "server": self.server,
            "local": local,
            "client": self.client,
            **fields,
        }

    def summary(self) -> Event:
        return {"event": "session", **asdict(self), "end": time.time()}


class _RecordingSMTP(SMTP):
    """aiosmtpd's protocol with the connection-level hooks aiosmtpd lacks: connect, STARTTLS issued, close."""

    def __init__(
        self,
        recorder: SessionRecorder,
        endpoint: SmtpEndpoint,
        tls_context: ssl.SSLContext | None,
        live: set[_RecordingSMTP],
        *,
        ident: str,
        timeout_s: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(
            recorder,
            hostname=endpoint.host,
            ident=ident,
            tls_context=tls_context,
            require_starttls=False,
            timeout=timeout_s,
            loop=loop,
        )
        self.recorder = recorder
        self.endpoint = endpoint
        self.record: _Session | None = None
        self._live = live
        self._summarized = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.record is None  # aiosmtpd calls this again with the TLS transport after STARTTLS
        super().connection_made(transport)
        if first:
            self._live.add(self)
            local = transport.get_extra_info("sockname") or ("", 0)
            self.record = _Session(
                secrets.token_hex(6),
                self.endpoint.host,
                str(local[0]),
                int(local[1]),
                _format_address(transport.get_extra_info("peername")),
            )
            self.recorder._emit(self.record.event("connect"))
            if self._handler_coroutine is not None:
                # aiosmtpd re-raises ConnectionResetError from this task and nobody awaits it: retrieve it so
                # that asyncio does not report "Task exception was never retrieved".
                self._handler_coroutine.add_done_callback(lambda t: t.cancelled() or t.exception())

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._live.discard(self)
            if self.record is not None and not self._summarized:
                # Exactly one summary per connection, even if a TLS failure path (aiosmtpd's or ours, which
                # both call connection_lost() themselves) and the transport both report the close.
                self._summarized = True
                self.recorder._emit(self.record.event("close", error=_describe(error) if error else None))
                self.recorder._closed(self.record.summary())

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.tls_context and self._tls_protocol is not None:
            await self.push("554 5.5.1 Error: TLS already active")  # Postfix's reply; RFC 3207 §4.2
            return
        offered = bool(self.tls_context) and not arg and self.record is not None
        if offered and self.record is not None:
            self.record.starttls = True
            self.recorder._emit(self.record.event("starttls"))
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            self._tls_failed(_describe(exc.__cause__ or exc))
            raise  # aiosmtpd closes the connection and calls connection_lost()
        if offered and self.session is not None and self.session.ssl is None:
            # The connection was dropped on our side (runner stop, timeout) during the handshake: asyncio's
            # SSL layer then resolves the handshake waiter without error and never calls connection_lost().
            self._tls_failed("connection closed during the TLS handshake")
            if self._original_transport is not None:
                self._original_transport.close()
            self.connection_lost(None)

    def _tls_failed(self, error: str) -> None:
        if self.record is not None:
            self.record.tls_error = error
            self.recorder._emit(self.record.event("tls_failed", error=error))

    def abort(self) -> None:
        """Drop the connection at once (used when the runner stops)."""
        raw = self._original_transport or self.transport
        if isinstance(raw, asyncio.WriteTransport):
            raw.abort()
        elif raw is not None:
            raw.close()


def _record(server: SMTP) -> _Session:
    record = getattr(server, "record", None)
    if not isinstance(record, _Session):
        raise TypeError("SessionRecorder serves the protocols of SmtpRunner only")
    return record


class SessionRecorder:
    """aiosmtpd handler that accepts all mail and records each SMTP session as events.

    Per stage it emits ``{"event": "smtp", "stage": S, "t": <unix s>, "session": <id>, "server": <host>,
    "local": "addr:port", "client": "addr:port", ...}`` (IPv6 as ``[addr]:port``) with, per stage:
    ``connect`` (nothing more); ``ehlo``/``helo`` ``hostname``; ``starttls`` (nothing more); ``tls``
    ``version``, ``cipher``, ``sni`` (None when the client sent none); ``tls_failed`` ``error``; ``mail``
    ``address``, ``options``; ``rcpt`` ``address``, ``options``; ``data`` ``message_id``, ``size`` (octets),
    ``queue_id``; ``quit`` (nothing more); ``close`` ``error`` (None for a clean close).

    When the connection closes, however it closes (QUIT, client abort after the TLS handshake as Postfix does
    when a certificate fails its checks, handshake failure, runner stop), exactly one summary follows::

        {"event": "session", "session": id, "server": host, "local_address": a, "local_port": p,
         "client": "addr:port", "ehlo": last EHLO/HELO name or None, "starttls": bool,
         "tls": {"version", "cipher", "sni"} or None, "tls_error": str or None,
         "mail_from": first MAIL FROM or None, "rcpt_to": [every RCPT TO],
         "messages": [{"message_id", "size", "accepted": True, "queue_id", "mail_from", "rcpt_to"}],
         "start": unix s, "end": unix s}

    Args:
        on_event: receives every event, in the loop's thread. An exception it raises is reported to the
            loop's exception handler (:class:`SmtpController` re-raises it at stop).
    """

    def __init__(self, on_event: EventCallback | None = None) -> None:
        self.on_event = on_event
        self.sessions: list[Event] = []
        """Summaries of the closed sessions, in closing order."""
        self._cond = threading.Condition()

    def wait_sessions(self, count: int, *, timeout_s: float = 5.0) -> list[Event]:
        """Block until at least ``count`` sessions have closed; return all summaries so far.

        Raises:
            SmtpServerError: fewer than ``count`` sessions closed within ``timeout_s`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.sessions) >= count, timeout=timeout_s):
                raise SmtpServerError(
                    f"waited {timeout_s} s for {count} closed SMTP session(s), saw {len(self.sessions)}. "
                    "Hint: the client may still be connected; send QUIT or close it."
                )
            return list(self.sessions)

    # aiosmtpd hooks, found by their handle_ prefix; each records, then answers as Postfix's smtpd would.

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """Record EHLO; answer without AUTH, which this server does not offer (aiosmtpd adds it after TLS)."""
        session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        self._hello(server, "ehlo", hostname)
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        """Record HELO (RFC 5321 §4.1.1.1)."""
        session.host_name = hostname
        self._hello(server, "helo", hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Record and accept MAIL FROM."""
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        record = _record(server)
        record.mail_from = record.mail_from or address
        self._emit(record.event("mail", address=address, options=list(options)))
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Record and accept RCPT TO."""
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        record = _record(server)
        record.rcpt_to.append(address)
        self._emit(record.event("rcpt", address=address, options=list(options)))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Accept the message like Postfix's smtpd: ``250 2.0.0 Ok: queued as <ID>``."""
        raw = envelope.original_content or b""
        queue_id = secrets.token_hex(5).upper()
        message_id = _message_id(raw)
        record = _record(server)
        record.messages.append(
            {
                "message_id": message_id,
                "size": len(raw),
                "accepted": True,
                "queue_id": queue_id,
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
            }
        )
        self._emit(record.event("data", message_id=message_id, size=len(raw), queue_id=queue_id))
        return f"250 2.0.0 Ok: queued as {queue_id}"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record QUIT."""
        self._emit(_record(server).event("quit"))
        return "221 2.0.0 Bye"

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        """Record the finished TLS handshake (RFC 3207 §4.2: the session restarts; the client EHLOs again)."""
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        cipher = ssl_object.cipher() if ssl_object else None
        tls = {
            "version": ssl_object.version() if ssl_object else None,
            "cipher": cipher[0] if cipher else None,
            "sni": getattr(ssl_object, _SNI_ATTRIBUTE, None),
        }
        record = _record(server)
        record.tls = tls
        self._emit(record.event("tls", **tls))
        return True

    async def handle_exception(self, error: Exception) -> str:
        """Answer a failed command; report errors other than a failed TLS handshake to the loop."""
        if not isinstance(error, TLSSetupException):
            context = {"message": "SMTP session handler failed", "exception": error}
            asyncio.get_running_loop().call_exception_handler(context)
        return "451 4.3.0 Error: internal error"

    def _hello(self, server: SMTP, stage: str, hostname: str) -> None:
        record = _record(server)
        record.ehlo = hostname
        self._emit(record.event(stage, hostname=hostname))

    def _closed(self, summary: Event) -> None:
        with self._cond:
            self.sessions.append(summary)
            self._cond.notify_all()
        self._emit(summary)

    def _emit(self, event: Event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception as exc:  # keep serving; the controller surfaces it at stop()
            context = {"message": "SMTP on_event callback failed", "exception": exc}
            asyncio.get_running_loop().call_exception_handler(context)


class SmtpRunner:
    """Serves many endpoints in the running asyncio loop, all recorded by one :class:`SessionRecorder`.

    Args:
        endpoints: the servers to run.
        on_event: receives every event (see :class:`SessionRecorder`).
        ident: text after the host name in the 220 greeting (``220 mx1.example.com ESMTP``).
        timeout_s: idle time in seconds after which a session is closed (aiosmtpd's command timeout).
    """

    def __init__(
        self,
        endpoints: Sequence[SmtpEndpoint],
        *,
        on_event: EventCallback | None = None,
        ident: str = "ESMTP",
        timeout_s: float = 300.0,
    ) -> None:
        self.endpoints = tuple(endpoints)
        self.recorder = SessionRecorder(on_event)
        self._ident = ident
        self._timeout_s = timeout_s
        self._servers: list[asyncio.Server] = []
        self._live: set[_RecordingSMTP] = set()

    @property
    def ports(self) -> list[int]:
        """The bound port of each endpoint, in endpoint order (empty before :meth:`start`)."""
        return [int(server.sockets[0].getsockname()[1]) for server in self._servers]

    async def start(self) -> None:
        """Load certificates and listen on every endpoint; on failure, close what was opened.

        Raises:
            SmtpServerError: a certificate cannot be loaded or an address/port cannot be bound.
        """
        loop = asyncio.get_running_loop()
        try:
            for endpoint in self.endpoints:
                self._servers.append(await self._listen(loop, endpoint))
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, loop: asyncio.AbstractEventLoop, endpoint: SmtpEndpoint) -> asyncio.Server:
        context = None
        if endpoint.cert_chain_file is not None and endpoint.key_file is not None:
            try:
                context = server_tls_context(endpoint.cert_chain_file, endpoint.key_file)
            except SmtpServerError as exc:
                raise SmtpServerError(f"SMTP endpoint {endpoint.host}: {exc}") from exc.__cause__

        def factory() -> _RecordingSMTP:
            return _RecordingSMTP(
                self.recorder,
                endpoint,
                context,
                self._live,
                ident=self._ident,
                timeout_s=self._timeout_s,
                loop=loop,
            )

        try:
            return await loop.create_server(factory, host=endpoint.address, port=endpoint.port)
        except OSError as exc:
            raise SmtpServerError(
                f"SMTP endpoint {endpoint.host} could not listen on {endpoint.address}:{endpoint.port}: "
                f"{exc}. Hint: the address must be local (the peer adds world addresses to lo), the port "
                "free, and ports below 1024 need root; tests use 127.0.0.x and port 0."
            ) from exc

    async def stop(self, *, timeout_s: float = 2.0) -> None:
        """Stop listening, drop open connections, wait at most ``timeout_s`` seconds for their summaries."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()
        for protocol in list(self._live):
            protocol.abort()
        deadline = time.monotonic() + timeout_s
        while self._live and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class SmtpController:
    """Runs an :class:`SmtpRunner` in its own event loop in a background thread (aiosmtpd controller style).

    A context manager that also has :meth:`start` / :meth:`stop`; ``__enter__`` cleans up if start fails.

    Args:
        endpoints: the servers to run.
        on_event: receives every event, in the background thread.
        ident: see :class:`SmtpRunner`.
        startup_timeout_s: how long :meth:`start` waits for the loop to listen, in seconds.

    Raises:
        SmtpServerError: from :meth:`start` when an endpoint fails to start (re-raised from the thread) or
            the loop does not come up in time; from :meth:`stop` when the loop reported an error while
            serving.
    """

    def __init__(
        self,
        endpoints: Sequence[SmtpEndpoint],
        *,
        on_event: EventCallback | None = None,
        ident: str = "ESMTP",
        startup_timeout_s: float = 5.0,
    ) -> None:
        self.runner = SmtpRunner(endpoints, on_event=on_event, ident=ident)
        self._startup_timeout_s = startup_timeout_s
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop_errors: list[dict[str, Any]] = []

    @property
    def recorder(self) -> SessionRecorder:
        """The recorder of every session served."""
        return self.runner.recorder

    @property
    def ports(self) -> list[int]:
        """The bound port of each endpoint, in endpoint order."""
        return self.runner.ports

    def start(self) -> None:
        """Start the loop thread and wait until every endpoint listens.

        Raises:
            SmtpServerError: an endpoint failed to start, or the loop did not start within the timeout.
        """
        if self._thread is not None:
            return
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(target=self._run, name="smtp-endpoints", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._startup_timeout_s):
            raise SmtpServerError(
                f"SMTP endpoints did not start within {self._startup_timeout_s} s. "
                "Hint: a certificate load or bind may hang; run SmtpRunner in your own loop to see where."
            )
        if self._startup_error is not None:
            error, self._startup_error = self._startup_error, None
            self._thread.join()
            self._thread = None
            if isinstance(error, SmtpServerError):
                raise error
            raise SmtpServerError(f"SMTP endpoints failed to start: {error!r}. Hint: see the cause below.") from error

    def _run(self) -> None:
        # asyncio.Runner closes the loop as asyncio.run() does: leftover tasks cancelled, generators and the
        # default executor shut down.
        with asyncio.Runner() as runner:
            loop = runner.get_loop()
            loop.set_exception_handler(lambda _loop, context: self._loop_errors.append(context))
            self._loop = loop
            try:
                runner.run(self.runner.start())
            except BaseException as exc:
                self._startup_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            runner.run(self.runner.stop())

    def stop(self) -> None:
        """Stop serving and join the thread; every open session's summary is emitted first. Idempotent.

        Raises:
            SmtpServerError: the loop reported an error while serving (e.g. ``on_event`` raised).
        """
        thread, self._thread = self._thread, None
        loop = self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10.0)
        errors, self._loop_errors = self._loop_errors, []
        if errors:
            first = errors[0]
            raise SmtpServerError(
                f"SMTP endpoints: {len(errors)} error(s) in the event loop, first: {first.get('message')}: "
                f"{first.get('exception')!r}. Hint: fix the handler or on_event callback named in the cause."
            ) from first.get("exception")

    def __enter__(self) -> SmtpController:
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
