"""Entry point of the peer container: world spec in, fake DNS and SMTP endpoints up, JSON events out.

Run inside the pod as ``python3 -m harness.peer /world/world.json``. The peer shares the Postfix
container's network namespace: it adds every world address to ``lo`` so that Postfix connects to the
real-looking ``66.111.4.74:25``, answers DNS on ``127.0.0.53:53`` and serves each SMTP endpoint, then
prints one JSON object per line on stdout until SIGTERM/SIGINT. SIGHUP swaps the world: the peer reads the
spec again (the host has copied the next case's world over it), stops the old servers, unbinds the addresses
only the old world had, and serves the new one, so that one pod serves case after case.

* ``{"event": "ready", "generation": N, "addresses": [...], "servers": N, "dns": {"address", "port"},
  "endpoints": [{"host", "address", "port"}]}`` once everything listens (generation 0, then 1, 2, … after each
  swap);
* ``{"event": "dns", ...}`` per query (see :class:`harness.dns.ZoneResolver`);
* ``{"event": "smtp", ...}`` per SMTP stage and ``{"event": "session", ...}`` per closed connection (see
  :class:`harness.smtp.SessionRecorder`);
* ``{"event": "mark", "n": N}`` on SIGUSR1 (N = 0, 1, …): a barrier for the host — every event written before it
  has reached the host once the mark has;
* ``{"event": "error", "message": "..."}`` on a startup failure (exit code 1);
* ``{"event": "stopped"}`` after a clean stop (exit code 0).

The spec (docs/internal/world-spec.md) is :class:`WorldSpec`, defined in :mod:`harness._world_spec`; the
host reads the event stream back with :func:`parse_events`. This module and the ones it imports
(:mod:`harness.errors`, :mod:`harness.dns`, :mod:`harness.smtp` and their private ``_dns_*``, ``_smtp_*`` and
``_world_spec`` modules, all listed in ``harness.images.PEER_MODULES``) need only the standard library,
aiosmtpd and dnslib: the peer image holds nothing else.
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
    "unbind_addresses",
]

import argparse
import asyncio
import ipaddress
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness._world_spec import SPEC_VERSION, DnsSpec, PeerError, ServerSpec, WorldSpec, WorldSpecError
from harness.dns import DnsServer, Record
from harness.errors import HarnessError
from harness.smtp import SmtpRunner


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


def unbind_addresses(addresses: Iterable[str], *, run: _IpRunner = _run_ip) -> None:
    """Remove addresses this peer added to ``lo`` (a world swap takes away the old world's hosts, so that an
    address of the last case is unreachable again, not "connection refused")."""
    for address in addresses:
        ip = ipaddress.ip_address(address)
        prefix = 32 if ip.version == 4 else 128
        run([*([] if ip.version == 4 else ["-6"]), "addr", "del", f"{ip}/{prefix}", "dev", "lo"])


async def _serve(world: Path, emit: _Emitter, *, bind: bool) -> None:
    """Serve the world of ``world``; on SIGHUP read it again and serve the new one (a world swap: the host
    reuses the pod for the next case), on SIGUSR1 write a ``mark`` event, on SIGTERM/SIGINT stop. Each ``ready``
    event carries the world's ``generation`` (0, 1, …)."""
    loop = asyncio.get_running_loop()
    stop, reload = asyncio.Event(), asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    marks = itertools.count()
    loop.add_signal_handler(signal.SIGUSR1, lambda: emit({"event": "mark", "n": next(marks)}))
    added: list[str] = []
    generation = 0
    dns: DnsServer | None = None
    try:
        while not stop.is_set():
            spec = WorldSpec.from_json(world.read_text())
            if bind:
                wanted = {str(ipaddress.ip_address(x)) for x in spec.addresses}
                unbind_addresses([a for a in added if a not in wanted])
                added = [a for a in added if a in wanted] + bind_addresses(spec.addresses)
            runner = SmtpRunner([server.endpoint(world.resolve().parent) for server in spec.servers], on_event=emit)
            await runner.start()
            try:
                # The DNS stays up across worlds and takes the new zone only now that every server listens: the
                # new world's ready name, which the Postfix container waits for before Postfix starts, is answered
                # from here on, and no query is lost between two worlds.
                ready = Record(ready_name(generation), "A", "127.0.0.1")
                zone = spec.dns.zone(extra=(ready,))
                if dns is not None and (dns.address, dns.port) != (spec.dns.listen, spec.dns.port):
                    dns.stop()
                    dns = None
                if dns is None:
                    dns = DnsServer(zone, spec.dns.listen, spec.dns.port)
                    dns.start()
                dns.serve(zone, on_query=_without(ready.name, emit))
                emit(
                    {
                        "event": "ready",
                        "generation": generation,
                        "addresses": list(spec.addresses),
                        "servers": len(spec.servers),
                        "dns": {"address": dns.address, "port": dns.port},
                        "endpoints": [
                            {"host": s.host, "address": s.address, "port": port}
                            for s, port in zip(spec.servers, runner.ports, strict=True)
                        ],
                    }
                )
                reload.clear()
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload.wait())]
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
            finally:
                await runner.stop()
            generation += 1
    finally:
        if dns is not None:
            dns.stop()


def ready_name(generation: int) -> str:
    """The DNS name the fake DNS answers (``A 127.0.0.1``) once world ``generation`` serves: the Postfix container
    polls it before starting Postfix (``getent hosts``). Under ``.invalid`` (RFC 6761 §6.4): never a real name."""
    return f"g{generation}.ready.mxharness.invalid"


def _without(name: str, emit: _Emitter) -> Callable[[Mapping[str, Any]], None]:
    """``emit`` for DNS query events, except those for ``name`` (the harness's own, not the world's)."""

    def on_query(event: Mapping[str, Any]) -> None:
        if str(event.get("qname", "")).rstrip(".").lower() != name:
            emit(event)

    return on_query


def main(argv: Sequence[str] | None = None) -> int:
    """Run the peer: ``python3 -m harness.peer WORLD_JSON [--no-bind]``.

    Returns:
        0 after a clean stop on SIGTERM/SIGINT, 1 after a failure to start a world (reported as an ``error``
        event).
    """
    parser = argparse.ArgumentParser(
        prog="python3 -m harness.peer", description="mxharness peer: fake DNS and SMTP servers"
    )
    parser.add_argument("world", type=Path, help="world spec JSON written by the host")
    parser.add_argument(
        "--no-bind", action="store_true", help="do not add addresses to lo (tests on 127.0.0.x addresses)"
    )
    parser.add_argument("--pid-file", type=Path, help="write the peer's pid here (the host's world swap signals it)")
    args = parser.parse_args(argv)
    if args.pid_file is not None:
        args.pid_file.write_text(f"{os.getpid()}\n")
    emit = _Emitter()
    try:
        asyncio.run(_serve(args.world, emit, bind=not args.no_bind))
    except (HarnessError, OSError) as exc:
        emit({"event": "error", "message": str(exc)})
        return 1
    emit({"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
