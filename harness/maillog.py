"""Pure parser of Postfix log lines into typed events, and a tracker of each recipient's first attempt.

:func:`parse_line` turns one line into a frozen event (:class:`Delivery`, :class:`TlsEstablished`,
:class:`CertVerifyFailure` …; accepted prefixes and forms are described in :mod:`harness._maillog_parse`).
:class:`DeliveryTracker` reads a whole pod log and answers, per injected message and recipient, what the first
delivery attempt was and at which TLS level it ran.

Why the TLS level needs correlation: the ``… TLS connection established to H[A]:25`` line carries no queue id.
An smtp process handles one delivery request at a time and, without ``connection_reuse`` (Postfix 3.4+, off by
default), never caches a TLS connection; so it logs the TLS lines of a session followed by that session's
``status=`` lines. The tracker therefore keeps, per process (service + pid), the lines since its previous
status line, and attributes a TLS line to a status line when the relay equals the TLS peer.

Nothing here does I/O.
"""

from __future__ import annotations

__all__ = [
    "Attempt",
    "CertVerifyFailure",
    "ChainLine",
    "Delivery",
    "DeliveryTracker",
    "Fatal",
    "LogEvent",
    "MasterStarted",
    "MessageId",
    "Other",
    "PeerCertificate",
    "Pickup",
    "QueueActive",
    "QueueNote",
    "SubjectAltName",
    "TlsEstablished",
    "Warning",
    "parse_line",
    "parse_lines",
]

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness._maillog_events import (
    CertVerifyFailure,
    ChainLine,
    Delivery,
    Fatal,
    LogEvent,
    MasterStarted,
    MessageId,
    Other,
    PeerCertificate,
    Pickup,
    QueueActive,
    QueueNote,
    SubjectAltName,
    TlsEstablished,
    Warning,
)
from harness._maillog_parse import parse_line, parse_lines, queue_id_of, queue_ids_mentioned

# Lines kept per process between two status lines; bounds memory for processes that never log one (smtpd).
_WINDOW_LIMIT = 500


@dataclass(frozen=True)
class Attempt:
    """A recipient's first delivery attempt: its status line and the TLS session it ran in.

    Attributes:
        delivery: the first ``status=`` line for the recipient (later retries are ignored).
        tls: the ``… TLS connection established`` line of the session that delivered it, or None when the
            session to the relay did not use TLS (or no server was reached).
        verify_failures: every ``certificate verification failed`` line the process logged during the attempt,
            for every MX host it tried (each carries its peer).
        lines: the process's lines of the attempt, in log order, ending with the status line.
    """

    delivery: Delivery
    tls: TlsEstablished | None
    verify_failures: list[CertVerifyFailure]
    lines: list[str]

    @property
    def tls_level(self) -> str:
        """``none``, or the level of :attr:`tls`: ``Anonymous``, ``Untrusted``, ``Trusted``, ``Verified``."""
        return self.tls.level if self.tls else "none"


@dataclass
class _Window:
    """What one process logged since its previous status line (mutable, private)."""

    lines: list[tuple[int, str, str | None]] = field(default_factory=list)  # (sequence, raw, queue id)
    tls: TlsEstablished | None = None
    failures: list[CertVerifyFailure] = field(default_factory=list)
    closed_by: str | None = None  # queue id of the status line that ended the window


