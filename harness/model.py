"""The scenario schema, version 1: frozen pydantic models that a scenario YAML file becomes.

The models are the contract of ``docs/scenario-format.md``; every key of that document is a field here, under its
YAML spelling (``main.cf``, ``from``) as the alias. Unknown keys are an error (``extra="forbid"``). The models check
the shape and the form of each value; cross-references (a certificate's issuer, a server's address record) are
checked by :mod:`harness.scenario`, which also turns errors into messages with file, line and key path.

Build a scenario in code with :func:`harness.scenario.scenario_from_dict`, not with these constructors directly:
that path runs the same checks as a file.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.model_servers import ServerSpec, invalid_address_hosts
from harness.releases import RELEASES

__all__ = [
    "DNS_FAULTS",
    "FAULT_TYPES",
    "CaSpec",
    "Case",
    "CasePki",
    "CertSpec",
    "DestinationSpec",
    "DnsNode",
    "Expect",
    "KeyType",
    "Message",
    "Pki",
    "PostfixSpec",
    "Scenario",
    "ServerSpec",
]

SLUG = r"^[a-z0-9][a-z0-9-]*$"
KeyType = Literal["rsa2048", "rsa4096", "ec256", "ec384", "rsa1024", "rsa3072", "ec521"]
#: What a fake DNS owner may answer instead of its records (``dns.OWNER.fault``).
DNS_FAULTS = ("servfail", "timeout", "nxdomain", "refused")
#: The record types a fault may be limited to (``fault: {AAAA: timeout}``); ``*`` stands for every type.
FAULT_TYPES = ("MX", "A", "AAAA", "CNAME", "TXT", "TLSA")


def _to_str(value: Any) -> Any:
    """YAML turns `4.7` into a float and `yes` (YAML 1.1) into a bool; Postfix values and DSNs are text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):  # YAML read `{{ fingerprint mx }}`, unquoted, as a mapping in a mapping
        raise ValueError(
            "found a YAML mapping where a value belongs. Hint: quote a value that starts with `{`, e.g. "
            '`"{{ fingerprint mx }}"`'
        )
    return value


def _date_text(value: Any) -> Any:
    """An unquoted ISO date or date-time is a YAML timestamp; a validity bound is kept as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return _to_str(value)


def _one_or_many(value: Any) -> Any:
    """Record values are one string or a list of strings (scenario-format.md, `dns`)."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    return value


PostfixValue = Annotated[str, BeforeValidator(_to_str)]
RecordValues = Annotated[list[str], BeforeValidator(_one_or_many)]
DateValue = Annotated[str, BeforeValidator(_date_text)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, str_strip_whitespace=False)


class CaSpec(_Frozen):
    """A certificate authority: a self-signed root (no ``issuer``) or an intermediate signed by another CA."""

    subject: str = Field(min_length=1)
    issuer: str | None = None
    key: KeyType = "rsa2048"
    not_before: DateValue | None = None
    not_after: DateValue | None = None


class CertSpec(_Frozen):
    """A server certificate issued by a CA of the scenario (``issuer``), or self-signed (``self_signed: true``,
    no ``issuer``); the server sends it with its intermediates. ``issuer`` is required unless the certificate is
    self-signed: the cross-reference check (:mod:`harness.references`) says so at the key."""

    issuer: str | None = None
    self_signed: bool = False
    san: list[str] = Field(default_factory=list)
    subject: str | None = None
    cn: str | None = None
    key: KeyType = "rsa2048"
    not_before: DateValue | None = None
    not_after: DateValue | None = None

    @model_validator(mode="after")
    def _has_a_name(self) -> CertSpec:
        if not (self.san or self.subject or self.cn):
            raise ValueError("a certificate needs `san`, `subject` or `cn`. Hint: add `san: [mx.example.com]`")
        return self


class Pki(_Frozen):
    """Certificate authorities and server certificates, made fresh at every run."""

    cas: dict[str, CaSpec] = Field(default_factory=dict)
    certs: dict[str, CertSpec] = Field(default_factory=dict)


def _fault_form(value: Any) -> Any:
    """``fault: servfail`` (every type) → ``{"*": "servfail"}``; ``fault: {AAAA: timeout}`` is checked as is."""

    def known(word: Any, choices: tuple[str, ...], what: str, hint: str) -> None:
        if word not in choices:
            close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
            near = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {what} {word!r}{near}. Hint: {hint}")

    faults_hint = f"one of {', '.join(DNS_FAULTS)}"
    if isinstance(value, str):
        known(value, DNS_FAULTS, "DNS fault", faults_hint)
        return {"*": value}
    if isinstance(value, dict):
        for rtype, fault in value.items():
            known(
                rtype,
                FAULT_TYPES,
                "record type",
                f"one of {', '.join(FAULT_TYPES)}; `fault: servfail` alone stands for every type",
            )
            known(fault, DNS_FAULTS, "DNS fault", faults_hint)
        return value
    if value is None:
        return value
    raise ValueError(f"a fault is {faults_hint}, or a mapping such as `{{AAAA: timeout}}`, found {value!r}")


