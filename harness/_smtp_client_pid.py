"""Which process opened a TCP connection, read from Linux's ``/proc``. Private: used by the fake SMTP server.

The peer container shares the Postfix container's network and PID namespaces (:meth:`harness.engine.Pod.start_peer`),
so the client end of a connection a fake server accepts is a socket held by a Postfix smtp(8) process, and that
process's pid is the one Postfix writes into its log (``postfix/smtp[PID]: …``). Recording it ties a server session
to a delivery attempt exactly, even when two smtp(8) processes reach one server within the same millisecond.

This module imports only the standard library: it runs inside the peer container.
"""

from __future__ import annotations

__all__ = ["client_pid", "proc_net_address"]

import ipaddress
import os
import struct
from pathlib import Path

_PROC = Path("/proc")


def proc_net_address(address: str, port: int) -> str:
    """``address:port`` as ``/proc/net/tcp`` (IPv4) or ``/proc/net/tcp6`` (IPv6) writes it: the address as
    32-bit words in host byte order, each as 8 upper-case hex digits, then ``:`` and the port as 4 hex digits.

    An IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) is given in its IPv4 form, as the kernel lists a plain
    IPv4 socket.

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    ip = ipaddress.ip_address(address.strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    words = struct.unpack(f"={len(ip.packed) // 4}I", ip.packed)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def _socket_inode(client: tuple[str, int], server: tuple[str, int], proc: Path) -> int | None:
    """The inode of the socket whose local end is ``client`` and remote end is ``server``."""
    try:
        local = proc_net_address(*client)
        remote = proc_net_address(*server)
    except ValueError:
        return None
    table = "tcp6" if len(local) > 13 else "tcp"
    try:
        lines = (proc / "net" / table).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
        if len(fields) > 9 and fields[1] == local and fields[2] == remote:
            return int(fields[9])
    return None


def client_pid(client: tuple[str, int], server: tuple[str, int], proc: Path = _PROC) -> int | None:
    """The pid of the process holding the client end of a TCP connection seen by a server, or None.

    Args:
        client: the connection's remote address and port as the server sees them (``getpeername()``).
        server: the connection's local address and port on the server (``getsockname()``).
        proc: the procfs mount to read (a test passes a fake tree).

    Returns:
        The pid, or None when the socket or its owner cannot be found — another PID namespace, no permission to
        read other users' ``/proc/PID/fd`` (the peer needs ``CAP_SYS_PTRACE`` for Postfix's processes, which run
        as user ``postfix``), or the client already closed. Never raises.
    """
    inode = _socket_inode(client, server, proc)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    own = os.getpid()
    try:
        pids = [entry for entry in proc.iterdir() if entry.name.isdigit() and int(entry.name) != own]
    except OSError:
        return None
    for entry in pids:
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == target:
                    return int(entry.name)
        except OSError:  # gone, or not ours to read
            continue
    return None