class DeliveryTracker:
    """Follows a Postfix log line by line and keeps each recipient's first delivery attempt.

    Feed it every line in order (:meth:`feed`); query at any time. The harness gives every injected message
    a unique Message-ID; cleanup logs it (``QID: message-id=<…>``), which links the message to its queue id.
    """

    def __init__(self) -> None:
        self._fed = 0
        self._version: str | None = None
        self._warnings: list[Warning] = []
        self._fatals: list[Fatal] = []
        self._queue_ids: dict[str, list[str]] = {}
        self._attempts: dict[tuple[str, str], Attempt] = {}
        self._attempt_order: list[Attempt] = []
        self._mentions: dict[str, dict[int, str]] = {}
        self._windows: dict[tuple[str, int], _Window] = {}

    @property
    def fed(self) -> int:
        """How many lines (or events) were fed, Postfix or not: the index of the next unread line."""
        return self._fed

    @property
    def version(self) -> str | None:
        """The Postfix release from the last ``daemon started -- version X`` line, e.g. ``3.7.11``."""
        return self._version

    @property
    def warnings(self) -> list[Warning]:
        """Every ``warning:``/``error:`` line so far."""
        return list(self._warnings)

    @property
    def fatals(self) -> list[Fatal]:
        """Every ``fatal:``/``panic:`` line so far (a Postfix process died)."""
        return list(self._fatals)

    @property
    def attempts(self) -> list[Attempt]:
        """Every first attempt so far, in log order (bounce notices and unknown messages included)."""
        return list(self._attempt_order)

    def feed(self, line: str | LogEvent) -> LogEvent | None:
        """Take the next log line (or an already parsed event).

        Args:
            line: one line of the Postfix log, in log order, or the event :func:`parse_line` made of it.

        Returns:
            The parsed event, None for a non-Postfix line.
        """
        self._fed += 1
        event = parse_line(line) if isinstance(line, str) else line
        if event is None:
            return None
        sequence, queue_id = self._fed, queue_id_of(event)
        for mentioned in queue_ids_mentioned(event.text) | ({queue_id} if queue_id else set()):
            self._mentions.setdefault(mentioned, {})[sequence] = event.raw
        if isinstance(event, MasterStarted):
            self._version = event.version
        elif isinstance(event, Warning):
            self._warnings.append(event)
        elif isinstance(event, Fatal):
            self._fatals.append(event)
        elif isinstance(event, MessageId):
            ids = self._queue_ids.setdefault(event.message_id, [])
            if event.queue_id not in ids:
                ids.append(event.queue_id)
        if event.pid is not None:
            self._follow_process(sequence, event, queue_id)
        return event

    def feed_all(self, lines: Iterable[str | LogEvent]) -> None:
        """:meth:`feed` each of ``lines``."""
        for line in lines:
            self.feed(line)

    def queue_id_for(self, message_id: str) -> str | None:
        """The queue id of the message with this Message-ID (angle brackets optional), None if not seen yet.

        A message re-injected under the same Message-ID (content filter) has more: see :meth:`queue_ids_for`.
        """
        ids = self.queue_ids_for(message_id)
        return ids[0] if ids else None

    def queue_ids_for(self, message_id: str) -> list[str]:
        """Every queue id cleanup logged for this Message-ID, in log order."""
        return list(self._queue_ids.get(_strip_brackets(message_id), ()))

    def first_attempt(self, message_id: str, recipient: str) -> Attempt | None:
        """The first delivery attempt of ``recipient`` (``to=`` or ``orig_to=``, case-insensitive) of the
        message with this Message-ID; None while there is none."""
        for queue_id in self.queue_ids_for(message_id):
            if attempt := self.attempt(queue_id, recipient):
                return attempt
        return None

    def attempt(self, queue_id: str, recipient: str) -> Attempt | None:
        """The first delivery attempt of ``recipient`` in the queue file ``queue_id``, or None."""
        return self._attempts.get((queue_id, recipient.casefold()))

    def lines_for(self, queue_id: str) -> list[str]:
        """The raw lines that mention ``queue_id``, plus the lines its delivering processes logged during each
        attempt (TLS set-up, certificate checks), in log order."""
        return [raw for _, raw in sorted(self._mentions.get(queue_id, {}).items())]

    def _follow_process(self, sequence: int, event: LogEvent, queue_id: str | None) -> None:
        assert event.pid is not None
        key = (event.service, event.pid)
        window = self._windows.get(key)
        # A closed window stays open only for more status lines of the same queue file (several recipients
        # in one session); anything else from the process starts the next session.
        if window is None or (window.closed_by is not None and queue_id != window.closed_by):
            window = self._windows[key] = _Window()
        window.lines.append((sequence, event.raw, queue_id))
        del window.lines[:-_WINDOW_LIMIT]
        if isinstance(event, TlsEstablished):
            window.tls = event
        elif isinstance(event, CertVerifyFailure):
            window.failures.append(event)
        elif isinstance(event, Delivery):
            window.closed_by = event.queue_id
            self._record(event, window)

    def _record(self, delivery: Delivery, window: _Window) -> None:
        lines = [(seq, raw) for seq, raw, qid in window.lines if qid is None or qid == delivery.queue_id]
        mentions = self._mentions.setdefault(delivery.queue_id, {})
        mentions.update(lines)
        keys = {(delivery.queue_id, delivery.recipient.casefold())}
        if delivery.orig_recipient is not None:
            keys.add((delivery.queue_id, delivery.orig_recipient.casefold()))
        if all(key in self._attempts for key in keys):
            return
        tls = window.tls if window.tls and _same_peer(window.tls, delivery) else None
        attempt = Attempt(delivery, tls, list(window.failures), [raw for _, raw in lines])
        self._attempt_order.append(attempt)
        for key in keys:
            self._attempts.setdefault(key, attempt)


def _same_peer(tls: TlsEstablished, delivery: Delivery) -> bool:
    return (
        tls.peer_host.casefold() == (delivery.relay_host or "").casefold()
        and tls.peer_address == delivery.relay_address
        and tls.peer_port == delivery.relay_port
    )


def _strip_brackets(text: str) -> str:
    text = text.strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text
