"""Entry point of the peer container: world spec in, fake DNS and SMTP endpoints up, JSON events out.

Run inside the pod as ``python3 -m harness.peer /world/world.json``. The peer shares the Postfix
container's network namespace: it adds every world address to ``lo`` so that Postfix connects to the
real-looking ``66.111.4.74:25``, answers DNS on ``127.0.0.53:53`` and serves each SMTP endpoint, then
prints one JSON object per line on stdout until SIGTERM/SIGINT:

* ``{"event": "ready", "addresses": [...], "servers": N, "dns": {"address", "port"},
  "endpoints": [{"host", "address", "port"}]}`` once everything listens;
* ``{"event": "dns", ...}`` per query (see :class:`harness.dns.ZoneResolver`);
* ``{"event": "smtp", ...}`` per SMTP stage and ``{"event": "session", ...}`` per closed connection (see
  :class:`harness.smtp.SessionRecorder`);
* ``{"event": "error", "message": "..."}`` on a startup failure (exit code 1);
* ``{"event": "stopped"}`` after a clean stop (exit code 0).

The host builds the spec with :class:`WorldSpec` and reads the stream back with :func:`parse_events`. This
module imports only the standard library, aiosmtpd, dnslib and the stdlib-only :mod:`harness.errors`,
:mod:`harness.dns` and :mod:`harness.smtp`: the peer image holds nothing else.
"""

from __future__ import annotations

__all__ = [
    "SPEC_VERSION",
    "DnsSpec",
    "PeerError",
    "ServerSpec",
    "WorldSpec",
    "WorldSpecError",
    "bind_addresses",
    "main",
    "parse_events",
]

import argparse
import asyncio
import ipaddress
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.dns import DnsServer, Record, Zone
from harness.errors import HarnessError
from harness.smtp import SmtpEndpoint, SmtpRunner

SPEC_VERSION = 1
"""The world spec version this peer reads and writes."""


class PeerError(HarnessError):
    """The peer could not start: bad spec, an address could not be bound, a server could not listen."""


class WorldSpecError(PeerError):
    """A world spec is invalid (wrong version, missing or mistyped key, bad address or record)."""


