"""The SMTP protocol of a fake server: aiosmtpd's, plus connection events, implicit TLS and faults. Private:
import from :mod:`harness.smtp`.

aiosmtpd has handler hooks for EHLO, MAIL, RCPT and the end of DATA (:class:`SessionRecorder` answers there);
what it lacks is done here: connect/close events, TLS from the first byte (RFC 8314), the STARTTLS reply and
handshake faults (RFC 3207 §4), and replacing or delaying the 220 banner and the 354 to DATA. A drop closes the
TCP connection without a reply.

This module imports only the standard library, aiosmtpd and the other peer modules: it runs inside the peer
container.
"""

from __future__ import annotations

__all__ = ["RecordingSMTP"]

import asyncio
import secrets
import ssl
from asyncio import sslproto
from typing import Any, NoReturn

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session, syntax

from harness._smtp_client_pid import client_pid
from harness._smtp_endpoint import Reply, SmtpEndpoint
from harness._smtp_session import SessionRecord, SessionRecorder, describe, format_address

_READY = Reply("220 2.0.0 Ready to start TLS")  # Postfix's words (RFC 3207 §4: 220)
_MUST_STARTTLS = Reply("530 5.7.0 Must issue a STARTTLS command first")  # Postfix, RFC 3207 §4
_ABORTED = "the server closed the connection instead of the TLS handshake (tls.handshake: abort)"


class _ServerTls(sslproto.SSLProtocol):
    """asyncio's TLS layer, except that a failed handshake still sends OpenSSL's alert (``protocol_version``,
    ``handshake_failure`` …) before the connection closes, as a real server does: asyncio drops it, and the client
    would only see an EOF (Postfix: ``unexpected eof`` instead of ``tlsv1 alert protocol version``)."""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and self._transport is not None:
            self._process_outgoing()  # type: ignore[attr-defined]  # asyncio 3.11+, not in typeshed
        super()._on_handshake_complete(handshake_exc)


class _DataRefused(Exception):
    """The reply to DATA was not 3xx: the server stays in command mode (RFC 5321 §4.1.1.4)."""


def _positive(reply: Reply) -> bool:
    return reply.code is not None and reply.code // 100 == 2


