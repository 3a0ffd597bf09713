"""What a fake SMTP server records of each session, and the aiosmtpd handler that answers and records. Private:
import from :mod:`harness.smtp`.

This module imports only the standard library, aiosmtpd and the other peer modules: it runs inside the peer
container.
"""

from __future__ import annotations

__all__ = ["Event", "EventCallback", "SessionRecorder"]

import asyncio
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, Protocol, cast

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException

from harness._smtp_endpoint import Reply, SmtpEndpoint, SmtpServerError
from harness._smtp_tls import tls_summary

Event = dict[str, Any]
"""One JSON-able event: ``{"event": "smtp" | "session", ...}`` (see :class:`SessionRecorder`)."""

EventCallback = Callable[[Event], None]

_MAIL_OK = Reply("250 2.1.0 Ok")
_RCPT_OK = Reply("250 2.1.5 Ok")


def format_address(address: Any) -> str:
    """``addr:port`` (``[addr]:port`` for IPv6) of a socket address; anything else as ``str``."""
    if not isinstance(address, tuple):
        return str(address)
    return f"[{address[0]}]:{address[1]}" if ":" in str(address[0]) else f"{address[0]}:{address[1]}"


def describe(error: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _message_id(content: bytes) -> str | None:
    header = BytesHeaderParser(policy=compat32).parsebytes(content).get("Message-ID")
    if header is None:
        return None
    return " ".join(str(header).split()).strip("<>") or None


def _positive(reply: Reply) -> bool:
    return reply.code is not None and reply.code // 100 == 2


@dataclass
class SessionRecord:
    """What one connection did; its fields are the ``session`` summary.

    ``client_pid`` is the pid of the process that opened the connection (a Postfix smtp(8) process, as logged in
    ``postfix/smtp[PID]``), None when it could not be read (see :mod:`harness._smtp_client_pid`).
    """

    session: str
    server: str
    local_address: str
    local_port: int
    client: str
    client_pid: int | None = None
    ehlo: str | None = None
    starttls: bool = False
    tls: dict[str, Any] | None = None
    tls_error: str | None = None
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    start: float = field(default_factory=time.time)

    def event(self, stage: str, **fields: Any) -> Event:
        """An ``smtp`` event of this session."""
        local = format_address((self.local_address, self.local_port))
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
        """The ``session`` event."""
        return {"event": "session", **asdict(self), "end": time.time()}


class _Server(Protocol):
    """What the recorder needs of the protocol (:class:`harness._smtp_protocol.RecordingSMTP`)."""

    @property
    def endpoint(self) -> SmtpEndpoint: ...

    @property
    def record(self) -> SessionRecord: ...

    async def respond(
        self, stage: str, normal: Reply, *, event: str, recipient: str | None = None, **fields: Any
    ) -> Reply: ...


def _protocol(server: SMTP) -> _Server:
    if not isinstance(getattr(server, "record", None), SessionRecord):
        raise TypeError("SessionRecorder serves the protocols of SmtpRunner only")
    return cast(_Server, server)


class SessionRecorder:
    """aiosmtpd handler that answers like Postfix's smtpd (or as the endpoint's faults say) and records each
    SMTP session as events.

    Per stage it emits ``{"event": "smtp", "stage": S, "t": <unix s>, "session": <id>, "server": <host>,
    "local": "addr:port", "client": "addr:port", ...}`` (IPv6 as ``[addr]:port``) with, per stage:
    ``connect`` (nothing more; at accept time); ``greeting`` ``reply``; ``ehlo``/``helo`` ``hostname``,
    ``reply``; ``starttls`` ``reply``; ``tls`` ``version``, ``cipher``, ``sni`` (None when the client sent
    none), ``implicit``, ``client_cert``; ``tls_failed`` ``error``; ``mail`` ``address``, ``options``,
    ``reply``; ``rcpt`` ``address``, ``options``, ``reply``; ``data_command`` ``reply`` (the answer to DATA,
    normally 354); ``data`` ``message_id``, ``size`` (octets), ``queue_id`` (None unless accepted with the
    normal reply), ``accepted``, ``reply`` (the answer after the final dot); ``auth`` ``mechanism``,
    ``login``; ``quit`` (nothing more); ``close`` ``error`` (None for a clean close).

    ``reply`` is the code the server sent (of the last line of a multi-line reply), and is None with
    ``"dropped": True`` where the endpoint closed the connection instead of replying. The world spec's reply
    stages map to these events: greeting → ``greeting``, ehlo → ``ehlo``, starttls → ``starttls``, mail →
    ``mail``, rcpt → ``rcpt``, data → ``data_command``, eom → ``data``.

    When the connection closes, however it closes (QUIT, client abort after the TLS handshake as Postfix does
    when a certificate fails its checks, handshake failure, a drop, runner stop), exactly one summary follows::

        {"event": "session", "session": id, "server": host, "local_address": a, "local_port": p,
         "client": "addr:port", "ehlo": last EHLO/HELO name or None, "starttls": bool,
         "tls": {"version", "cipher", "sni", "implicit", "client_cert"} or None, "tls_error": str or None,
         "mail_from": first MAIL FROM or None, "rcpt_to": [every RCPT TO, whatever the reply],
         "messages": [{"message_id", "size", "accepted", "queue_id", "mail_from", "rcpt_to"}],
         "start": unix s, "end": unix s}

    ``starttls`` is True when the server accepted STARTTLS (2xx reply); ``tls.implicit`` is True for implicit
    TLS (RFC 8314); a message's ``rcpt_to`` holds the recipients that got a 2xx reply.

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

    # aiosmtpd hooks, found by their handle_ prefix; each records, then answers as Postfix's smtpd would
    # unless the endpoint configures another reply (RecordingSMTP.respond applies delays, replies, drops).

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """Record EHLO; list AUTH only when the endpoint has ``auth`` (aiosmtpd adds it after TLS by itself)."""
        protocol = _protocol(server)
        lines = [line for line in responses if not line[4:].upper().startswith("AUTH")]
        if protocol.endpoint.auth:
            lines.insert(len(lines) - 1, "250-AUTH PLAIN LOGIN")
        record = protocol.record
        record.ehlo = hostname
        reply = await protocol.respond("ehlo", Reply("\n".join(lines)), event="ehlo", hostname=hostname)
        if _positive(reply):
            session.host_name = hostname  # aiosmtpd leaves this to a 5-argument EHLO hook
        self.emit(record.event("ehlo", hostname=hostname, reply=reply.code))
        return list(reply.lines)

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        """Record HELO (RFC 5321 §4.1.1.1); it keeps its normal reply whatever the faults."""
        session.host_name = hostname
        record = _protocol(server).record
        record.ehlo = hostname
        self.emit(record.event("helo", hostname=hostname, reply=250))
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Record MAIL FROM and answer ``250 2.1.0 Ok``."""
        return await self.mail(server, envelope, address, options, normal=_MAIL_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Record RCPT TO and answer ``250 2.1.5 Ok``."""
        return await self.rcpt(server, envelope, address, options, normal=_RCPT_OK)

    async def mail(
        self, server: SMTP, envelope: Envelope, address: str | None, options: list[str], *, normal: Reply
    ) -> str:
        """Record a MAIL FROM and return the reply to send (``normal`` unless the endpoint says otherwise); the
        envelope takes the sender only after a 2xx reply."""
        protocol = _protocol(server)
        record = protocol.record
        record.mail_from = record.mail_from or address
        fields: dict[str, Any] = {"address": address, "options": list(options)}
        reply = await protocol.respond("mail", normal, event="mail", **fields)
        if _positive(reply) and address is not None:
            envelope.mail_from = address
            envelope.mail_options.extend(options)
        self.emit(record.event("mail", **fields, reply=reply.code))
        return reply.wire

    async def rcpt(
        self, server: SMTP, envelope: Envelope, address: str | None, options: list[str], *, normal: Reply
    ) -> str:
        """Record a RCPT TO and return the reply to send (per address, else ``default``, else ``normal``); the
        envelope takes the recipient only after a 2xx reply."""
        protocol = _protocol(server)
        record = protocol.record
        if address is not None:
            record.rcpt_to.append(address)
        fields: dict[str, Any] = {"address": address, "options": list(options)}
        reply = await protocol.respond("rcpt", normal, event="rcpt", recipient=address, **fields)
        if _positive(reply) and address is not None:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        self.emit(record.event("rcpt", **fields, reply=reply.code))
        return reply.wire

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Answer the end of the message like Postfix's smtpd, ``250 2.0.0 Ok: queued as <ID>``, unless the
        endpoint has an ``eom`` reply; the message is recorded either way, ``accepted`` after a 2xx reply."""
        protocol = _protocol(server)
        raw = envelope.original_content or b""
        queue_id = secrets.token_hex(5).upper()
        message: dict[str, Any] = {
            "message_id": _message_id(raw),
            "size": len(raw),
            "accepted": False,
            "queue_id": None,
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
        }
        protocol.record.messages.append(message)
        normal = Reply(f"250 2.0.0 Ok: queued as {queue_id}")
        fields: dict[str, Any] = {"message_id": message["message_id"], "size": message["size"], "queue_id": None}
        reply = await protocol.respond("eom", normal, event="data", accepted=False, **fields)
        message["accepted"] = _positive(reply)
        message["queue_id"] = fields["queue_id"] = queue_id if reply is normal else None
        self.emit(protocol.record.event("data", **fields, accepted=message["accepted"], reply=reply.code))
        return reply.wire

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record QUIT."""
        self.emit(_protocol(server).record.event("quit"))
        return "221 2.0.0 Bye"

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        """Record the finished TLS handshake, after STARTTLS (RFC 3207 §4.2: the session restarts; the client
        EHLOs again) or at connect for implicit TLS (RFC 8314 §3.3)."""
        record = _protocol(server).record
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        tls = {**tls_summary(ssl_object), "implicit": not record.starttls}
        record.tls = tls
        self.emit(record.event("tls", **tls))
        return True

    async def handle_exception(self, error: Exception) -> str:
        """Answer a failed command; report errors other than a failed TLS handshake to the loop."""
        if not isinstance(error, TLSSetupException):
            context = {"message": "SMTP session handler failed", "exception": error}
            asyncio.get_running_loop().call_exception_handler(context)
        return "451 4.3.0 Error: internal error"

    def closed(self, summary: Event) -> None:
        """Keep and emit a session summary (called once per connection by the protocol)."""
        with self._cond:
            self.sessions.append(summary)
            self._cond.notify_all()
        self.emit(summary)

    def emit(self, event: Event) -> None:
        """Pass ``event`` to ``on_event``; an exception it raises goes to the loop's exception handler."""
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception as exc:  # keep serving; the controller surfaces it at stop()
            context = {"message": "SMTP on_event callback failed", "exception": exc}
            asyncio.get_running_loop().call_exception_handler(context)
