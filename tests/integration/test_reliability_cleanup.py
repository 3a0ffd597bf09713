"""Reliability (issue 8): nothing left behind — containers, networks, volumes, temp files — after success, failure,
an exception in a user's fixture or test, and Ctrl-C in the middle of a parallel run; and the pod is hermetic by
construction: the Postfix container has only loopback.

Runs of the harness go in a subprocess, found by the ``mxharness.pid`` label of their containers, so that other
runs on the same engine (another job, another developer) are neither counted nor touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from harness.engine import PID_LABEL, RUN_LABEL, Engine, Pod, new_run_id
from harness.runner import Runner
from harness.scenario import scenario_from_dict
from harness.world import build_world

# One plaintext MX host; a case that delivers and one whose expectation is wrong (it fails).
PLAIN = {
    "name": "cleanup-check",
    "dns": {"plain.example": {"MX": "10 mx.plain.example"}, "mx.plain.example": {"A": "auto"}},
    "servers": {"mx.plain.example": {}},
    "cases": [
        {"name": "delivers", "send": [{"to": "a@plain.example", "expect": {"status": "sent"}}]},
        {"name": "expects-wrongly", "send": [{"to": "b@plain.example", "expect": {"status": "bounced"}}]},
    ],
}
# Two cases that wait 20 s for the server's greeting: a signal is sure to arrive in the middle of both.
SLOW = {
    "name": "cleanup-slow",
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {"delays": {"greeting": 20}}},
    "cases": [
        {"name": f"slow-{i}", "send": [{"to": f"u{i}@example.net", "expect": {"status": "sent"}}]} for i in (1, 2)
    ],
}


def _write(path: Path, data: dict[str, Any]) -> Path:
    with path.open("w") as out:
        YAML().dump(data, out)
    return path


def _mxharness(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


class _Watch:
    """Every container labelled with a process's pid, seen while that process runs (polled, with its inspect
    summary: mounts and network mode)."""

    def __init__(self, engine: Engine, pid: int) -> None:
        self.engine, self.label = engine, {"label": f"{PID_LABEL}={pid}"}
        self.seen: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                for c in self.engine.client.api.containers(all=True, filters=self.label):
                    self.seen[c["Id"]] = c
            except Exception:  # a container removed while listed: poll again
                pass
            time.sleep(0.1)

    def stop(self) -> dict[str, dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        return self.seen

    def left(self) -> list[Any]:
        return list(self.engine.client.containers.list(all=True, filters=self.label))


def _volumes_and_networks(engine: Engine) -> tuple[set[str], set[str]]:
    volumes = {v.name for v in engine.client.volumes.list()}
    networks = {n.id for n in engine.client.networks.list()}
    return volumes, networks


def test_a_run_with_a_pass_and_a_failure_leaves_no_container_volume_network_or_temp_file(tmp_path: Path) -> None:
    scenario = _write(tmp_path / "cleanup.yaml", PLAIN)
    tmpdir, cwd = tmp_path / "tmpdir", tmp_path / "cwd"
    tmpdir.mkdir()
    cwd.mkdir()
    engine = Engine()
    try:
        volumes_before, networks_before = _volumes_and_networks(engine)
        env = {**os.environ, "TMPDIR": str(tmpdir), "NO_COLOR": "1"}
        child = _mxharness("run", str(scenario), cwd=cwd, env=env)
        watch = _Watch(engine, child.pid)
        out, _ = child.communicate(timeout=180)
        seen = watch.stop()
        assert child.returncode == 1, out  # one case failed
        assert "1 passed, 1 failed" in out, out
        assert len(seen) == 2, f"the run's pod was not seen: {seen}"  # one pod, reused: the check below means something
        for container in seen.values():
            assert container["Mounts"] == [], container["Mounts"]  # no volume to leave behind
            mode = container["HostConfig"]["NetworkMode"]
            assert mode == "none" or mode.startswith("container:"), mode  # no network of its own
        assert watch.left() == []
        volumes_after, networks_after = _volumes_and_networks(engine)
        assert volumes_after - volumes_before == set()
        assert networks_after - networks_before == set()
        assert list(tmpdir.iterdir()) == []  # no temp file or folder (tempfile follows TMPDIR)
        assert list(cwd.iterdir()) == []  # nothing written where it ran either
    finally:
        engine.close()


CHILD_TESTS = """
import json
import os

import pytest

from harness.engine import RUN_LABEL
from harness.runner import Runner
from harness.scenario import scenario_from_dict

WORLD = json.loads(os.environ["MXH_WORLD"])


def record(where, runner):
    label = {"label": f"{RUN_LABEL}={runner.run_id}"}
    count = len(runner.engine.client.containers.list(all=True, filters=label))
    with open(os.environ["MXH_RECORD"], "a") as out:
        out.write(json.dumps({"where": where, "run": runner.run_id, "containers": count}) + "\\n")


