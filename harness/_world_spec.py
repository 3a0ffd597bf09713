"""The world spec: what the host asks the peer to serve (docs/internal/world-spec.md, version 1). Private: import
from :mod:`harness.peer`.

The host writes it as ``/world/world.json``; the peer reads it with :meth:`WorldSpec.from_json`, which checks
every key (unknown keys included, so that a misspelt fault does not silently vanish) and names the key path of
the first problem. :meth:`WorldSpec.to_dict` writes every key, defaults included, and reads back equal.

This module imports only the standard library and the other peer modules: it runs inside the peer container.
"""

from __future__ import annotations

__all__ = ["SPEC_VERSION", "DnsSpec", "PeerError", "ServerSpec", "WorldSpec", "WorldSpecError"]

import difflib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from harness.dns import DnsFault, Record, Zone
from harness.errors import HarnessError
from harness.smtp import Delays, Replies, SmtpEndpoint, SmtpServerError, SniCertificate, TlsSettings

SPEC_VERSION = 1
"""The world spec version this peer reads and writes."""

_VERSION_HINT = "Hint: rebuild the peer image from the same mxharness version as the host."
_TOP_KEYS = ("version", "dns", "addresses", "servers")
_DNS_KEYS = ("listen", "port", "records", "faults", "dnssec_probe", "names")
_RECORD_KEYS = ("name", "type", "value", "ttl", "dnssec")
_FAULT_KEYS = ("name", "type", "fault")
_SNI_KEYS = ("name", "cert_chain", "key")
_SERVER_KEYS = (
    "host",
    "address",
    "port",
    "cert_chain",
    "key",
    "sni",
    "starttls",
    "implicit_tls",
    "tls",
    "replies",
    "delays",
    "require_starttls",
    "auth",
)
_SERVER_FLAGS = ("starttls", "implicit_tls", "require_starttls", "auth")


class PeerError(HarnessError):
    """The peer could not start: bad spec, an address could not be bound, a server could not listen."""


class WorldSpecError(PeerError):
    """A world spec is invalid (wrong version, unknown or mistyped key, bad address, record, fault or reply)."""