class DnsNode(_Frozen):
    """The records of one owner name. Values are presentation-form strings (one or a list).

    ``fault`` (record type or ``*`` → ``servfail``/``timeout``/``nxdomain``/``refused``) is answered instead of
    the records; ``dnssec`` makes the answers of this owner's records carry the AD bit.
    """

    MX: RecordValues | None = None
    A: RecordValues | None = None
    AAAA: RecordValues | None = None
    CNAME: RecordValues | None = None
    TXT: RecordValues | None = None
    TLSA: RecordValues | None = None
    fault: Annotated[dict[str, str], BeforeValidator(_fault_form)] | None = None
    dnssec: bool = False

    @field_validator("MX")
    @classmethod
    def _mx(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            parts = value.split()
            if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) > 65535:
                raise ValueError(f"MX value {value!r} is not 'PREFERENCE HOST'. Hint: write `10 mx1.example.com`")
        return values

    @field_validator("A")
    @classmethod
    def _a(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            if value != "auto":
                try:
                    ipaddress.IPv4Address(value)
                except ValueError:
                    raise ValueError(f"{value!r} is not an IPv4 address. Hint: write `192.0.2.10` or `auto`") from None
        return values

    @field_validator("AAAA")
    @classmethod
    def _aaaa(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            if value != "auto":
                try:
                    ipaddress.IPv6Address(value)
                except ValueError:
                    raise ValueError(
                        f"{value!r} is not an IPv6 address. Hint: write `2001:db8::10` or `auto`"
                    ) from None
        return values

    @field_validator("CNAME")
    @classmethod
    def _cname(cls, values: list[str] | None) -> list[str] | None:
        if values and len(values) != 1:
            raise ValueError("a name has at most one CNAME (RFC 1034 §3.6.2)")
        return values

    @field_validator("TLSA")
    @classmethod
    def _tlsa(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            parts = value.split()
            ok = len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts[:3])
            data = parts[3] if len(parts) == 4 else ""
            computed = bool(re.fullmatch(r"(cert|ca):\S+", data))
            ok = ok and (bool(re.fullmatch(r"(?:[0-9a-fA-F]{2})+", data)) or computed)
            if ok and computed and (int(parts[1]) > 1 or int(parts[2]) > 2):
                raise ValueError(
                    f"TLSA value {value!r}: data computed from a certificate needs selector 0 or 1 and "
                    "matching type 0, 1 or 2 (RFC 6698 §2.1.3-2.1.4). Hint: write `3 1 1 cert:mx1`"
                )
            if not ok:
                raise ValueError(
                    f"TLSA value {value!r} is not 'USAGE SELECTOR MTYPE DATA'. "
                    "Hint: write `3 1 1 cert:mx1` or `3 1 1 <hex digest>`"
                )
        return values

    def records(self) -> list[tuple[str, str]]:
        """The node's records as (type, value) pairs, in a fixed type order."""
        out = []
        for rtype in ("MX", "A", "AAAA", "CNAME", "TXT", "TLSA"):
            for value in getattr(self, rtype) or []:
                out.append((rtype, value))
        return out


class PostfixSpec(_Frozen):
    """The Postfix under test. In a case, every field is an override of the scenario's (None = inherit).

    ``config_dir``: a copy of a real /etc/postfix (path relative to the scenario file), run in the pod with only
    what cannot run there switched off (:mod:`harness.postfix_neutralise`); ``main.cf``/``maps`` apply on top.
    """

    release: PostfixValue | None = None
    config_dir: str | None = None
    hostname: str | None = None
    trust: list[str] | None = None
    main_cf: dict[str, PostfixValue] | None = Field(default=None, alias="main.cf")
    master_cf: str | None = Field(default=None, alias="master.cf")
    maps: dict[str, str] | None = None

    @field_validator("maps")
    @classmethod
    def _absolute(cls, maps: dict[str, str] | None) -> dict[str, str] | None:
        for path in maps or {}:
            if not path.startswith("/"):
                raise ValueError(f"map path {path!r} is not absolute. Hint: write `{_absolute_map_path(path)}`")
        return maps


#: Top-level folders of a Linux file system: a relative map path starting with one of them lacks only its "/".
_TOP_LEVEL_FOLDERS = frozenset("bin boot etc home lib lib64 media mnt opt root run sbin srv tmp usr var".split())


def _absolute_map_path(path: str) -> str:
    """The absolute path a relative map path most likely means: ``etc/postfix/x`` → ``/etc/postfix/x``,
    ``postfix/x`` → ``/etc/postfix/x``, ``x`` → ``/etc/postfix/x``."""
    clean = path.lstrip("./")
    first, _, rest = clean.partition("/")
    if rest and first in _TOP_LEVEL_FOLDERS:
        return f"/{clean}"
    if rest and first == "postfix":
        return f"/etc/{clean}"
    return f"/etc/postfix/{clean}"


_DSN = re.compile(r"^[245](\.\d{1,3}(\.\d{1,3})?)?$")


class Expect(_Frozen):
    """What must hold for one recipient's first delivery attempt. Every key is optional."""

    status: Literal["sent", "delivered", "deferred", "bounced"] | None = None
    dsn: PostfixValue | None = None
    reason: str | None = None
    relay: str | None = None
    tls: Literal["none", "Anonymous", "Untrusted", "Trusted", "Verified"] | None = None
    received: bool | None = None
    # What the fake server observed of the session with the relay (ServerSession).
    starttls: bool | None = None
    sni: str | None = None
    protocol: Literal["none", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] | None = None
    cipher: str | None = None
    client_cert: bool | None = None

    @field_validator("sni")
    @classmethod
    def _sni(cls, sni: str | None) -> str | None:
        if sni is not None and (not sni or any(c.isspace() for c in sni)):
            raise ValueError(
                f"{sni!r} is not a host name. Hint: write `sni: mx.example.com`, or `sni: none` when Postfix is "
                "to send no SNI"
            )
        return sni

    @field_validator("cipher")
    @classmethod
    def _cipher(cls, cipher: str | None) -> str | None:
        if cipher is not None and (not cipher or any(c.isspace() for c in cipher)):
            raise ValueError(
                f"{cipher!r} is not a cipher name. Hint: write OpenSSL's name, e.g. `TLS_AES_256_GCM_SHA384` or "
                "`ECDHE-RSA-AES256-GCM-SHA384`"
            )
        return cipher

    @field_validator("status")
    @classmethod
    def _alias(cls, status: str | None) -> str | None:
        return "sent" if status == "delivered" else status

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, dsn: str | None) -> str | None:
        if dsn is not None and not _DSN.match(dsn):
            raise ValueError(f"{dsn!r} is not a DSN or DSN prefix (RFC 3463). Hint: write `4.7.5`, `4.7` or `4`")
        return dsn

    @field_validator("reason")
    @classmethod
    def _regex(cls, reason: str | None) -> str | None:
        if reason and len(reason) >= 2 and reason.startswith("/") and reason.endswith("/"):
            try:
                re.compile(reason[1:-1])
            except re.error as exc:
                raise ValueError(f"the regular expression {reason} does not compile: {exc}") from None
        return reason


class Message(_Frozen):
    """One message for one recipient. ``via``: ``sendmail`` (Postfix's sendmail command → pickup) or ``smtp``
    (an SMTP client in the pod hands it to Postfix's smtpd on 127.0.0.1:25, as mail from the internet arrives:
    smtpd's ``content_filter`` and restrictions apply)."""

    # A local part may be quoted and hold spaces (RFC 5321 §4.1.2: "john doe"@example.com).
    to: str = Field(pattern=r'^([^@\s"]+|"[^"]+")@[^@\s]+$')
    from_: str = Field(default="sender@example.test", alias="from", pattern=r'^(([^@\s"]+|"[^"]+")@[^@\s]+)?$')
    subject: str | None = None
    body: str | None = None
    headers: dict[str, PostfixValue] = Field(default_factory=dict)
    via: Literal["sendmail", "smtp"] = "sendmail"
    expect: Expect = Field(default_factory=Expect)
    _expect_by_release: dict[str, Expect] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _per_release(cls, data: Any, handler: Any) -> Any:
        """``expect`` values may differ per Postfix release: a key's value is then a mapping of release → value
        with an optional ``default`` (``tls: {default: Untrusted, "3.5": Trusted}``); a release without an entry
        has the default, and without a default the key is not checked on it."""
        if not (isinstance(data, dict) and isinstance(data.get("expect"), dict)):
            return handler(data)
        base: dict[str, Any] = {}
        overrides: dict[str, dict[str, Any]] = {}
        for key, value in data["expect"].items():
            if isinstance(value, dict) and key in Expect.model_fields:
                for release, per_release in value.items():
                    release = str(release)
                    if release == "default":
                        base[key] = per_release
                        continue
                    if release not in RELEASES:
                        known = ", ".join(["default", *RELEASES])
                        raise ValueError(
                            f"expect.{key}: {release!r} is not a Postfix release the harness has. Hint: use one of "
                            f"{known}"
                        )
                    overrides.setdefault(release, {})[key] = per_release
            else:
                base[key] = value
        message = handler({**data, "expect": base})
        variants: dict[str, Expect] = {}
        for release, values in overrides.items():
            try:
                variants[release] = Expect.model_validate({**base, **values})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"expect.{where} for release {release}: {first['msg']}") from None
        message._expect_by_release = variants
        return message

    def expect_for(self, version: str | None) -> Expect:
        """The expectation on Postfix ``version`` (``3.5.25`` takes the ``3.5`` values; None or another release
        the defaults)."""
        for release, expect in self._expect_by_release.items():
            if version and (version == release or version.startswith(release + ".")):
                return expect
        return self.expect

    @property
    def expect_releases(self) -> tuple[str, ...]:
        """The releases with their own ``expect`` values."""
        return tuple(self._expect_by_release)

    @field_validator("headers")
    @classmethod
    def _not_message_id(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() == "message-id":
                raise ValueError(
                    "the harness sets Message-ID itself: it finds the message in Postfix's log by it. "
                    "Hint: remove this header"
                )
            if not re.fullmatch(r"[!-9;-~]+", name):
                raise ValueError(f"{name!r} is not a header field name (RFC 5322 §2.2: printable, no colon or space)")
        return headers


class CasePki(_Frozen):
    """A case's certificates, merged over the scenario's by name. CAs are shared by every case."""

    certs: dict[str, CertSpec] = Field(default_factory=dict)


class Case(_Frozen):
    """One case: Postfix overrides, world overrides and the messages to send, run against a fresh Postfix state.

    ``servers``, ``dns`` and ``pki.certs`` are merged over the scenario's entry by entry: an entry of the case
    replaces the scenario's entry of the same name (see :func:`harness.overrides.merged_world`).
    """

    name: str = Field(pattern=SLUG, max_length=63)
    postfix: PostfixSpec = Field(default_factory=PostfixSpec)
    send: list[Message] = Field(min_length=1)
    pki: CasePki | None = None
    dns: dict[str, DnsNode] | None = None
    servers: dict[str, ServerSpec] | None = None

    _servers = field_validator("servers")(invalid_address_hosts)

    @property
    def changes_world(self) -> bool:
        """Whether the case overrides any part of the world (then it gets a world of its own)."""
        return bool((self.pki and self.pki.certs) or self.dns or self.servers)


class DestinationSpec(_Frozen):
    """A recipient domain a world describes (``destinations.DOMAIN``, :mod:`harness.worlds`): where its layout is
    published and as of when, and the address ``mxharness compare`` sends to (default ``postmaster@DOMAIN``)."""

    source: str = Field(min_length=1)
    date: DateValue = Field(pattern=r"^(\d{4}(-\d{2}(-\d{2})?)?|undated)$")
    to: str | None = Field(default=None, pattern=r'^([^@\s"]+|"[^"]+")@[^@\s]+$')


class Scenario(_Frozen):
    """A whole scenario file.

    The file it came from is :attr:`source_file` (not a YAML key).
    """

    name: str = Field(pattern=SLUG, max_length=63)
    description: str | None = None
    source: str | None = None
    # Scenarios whose pki, dns and servers the loader merged under this one's (harness.worlds), and the recipient
    # domains this scenario's world describes for the world library and `mxharness compare`.
    include: Annotated[list[str], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    destinations: dict[str, DestinationSpec] = Field(default_factory=dict)
    pki: Pki = Field(default_factory=Pki)
    dns: dict[str, DnsNode] = Field(default_factory=dict)
    servers: dict[str, ServerSpec] = Field(default_factory=dict)
    postfix: PostfixSpec = Field(default_factory=PostfixSpec)
    cases: list[Case] = Field(min_length=1)
    _source_file: str = PrivateAttr(default="<dict>")
    _name_line: int | None = PrivateAttr(default=None)  # line of the `name` key, for errors across files
    _key_lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)  # key path → line

    _servers = field_validator("servers")(invalid_address_hosts)

    def on_release(self, release: str) -> Scenario:
        """This scenario with every case on Postfix ``release`` (``run --release``, ``--mxharness-release``): the
        scenario's ``postfix.release`` set, the cases' own cleared."""
        cases = [c.model_copy(update={"postfix": c.postfix.model_copy(update={"release": None})}) for c in self.cases]
        postfix = self.postfix.model_copy(update={"release": release})
        return self.model_copy(update={"postfix": postfix, "cases": cases})

    @property
    def source_file(self) -> str:
        """Where the scenario was loaded from: a path, or ``<dict>`` when built in code."""
        return self._source_file