@pytest.fixture
def broken_setup(mxharness_run, mxharness_runner):
    assert all(r.passed for r in mxharness_run(WORLD, cases=["delivers"]))
    record("fixture-setup", mxharness_runner)
    raise RuntimeError("a user's fixture broke after it ran a case")


@pytest.fixture
def broken_teardown(mxharness_run, mxharness_runner):
    yield
    mxharness_run(WORLD, cases=["delivers"])
    record("fixture-teardown", mxharness_runner)
    raise RuntimeError("a user's fixture broke in its teardown")


def test_with_a_broken_fixture(broken_setup):
    pass


def test_with_a_fixture_broken_in_teardown(broken_teardown):
    pass


def test_raises_after_a_case(mxharness_run, mxharness_runner):
    mxharness_run(WORLD, cases=["delivers"])
    record("test", mxharness_runner)
    raise RuntimeError("a user's test broke")


def test_own_parallel_runner_raises_between_results():
    world = dict(WORLD, name="own-runner", cases=[dict(WORLD["cases"][0], name=f"c{i}") for i in range(3)])
    with Runner(jobs=2, progress=lambda m: None) as runner:
        for _ in runner.run([scenario_from_dict(world)]):
            record("own-runner", runner)
            raise RuntimeError("a user's code broke while results were coming")
