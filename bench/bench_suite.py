"""Benchmark: a generated suite of 200 cases (20 scenarios of 10 cases), end to end with pod reuse, with one job and
with two (``mxharness run -j 2``), images warm; prints the suite's wall time, cases per second and the median case.

Each scenario is a small world of its own (two domains whose MX hosts, in a provider's domain, present a certificate
naming the MX hosts, issued by the scenario's CA) and its cases walk the security levels with a known outcome on
Postfix 3.7: ``may``/``encrypt``/``verify`` deliver, ``secure`` defers 4.7.5 (the certificate does not name the
next-hop), and a policy table entry with ``match=`` the MX host delivers again. Every expectation is checked: a
wrong verdict fails the run.

Usage: .venv/bin/python bench/bench_suite.py [--cases 200] [--jobs 1 2]
Speed is measured here, never in a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from harness import Runner, scenario_from_dict
from harness.model import Scenario

_LEVELS = [
    ("may", {"status": "sent", "tls": "Trusted"}),
    ("encrypt", {"status": "sent", "tls": "Trusted"}),
    ("verify", {"status": "sent", "tls": "Verified"}),
    ("secure", {"status": "deferred", "dsn": "4.7.5"}),
]


def scenario(index: int, cases: int) -> Scenario:
    """Scenario number ``index`` with ``cases`` cases (see the module docstring)."""
    domains = [f"d{index}-{k}.example" for k in range(2)]
    mx = {d: f"mx{k}.provider{index}.example.net" for k, d in enumerate(domains)}  # in another domain
    dns: dict[str, Any] = {}
    servers: dict[str, Any] = {}
    for domain in domains:
        dns[domain] = {"MX": f"10 {mx[domain]}"}
        dns[mx[domain]] = {"A": "auto"}
        servers[mx[domain]] = {"cert": "mx"}
    case_list = []
    for c in range(cases):
        level, expect = _LEVELS[c % len(_LEVELS)]
        postfix: dict[str, Any] = {"main.cf": {"smtp_tls_security_level": level}}
        if c % 5 == 4:  # the secure level with the MX host's name as match: delivers
            level, expect = "secure", {"status": "sent", "tls": "Verified"}
            table = "".join(f"{d} secure match={mx[d]}\n" for d in domains)
            postfix = {
                "main.cf": {"smtp_tls_policy_maps": "texthash:/etc/postfix/tls_policy"},
                "maps": {"/etc/postfix/tls_policy": table},
            }
        case_list.append(
            {
                "name": f"case-{c}-{level}",
                "postfix": postfix,
                "send": [{"to": f"u@{d}", "expect": expect} for d in domains],
            }
        )
    return scenario_from_dict(
        {
            "name": f"generated-{index}",
            "pki": {
                "cas": {"root": {"subject": f"/CN=Generated Root {index}", "key": "ec256"}},
                "certs": {"mx": {"issuer": "root", "san": list(mx.values()), "key": "ec256"}},
            },
            "dns": dns,
            "servers": servers,
            "cases": case_list,
        }
    )


def run(scenarios: list[Scenario], jobs: int) -> tuple[float, list[float]]:
    with Runner(progress=lambda m: None, jobs=jobs) as runner:
        list(runner.run(scenarios[:1], select=lambda s, c: c is s.cases[0]))  # warm: images, first pod
        started = time.monotonic()
        durations = []
        for result in runner.run(scenarios):
            if not result.passed:
                raise SystemExit(f"{result.scenario}/{result.case} failed: {result.error or 'expectation'}")
            durations.append(result.duration_s)
        return time.monotonic() - started, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    per_scenario = 10
    scenarios = [scenario(i, per_scenario) for i in range(max(1, args.cases // per_scenario))]
    total = sum(len(s.cases) for s in scenarios)
    print(f"{total} cases in {len(scenarios)} scenarios, each case 2 messages; pods reused")
    print(f"{'jobs':>4}  {'suite (s)':>10}  {'cases/s':>8}  {'median case (s)':>16}")
    for jobs in args.jobs:
        wall, durations = run(scenarios, jobs)
        print(f"{jobs:>4}  {wall:>10.1f}  {total / wall:>8.2f}  {statistics.median(durations):>16.3f}")


if __name__ == "__main__":
    main()
