"""Benchmark: the TLS model (harness/explain.py) against real Postfix over the differential matrix.

Runs every combination of harness/_explain_matrix.py (security levels, match lists, certificate name layouts,
trusted and untrusted chains, MX and bracketed next-hops) on real Postfix, a few cases with many recipient domains
each, and prints how many combinations the model gets right on status, DSN and TLS level, the disagreements, and
the wall time. The agreement count is recorded in docs/explain.md.

On a release where part of the decision is outside the model (Postfix 3.5's own name matcher), those combinations
are counted as unsure, never as agreeing; a disagreement is a certain prediction that Postfix contradicts.

Usage: .venv/bin/python bench/bench_explain.py [--jobs N] [--release 3.5|3.7|3.10]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from harness import Runner
from harness._explain_matrix import combinations, judge, matrix_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1, help="cases to run at once, each on its own pod")
    parser.add_argument("--release", default=None, help="Postfix release to run (default: the project's default)")
    args = parser.parse_args()
    combos = combinations()
    scenario = matrix_scenario(combos)
    if args.release:
        scenario = scenario.on_release(args.release)
    started = time.monotonic()
    with Runner(progress=lambda m: None, timeout_s=120, jobs=args.jobs) as runner:
        results = list(runner.run([scenario]))
    elapsed = time.monotonic() - started
    for case in results:
        if case.error:
            print(f"case {case.case} did not finish: {case.error}")
    verdicts = judge(scenario, results, combos)
    agreeing = sum(v.agrees for v in verdicts)
    unsure = sum(1 for v in verdicts if v.observed is not None and not v.prediction.certain)
    wrong = [v for v in verdicts if v.observed is not None and v.prediction.certain and v.disagreements]
    unobserved = sum(1 for v in verdicts if v.observed is None)
    release = next((c.release for c in results if c.release), "?")
    print(
        f"Postfix {release}: {agreeing}/{len(verdicts)} combinations agree on status, DSN and TLS level, "
        f"{unsure} unsure, {len(wrong)} disagree, {unobserved} not observed "
        f"({len(scenario.cases)} cases, {elapsed:.1f} s wall time, --jobs {args.jobs})"
    )
    per_level: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for v in verdicts:
        per_level[v.combination.level][0] += v.agrees
        per_level[v.combination.level][1] += 1
    print("  " + ", ".join(f"{level} {a}/{n}" for level, (a, n) in per_level.items()))
    for v in wrong:
        print(f"  DISAGREE {v.describe()}")
    return 1 if wrong or unobserved else 0


if __name__ == "__main__":
    sys.exit(main())
