"""Benchmark: a case's wall time with pod reuse and with a fresh pod per case, against Postfix's own decision
time, side by side in one run.

It runs the given scenarios ROUNDS times per mode (images warm; the modes take turns, each round with a Runner
of its own, as a real run) and prints medians of:
  * case wall time (pod made or reset → configured → mail injected → every first attempt read);
  * Postfix's decision time: from a message's pickup line to its status line, both stamped by Docker
    (the physical floor: what Postfix itself needs);
  * harness overhead = wall time - decision time;
and then the ratio fresh / reuse, and the whole folder's time per mode.

Usage: .venv/bin/python bench/bench_cases.py [--rounds N] [PATH ...]
Speed is measured here, never in a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path

from harness import Runner, load_scenarios
from harness.model import Scenario
from harness.results import CaseResult


def _stamp(line: str) -> datetime | None:
    head = line.split(" ", 1)[0]
    try:
        return datetime.fromisoformat(head[:26] + "+00:00" if head.endswith("Z") else head)
    except ValueError:
        return None


def decision_seconds(result: CaseResult) -> list[float]:
    """Per recipient: pickup line → first status line, in seconds (Docker's timestamps)."""
    out = []
    for recipient in result.recipients:
        if recipient.observed is None:
            continue
        qid = recipient.observed.queue_id
        lines = [line for line in result.postfix_log if f" {qid}: " in line]
        pickup = next((_stamp(x) for x in lines if "postfix/pickup" in x), None)
        status = next((_stamp(x) for x in lines if " status=" in x), None)
        if pickup and status:
            out.append((status - pickup).total_seconds())
    return out


def measure_round(scenarios: list[Scenario], samples: dict[str, list[float]], *, reuse: bool) -> None:
    """One round of every case in one mode, with a Runner of its own (as a real run: new pods, and Postfix's
    check of each configuration made once more), adding to ``samples``."""
    started = time.monotonic()
    with Runner(progress=lambda m: None, reuse_pods=reuse) as runner:
        for result in runner.run(scenarios):
            if not result.passed:
                raise SystemExit(f"{result.scenario}/{result.case} failed: the benchmark needs passing cases")
            samples["wall"].append(result.duration_s)
            samples["decision"].extend(decision_seconds(result))
    samples["folder"].append(time.monotonic() - started)


def measure(scenarios: list[Scenario], rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Medians per mode (reused pods, fresh pods); the modes take turns round by round, so that a change in the
    machine's load touches both alike."""
    with Runner(progress=lambda m: None) as runner:  # warm: images built, nothing measured
        list(runner.run(scenarios[:1], select=lambda s, c: c is s.cases[0]))
    samples: dict[bool, dict[str, list[float]]] = {
        mode: {"wall": [], "decision": [], "folder": []} for mode in (True, False)
    }
    for _ in range(rounds):
        for reuse in (True, False):
            measure_round(scenarios, samples[reuse], reuse=reuse)
    medians = {
        mode: {"cases": float(len(s["wall"])), **{k: statistics.median(v) for k, v in s.items()}}
        for mode, s in samples.items()
    }
    return medians[True], medians[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=["scenarios/seed"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenarios = load_scenarios([Path(p) for p in args.paths])
    reuse, fresh = measure(scenarios, args.rounds)
    print(f"{int(reuse['cases'])} cases per mode ({args.rounds} rounds of {', '.join(args.paths)})")
    print(f"{'median of':<36}{'reused pod':>12}{'fresh pod':>12}{'fresh/reuse':>13}")
    for label, key in (("case wall time (s)", "wall"), ("Postfix decision time (s)", "decision")):
        print(f"{label:<36}{reuse[key]:>12.3f}{fresh[key]:>12.3f}{fresh[key] / reuse[key]:>12.1f}x")
    overhead_r, overhead_f = reuse["wall"] - reuse["decision"], fresh["wall"] - fresh["decision"]
    print(
        f"{'harness overhead per case (s)':<36}{overhead_r:>12.3f}{overhead_f:>12.3f}{overhead_f / overhead_r:>12.1f}x"
    )
    print(
        f"{'whole folder, one round, new pods (s)':<36}{reuse['folder']:>12.2f}{fresh['folder']:>12.2f}"
        f"{fresh['folder'] / reuse['folder']:>12.1f}x"
    )


if __name__ == "__main__":
    main()
