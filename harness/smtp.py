"""Fake receiving SMTP servers of the pod, on aiosmtpd: STARTTLS or implicit TLS, faults, recorded sessions.

Each :class:`SmtpEndpoint` is one listening server (host name, address, port, optional certificate, TLS
settings and faults). A :class:`SessionRecorder` sees every SMTP session and emits JSON-able events;
:class:`SmtpRunner` serves many endpoints in one asyncio loop (the peer runs it in its main loop), and
:class:`SmtpController` runs that loop in a background thread for tests::

    endpoint = SmtpEndpoint("mx1.example.com", "127.0.0.1", 0, cert_chain_file="mx1.pem", key_file="mx1.key",
                            replies=Replies.from_dict({"rcpt": {"default": "450 4.2.0 try later"}}))
    with SmtpController([endpoint], on_event=events.append) as controller:
        port = controller.ports[0]
        ...  # deliver with smtplib
        summary = controller.recorder.wait_sessions(1)[0]

Without faults every message is accepted with ``250 2.0.0 Ok: queued as <ID>``, as Postfix's own smtpd answers.

The implementation lives in private modules: :mod:`harness._smtp_endpoint` (settings and faults),
:mod:`harness._smtp_tls` (TLS contexts, SNI, client certificates), :mod:`harness._smtp_session` (the recorder)
and :mod:`harness._smtp_protocol` (the protocol). They import only the standard library, aiosmtpd and
:mod:`harness.errors`: they run inside the peer container.
"""

from __future__ import annotations

__all__ = [
    "HANDSHAKES",
    "STAGES",
    "TLS_VERSIONS",
    "Delays",
    "Event",
    "EventCallback",
    "Replies",
    "Reply",
    "SessionRecorder",
    "SmtpController",
    "SmtpEndpoint",
    "SmtpRunner",
    "SmtpServerError",
    "SniCertificate",
    "TlsSettings",
    "server_tls_context",
]

import asyncio
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from harness._smtp_endpoint import (
    HANDSHAKES,
    STAGES,
    TLS_VERSIONS,
    Delays,
    Replies,
    Reply,
    SmtpEndpoint,
    SmtpServerError,
    SniCertificate,
    TlsSettings,
)
from harness._smtp_protocol import RecordingSMTP
from harness._smtp_session import Event, EventCallback, SessionRecorder
from harness._smtp_tls import server_tls_context


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
        self._live: set[RecordingSMTP] = set()

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
                context = server_tls_context(
                    endpoint.cert_chain_file, endpoint.key_file, settings=endpoint.tls, sni=endpoint.sni
                )
            except SmtpServerError as exc:
                raise SmtpServerError(f"SMTP endpoint {endpoint.host}: {exc}") from exc.__cause__

        def factory() -> RecordingSMTP:
            return RecordingSMTP(
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