def _check_ip(value: str, where: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise WorldSpecError(f"world spec: {where}: {value!r} is not an IPv4 or IPv6 address.") from exc


def _check_port(value: int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise WorldSpecError(f"world spec: {where}: port {value!r} is not an integer in 0..65535.")


@dataclass(frozen=True)
class DnsSpec:
    """The fake DNS of a world.

    Attributes:
        listen: address the DNS server listens on (the pod's resolv.conf names ``127.0.0.53``).
        port: UDP and TCP port; 0 picks a free one (reported in the ready event).
        records: every record of the world.
    """

    listen: str = "127.0.0.53"
    port: int = 53
    records: tuple[Record, ...] = ()

    def __post_init__(self) -> None:
        _check_ip(self.listen, "dns.listen")
        _check_port(self.port, "dns.port")
        try:
            Zone(self.records)  # a CNAME conflict is reported when the host builds the spec, not in the pod
        except HarnessError as exc:
            raise WorldSpecError(f"world spec: dns.records: {exc}") from exc


@dataclass(frozen=True)
class ServerSpec:
    """One fake receiving SMTP server of a world.

    Attributes:
        host: the server's name (greeting and EHLO reply).
        address: address it listens on; must be local, or listed in :attr:`WorldSpec.addresses`.
        port: TCP port (25 for MX delivery).
        cert_chain: PEM chain (leaf first) relative to the spec file's directory, or None for no STARTTLS.
        key: PEM key of the leaf, relative like ``cert_chain``; given exactly when ``cert_chain`` is.
    """

    host: str
    address: str
    port: int = 25
    cert_chain: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        _check_ip(self.address, f"servers.{self.host}.address")
        _check_port(self.port, f"servers.{self.host}.port")
        if (self.cert_chain is None) != (self.key is None):
            raise WorldSpecError(
                f"world spec: servers.{self.host}: cert_chain and key go together. "
                "Hint: give both for a STARTTLS server, neither for a plaintext-only one."
            )

    def endpoint(self, base_dir: Path) -> SmtpEndpoint:
        """The :class:`~harness.smtp.SmtpEndpoint` of this server, file paths resolved from ``base_dir``."""
        return SmtpEndpoint(
            self.host,
            self.address,
            self.port,
            cert_chain_file=str(base_dir / self.cert_chain) if self.cert_chain else None,
            key_file=str(base_dir / self.key) if self.key else None,
        )


@dataclass(frozen=True)
class WorldSpec:
    """What the peer must serve: DNS records, addresses to bind, SMTP servers. Written by the host as JSON.

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
        if self.version != SPEC_VERSION:
            raise WorldSpecError(
                f"world spec: version {self.version!r} is not supported (this peer reads {SPEC_VERSION}). "
                "Hint: rebuild the peer image from the same mxharness version as the host."
            )
        for i, address in enumerate(self.addresses):
            _check_ip(address, f"addresses[{i}]")

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form (record keys ``name``, ``type``, ``value``, ``ttl``, ``dnssec``)."""
        return {
            "version": self.version,
            "dns": {
                "listen": self.dns.listen,
                "port": self.dns.port,
                "records": [
                    {"name": r.name, "type": r.rtype, "value": r.value, "ttl": r.ttl, "dnssec": r.dnssec}
                    for r in self.dns.records
                ],
            },
            "addresses": list(self.addresses),
            "servers": [
                {
                    "host": s.host,
                    "address": s.address,
                    "port": s.port,
                    "cert_chain": s.cert_chain,
                    "key": s.key,
                }
                for s in self.servers
            ],
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
        try:
            version = data.get("version")
            if version != SPEC_VERSION:  # checked first: a newer layout would fail below with a worse message
                raise WorldSpecError(
                    f"world spec: version {version!r} is not supported (this peer reads {SPEC_VERSION}). "
                    "Hint: rebuild the peer image from the same mxharness version as the host."
                )
            dns = data.get("dns", {})
            records = tuple(
                Record(r["name"], r["type"], r["value"], ttl=r.get("ttl", 300), dnssec=r.get("dnssec", False))
                for r in dns.get("records", [])
            )
            servers = tuple(
                ServerSpec(s["host"], s["address"], s.get("port", 25), s.get("cert_chain"), s.get("key"))
                for s in data.get("servers", [])
            )
            return cls(
                dns=DnsSpec(dns.get("listen", "127.0.0.53"), dns.get("port", 53), records),
                addresses=tuple(data.get("addresses", [])),
                servers=servers,
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


def parse_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Host-side reader of the peer's stdout: the JSON objects with an ``event`` key, in order.

    Lines that are not JSON objects (Python warnings, tracebacks, blank lines) are ignored.
    """
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("event"), str):
            events.append(value)
    return events


_IpRunner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _run_ip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def bind_addresses(addresses: Iterable[str], *, run: _IpRunner = _run_ip) -> list[str]:
    """Add each address that is not already local to ``lo`` (IPv4 ``/32``; IPv6 ``/128 nodad``, so that it
    is usable at once instead of after duplicate address detection).

    Args:
        addresses: IPv4/IPv6 addresses.
        run: runs ``ip`` with the given arguments (replaceable for tests).

    Returns:
        The addresses added (those already present are skipped).

    Raises:
        PeerError: ``ip`` is missing or refused (the peer needs CAP_NET_ADMIN in the pod's namespace).
    """
    try:
        listing = run(["-o", "addr", "show"])
    except OSError as exc:
        raise PeerError(f"cannot list local addresses: {exc}. Hint: install iproute2 in the peer image.") from exc
    present = set()
    for line in listing.stdout.splitlines():
        tokens = line.split()
        for i, token in enumerate(tokens[:-1]):
            if token in ("inet", "inet6"):
                present.add(ipaddress.ip_address(tokens[i + 1].split("/")[0]))
    added = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if ip in present:
            continue
        if ip.version == 4:
            args = ["addr", "add", f"{ip}/32", "dev", "lo"]
        else:
            args = ["-6", "addr", "add", f"{ip}/128", "dev", "lo", "nodad"]
        result = run(args)
        if result.returncode != 0:
            ipv6_hint = " and IPv6 enabled on lo (sysctl net.ipv6.conf.lo.disable_ipv6=0)" if ip.version == 6 else ""
            raise PeerError(
                f"cannot add {ip} to lo: ip {' '.join(args)} exited {result.returncode}: "
                f"{result.stderr.strip()}. Hint: the peer container needs CAP_NET_ADMIN{ipv6_hint}."
            )
        present.add(ip)
        added.append(str(ip))
    return added


class _Emitter:
    """Writes one JSON object per line, flushed at once; called from the DNS threads and the SMTP loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event, default=str)
        with self._lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                pass  # the host stopped reading; keep serving until it stops the container


async def _serve(spec: WorldSpec, base_dir: Path, emit: _Emitter) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    zone = Zone(spec.dns.records)
    runner = SmtpRunner([server.endpoint(base_dir) for server in spec.servers], on_event=emit)
    with DnsServer(zone, spec.dns.listen, spec.dns.port, on_query=emit) as dns:
        await runner.start()
        try:
            emit(
                {
                    "event": "ready",
                    "addresses": list(spec.addresses),
                    "servers": len(spec.servers),
                    "dns": {"address": dns.address, "port": dns.port},
                    "endpoints": [
                        {"host": s.host, "address": s.address, "port": port}
                        for s, port in zip(spec.servers, runner.ports, strict=True)
                    ],
                }
            )
            await stop.wait()
        finally:
            await runner.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the peer: ``python3 -m harness.peer WORLD_JSON [--no-bind]``.

    Returns:
        0 after a clean stop on SIGTERM/SIGINT, 1 after a startup failure (reported as an ``error`` event).
    """
    parser = argparse.ArgumentParser(
        prog="python3 -m harness.peer", description="mxharness peer: fake DNS and SMTP servers"
    )
    parser.add_argument("world", type=Path, help="world spec JSON written by the host")
    parser.add_argument(
        "--no-bind", action="store_true", help="do not add addresses to lo (tests on 127.0.0.x addresses)"
    )
    args = parser.parse_args(argv)
    emit = _Emitter()
    try:
        spec = WorldSpec.from_json(args.world.read_text())
        if not args.no_bind:
            bind_addresses(spec.addresses)
        asyncio.run(_serve(spec, args.world.resolve().parent, emit))
    except (HarnessError, OSError) as exc:
        emit({"event": "error", "message": str(exc)})
        return 1
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
