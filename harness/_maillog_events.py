"""The typed events of a Postfix log. Private: import these names from :mod:`harness.maillog`."""

from __future__ import annotations

__all__ = [
    "CertVerifyFailure",
    "ChainLine",
    "Delivery",
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
]

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LogEvent:
    """One Postfix log line. Every event type below extends this.

    Attributes:
        time: the line's full timestamp (Docker's RFC 3339 prefix, else an ISO 8601/RFC 5424 syslog time),
            timezone-aware; None for BSD syslog times (no year, no zone) and ISO times without a zone.
        syslog_time: the syslog timestamp as written (``Nov 30 10:53:17``).
        host: the logging host name.
        service: the syslog name and program, e.g. ``postfix/smtp``, ``postfix/submission/smtpd``.
        pid: the process id, None when the line has none (``postfix/postlog: …``).
        text: the message part after ``service[pid]: ``.
        raw: the whole line, without its line ending.
    """

    time: datetime | None
    syslog_time: str
    host: str
    service: str
    pid: int | None
    text: str
    raw: str


@dataclass(frozen=True)
class MasterStarted(LogEvent):
    """``daemon started -- version 3.7.11, configuration /etc/postfix`` (master). ``version``: ``3.7.11``."""

    version: str


@dataclass(frozen=True)
class Pickup(LogEvent):
    """``QID: uid=0 from=<a@example.test>`` (pickup): a message entered through sendmail/postdrop."""

    queue_id: str
    uid: int
    sender: str


@dataclass(frozen=True)
class MessageId(LogEvent):
    """``QID: message-id=<x@y>`` (cleanup). ``message_id`` without the angle brackets."""

    queue_id: str
    message_id: str


@dataclass(frozen=True)
class QueueActive(LogEvent):
    """``QID: from=<a@b>, size=230, nrcpt=1 (queue active)`` (qmgr). ``size`` in bytes."""

    queue_id: str
    sender: str
    size: int
    nrcpt: int


@dataclass(frozen=True)
class Delivery(LogEvent):
    """A recipient's status line: ``QID: to=<…>, relay=…, delay=…, delays=…, dsn=…, status=… (reason)``.

    Attributes:
        recipient: ``to=`` without brackets.
        orig_recipient: ``orig_to=`` (the address before aliasing/virtual mapping), None when absent.
        relay: ``relay=`` verbatim: ``none``, ``host[address]:port``, ``local``, ``private/dovecot-lmtp`` ….
        relay_host, relay_address, relay_port: the parts of a ``host[address]:port`` relay (host None when
            empty, port None when absent); all None for other forms.
        conn_use: ``conn_use=`` (a cached connection's use count, Postfix 2.3+), None when absent.
        delay: total time in the queue, seconds.
        delays: the ``a/b/c/d`` breakdown in seconds (before qmgr, in qmgr, connection setup, transmission).
        dsn: enhanced status code (RFC 3463), e.g. ``4.7.5``.
        status: ``sent``, ``deferred``, ``bounced``, ``expired``, ``undeliverable`` ….
        reason: the text inside the final parentheses.
    """

    queue_id: str
    recipient: str
    orig_recipient: str | None
    relay: str
    relay_host: str | None
    relay_address: str | None
    relay_port: int | None
    conn_use: int | None
    delay: float
    delays: tuple[float, ...]
    dsn: str
    status: str
    reason: str


@dataclass(frozen=True)
class TlsEstablished(LogEvent):
    """``Verified TLS connection established to H[A]:25: TLSv1.3 with cipher … (256/256 bits) …``.

    Attributes:
        level: ``Anonymous`` (no certificate), ``Untrusted``, ``Trusted`` or ``Verified``.
        direction: ``to`` (smtp client) or ``from`` (smtpd).
        peer_host, peer_address, peer_port: the peer's namaddr; port None for ``from`` lines.
        protocol: e.g. ``TLSv1.3``. cipher: e.g. ``TLS_AES_256_GCM_SHA384``. bits: the cipher's used bits.
    """

    level: str
    direction: str
    peer_host: str
    peer_address: str
    peer_port: int | None
    protocol: str
    cipher: str
    bits: int


@dataclass(frozen=True)
class CertVerifyFailure(LogEvent):
    """``[server ]certificate verification failed for H[A]:25: [num=62:]hostname mismatch`` (tls_verify.c).

    ``num`` is OpenSSL's X509_V_ERR code when logged (62 hostname, 64 IP address mismatch, 65 no matching
    DANE TLSA records); ``reason`` is the rest (``untrusted issuer /CN=…``, ``certificate has expired`` …).
    """

    peer_host: str
    peer_address: str
    peer_port: int | None
    depth: int | None
    num: int | None
    reason: str


@dataclass(frozen=True)
class PeerCertificate(LogEvent):
    """``H[A]:25: subject_CN=…, issuer_CN=…, fingerprint=…, pkey_fingerprint=…`` (smtp_tls_loglevel ≥ 1).

    ``fingerprint``/``pkey_fingerprint`` use ``smtp_tls_fingerprint_digest`` (md5 ≤ 3.5, sha256 from 3.6).
    """

    peer: str
    subject_cn: str
    issuer_cn: str
    fingerprint: str | None
    pkey_fingerprint: str | None


@dataclass(frozen=True)
class ChainLine(LogEvent):
    """``H[A]:25: depth=2 verify=1 subject=/C=…`` (smtp_tls_loglevel ≥ 2): one certificate of the chain."""

    peer: str
    depth: int
    verify: bool
    subject: str


@dataclass(frozen=True)
class SubjectAltName(LogEvent):
    """``H[A]:25: subjectAltName: *.example.com`` (smtp_tls_loglevel ≥ 2): one DNS SAN of the peer."""

    peer: str
    name: str


@dataclass(frozen=True)
class QueueNote(LogEvent):
    """Any other ``QID: message`` line: ``removed``, a soft TLS failure before the next MX host ….

    ``message`` is the text after ``QID: ``.
    """

    queue_id: str
    message: str


@dataclass(frozen=True)
class Warning(LogEvent):
    """``warning: …`` or ``error: …``. ``severity`` is ``warning`` or ``error``; ``message`` the rest."""

    severity: str
    message: str


@dataclass(frozen=True)
class Fatal(LogEvent):
    """``fatal: …`` or ``panic: …``: the process exits. ``severity`` is ``fatal`` or ``panic``."""

    severity: str
    message: str


@dataclass(frozen=True)
class Other(LogEvent):
    """A Postfix line of no form above (``connect to …``, ``SSL_connect:…``, ``setting up TLS …``)."""
