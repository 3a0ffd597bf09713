"""Reliability (issue 8): every wait has a bound. A server that stalls ends the case at the case timeout with the
log tail; a Docker call that hangs ends at the API bound (harness.engine.API_TIMEOUT_S) with a clear error, and
the pod is removed. (A Postfix that never logs a status: tests/integration/test_pod.py.)

The hung Docker call is made by a proxy in front of this machine's engine that forwards everything except the
request it is told to swallow: it neither forwards nor answers it. The harness runs in a subprocess with the API
bound shortened from 120 s to 3 s (an assignment before the CLI starts), so the test does not wait two minutes.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from harness.engine import PID_LABEL, RUN_LABEL, Engine
from harness.runner import Runner
from harness.scenario import scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]
FACEBOOK = ROOT / "scenarios" / "seed" / "facebook.yaml"
BOUND_S = 3

STALL = {
    "name": "stalling-server",
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {"delays": {"greeting": 60}}},
    "cases": [{"name": "stalls", "send": [{"to": "a@example.net", "expect": {"status": "sent"}}]}],
}


def test_a_server_that_stalls_ends_the_case_at_its_timeout_with_the_log_tail(mxharness_runner: Runner) -> None:
    with Runner(engine=mxharness_runner.engine, timeout_s=3, progress=lambda m: None) as runner:
        started = time.monotonic()
        (result,) = list(runner.run([scenario_from_dict(STALL)]))
        took = time.monotonic() - started
        run_id = runner.run_id
    assert took < 20, f"{took:.1f} s for a 3 s case timeout"
    assert not result.passed and result.recipients[0].observed is None  # no verdict
    assert result.error and "no first-attempt status for a@example.net within 3 s" in result.error
    assert "Hint:" in result.error
    # What was going on: Postfix took the mail, and the fake server saw the connection it never greeted.
    assert any("queue active" in line for line in result.postfix_log), result.postfix_log
    assert any('"stage": "connect"' in line for line in result.peer_events), result.peer_events
    left = mxharness_runner.engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert left == []


def _engine_address() -> tuple[int, str | tuple[str, int]]:
    """The local engine's socket family and address (DOCKER_HOST unix:// or tcp://, else the default socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    url = urlparse(host)
    if url.scheme == "unix":
        return socket.AF_UNIX, url.path
    if url.scheme == "tcp" and url.hostname and url.port:
        return socket.AF_INET, (url.hostname, url.port)
    pytest.fail(f"the hung-call proxy needs a unix:// or tcp:// engine, not {host}")


class HangingProxy:
    """tcp://127.0.0.1:PORT in front of the engine; a request whose first line matches ``pattern`` is swallowed."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern.encode())
        self.hung: list[str] = []
        self._family, self._address = _engine_address()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._sockets: list[socket.socket] = [self._server]
        self.url = f"tcp://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(self._family)
            engine.connect(self._address)
            self._sockets += [client, engine]
            threading.Thread(target=self._pipe, args=(client, engine, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(engine, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self.pattern.match(data):
                    self.hung.append(data.split(b"\r\n", 1)[0].decode())
                    return  # neither forwarded nor answered, and the connection stays open: a hung call
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        for s in self._sockets:
            s.close()


@pytest.fixture
def hang() -> Iterator[Callable[[str], HangingProxy]]:
    proxies: list[HangingProxy] = []

    def make(pattern: str) -> HangingProxy:
        proxies.append(HangingProxy(pattern))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _run_through(proxy: HangingProxy) -> tuple[subprocess.CompletedProcess[str], float, int]:
    code = f"import harness.engine; harness.engine.API_TIMEOUT_S = {BOUND_S}; from harness.cli import main; main()"
    env = {**os.environ, "DOCKER_HOST": proxy.url, "NO_COLOR": "1"}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(FACEBOOK)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = child.communicate(timeout=300)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err), time.monotonic() - started, child.pid


def _left(pid: int) -> list[str]:
    engine = Engine()  # straight to the engine, not through the proxy
    try:
        return [c.name for c in engine.client.containers.list(all=True, filters={"label": f"{PID_LABEL}={pid}"})]
    finally:
        engine.close()


def test_a_hung_exec_in_the_pod_ends_the_case_with_an_error_and_the_pod_is_removed(
    hang: Callable[[str], HangingProxy],
) -> None:
    proxy = hang(r"POST /v[\d.]+/exec/\w+/start ")  # the shell the harness opens in each container
    done, took, pid = _run_through(proxy)
    assert proxy.hung, "the proxy never saw the call it was to hang"
    assert done.returncode == 1, done.stdout + done.stderr  # a case could not finish: never a verdict
    assert "0 passed, 2 failed" in done.stdout, done.stdout
    assert "the shell in the postfix container failed:" in done.stdout and "Read timed out" in done.stdout
    assert f"read timeout={BOUND_S}" in done.stdout, done.stdout  # how long it waited
    assert "Traceback" not in done.stderr, done.stderr
    assert took < 60, f"{took:.1f} s for a {BOUND_S} s bound"
    assert _left(pid) == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(r"POST /v[\d.]+/containers/create", id="container-create"),
        pytest.param(r"PUT /v[\d.]+/containers/\w+/archive", id="archive-copy"),
    ],
)
def test_a_hung_container_call_gives_a_clear_error_and_the_pod_is_removed(
    hang: Callable[[str], HangingProxy], call: str
) -> None:
    proxy = hang(call)
    done, took, pid = _run_through(proxy)
    assert proxy.hung, "the proxy never saw the call it was to hang"
    assert done.returncode in (1, 3), done.stdout + done.stderr  # a case could not finish, or the engine failed
    assert "passed, 0 failed" not in done.stdout  # never a verdict
    assert _left(pid) == []
    # A clear error, not a Python traceback; naming the wait, and no longer than the bound plus the pod's start.
    assert "Traceback" not in done.stderr, done.stderr[-1500:]
    assert "Read timed out" in done.stdout + done.stderr
    assert took < 45, f"{took:.1f} s for a {BOUND_S} s bound"
