"""A pod reset between cases is as good as a fresh pod; parallel runs share nothing.

The whole scenario library runs both ways and every recipient's outcome must be the same (status, dsn, TLS
level, whether the fake server took the data, pass/fail, and the relay where a scenario pins it). Queue ids,
timings and the order of equal-preference MX hosts differ by nature.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.engine import RUN_LABEL
from harness.results import CaseResult
from harness.runner import Runner
from harness.scenario import load_scenarios

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"


def outcomes(results: list[CaseResult]) -> list[tuple[object, ...]]:
    rows = []
    for case in results:
        for r in case.recipients:
            o = r.observed
            # MX hosts of equal preference are tried in random order (RFC 5321 §5.1), and the relay and reason
            # name the last one tried: those two are compared only where the scenario pins them to one value (a
            # /regular expression/ allowing either is held by r.passed).
            pinned = r.expect.reason is not None and not r.expect.reason.startswith("/")
            relay = o.relay_host if o and r.expect.relay is not None else None
            reason = re.sub(r"queued as \w+", "", o.reason) if o and pinned else None
            seen = (o.status, o.dsn, o.tls, relay, o.received, reason) if o else ()
            rows.append((case.scenario, case.case, r.recipient, r.passed, case.error is None, seen))
    return rows


def test_reused_pods_give_the_outcomes_of_fresh_pods(mxharness_runner: Runner) -> None:
    scenarios = load_scenarios([LIBRARY])
    engine = mxharness_runner.engine
    with Runner(engine=engine, reuse_pods=False, progress=lambda m: None) as fresh_runner:
        fresh = list(fresh_runner.run(scenarios))
    with Runner(engine=engine, reuse_pods=True, progress=lambda m: None) as reusing_runner:
        reused = list(reusing_runner.run(scenarios))
        run_id = reusing_runner.run_id
    assert len(fresh) == sum(len(s.cases) for s in scenarios) > 10
    assert outcomes(reused) == outcomes(fresh)
    assert engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []


def test_parallel_jobs_give_the_outcomes_of_one_job(mxharness_runner: Runner) -> None:
    scenarios = load_scenarios([LIBRARY / "seed"])
    engine = mxharness_runner.engine
    with Runner(engine=engine, jobs=1, progress=lambda m: None) as one:
        serial = list(one.run(scenarios))
    with Runner(engine=engine, jobs=2, progress=lambda m: None) as two:
        parallel = list(two.run(scenarios))
    assert outcomes(parallel) == outcomes(serial)
    assert all(case.passed for case in parallel)
