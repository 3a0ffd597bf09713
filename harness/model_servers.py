"""The schema of ``servers.HOST``: a fake receiving SMTP server and its fault knobs (scenario-format.md, "Fault
catalogue"). Part of :mod:`harness.model`, which re-exports :class:`ServerSpec`.

Every fault key is optional and its absence means the plain behaviour: STARTTLS offered when a ``cert`` is given,
the leaf and its intermediates sent, normal replies without delay. Replies are checked here for the form of an
SMTP reply (RFC 5321 §4.2: a 2xx-5xx code, ``-`` between the lines of a multi-line reply, a space or nothing
after the code of the last line; an enhanced status code, where given, ``class.subject.detail`` as RFC 3463
writes it). Cross-references (certificate names, ``implicit_tls`` ports in ``ports``) are checked by
:mod:`harness.references_world`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CHAIN_MODES",
    "REPLY_STAGES",
    "DelaySpec",
    "RepliesSpec",
    "ServerSpec",
    "TlsSpec",
    "TlsVersion",
    "invalid_address",
    "invalid_address_hosts",
]

TlsVersion = Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
ChainMode = Literal["full", "leaf", "with-root"]
CHAIN_MODES: tuple[str, ...] = get_args(ChainMode)
#: The stages of an SMTP session whose reply a scenario may replace or delay, in session order.
REPLY_STAGES = ("greeting", "ehlo", "starttls", "mail", "rcpt", "data", "eom")
#: Longest delay a stage may have, in seconds (Postfix's own longest SMTP client timeouts are 300 s and more).
MAX_DELAY_S = 600

_LINE = re.compile(r"(?P<code>\d{3})(?P<sep>[ -]|$)(?P<text>.*)", re.DOTALL)
_ENHANCED_LIKE = re.compile(r"\d\.[\d.]*")
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_REPLY_EXAMPLE = "Hint: write e.g. `550 5.1.1 no such user`, a list of lines (`250-first`, `250 last`), or `drop`"


_IPV4_LIKE = re.compile(r"[0-9.]+")  # no host name is all digits and dots: its top-level label would be numeric


def invalid_address(host: str) -> str | None:
    """Why server key ``host`` is a broken address, or None: a key written like an IPv4 or IPv6 address (digits and
    dots with a dot, or a colon; ``[ ]`` optional) that is not a valid one is no host name either."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    version = 4 if "." in text and _IPV4_LIKE.fullmatch(text) else 6 if ":" in text else None
    if version is None:
        return None
    try:
        (ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address)(text)
    except ValueError as exc:
        example = "192.0.2.10" if version == 4 else "2001:db8::10"
        return (
            f"server {host!r} is not a valid IPv{version} address ({exc}). Hint: write a valid address, e.g. "
            f"`{example}`, or a host name with an address in dns"
        )
    return None


def invalid_address_hosts(servers: dict[str, Any] | None) -> dict[str, Any] | None:
    """``servers`` unchanged; ValueError for a key that is a broken address (:func:`invalid_address`)."""
    for host in servers or {}:
        if problem := invalid_address(host):
            raise ValueError(problem)
    return servers


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _reply_text(value: Any) -> Any:
    """A reply is one string (lines separated by newlines), a YAML list of lines, or a bare code (``554``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        return "\n".join(str(v) for v in value)
    if isinstance(value, str):
        return "\n".join(line.rstrip("\r") for line in value.rstrip("\r\n").split("\n"))
    return value


def check_reply(text: str) -> str:
    """Check one reply: ``drop``, or SMTP reply lines (RFC 5321 §4.2, RFC 3463).

    Returns:
        ``text`` unchanged.

    Raises:
        ValueError: a line without a 2xx-5xx code, a wrong continuation mark, or a malformed enhanced status code.
    """
    if text == "drop":
        return text
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        where = f"reply line {line!r}" if len(lines) == 1 else f"line {number} of the reply ({line!r})"
        match = _LINE.fullmatch(line)
        if match is None or not "200" <= match["code"] <= "599":
            raise ValueError(f"{where} does not start with a reply code 200-599 (RFC 5321 §4.2). {_REPLY_EXAMPLE}")
        last = number == len(lines)
        if match["sep"] == "-" and last:
            raise ValueError(
                f"{where} is the last line but continues with '-': the client would wait for more. "
                f"Hint: write the last line `{match['code']} {match['text']}`"
            )
        if match["sep"] != "-" and not last:
            raise ValueError(
                f"{where} ends the reply, yet more lines follow. Hint: every line but the last is written "
                f"`{match['code']}-text`, the last `{match['code']} text` (RFC 5321 §4.2.1)"
            )
        first_word = match["text"].split(" ", 1)[0]
        if _ENHANCED_LIKE.fullmatch(first_word) and not _ENHANCED.fullmatch(first_word):
            raise ValueError(
                f"{where}: {first_word!r} is not an enhanced status code class.subject.detail (RFC 3463). "
                "Hint: write e.g. `4.7.1`, or leave it out"
            )
    return text


def _checked_reply(value: Any) -> Any:
    value = _reply_text(value)
    return check_reply(value) if isinstance(value, str) else value


Reply = Annotated[str, BeforeValidator(_checked_reply)]


def _rcpt_form(value: Any) -> Any:
    """``rcpt`` is one reply for every recipient, or a mapping of address (or ``default``) → reply."""
    if isinstance(value, dict):
        return value
    if value is None:
        return value
    return {"default": value}


class RepliesSpec(_Frozen):
    """Replies that replace the server's own at a stage of the session; absent = the normal reply."""

    greeting: Reply | None = None
    ehlo: Reply | None = None
    starttls: Reply | None = None
    mail: Reply | None = None
    rcpt: Annotated[dict[str, Reply], BeforeValidator(_rcpt_form)] | None = None
    data: Reply | None = None
    eom: Reply | None = None

    @field_validator("rcpt")
    @classmethod
    def _addresses(cls, rcpt: dict[str, str] | None) -> dict[str, str] | None:
        for key in rcpt or {}:
            if key != "default" and not re.fullmatch(r'([^@\s"]+|"[^"]+")@[^@\s]+', key):
                raise ValueError(
                    f"{key!r} is neither a recipient address nor `default`. "
                    "Hint: write `user@example.com: 550 5.1.1 no such user` or `default: 450 4.7.1 try later`"
                )
        return rcpt


