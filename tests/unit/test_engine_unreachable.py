"""Engine faults without an engine: nothing answers at DOCKER_HOST (exit 3, at once, a clear message), and an engine
that accepts the connection but never answers (the bound on every Docker API call, harness.engine.API_TIMEOUT_S).

No Docker is needed: the "engine" is a closed port or a local TCP server that accepts and stays silent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness.engine
from harness.engine import Engine
from harness.errors import EnvironmentProblem

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed" / "facebook.yaml"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.fixture
def silent_engine() -> Iterator[str]:
    """``tcp://127.0.0.1:PORT`` of a server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def _mxharness(docker_host: str, *args: str, prelude: str = "") -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "DOCKER_HOST": docker_host, "NO_COLOR": "1"}
    code = f"{prelude}from harness.cli import main; main()"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )
    return done, time.monotonic() - started


def test_run_with_no_engine_exits_3_at_once_with_a_clear_message() -> None:
    done, took = _mxharness(f"tcp://127.0.0.1:{_closed_port()}", "run", str(SEED))
    assert done.returncode == 3, done.stdout + done.stderr
    assert took < 15, f"{took:.1f} s to notice that nothing listens"
    assert done.stderr.startswith("environment problem: no Docker engine is reachable:"), done.stderr
    assert "Connection refused" in done.stderr and "DOCKER_HOST" in done.stderr  # the cause and where to look
    assert "Traceback" not in done.stderr
    # No verdict of any kind: no case line, no table, no summary.
    assert "passed" not in done.stdout and "FAIL" not in done.stdout and "pass " not in done.stdout


def test_an_engine_that_never_answers_is_bounded_by_the_api_timeout(
    silent_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real bound is API_TIMEOUT_S (120 s); the test shortens it to show that it is applied to the connection.
    monkeypatch.setenv("DOCKER_HOST", silent_engine)
    monkeypatch.setattr(harness.engine, "API_TIMEOUT_S", 2)
    started = time.monotonic()
    with pytest.raises(EnvironmentProblem) as problem:
        Engine()
    took = time.monotonic() - started
    assert 1.5 < took < 10, f"{took:.1f} s for a 2 s bound"
    message = str(problem.value)
    assert message.startswith("no Docker engine is reachable:")
    assert "Read timed out" in message and "read timeout=2" in message  # names what it waited for, and how long


def test_run_against_an_engine_that_never_answers_exits_3(silent_engine: str) -> None:
    prelude = "import harness.engine; harness.engine.API_TIMEOUT_S = 2; "
    done, took = _mxharness(silent_engine, "run", str(SEED), prelude=prelude)
    assert done.returncode == 3, done.stdout + done.stderr
    assert took < 20, f"{took:.1f} s for a 2 s bound"
    assert done.stderr.startswith("environment problem: no Docker engine is reachable:"), done.stderr
    assert "Read timed out" in done.stderr and "Traceback" not in done.stderr
    assert "passed" not in done.stdout and "FAIL" not in done.stdout


def test_the_api_bound_is_finite_and_the_environment_can_raise_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The value the harness runs with (the tests above shorten it): every Docker call, and a script in a pod's
    # shell (harness.engine.ShellSession, given Engine.api_timeout_s), ends after at most this many seconds.
    monkeypatch.delenv("MXHARNESS_DOCKER_TIMEOUT", raising=False)
    assert harness.engine._api_timeout() == harness.engine.API_TIMEOUT_S == 120
    assert harness.engine.PING_TIMEOUT_S < harness.engine.API_TIMEOUT_S
    monkeypatch.setenv("MXHARNESS_DOCKER_TIMEOUT", "300.5")
    assert harness.engine._api_timeout() == 301  # whole seconds, rounded up
    for bad in ("soon", "0", "-5", "inf", "nan"):
        monkeypatch.setenv("MXHARNESS_DOCKER_TIMEOUT", bad)
        with pytest.raises(EnvironmentProblem, match=r"MXHARNESS_DOCKER_TIMEOUT=.* is not a number of seconds"):
            harness.engine._api_timeout()
