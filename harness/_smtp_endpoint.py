"""What one fake SMTP server is: address, certificates, TLS settings and faults. Private: import from
:mod:`harness.smtp`.

Value objects only; :mod:`harness._smtp_tls` turns :class:`TlsSettings` into an ``ssl.SSLContext`` and
:mod:`harness._smtp_protocol` applies :class:`Replies` and :class:`Delays` on the wire.

This module imports only the standard library and :mod:`harness.errors`: it runs inside the peer container.
"""

from __future__ import annotations

__all__ = [
    "HANDSHAKES",
    "STAGES",
    "TLS_VERSIONS",
    "Delays",
    "Replies",
    "Reply",
    "SmtpEndpoint",
    "SmtpServerError",
    "SniCertificate",
    "TlsSettings",
]

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any

from harness.errors import HarnessError

STAGES = ("greeting", "ehlo", "starttls", "mail", "rcpt", "data", "eom")
"""Stages of a session whose reply can be replaced or delayed: the 220 banner, the EHLO reply, the reply to
STARTTLS, MAIL FROM, each RCPT TO, DATA (the 354) and the end of the message (after the final dot)."""

TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
"""Protocol versions :class:`TlsSettings` can bound, oldest first (OpenSSL names)."""

HANDSHAKES = ("ok", "abort")
"""``ok``: the TLS handshake happens. ``abort``: the server closes the connection instead."""

_DROP = "drop"
_REPLY_LINE = re.compile(r"[2-5][0-9]{2}(?:[ -][\t\x20-\x7e]*)?")  # RFC 5321 §4.2: textstring


class SmtpServerError(HarnessError):
    """An SMTP endpoint is invalid or could not start (bad certificate, address not local, port taken), its
    background loop failed, or a wait for sessions timed out."""


@dataclass(frozen=True)
class Reply:
    """A reply the server sends at a stage instead of its own, or ``drop``.

    Attributes:
        text: ``drop`` (close the connection without a reply), or the reply: one or more complete reply lines
            separated by ``\\n`` (RFC 5321 §4.2), e.g. ``550 5.1.1 no such user`` or ``250-first\\n250 last``.
            Lines are sent as given, each ended by CRLF; a trailing newline and CRs are dropped.

    Raises:
        SmtpServerError: a line does not start with a code 200-599 followed by a space, ``-`` or nothing, or
            holds characters other than printable ASCII, space and tab (the server sends ASCII: no SMTPUTF8).
    """

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise SmtpServerError(f"reply {self.text!r}: not a string. Hint: write e.g. '550 5.1.1 no such user'.")
        lines = [line.rstrip("\r") for line in self.text.rstrip("\r\n").split("\n")]
        object.__setattr__(self, "text", "\n".join(lines))
        if self.text == _DROP:
            return
        for line in lines:
            if not _REPLY_LINE.fullmatch(line):
                raise SmtpServerError(
                    f"reply line {line!r} is not an SMTP reply line: a code 200-599, then a space (last line) or "
                    "'-' (more lines follow) and text of printable ASCII, spaces and tabs (RFC 5321 §4.2). "
                    "Hint: write e.g. '550 5.1.1 no such user', '250-first\\n250 last', or 'drop'."
                )

    @property
    def drop(self) -> bool:
        """Whether this is ``drop``: close the connection instead of replying."""
        return self.text == _DROP

    @property
    def lines(self) -> tuple[str, ...]:
        """The reply lines (empty for ``drop``)."""
        return () if self.drop else tuple(self.text.split("\n"))

    @property
    def code(self) -> int | None:
        """The reply code as a client reads it, from the last line (None for ``drop``)."""
        return int(self.lines[-1][:3]) if self.lines else None

    @property
    def wire(self) -> str:
        """The lines joined by CRLF, ready for ``SMTP.push`` (which adds the final CRLF)."""
        return "\r\n".join(self.lines)


