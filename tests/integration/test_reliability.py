"""Reliability: a container killed under a case gives an error, never a verdict; a killed harness's pods are
found and removed by `mxharness clean`, while a run that is still going keeps its pod."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from harness.engine import RUN_LABEL, remove_leftovers
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