class RecordingSMTP(SMTP):
    """aiosmtpd's protocol for one connection to an :class:`~harness.smtp.SmtpEndpoint`.

    Args:
        recorder: the handler, which records and answers the hooked commands.
        endpoint: the server's settings and faults.
        context: the endpoint's TLS context (None without a certificate); used for STARTTLS when the endpoint
            offers it, or from the first byte with ``implicit_tls``.
        live: the runner's set of open connections; this protocol is in it while its connection is open.
        ident: text after the host name in the 220 greeting.
        timeout_s: idle seconds after which the connection is closed (aiosmtpd's command timeout).
        loop: the event loop.
    """

    def __init__(
        self,
        recorder: SessionRecorder,
        endpoint: SmtpEndpoint,
        context: ssl.SSLContext | None,
        live: set[RecordingSMTP],
        *,
        ident: str,
        timeout_s: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(
            recorder,
            hostname=endpoint.host,
            ident=ident,
            tls_context=context if endpoint.offers_starttls else None,
            require_starttls=False,  # done here, with Postfix's reply and only for MAIL/RCPT/DATA
            timeout=timeout_s,
            auth_require_tls=not endpoint.auth,
            authenticator=self._accept_login if endpoint.auth else None,
            loop=loop,
        )
        self.recorder = recorder
        self.endpoint = endpoint
        self._implicit_context = context if endpoint.implicit_tls else None
        self._record: SessionRecord | None = None
        self._live = live
        self._summarized = False
        self._handshake: asyncio.Future[Any] | None = None
        self._greeting_pending = False
        self._data_pending = False

    @property
    def record(self) -> SessionRecord:
        """What this connection did so far (exists from the connection on)."""
        if self._record is None:
            raise RuntimeError("no connection yet")
        return self._record

    # --- connection events ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._record is None  # aiosmtpd calls this again with the TLS transport after the handshake
        super().connection_made(transport)
        if not first:
            return
        self._live.add(self)
        local = transport.get_extra_info("sockname") or ("", 0)
        remote = transport.get_extra_info("peername")
        self._record = SessionRecord(
            secrets.token_hex(6),
            self.endpoint.host,
            str(local[0]),
            int(local[1]),
            format_address(remote),
            client_pid=client_pid((str(remote[0]), int(remote[1])), (str(local[0]), int(local[1])))
            if isinstance(remote, tuple)
            else None,
        )
        self.recorder.emit(self._record.event("connect", client_pid=self._record.client_pid))
        if self._handler_coroutine is not None:
            # aiosmtpd re-raises ConnectionResetError from this task and nobody awaits it: retrieve it so that
            # asyncio does not report "Task exception was never retrieved".
            self._handler_coroutine.add_done_callback(lambda t: t.cancelled() or t.exception())
        if self._implicit_context is not None and self.endpoint.tls.handshake == "ok":
            # At once, not in the handler task: the client's ClientHello may already be on its way.
            self._handshake = self._wrap_tls(self._implicit_context)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._live.discard(self)
            if self._record is not None and not self._summarized:
                # Exactly one summary per connection, even if a TLS failure path (which calls connection_lost()
                # itself, as aiosmtpd does) and the transport both report the close.
                self._summarized = True
                self.recorder.emit(self._record.event("close", error=describe(error) if error else None))
                self.recorder.closed(self._record.summary())

    def abort(self) -> None:
        """Drop the connection at once (used when the runner stops)."""
        raw = self._original_transport or self.transport
        if isinstance(raw, asyncio.WriteTransport):
            raw.abort()
        elif raw is not None:
            raw.close()

    # --- faults -----------------------------------------------------------------------------------------------

    async def respond(
        self, stage: str, normal: Reply, *, event: str, recipient: str | None = None, **fields: Any
    ) -> Reply:
        """The reply to send at ``stage``, after the endpoint's delay for it: its configured reply (for ``rcpt``,
        the one for ``recipient``), else ``normal``.

        A configured ``drop`` emits the ``event`` stage with ``fields``, ``reply`` None and ``dropped`` True,
        closes the connection and does not return (the handler task is cancelled by connection_lost()).
        """
        delay = self.endpoint.delays.delay(stage)
        if delay > 0:
            self._reset_timeout(delay + self._timeout_duration)  # the idle timeout must not cut the delay short
            await asyncio.sleep(delay)
        reply = self.endpoint.replies.reply(stage, address=recipient)
        if reply is None:
            return normal
        if reply.drop:
            self.recorder.emit(self.record.event(event, **fields, reply=None, dropped=True))
            await self._drop()
        return reply

    async def _drop(self) -> NoReturn:
        raw = self._original_transport or self.transport  # under TLS: the TCP connection, no close_notify
        if raw is not None:
            raw.close()
        await self.loop.create_future()  # connection_lost() cancels this task
        raise AssertionError("unreachable: a dropped connection's handler is cancelled")

    def _tls_required(self) -> bool:
        return self.endpoint.require_starttls and self._tls_protocol is None

    def _address(self, arg: str | None, keyword: str) -> str | None:
        stripped = self._strip_command_keyword(keyword, arg or "")
        return (self._getaddr(stripped)[0] or None) if stripped is not None else None

    def _accept_login(
        self, _server: SMTP, _session: Session, _envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = getattr(auth_data, "login", b"")
        text = login.decode(errors="replace") if isinstance(login, bytes) else str(login)
        self.recorder.emit(self.record.event("auth", mechanism=mechanism, login=text))
        return AuthResult(success=True, auth_data=auth_data)

    # --- stages aiosmtpd has no hook for ---------------------------------------------------------------------

    async def _handle_client(self) -> None:
        if self.endpoint.implicit_tls:
            if self._handshake is None:  # tls.handshake: abort
                self._tls_failed(_ABORTED)
                await self._drop()
            if not await self._finish_handshake(self._handshake):
                return
        self._greeting_pending = True  # the first push() of aiosmtpd's handler is the 220 banner
        await super()._handle_client()

    async def push(self, status: str | bytes) -> None:
        """Send a reply; the 220 banner and the 354 to DATA go through :meth:`respond` first."""
        if self._greeting_pending:
            self._greeting_pending = False
            reply = await self.respond("greeting", Reply(_text(status)), event="greeting")
            await super().push(reply.wire)
            self.recorder.emit(self.record.event("greeting", reply=reply.code))
            return
        if self._data_pending and _text(status).startswith("354"):
            self._data_pending = False
            reply = await self.respond("data", Reply(_text(status)), event="data_command")
            await super().push(reply.wire)
            self.recorder.emit(self.record.event("data_command", reply=reply.code))
            if reply.code is None or reply.code // 100 != 3:
                raise _DataRefused
            return
        if isinstance(status, str):  # two calls: aiosmtpd's push() takes str or bytes, not a union
            await super().push(status)
        else:
            await super().push(status)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if self._tls_required():  # Postfix checks before the command's own syntax (smtpd.c, enforce_tls)
            assert self.envelope is not None
            address = self._address(arg, "FROM:")
            await self.push(await self.recorder.mail(self, self.envelope, address, [], normal=_MUST_STARTTLS))
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if self._tls_required():
            assert self.envelope is not None
            address = self._address(arg, "TO:")
            await self.push(await self.recorder.rcpt(self, self.envelope, address, [], normal=_MUST_STARTTLS))
            return
        await super().smtp_RCPT(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if self._tls_required():
            reply = await self.respond("data", _MUST_STARTTLS, event="data_command")
            await self.push(reply.wire)
            self.recorder.emit(self.record.event("data_command", reply=reply.code))
            return
        self._data_pending = True
        try:
            await super().smtp_DATA(arg)
        except _DataRefused:
            pass
        finally:
            self._data_pending = False

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        record = self.record
        accepted = False
        if arg:
            reply = Reply("501 5.5.4 Syntax: STARTTLS")
        elif self._tls_protocol is not None:
            reply = Reply("554 5.5.1 Error: TLS already active")  # Postfix; RFC 3207 §4.2
        elif self.tls_context is None:
            reply = Reply("502 5.5.1 Error: command not implemented")  # Postfix without TLS
        else:
            reply = await self.respond("starttls", _READY, event="starttls")
            accepted = _positive(reply)  # else, e.g. 454, the session goes on in plaintext (RFC 3207 §4)
        await self.push(reply.wire)
        handshake = None
        if accepted and self.tls_context is not None and self.endpoint.tls.handshake == "ok":
            handshake = self._wrap_tls(self.tls_context)  # before any await: the ClientHello follows the 220
        record.starttls = record.starttls or accepted
        self.recorder.emit(record.event("starttls", reply=reply.code))
        if not accepted:
            return
        if handshake is None:  # tls.handshake: abort
            self._tls_failed(_ABORTED)
            await self._drop()
        await self._finish_handshake(handshake)

    # --- TLS --------------------------------------------------------------------------------------------------

    def _wrap_tls(self, context: ssl.SSLContext) -> asyncio.Future[Any]:
        """Put a server-side TLS layer under this protocol, as aiosmtpd's STARTTLS does; when the handshake is
        done, it calls connection_made() again (the recorder's handle_STARTTLS records the result)."""
        waiter: asyncio.Future[Any] = self.loop.create_future()
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even if nobody waits
        self._tls_protocol = _ServerTls(self.loop, self, context, waiter, server_side=True)
        self._original_transport = self.transport
        assert self._original_transport is not None
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        return waiter

    async def _finish_handshake(self, handshake: asyncio.Future[Any]) -> bool:
        """Wait for the handshake; on failure record it, close the connection and return False."""
        try:
            await handshake
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._tls_failed(describe(exc))
            self._close_after_tls_failure(exc)
            return False
        if self.session is None or self.session.ssl is None:
            # The connection was dropped on our side (runner stop, timeout) during the handshake: asyncio's SSL
            # layer then resolves the handshake waiter without error and never calls connection_lost().
            self._tls_failed("connection closed during the TLS handshake")
            self._close_after_tls_failure(None)
            return False
        return True

    def _close_after_tls_failure(self, error: Exception | None) -> None:
        # asyncio's SSL layer does not call connection_lost() for a connection whose handshake failed.
        if self._original_transport is not None:
            self._original_transport.close()
        self.connection_lost(error)

    def _tls_failed(self, error: str) -> None:
        record = self.record
        record.tls_error = error
        self.recorder.emit(record.event("tls_failed", error=error))


def _text(status: str | bytes) -> str:
    return status if isinstance(status, str) else status.decode("ascii", errors="replace")
