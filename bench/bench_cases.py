"""Benchmark: where a case's time goes, against Postfix's own decision time.

Runs the seed scenarios N times (images warm) and prints, side by side, medians of:
  * case wall time (pod up → configured → mail injected → every first attempt read → pod removed);
  * Postfix's decision time: from the pickup line of a message to its status line, both stamped by Docker
    (the physical floor: what Postfix itself needs);
  * harness overhead = case wall time − decision time, and the ratio of the two.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", default=["scenarios/seed"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenarios = load_scenarios([Path(p) for p in args.paths])
    walls: list[float] = []
    decisions: list[float] = []
    with Runner(progress=lambda m: None) as runner:
        list(runner.run(scenarios[:1], select=lambda s, c: c is s.cases[0]))  # warm: images, first-use caches
        started = time.monotonic()
        for _ in range(args.rounds):
            for result in runner.run(scenarios):
                walls.append(result.duration_s)
                decisions.extend(decision_seconds(result))
        total = time.monotonic() - started
    cases = len(walls)
    wall, decision = statistics.median(walls), statistics.median(decisions)
    print(f"cases run: {cases} ({args.rounds} rounds of {cases // args.rounds}); total {total:.1f} s")
    print(f"{'median case wall time':<34}{wall:8.3f} s")
    print(f"{'median Postfix decision time':<34}{decision:8.3f} s")
    print(f"{'median harness overhead per case':<34}{wall - decision:8.3f} s")
    print(f"{'wall time / decision time':<34}{wall / decision:8.1f} x")


if __name__ == "__main__":
    main()