def _check_ip(value: str, where: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise WorldSpecError(f"world spec: {where}: {value!r} is not an IPv4 or IPv6 address.") from exc


def _check_port(value: int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise WorldSpecError(f"world spec: {where}: port {value!r} is not an integer in 0..65535.")


def _check_flag(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise WorldSpecError(f"world spec: {where}: {value!r} is not true or false.")


def _check_keys(data: Any, allowed: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise WorldSpecError(f"world spec: {where}: expected an object, found {data!r}.")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            near = f" (did you mean {close[0]!r}?)" if close else ""
            raise WorldSpecError(
                f"world spec: {where}: unknown key {key!r}{near}. Hint: the keys are {', '.join(allowed)} "
                "(docs/internal/world-spec.md)."
            )
    return data


def _list(data: Mapping[str, Any], key: str, where: str = "") -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        path = f"{where}.{key}" if where else key
        raise WorldSpecError(f"world spec: {path}: expected a list, found {value!r}.")
    return value


@dataclass(frozen=True)
class DnsSpec:
    """The fake DNS of a world.

    Attributes:
        listen: address the DNS server listens on (the pod's resolv.conf names ``127.0.0.53``).
        port: UDP and TCP port; 0 picks a free one (reported in the ready event).
        records: every record of the world (``dnssec`` ones make AD=1 answers, RFC 4035 §3.2.3).
        faults: questions answered SERVFAIL, REFUSED, NXDOMAIN or not at all (see :class:`harness.dns.DnsFault`).
        dnssec_probe: answer Postfix's ``dnssec_probe`` question (``NS .``) NOERROR with AD=1.
        names: owner names that exist although they own no record (``host: {}`` in a scenario): NODATA, not
            NXDOMAIN, for every question about them (scenario format v1, ``dns``).

    Raises:
        WorldSpecError: a bad address or port, a CNAME conflict, two faults for one question.
    """

    listen: str = "127.0.0.53"
    port: int = 53
    records: tuple[Record, ...] = ()
    faults: tuple[DnsFault, ...] = ()
    dnssec_probe: bool = False
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_ip(self.listen, "dns.listen")
        _check_port(self.port, "dns.port")
        _check_flag(self.dnssec_probe, "dns.dnssec_probe")
        try:
            self.zone()  # a CNAME conflict is reported when the spec is built, not at the first query
        except HarnessError as exc:
            raise WorldSpecError(f"world spec: dns: {exc}") from exc

    def zone(self, extra: tuple[Record, ...] = ()) -> Zone:
        """The :class:`~harness.dns.Zone` the fake DNS answers from, with ``extra`` records of the harness's own
        (the ``ready`` name of :func:`harness.peer.ready_name`)."""
        names = self.names + tuple(r.name for r in extra)
        return Zone(self.records + extra, faults=self.faults, dnssec_probe=self.dnssec_probe, names=names)


@dataclass(frozen=True)
class ServerSpec:
    """One fake receiving SMTP server of a world. File paths are relative to the spec file's directory.

    Attributes:
        host: the server's name (greeting and EHLO reply).
        address: address it listens on; must be local, or listed in :attr:`WorldSpec.addresses`.
        port: TCP port (25 for MX delivery).
        cert_chain: PEM chain (leaf first), or None for a server without TLS.
        key: PEM key of the leaf; given exactly when ``cert_chain`` is.
        sni: certificates for clients that send those SNI names (paths relative like ``cert_chain``).
        starttls, implicit_tls, tls, replies, delays, require_starttls, auth: the faults, as in
            :class:`harness.smtp.SmtpEndpoint`.

    Raises:
        WorldSpecError: a bad address, port, flag or fault, or TLS settings without a certificate.
    """

    host: str
    address: str
    port: int = 25
    cert_chain: str | None = None
    key: str | None = None
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
        where = f"servers.{self.host}"
        _check_ip(self.address, f"{where}.address")
        _check_port(self.port, f"{where}.port")
        for name in _SERVER_FLAGS:
            _check_flag(getattr(self, name), f"{where}.{name}")
        if (self.cert_chain is None) != (self.key is None):
            raise WorldSpecError(
                f"world spec: {where}: cert_chain and key go together. "
                "Hint: give both for a TLS server, neither for a plaintext-only one."
            )
        if self.cert_chain is None:
            needs = [key for key, set_ in (("sni", self.sni), ("implicit_tls", self.implicit_tls)) if set_]
            needs += ["tls"] if self.tls != TlsSettings() else []
            if needs:
                raise WorldSpecError(
                    f"world spec: {where}: {', '.join(needs)} need a certificate. Hint: give cert_chain and key."
                )
        try:
            self.endpoint(Path("."))
        except SmtpServerError as exc:
            raise WorldSpecError(f"world spec: {where}: {exc}") from exc

    def endpoint(self, base_dir: Path) -> SmtpEndpoint:
        """The :class:`~harness.smtp.SmtpEndpoint` of this server, file paths resolved from ``base_dir``."""
        return SmtpEndpoint(
            self.host,
            self.address,
            self.port,
            cert_chain_file=str(base_dir / self.cert_chain) if self.cert_chain else None,
            key_file=str(base_dir / self.key) if self.key else None,
            sni=tuple(
                SniCertificate(s.name, str(base_dir / s.cert_chain_file), str(base_dir / s.key_file)) for s in self.sni
            ),
            starttls=self.starttls,
            implicit_tls=self.implicit_tls,
            tls=self.tls,
            replies=self.replies,
            delays=self.delays,
            require_starttls=self.require_starttls,
            auth=self.auth,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form, every key present."""
        return {
            "host": self.host,
            "address": self.address,
            "port": self.port,
            "cert_chain": self.cert_chain,
            "key": self.key,
            "sni": [{"name": s.name, "cert_chain": s.cert_chain_file, "key": s.key_file} for s in self.sni],
            "starttls": self.starttls,
            "implicit_tls": self.implicit_tls,
            "tls": self.tls.to_dict(),
            "replies": self.replies.to_dict(),
            "delays": self.delays.to_dict(),
            "require_starttls": self.require_starttls,
            "auth": self.auth,
        }

    @classmethod
    def from_dict(cls, data: Any, index: int) -> ServerSpec:
        """Read ``servers[index]``.

        Raises:
            WorldSpecError: naming the key path of the first problem.
        """
        host = data.get("host") if isinstance(data, Mapping) else None
        if not isinstance(host, str) or not host:
            raise WorldSpecError(f"world spec: servers[{index}].host: expected a host name, found {host!r}.")
        where = f"servers.{host}"
        data = _check_keys(data, _SERVER_KEYS, where)
        sni = []
        for i, entry in enumerate(_list(data, "sni", where)):
            entry = _check_keys(entry, _SNI_KEYS, f"{where}.sni[{i}]")
            try:
                sni.append(SniCertificate(entry["name"], entry["cert_chain"], entry["key"]))
            except KeyError as exc:
                raise WorldSpecError(
                    f"world spec: {where}.sni[{i}]: missing key {exc}. Hint: give name, cert_chain and key."
                ) from exc
            except SmtpServerError as exc:
                raise WorldSpecError(f"world spec: {where}.{exc}") from exc
        try:
            tls = TlsSettings.from_dict(data.get("tls"))
            replies = Replies.from_dict(data.get("replies"))
            delays = Delays.from_dict(data.get("delays"))
        except SmtpServerError as exc:
            raise WorldSpecError(f"world spec: {where}.{exc}") from exc

        def flag(name: str, default: bool) -> Any:  # null means the default, like the other keys
            value = data.get(name)
            return default if value is None else value

        return cls(
            host,
            data["address"],
            data.get("port", 25),
            data.get("cert_chain"),
            data.get("key"),
            sni=tuple(sni),
            starttls=flag("starttls", True),
            implicit_tls=flag("implicit_tls", False),
            tls=tls,
            replies=replies,
            delays=delays,
            require_starttls=flag("require_starttls", False),
            auth=flag("auth", False),
        )


@dataclass(frozen=True)
class WorldSpec:
    """What the peer must serve: DNS records and faults, addresses to bind, SMTP servers and their faults.
    Written by the host as JSON.

    Attributes:
        dns: the fake DNS.
        addresses: addresses to add to ``lo`` (IPv4 as /32, IPv6 as /128).
        servers: the SMTP servers.
        version: spec format version; only :data:`SPEC_VERSION` is accepted.

    Raises:
        WorldSpecError: a value is invalid or the version is not :data:`SPEC_VERSION`.
    """

    dns: DnsSpec = field(default_factory=DnsSpec)
    addresses: tuple[str, ...] = ()
    servers: tuple[ServerSpec, ...] = ()
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        _check_version(self.version)
        for i, address in enumerate(self.addresses):
            _check_ip(address, f"addresses[{i}]")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form of docs/internal/world-spec.md, every key present (defaults included)."""
        return {
            "version": self.version,
            "dns": {
                "listen": self.dns.listen,
                "port": self.dns.port,
                "records": [
                    {"name": r.name, "type": r.rtype, "value": r.value, "ttl": r.ttl, "dnssec": r.dnssec}
                    for r in self.dns.records
                ],
                "faults": [{"name": f.name, "type": f.rtype, "fault": f.fault} for f in self.dns.faults],
                "dnssec_probe": self.dns.dnssec_probe,
                "names": list(self.dns.names),
            },
            "addresses": list(self.addresses),
            "servers": [server.to_dict() for server in self.servers],
        }

    def to_json(self) -> str:
        """The spec as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorldSpec:
        """Build and validate a spec from its JSON-able form.

        Raises:
            WorldSpecError: naming the key path of the first problem.
        """
        _check_version(data.get("version"))  # first: a newer layout would fail below with a worse message
        data = _check_keys(data, _TOP_KEYS, "the document")
        try:
            dns = _check_keys(data.get("dns") or {}, _DNS_KEYS, "dns")
            addresses = _list(data, "addresses")
            if not all(isinstance(a, str) for a in addresses):
                raise WorldSpecError(f"world spec: addresses: expected strings, found {addresses!r}.")
            return cls(
                dns=DnsSpec(
                    dns.get("listen", "127.0.0.53"),
                    dns.get("port", 53),
                    tuple(_record(r, i) for i, r in enumerate(_list(dns, "records", "dns"))),
                    tuple(_fault(f, i) for i, f in enumerate(_list(dns, "faults", "dns"))),
                    dns.get("dnssec_probe", False),
                    tuple(str(n) for n in _list(dns, "names", "dns")),
                ),
                addresses=tuple(addresses),
                servers=tuple(ServerSpec.from_dict(s, i) for i, s in enumerate(_list(data, "servers"))),
            )
        except WorldSpecError:
            raise
        except HarnessError as exc:
            raise WorldSpecError(f"world spec: {exc}") from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise WorldSpecError(
                f"world spec: missing or mistyped key ({type(exc).__name__}: {exc}). "
                "Hint: build the spec with WorldSpec(...).to_json() on the host."
            ) from exc

    @classmethod
    def from_json(cls, text: str) -> WorldSpec:
        """Parse and validate a JSON document.

        Raises:
            WorldSpecError: the text is not JSON or the spec is invalid.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorldSpecError(f"world spec: not valid JSON: {exc}.") from exc
        if not isinstance(data, dict):
            raise WorldSpecError("world spec: the document must be a JSON object.")
        return cls.from_dict(data)


def _check_version(version: Any) -> None:
    if isinstance(version, bool) or version != SPEC_VERSION:
        raise WorldSpecError(
            f"world spec: version {version!r} is not supported (this peer reads {SPEC_VERSION}). {_VERSION_HINT}"
        )


def _record(data: Any, index: int) -> Record:
    where = f"dns.records[{index}]"
    data = _check_keys(data, _RECORD_KEYS, where)
    dnssec = data.get("dnssec", False)
    _check_flag(dnssec, f"{where}.dnssec")
    try:
        return Record(data["name"], data["type"], data["value"], ttl=data.get("ttl", 300), dnssec=dnssec)
    except HarnessError as exc:
        raise WorldSpecError(f"world spec: {where}: {exc}") from exc


def _fault(data: Any, index: int) -> DnsFault:
    where = f"dns.faults[{index}]"
    data = _check_keys(data, _FAULT_KEYS, where)
    try:
        return DnsFault(data["name"], data["type"], data["fault"])
    except KeyError as exc:
        raise WorldSpecError(f"world spec: {where}: missing key {exc}. Hint: give name, type and fault.") from exc
    except HarnessError as exc:
        raise WorldSpecError(f"world spec: {where}: {exc}") from exc