Seconds = Annotated[float, Field(ge=0, le=MAX_DELAY_S)]


class DelaySpec(_Frozen):
    """Seconds the server waits before its reply at each stage (0 to 600)."""

    greeting: Seconds = 0
    ehlo: Seconds = 0
    starttls: Seconds = 0
    mail: Seconds = 0
    rcpt: Seconds = 0
    data: Seconds = 0
    eom: Seconds = 0


_VERSION_ORDER = {v: i for i, v in enumerate(get_args(TlsVersion))}


class TlsSpec(_Frozen):
    """The server's TLS: protocol bounds, cipher list, client certificate request, and a handshake fault."""

    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None
    ciphers: str | None = Field(default=None, min_length=1)
    request_client_cert: bool = False
    handshake: Literal["ok", "abort"] = "ok"

    @model_validator(mode="after")
    def _bounds(self) -> TlsSpec:
        low, high = self.min_version, self.max_version
        if low is not None and high is not None and _VERSION_ORDER[low] > _VERSION_ORDER[high]:
            raise ValueError(f"min_version {low} is above max_version {high}. Hint: swap them")
        return self

    @property
    def allows_old_protocols(self) -> bool:
        """Whether a bound names TLSv1 or TLSv1.1, which OpenSSL 3 allows only at security level 0."""
        return bool({self.min_version, self.max_version} & {"TLSv1", "TLSv1.1"})


class ServerSpec(_Frozen):
    """A fake receiving SMTP server on every address of its host. Without ``cert`` it offers no STARTTLS.

    Attributes:
        cert: the ``pki.certs`` NAME it presents (the default when ``sni`` has no entry for the client's name).
        ports: TCP ports it listens on.
        chain: what it sends: ``full`` (leaf + intermediates), ``leaf`` (the leaf alone: "server omits the
            intermediate") or ``with-root`` (leaf + intermediates + root).
        sni: SNI name → ``pki.certs`` NAME presented to a client that sends that name.
        starttls: offer STARTTLS in the EHLO reply (when a certificate is given).
        implicit_tls: ports, among ``ports``, that speak TLS from the first byte (465-style).
        tls: protocol bounds, ciphers, client certificate request, handshake fault.
        replies: replies that replace the normal ones.
        delays: seconds before the reply at each stage.
        require_starttls: MAIL/RCPT/DATA before STARTTLS get ``530 5.7.0``.
        auth: advertise ``AUTH PLAIN LOGIN``.
    """

    cert: str | None = None
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=lambda: [25], min_length=1)
    chain: ChainMode = "full"
    sni: dict[str, str] = Field(default_factory=dict)
    starttls: bool = True
    implicit_tls: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=list)
    tls: TlsSpec = Field(default_factory=TlsSpec)
    replies: RepliesSpec = Field(default_factory=RepliesSpec)
    delays: DelaySpec = Field(default_factory=DelaySpec)
    require_starttls: bool = False
    auth: bool = False

    @field_validator("sni")
    @classmethod
    def _sni_names(cls, sni: dict[str, str]) -> dict[str, str]:
        for name in sni:
            if not name or not name.isascii() or any(c.isspace() or c in "[]/@:" for c in name):
                raise ValueError(
                    f"SNI name {name!r} is not a host name (RFC 6066 §3: a DNS host name, no address). "
                    "Hint: write `mx.example.com: mx-cert`"
                )
        return sni
