"""Which process opened a connection: real sockets on this host's loopback, a real client process, real /proc."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from harness._smtp_client_pid import client_pid, proc_net_address


def test_proc_net_address_is_the_kernels_spelling() -> None:
    # /proc/net/tcp shows 127.0.0.1:25 as 0100007F:0019 on little-endian machines (words in host byte order).
    little = sys.byteorder == "little"
    assert proc_net_address("127.0.0.1", 25) == ("0100007F:0019" if little else "7F000001:0019")
    assert proc_net_address("::ffff:127.0.0.1", 25) == proc_net_address("127.0.0.1", 25)
    assert proc_net_address("[::1]", 587) == ("00000000" * 3 + ("01000000" if little else "00000001") + ":024B")
    with pytest.raises(ValueError):
        proc_net_address("mx.example.net", 25)


@contextmanager
def _connection_from_child(family: socket.AddressFamily, host: str) -> Iterator[tuple[int, socket.socket]]:
    """A listening socket, a child process that connects to it and waits, and the accepted connection."""
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        code = (
            "import socket, sys\n"
            f"s = socket.create_connection(({host!r}, {port}))\n"
            "sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.read()\n"
        )
        with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
            try:
                assert child.stdout is not None and child.stdout.readline() == b"up\n"
                conn, _ = listener.accept()
                with conn:
                    yield child.pid, conn
            finally:
                child.kill()


def test_finds_the_process_that_opened_an_ipv4_connection() -> None:
    with _connection_from_child(socket.AF_INET, "127.0.0.1") as (pid, conn):
        assert client_pid(conn.getpeername()[:2], conn.getsockname()[:2]) == pid


def test_finds_the_process_that_opened_an_ipv6_connection() -> None:
    if not socket.has_ipv6:
        pytest.fail("this host has no IPv6; the peer image needs it for scenario AAAA addresses")
    with _connection_from_child(socket.AF_INET6, "::1") as (pid, conn):
        assert client_pid(conn.getpeername()[:2], conn.getsockname()[:2]) == pid


def test_unknown_connection_and_own_process_give_none() -> None:
    assert client_pid(("127.0.0.1", 1), ("127.0.0.1", 2)) is None
    # Both ends in this process: the client end is ours, and a server never reports itself.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            conn, _ = listener.accept()
            with conn:
                assert client_pid(conn.getpeername(), conn.getsockname()) is None
                assert client.fileno() >= 0
