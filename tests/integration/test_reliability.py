"""Reliability: a container killed under a case gives an error, never a verdict; a killed harness's pods are
found and removed by `mxharness clean`, while a run that is still going keeps its pod."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from harness.engine import LABEL, RUN_LABEL, remove_leftovers
from harness.runner import Runner
from harness.scenario import scenario_from_dict

SLOW = {
    "name": "slow-world",
    "dns": {"example.net": {"MX": "10 mx.example.net"}, "mx.example.net": {"A": "auto"}},
    "servers": {"mx.example.net": {"delays": {"greeting": 20}}},
    "cases": [{"name": "slow", "send": [{"to": "a@example.net", "expect": {"status": "sent"}}]}],
}


def test_a_postfix_container_killed_mid_case_is_an_error_not_a_verdict(mxharness_runner: Runner) -> None:
    scenario = scenario_from_dict(SLOW)
    with Runner(engine=mxharness_runner.engine, timeout_s=60, progress=lambda m: None) as runner:

        def kill_when_running() -> None:
            label = {"label": [f"{RUN_LABEL}={runner.run_id}", "mxharness.role=postfix"]}
            for _ in range(200):
                running = mxharness_runner.engine.client.containers.list(filters=label)
                if running:
                    time.sleep(1.5)  # the case is now waiting for the slow greeting
                    running[0].kill()
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_running)
        killer.start()
        started = time.monotonic()
        (result,) = list(runner.run([scenario]))
        killer.join()
        assert time.monotonic() - started < 30  # not the 60 s timeout
        assert not result.passed
        assert result.error and "the Postfix container stopped during the case" in result.error
        assert result.recipients[0].observed is None  # no verdict from a dead pod
        run_id = runner.run_id
    left = mxharness_runner.engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert left == []


def _start_run(folder: Path, name: str) -> subprocess.Popen[str]:
    data = dict(SLOW, name=name)
    path = folder / f"{name}.yaml"
    import json

    path.write_text(json.dumps(data))  # JSON is YAML
    code = "from harness.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )


def _pods(engine: object, scenario: str) -> list[object]:
    client = engine.client  # type: ignore[attr-defined]
    return list(client.containers.list(all=True, filters={"label": f"mxharness.scenario={scenario}"}))


def test_clean_removes_a_killed_runs_pod_and_spares_a_live_run(mxharness_runner: Runner, tmp_path: Path) -> None:
    engine = mxharness_runner.engine
    live = _start_run(tmp_path, "live-run")
    killed = _start_run(tmp_path, "killed-run")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            len(_pods(engine, "live-run")) == 2 == len(_pods(engine, "killed-run"))
        ):
            time.sleep(0.2)
        assert len(_pods(engine, "killed-run")) == 2, textwrap.shorten(str(_pods(engine, "killed-run")), 200)
        killed.kill()  # SIGKILL: no chance to clean up
        killed.wait(timeout=10)
        assert len(_pods(engine, "killed-run")) == 2  # left behind
        remove_leftovers(engine)  # what `mxharness clean` does
        assert _pods(engine, "killed-run") == []
        assert len(_pods(engine, "live-run")) == 2  # a run still going is spared
    finally:
        for proc in (live, killed):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
    assert _pods(engine, "live-run") == []  # the live run removed its own pod on SIGTERM


def test_an_image_build_failing_halfway_is_an_environment_problem_and_leaves_nothing(tmp_path: Path) -> None:
    import shutil

    import docker

    from harness.engine import Engine
    from harness.errors import EnvironmentProblem
    from harness.images import _build, ensure_images

    context = tmp_path / "postfix"
    shutil.copytree(Path(__file__).resolve().parents[2] / "containers" / "postfix", context)
    dockerfile = context / "Dockerfile"
    # The first steps succeed (layers, an intermediate container per step), then one fails.
    dockerfile.write_text(
        dockerfile.read_text() + 'RUN echo step-one-done\nRUN echo "apt: broken mirror" >&2; exit 100\n'
    )
    engine = Engine()
    try:
        base = ensure_images(engine).postfix  # any local image will do as the base
        # Build steps run in unlabelled containers (the harness's own carry mxharness=1; other runs may be going).
        before = {c.id for c in engine.client.containers.list(all=True) if LABEL not in c.labels}
        tag = "mxharness/postfix:broken-halfway-test"
        try:
            _build(engine, context, tag, base)
        except EnvironmentProblem as exc:
            message = str(exc)
        else:
            raise AssertionError("the broken build did not fail")
        assert message.startswith(f"building {tag} failed:")
        assert "returned a non-zero code: 100" in message and "apt: broken mirror" in message
        after = {c.id for c in engine.client.containers.list(all=True) if LABEL not in c.labels}
        assert after == before  # no intermediate container left
        try:
            engine.client.images.get(tag)
        except docker.errors.ImageNotFound:
            pass
        else:
            raise AssertionError("a half-built image was tagged")
    finally:
        engine.close()


def test_ctrl_c_under_pytest_removes_the_pod(tmp_path: Path) -> None:
    import signal

    from ruamel.yaml import YAML

    from harness.engine import Engine

    with (tmp_path / "slow.yaml").open("w") as out:
        YAML().dump(SLOW, out)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "slow.yaml")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    engine = Engine()
    try:
        label = {"label": f"mxharness.pid={child.pid}"}
        deadline = time.monotonic() + 60
        while not engine.client.containers.list(filters=label) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.client.containers.list(filters=label), "the case never started its pod"
        time.sleep(1.0)  # inside the case: the server delays its greeting for 20 s
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 2, out  # pytest's "interrupted"
        assert "KeyboardInterrupt" in out
        assert engine.client.containers.list(all=True, filters=label) == [], out
    finally:
        if child.poll() is None:
            child.kill()
        engine.close()


def test_a_peer_container_killed_mid_case_is_an_error_not_a_verdict(mxharness_runner: Runner) -> None:
    # The twin of the Postfix container killed above: the peer (fake DNS and servers) dies while Postfix waits for
    # the greeting. Postfix then logs "lost connection ... status=deferred" — what the dead pod did, not the world:
    # a case expecting a deferral must not pass on it.
    expects_deferral = dict(
        SLOW,
        name="slow-world-peer-killed",
        cases=[{"name": "slow", "send": [{"to": "a@example.net", "expect": {"status": "deferred"}}]}],
    )
    scenario = scenario_from_dict(expects_deferral)
    with Runner(engine=mxharness_runner.engine, timeout_s=60, progress=lambda m: None) as runner:
        killed: list[str] = []

        def kill_peer_when_running() -> None:
            label = {"label": [f"{RUN_LABEL}={runner.run_id}", "mxharness.role=peer"]}
            for _ in range(200):
                running = mxharness_runner.engine.client.containers.list(filters=label)
                if running:
                    time.sleep(1.5)  # the case is now waiting for the slow greeting
                    running[0].kill()
                    killed.append(running[0].id)
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_peer_when_running)
        killer.start()
        started = time.monotonic()
        (result,) = list(runner.run([scenario]))
        killer.join()
        run_id = runner.run_id
    assert killed, "the peer was never seen running"
    assert time.monotonic() - started < 30  # not the 60 s timeout
    left = mxharness_runner.engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert left == []
    assert not result.passed, "a case passed on what a dead peer made Postfix do"
    assert result.error and "peer" in result.error
