"""Reliability (issue 8), parallel runs: pytest-xdist workers share nothing and leave nothing behind; two
`mxharness run` processes on one engine never remove each other's pods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from harness.engine import PID_LABEL, RUN_LABEL, Engine

ROOT = Path(__file__).resolve().parents[2]
FACEBOOK = ROOT / "scenarios" / "seed" / "facebook.yaml"


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def test_pytest_xdist_with_two_workers_passes_and_leaves_nothing(tmp_path: Path) -> None:
    engine = Engine()
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", str(FACEBOOK)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    # Every container made under the run, with its owner (an xdist worker is a child of the pytest process).
    seen: dict[str, dict[str, str]] = {}
    workers: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            workers.update(_children(child.pid))
            for pid in list(workers):
                try:
                    for c in engine.client.api.containers(all=True, filters={"label": f"{PID_LABEL}={pid}"}):
                        seen[c["Id"]] = c["Labels"]
                except Exception:  # removed while listed: poll again
                    pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, _ = child.communicate(timeout=300)
    finally:
        stop.set()
        watcher.join()
        if child.poll() is None:
            child.kill()
    try:
        assert child.returncode == 0, out
        assert "2 passed" in out, out
        owners = {labels[PID_LABEL] for labels in seen.values()}
        runs = {labels[RUN_LABEL] for labels in seen.values()}
        # Each worker ran its case on a pod of its own, from a runner of its own: no shared state.
        assert len(owners) == 2 and len(runs) == 2 and len(seen) == 4, seen
        for pid in owners:
            assert engine.client.containers.list(all=True, filters={"label": f"{PID_LABEL}={pid}"}) == []
    finally:
        engine.close()


SLOW = {
    "name": "parallel-slow-run",
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {"delays": {"greeting": 20}}},
    "cases": [{"name": "slow", "send": [{"to": "a@example.net", "expect": {"status": "sent"}}]}],
}


def _mxharness(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _pods(engine: Engine, pid: int) -> list[Any]:
    return list(engine.client.containers.list(all=True, filters={"label": f"{PID_LABEL}={pid}"}))


def test_a_run_that_ends_leaves_the_pod_of_a_concurrent_run_alone(tmp_path: Path) -> None:
    with (tmp_path / "slow.yaml").open("w") as out:
        YAML().dump(SLOW, out)
    engine = Engine()
    slow = _mxharness("run", str(tmp_path / "slow.yaml"))
    try:
        deadline = time.monotonic() + 60
        while len(_pods(engine, slow.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_pods(engine, slow.pid)) == 2, "the slow run never started its pod"
        quick = _mxharness("run", str(FACEBOOK))  # starts and ends while the slow run's case is under way
        out, _ = quick.communicate(timeout=120)
        assert quick.returncode == 0, out
        assert slow.poll() is None, "the slow run ended early"
        assert [c.status for c in _pods(engine, slow.pid)] == ["running", "running"]  # its pod untouched
        assert _pods(engine, quick.pid) == []
        slow.send_signal(signal.SIGTERM)
        slow_out, _ = slow.communicate(timeout=60)
        assert slow.returncode == 130, slow_out
        assert _pods(engine, slow.pid) == []
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
        engine.close()