"""


def test_an_exception_in_a_users_fixture_or_test_leaves_no_pod(tmp_path: Path) -> None:
    (tmp_path / "test_user_code.py").write_text(textwrap.dedent(CHILD_TESTS))
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "MXH_WORLD": json.dumps(PLAIN), "MXH_RECORD": str(record)}
    engine = Engine()
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_code.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out, _ = child.communicate(timeout=300)
        assert child.returncode == 1, out
        assert "2 failed, 1 passed, 2 errors" in out, out
        rows = [json.loads(line) for line in record.read_text().splitlines()]
        assert sorted(r["where"] for r in rows) == ["fixture-setup", "fixture-teardown", "own-runner", "test"]
        # When each exception was raised, pods of the run were up (the session's reused pod, the parallel runner's
        # two pods) ...
        assert all(r["containers"] >= 2 for r in rows), rows
        # ... and none is left now, of any of the runs nor of the process.
        for run in {r["run"] for r in rows}:
            assert engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run}"}) == [], run
        assert engine.client.containers.list(all=True, filters={"label": f"{PID_LABEL}={child.pid}"}) == []
    finally:
        engine.close()


def _interrupt_a_parallel_run(
    tmp_path: Path, cases: int, greeting_s: int, *options: str
) -> tuple[int, str, float, list[str]]:
    """``mxharness run -j 2`` over ``cases`` slow cases, SIGINT once the first two are in the middle of their case.

    Returns:
        (exit code, output, seconds from the signal to the exit, the cases that got a pod after the signal).
    """
    data = dict(SLOW, cases=[dict(SLOW["cases"][0], name=f"slow-{i}") for i in range(1, cases + 1)])
    data["servers"] = {"mx.example.net": {"delays": {"greeting": greeting_s}}}
    scenario = _write(tmp_path / "slow.yaml", data)
    engine = Engine()
    child = _mxharness("run", "-j", "2", *options, str(scenario), cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    try:
        watch = _Watch(engine, child.pid)
        deadline = time.monotonic() + 90
        while (
            time.monotonic() < deadline
            and sum(c["Labels"]["mxharness.role"] == "peer" for c in watch.seen.values()) < 2
        ):
            time.sleep(0.1)
        time.sleep(2.0)  # both first cases are now waiting for the server's greeting
        before = {c["Labels"]["mxharness.case"] for c in watch.seen.values()}
        assert len(before) == 2, f"the first two cases did not both start: {before}"
        child.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        out, _ = child.communicate(timeout=300)
        took = time.monotonic() - interrupted
        seen = watch.stop()
        after = sorted({c["Labels"]["mxharness.case"] for c in seen.values()} - before)
        left = watch.left()
        assert left == [], [c.name for c in left]  # checked here: every caller needs it
        return child.returncode, out, took, after
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        engine.close()


def test_ctrl_c_in_the_middle_of_a_parallel_run_exits_130_and_removes_every_pod(tmp_path: Path) -> None:
    code, out, _, _ = _interrupt_a_parallel_run(tmp_path, cases=2, greeting_s=20)
    assert code == 130, out
    assert "interrupted" in out and "pass " not in out, out  # no verdict for an interrupted case
    # (_interrupt_a_parallel_run checked that no container of the process is left.)


def test_ctrl_c_in_a_parallel_run_stops_it_without_running_the_queued_cases(tmp_path: Path) -> None:
    # README: "130 interrupted (Ctrl-C, SIGTERM, SIGHUP: the pods are removed first)". With -j 2 the queued cases
    # must not start after the signal, nor the run wait for the ones under way. (--fresh-pods: each case has a pod
    # of its own, labelled with its name, so a queued case that starts is seen.)
    code, out, took, started_after = _interrupt_a_parallel_run(tmp_path, 4, 8, "--fresh-pods")
    assert code == 130, out
    assert started_after == [], f"cases started after Ctrl-C: {started_after} (exit {took:.1f} s after the signal)"
    assert took < 5, f"the run ended {took:.1f} s after Ctrl-C"


def test_the_postfix_container_has_only_loopback(mxharness_runner: Runner) -> None:
    engine = mxharness_runner.engine
    images = mxharness_runner.images(None)
    world = build_world(scenario_from_dict(PLAIN))
    with Pod(engine, postfix_image=images.postfix, peer_image=images.peer, run_id=new_run_id()) as pod:
        pod.start_postfix()
        pod.start_peer(world.peer_files())
        assert pod.postfix is not None and pod.peer is not None and pod.peer_log is not None
        # The peer has bound the world's addresses (on lo) and serves it: the pod as a case sees it.
        assert pod.peer_log.wait_for(lambda lines: any('"event": "ready"' in x for x in lines), 30), (
            pod.peer_log.snapshot()
        )
        pod.postfix.reload()
        pod.peer.reload()
        assert pod.postfix.attrs["HostConfig"]["NetworkMode"] == "none"
        assert list(pod.postfix.attrs["NetworkSettings"]["Networks"]) in ([], ["none"])
        assert pod.peer.attrs["HostConfig"]["NetworkMode"] == f"container:{pod.postfix.id}"  # the same loopback
        script = (
            'awk \'NR>2 {sub(":", "", $1); print "if", $1}\' /proc/net/dev\n'
            "awk 'NR>1 {print \"route4\", $0}' /proc/net/route\n"
            "grep -v ' lo$' /proc/net/ipv6_route | sed 's/^/route6 /'\n"
            "for target in 1.1.1.1 2606:4700:4700::1111; do\n"
            '  timeout 5 bash -c "exec 3<>/dev/tcp/$target/53" 2>&1; echo "connect $target exit=$?"\n'
            "done\n"
        )
        code, out = pod.run_postfix(script)
        lines = out.splitlines()
        assert code == 0, out
        assert [x for x in lines if x.startswith("if ")] == ["if lo"], out  # the only interface
        assert [x for x in lines if x.startswith(("route4 ", "route6 "))] == [], out  # no route out of lo
        # Connecting out fails in the kernel, before any packet: no interface leads anywhere.
        attempts = [x for x in lines if x.startswith("connect ")]
        assert len(attempts) == 2 and not any(x.endswith(" exit=0") for x in attempts), out
        assert "/dev/tcp/1.1.1.1/53: Network is unreachable" in out, out
        assert "/dev/tcp/2606:4700:4700::1111/53: " in out, out  # unreachable, or no address to send from


def test_runs_after_runs_take_the_idle_pod_and_start_no_other(tmp_path: Path) -> None:
    # The pytest plugin calls Runner.run once per scenario: the pod started ahead of the first run's first case
    # serves the later runs too; no further pod is started ahead (and left unused until the end).
    scenario = scenario_from_dict(PLAIN)
    with Runner(progress=lambda m: None) as runner:
        label = {"label": f"{RUN_LABEL}={runner.run_id}"}
        for _ in range(3):
            results = list(runner.run([scenario], select=lambda s, c: c.name == "delivers"))
            assert [r.passed for r in results] == [True], results[0].error
            assert len(runner.engine.client.containers.list(all=True, filters=label)) == 2  # one pod


def test_a_second_ctrl_c_while_the_pods_are_removed_leaves_none(tmp_path: Path) -> None:
    # Users press Ctrl-C twice: the second must not cut the removal short (Runner.close ignores it).
    scenario = _write(tmp_path / "slow.yaml", SLOW)
    engine = Engine()
    child = _mxharness("run", str(scenario), cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"})
    mine = {"label": f"{PID_LABEL}={child.pid}"}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(engine.client.containers.list(filters=mine)) < 2:
            time.sleep(0.1)
        assert len(engine.client.containers.list(filters=mine)) == 2, "the pod did not start"
        time.sleep(1.0)  # the case is under way
        child.send_signal(signal.SIGINT)
        time.sleep(0.2)  # the removal has begun
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 130, out
        assert engine.client.containers.list(all=True, filters=mine) == [], out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        engine.close()
