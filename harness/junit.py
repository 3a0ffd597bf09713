"""Results as JUnit XML for CI systems (``mxharness run --junit FILE``).

Layout (the common JUnit dialect that Jenkins, GitLab, GitHub test-report actions and Azure read):

* ``<testsuites>``: the run, with totals;
* one ``<testsuite>`` per scenario (``name`` = scenario name, ``file`` = scenario file);
* one ``<testcase>`` per recipient, i.e. per row of the terminal table: ``classname`` = ``scenario.case``
  (CI systems group by it: scenario → case), ``name`` = the recipient address (``#2`` … added when a case sends
  to the same address twice), ``time`` = the case's seconds shared between its recipients;
* ``<failure>`` when an ``expect`` key did not hold: ``message`` lists the failed keys, the text has expected vs
  observed per key, the status line, the Postfix log lines of the queue id, the fake server's view and the DNS
  queries;
* ``<error>`` when the case could not finish (timeout, pod failure) or Postfix rejected its configuration;
* ``<system-out>`` of a failed or erroring testcase: the case's timeline (:func:`harness.report.trace_text`).
"""

from __future__ import annotations

__all__ = ["junit_xml"]

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

from harness.report import expected_text, failure_details, recipient_details, trace_text
from harness.results import CaseResult, RecipientResult
from harness.results_json import sorted_releases
from harness.trace import dns_queries

# Characters XML 1.0 cannot carry (control characters but tab, LF, CR; surrogates; U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def junit_xml(results: Sequence[CaseResult], *, started: datetime | None = None) -> str:
    """The JUnit XML document of a run.

    Args:
        results: every case of the run, in run order.
        started: when the run started (aware datetime), written as the suites' ``timestamp`` (UTC, ISO 8601
            without zone, as the JUnit schema has it).

    Returns:
        The XML text, UTF-8 declared, indented, ending with a newline.
    """
    suites: dict[str, list[CaseResult]] = {}
    for case in results:
        suites.setdefault(case.scenario, []).append(case)
    root = ET.Element("testsuites", name="mxharness")
    for scenario, cases in suites.items():
        root.append(_suite(scenario, cases, started))
    _count(root, list(root))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(scenario: str, cases: list[CaseResult], started: datetime | None) -> ET.Element:
    suite = ET.Element("testsuite", name=_safe(scenario), file=_safe(cases[0].source_file))
    if started is not None:
        suite.set("timestamp", started.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"))
    releases = sorted_releases(case.release for case in cases)
    if releases:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="postfix_release", value=", ".join(releases))
    for case in cases:
        seen: dict[str, int] = {}
        share = case.duration_s / max(len(case.recipients), 1)
        for r in case.recipients:
            seen[r.recipient] = seen.get(r.recipient, 0) + 1
            name = r.recipient if seen[r.recipient] == 1 else f"{r.recipient} #{seen[r.recipient]}"
            suite.append(_testcase(case, r, name, share))
    _count(suite, suite.findall("testcase"))
    return suite


def _testcase(case: CaseResult, r: RecipientResult, name: str, seconds: float) -> ET.Element:
    testcase = ET.Element(
        "testcase",
        classname=_safe(f"{case.scenario}.{case.case}"),
        name=_safe(name),
        time=f"{seconds:.3f}",
        file=_safe(case.source_file),
    )
    if r.passed:
        return testcase
    if case.config_issues:
        message = "Postfix rejected the configuration of this case: " + str(case.config_issues[0])
        _child(testcase, "error", message, "ConfigRejected", failure_details(case))
    elif r.observed is None:
        message = f"{r.error or case.error or 'nothing observed'} (expected: {expected_text(r.expect)})"
        _child(testcase, "error", message, "CaseError", failure_details(case))
    else:
        failed = [f"{c.key}: expected {c.expected!r}, observed {c.observed!r}" for c in r.checks if not c.ok]
        lines = recipient_details(r, case)
        lines.append(f"  DNS queries made ({len(dns_queries(case))}):")
        lines.extend(f"    {q.summary()}" for q in dns_queries(case))
        lines.insert(1, f"    expected: {expected_text(r.expect)}")
        _child(testcase, "failure", "; ".join(failed) or "expectation failed", "ExpectationFailed", "\n".join(lines))
    out = ET.SubElement(testcase, "system-out")
    out.text = _safe(trace_text(case).plain)
    return testcase


def _child(parent: ET.Element, tag: str, message: str, kind: str, text: str) -> None:
    element = ET.SubElement(parent, tag, message=_safe(message), type=kind)
    element.text = _safe(text)


def _count(element: ET.Element, children: list[ET.Element]) -> None:
    """Set tests/failures/errors/skipped/time of a suite (from its testcases) or of the root (from suites)."""
    if element.tag == "testsuites":
        totals = {k: sum(int(c.get(k, "0")) for c in children) for k in ("tests", "failures", "errors")}
        seconds = sum(float(c.get("time", "0")) for c in children)
    else:
        totals = {
            "tests": len(children),
            "failures": sum(1 for c in children if c.find("failure") is not None),
            "errors": sum(1 for c in children if c.find("error") is not None),
        }
        seconds = sum(float(c.get("time", "0")) for c in children)
        totals["skipped"] = 0
    for key, value in totals.items():
        element.set(key, str(value))
    element.set("time", f"{seconds:.3f}")


def _safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold written as ``\\xNN`` (a log may quote binary replies)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
