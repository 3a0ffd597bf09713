"""Benchmark: one case that sends many messages (default 1,000 to 100 domains, plaintext MX hosts).

Prints the case's wall time (pod up to every first attempt read) and messages per second, so that result
collection is shown to keep up with Postfix. Usage: .venv/bin/python bench/bench_batch.py [--domains N] [--per M]
"""

from __future__ import annotations

import argparse
import time

from harness import Runner, scenario_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--per", type=int, default=10, help="messages per domain")
    args = parser.parse_args()
    dns: dict[str, object] = {}
    for d in range(args.domains):
        dns[f"d{d}.example"] = {"MX": f"10 mx.d{d}.example"}
        dns[f"mx.d{d}.example"] = {"A": "auto"}
    messages = [
        {"to": f"u{i}@d{d}.example", "expect": {"status": "sent", "received": True}}
        for d in range(args.domains)
        for i in range(args.per)
    ]
    scenario = scenario_from_dict(
        {
            "name": "batch",
            "dns": dns,
            "servers": {f"mx.d{d}.example": {} for d in range(args.domains)},
            "cases": [{"name": "many", "send": messages}],
        }
    )
    with Runner(progress=lambda m: None, timeout_s=600) as runner:
        started = time.monotonic()
        (result,) = list(runner.run([scenario]))
        elapsed = time.monotonic() - started
    passed = sum(1 for r in result.recipients if r.passed)
    print(f"{len(messages)} messages to {args.domains} domains: {passed} as expected, case error: {result.error}")
    print(f"case wall time {elapsed:.1f} s, {len(messages) / elapsed:.0f} messages/s (pod start included)")


if __name__ == "__main__":
    main()