def _reply(value: Any, where: str) -> Reply | None:
    if value is None:
        return None
    try:
        return Reply(value)
    except SmtpServerError as exc:
        raise SmtpServerError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Replies:
    """Replies that replace the server's own, per stage; None keeps the normal reply.

    Attributes:
        greeting, ehlo, starttls, mail, data, eom: see :data:`STAGES`. ``ehlo`` replaces the whole EHLO reply
            (so its extensions too) at every EHLO; HELO keeps its normal reply.
        rcpt: (address or ``default``, reply) pairs; a recipient gets the reply of its address (exact,
            case-insensitive), else the ``default`` one. Addresses are stored lower-case.

    Raises:
        SmtpServerError: an address is given twice.
    """

    greeting: Reply | None = None
    ehlo: Reply | None = None
    starttls: Reply | None = None
    mail: Reply | None = None
    rcpt: tuple[tuple[str, Reply], ...] = ()
    data: Reply | None = None
    eom: Reply | None = None

    def __post_init__(self) -> None:
        rcpt = tuple((address.lower(), reply) for address, reply in self.rcpt)
        addresses = [address for address, _ in rcpt]
        twice = sorted({a for a in addresses if addresses.count(a) > 1})
        if twice:
            raise SmtpServerError(
                f"replies.rcpt: {', '.join(twice)} given twice (addresses match case-insensitively). "
                "Hint: keep one reply per address."
            )
        object.__setattr__(self, "rcpt", rcpt)

    def reply(self, stage: str, *, address: str | None = None) -> Reply | None:
        """The reply configured for ``stage`` (and, at ``rcpt``, for ``address``), or None."""
        if stage != "rcpt":
            value: Reply | None = getattr(self, stage)
            return value
        by_address = dict(self.rcpt)
        return by_address.get((address or "").lower(), by_address.get("default"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Replies:
        """Build from the world-spec form ``{"greeting": "554 …", "rcpt": {"default": …, "a@b": …}, …}``.

        Raises:
            SmtpServerError: an unknown stage, a malformed reply, ``rcpt`` not a mapping.
        """
        data = data or {}
        _known_keys(data, STAGES, "replies", "a stage")
        rcpt = data.get("rcpt") or {}
        if not isinstance(rcpt, Mapping):
            raise SmtpServerError(
                f"replies.rcpt: {rcpt!r} is not a mapping. Hint: write {{'default': '450 4.2.0 try later'}}."
            )
        pairs = tuple(
            (address, reply)
            for address, value in rcpt.items()
            if (reply := _reply(value, f"replies.rcpt.{address}")) is not None
        )
        others = {stage: _reply(data.get(stage), f"replies.{stage}") for stage in STAGES if stage != "rcpt"}
        return cls(rcpt=pairs, **others)

    def to_dict(self) -> dict[str, Any]:
        """The world-spec form (every stage present, None for the normal reply)."""
        out: dict[str, Any] = {}
        for stage in STAGES:
            if stage == "rcpt":
                out[stage] = {"default": None, **{address: reply.text for address, reply in self.rcpt}}
            else:
                reply = getattr(self, stage)
                out[stage] = reply.text if reply is not None else None
        return out


@dataclass(frozen=True)
class Delays:
    """Seconds the server waits before its reply at each stage (see :data:`STAGES`); ``rcpt`` applies to each
    RCPT TO. Long delays make Postfix's own timeouts fire (``smtp_helo_timeout``, ``smtp_rcpt_timeout`` …).

    Raises:
        SmtpServerError: a delay is not a finite number of seconds ≥ 0.
    """

    greeting: float = 0.0
    ehlo: float = 0.0
    starttls: float = 0.0
    mail: float = 0.0
    rcpt: float = 0.0
    data: float = 0.0
    eom: float = 0.0

    def __post_init__(self) -> None:
        for stage in STAGES:
            value = getattr(self, stage)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise SmtpServerError(
                    f"delays.{stage}: {value!r} is not a number of seconds ≥ 0. Hint: write e.g. 2.5, or 0."
                )
            object.__setattr__(self, stage, float(value))

    def delay(self, stage: str) -> float:
        """Seconds to wait before the reply at ``stage``."""
        value: float = getattr(self, stage)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Delays:
        """Build from the world-spec form ``{"greeting": 0, "rcpt": 2.5, …}`` (None or missing = 0).

        Raises:
            SmtpServerError: an unknown stage or a bad delay.
        """
        data = data or {}
        _known_keys(data, STAGES, "delays", "a stage")
        return cls(**{stage: data[stage] for stage in STAGES if data.get(stage) is not None})

    def to_dict(self) -> dict[str, float]:
        """The world-spec form (every stage present)."""
        return {stage: self.delay(stage) for stage in STAGES}


@dataclass(frozen=True)
class TlsSettings:
    """The server side of TLS, for STARTTLS and implicit TLS alike.

    Attributes:
        min_version, max_version: protocol bounds, one of :data:`TLS_VERSIONS` (None: TLSv1.2, and the newest
            OpenSSL has, TLSv1.3). TLSv1 and TLSv1.1 also need ``seclevel`` 0 with OpenSSL 3.
        ciphers: OpenSSL cipher string for TLS ≤ 1.2 (TLS 1.3 suites are not affected), None for Python's.
        seclevel: OpenSSL security level 0-5 appended as ``@SECLEVEL=n``; 0 lets a 1024-bit RSA key, SHA-1
            signatures and TLSv1/TLSv1.1 through. None keeps Python's level (2).
        request_client_cert: send a CertificateRequest and accept any certificate, or none (Postfix's
            ``smtpd_tls_ask_ccert``); the session records whether one came.
        handshake: ``ok``, or ``abort``: after ``220 2.0.0 Ready to start TLS`` (or, with implicit TLS, right
            after the TCP connection) the server closes the connection without a handshake.

    Raises:
        SmtpServerError: an unknown version or handshake, bounds in the wrong order, a level outside 0-5, an
            empty cipher string.
    """

    min_version: str | None = None
    max_version: str | None = None
    ciphers: str | None = None
    seclevel: int | None = None
    request_client_cert: bool = False
    handshake: str = "ok"

    def __post_init__(self) -> None:
        for name in ("min_version", "max_version"):
            value = getattr(self, name)
            if value is not None and value not in TLS_VERSIONS:
                raise SmtpServerError(
                    f"tls.{name}: {value!r} is not a TLS version. Hint: use one of {', '.join(TLS_VERSIONS)}."
                )
        low, high = self.min_version, self.max_version
        if low is not None and high is not None and TLS_VERSIONS.index(low) > TLS_VERSIONS.index(high):
            raise SmtpServerError(f"tls: min_version {low} is above max_version {high}. Hint: swap them.")
        if self.ciphers is not None and (not isinstance(self.ciphers, str) or not self.ciphers.strip()):
            raise SmtpServerError(f"tls.ciphers: {self.ciphers!r} is not a cipher string. Hint: e.g. 'AES128-SHA'.")
        level = self.seclevel
        if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 5):
            raise SmtpServerError(f"tls.seclevel: {level!r} is not an OpenSSL security level 0-5.")
        if not isinstance(self.request_client_cert, bool):
            raise SmtpServerError(f"tls.request_client_cert: {self.request_client_cert!r} is not true or false.")
        if self.handshake not in HANDSHAKES:
            raise SmtpServerError(
                f"tls.handshake: {self.handshake!r} is not a handshake mode. Hint: use one of {', '.join(HANDSHAKES)}."
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TlsSettings:
        """Build from the world-spec form (None or missing keys: the defaults).

        Raises:
            SmtpServerError: an unknown key or a bad value.
        """
        data = data or {}
        names = tuple(f.name for f in fields(cls))
        _known_keys(data, names, "tls", "a TLS setting")
        return cls(**{name: data[name] for name in names if data.get(name) is not None})

    def to_dict(self) -> dict[str, Any]:
        """The world-spec form (every key present)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SniCertificate:
    """The certificate an endpoint presents to a client that sends SNI ``name`` (RFC 6066 §3).

    Attributes:
        name: the SNI host name, matched exactly and case-insensitively (stored lower-case, no trailing dot).
        cert_chain_file: PEM file, leaf first then intermediates.
        key_file: PEM private key of the leaf.

    Raises:
        SmtpServerError: an empty name.
    """

    name: str
    cert_chain_file: str
    key_file: str

    def __post_init__(self) -> None:
        folded = self.name.strip().lower().removesuffix(".") if isinstance(self.name, str) else ""
        if not folded:
            raise SmtpServerError(f"sni: {self.name!r} is not a host name. Hint: e.g. 'mx.example.com'.")
        object.__setattr__(self, "name", folded)


@dataclass(frozen=True)
class SmtpEndpoint:
    """One fake receiving SMTP server.

    Attributes:
        host: the server's name, given in the 220 greeting and the EHLO reply (Postfix logs it).
        address: IPv4 or IPv6 address to listen on.
        port: TCP port; 0 picks a free one (read it from :attr:`SmtpRunner.ports`).
        cert_chain_file: PEM file, leaf first then intermediates; None means no TLS at all.
        key_file: PEM private key of the leaf; required exactly when ``cert_chain_file`` is given.
        sni: certificates for clients that send those SNI names; others get ``cert_chain_file``.
        starttls: offer STARTTLS in the EHLO reply (only with a certificate; RFC 3207).
        implicit_tls: TLS from the first byte, then SMTP inside (RFC 8314 §3.3, Postfix
            ``smtp_tls_wrappermode``); STARTTLS is then not offered.
        tls: protocol bounds, ciphers, security level, client certificate request, handshake fault.
        replies: replies replacing the normal ones (:class:`Replies`).
        delays: seconds before the reply at each stage (:class:`Delays`).
        require_starttls: MAIL, RCPT and DATA before TLS get ``530 5.7.0 Must issue a STARTTLS command first``
            (RFC 3207 §4; Postfix ``smtpd_tls_security_level = encrypt``).
        auth: advertise ``AUTH PLAIN LOGIN`` in every EHLO reply (RFC 4954) and accept any credentials.

    Raises:
        SmtpServerError: only one of ``cert_chain_file`` and ``key_file`` is given; SNI certificates, implicit
            TLS or TLS settings without a certificate; an SNI name given twice; the port outside 0..65535.
    """

    host: str
    address: str
    port: int = 25
    cert_chain_file: str | None = None
    key_file: str | None = None
    _: KW_ONLY
    sni: tuple[SniCertificate, ...] = ()
    starttls: bool = True
    implicit_tls: bool = False
    tls: TlsSettings = field(default_factory=TlsSettings)
    replies: Replies = field(default_factory=Replies)
    delays: Delays = field(default_factory=Delays)
    require_starttls: bool = False
    auth: bool = False

    def __post_init__(self) -> None:
        where = f"SMTP endpoint {self.host}"
        if (self.cert_chain_file is None) != (self.key_file is None):
            raise SmtpServerError(
                f"{where}: cert_chain_file and key_file go together. "
                "Hint: give both for a TLS server, neither for a plaintext-only one."
            )
        if not 0 <= self.port <= 65535:
            raise SmtpServerError(f"{where}: port {self.port} outside 0..65535.")
        if self.cert_chain_file is None:
            needs = [
                what
                for what, present in (
                    ("sni", bool(self.sni)),
                    ("implicit_tls", self.implicit_tls),
                    ("tls", self.tls != TlsSettings()),
                )
                if present
            ]
            if needs:
                raise SmtpServerError(
                    f"{where}: {', '.join(needs)} need a certificate. Hint: give cert_chain_file and key_file."
                )
        names = [entry.name for entry in self.sni]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SmtpServerError(f"{where}: SNI name(s) {', '.join(twice)} given twice. Hint: keep one each.")

    @property
    def offers_starttls(self) -> bool:
        """Whether the EHLO reply lists STARTTLS: a certificate, ``starttls`` and no implicit TLS."""
        return self.cert_chain_file is not None and self.starttls and not self.implicit_tls


def _known_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str, what: str) -> None:
    if not isinstance(data, Mapping):
        raise SmtpServerError(f"{where}: {data!r} is not a mapping. Hint: write {{{allowed[0]!r}: …}}.")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            near = f" (did you mean {close[0]!r}?)" if close else ""
            raise SmtpServerError(f"{where}: {key!r} is not {what}{near}. Hint: use one of {', '.join(allowed)}.")
