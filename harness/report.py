"""Results for people: the terminal table and the failure details, in Postfix's terms.

Pure formatting of :mod:`harness.results` objects with rich; colours are off when the output is not a terminal
(rich's own detection, and ``NO_COLOR``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from harness.model import Expect
from harness.results import CaseResult, RecipientResult

__all__ = ["expected_text", "failure_details", "results_table"]


def expected_text(expect: Expect) -> str:
    """``expect`` as one line: ``deferred 4.7.5 tls=Untrusted relay=in1… (Server certificate not verified)``."""
    parts = [p for p in (expect.status, expect.dsn) if p]
    parts += [f"{k}={v}" for k, v in (("tls", expect.tls), ("relay", expect.relay)) if v is not None]
    if expect.received is not None:
        parts.append(f"received={'true' if expect.received else 'false'}")
    text = " ".join(parts) or "(anything)"
    return text + (f" ({expect.reason})" if expect.reason else "")


def results_table(results: Iterable[CaseResult]) -> Table:
    """One row per recipient: scenario, case, recipient, Postfix release, expected, observed, verdict.

    The observed column reads like Postfix's status line: status, dsn, TLS level, relay, and the reason when
    the message was not sent.
    """
    table = Table(header_style="bold", expand=False)
    for column in ("scenario", "case", "recipient", "release", "expected", "observed", "result"):
        table.add_column(column, overflow="fold")
    for case in results:
        for r in case.recipients:
            observed = _observed_text(r) if r.observed else f"[red]{r.error or 'nothing observed'}[/red]"
            verdict = "[green]pass[/green]" if r.passed else "[bold red]FAIL[/bold red]"
            table.add_row(
                case.scenario,
                case.case,
                r.recipient,
                case.release or "?",
                expected_text(r.expect),
                observed,
                verdict,
            )
    return table


def _observed_text(r: RecipientResult) -> str:
    o = r.observed
    assert o is not None
    parts = [o.status, o.dsn, f"tls={o.tls}", f"relay={o.relay}"]
    text = " ".join(parts)
    return text if o.status == "sent" else f"{text} ({o.reason})"


def failure_details(case: CaseResult) -> str:
    """Why a case failed: per recipient the keys that did not hold, its Postfix log lines, what the fake server
    saw; for a case that could not finish, the error and the log tails."""
    out = [f"{case.source_file}: {case.scenario} / {case.case}: FAILED (Postfix {case.release or '?'})"]
    if case.config_issues:
        out.append("  Postfix rejected the configuration of this case; no mail was sent:")
        out.extend(f"    {issue}" for issue in case.config_issues)
        return "\n".join(out)
    if case.error:
        out.append(f"  error: {case.error}")
    for r in case.recipients:
        if r.passed:
            continue
        out.extend(_recipient_details(r))
    if case.error:
        out.append("  last Postfix log lines:")
        out.extend(f"    {_strip_ts(line)}" for line in case.postfix_log[-25:])
        out.append("  last peer events:")
        out.extend(f"    {_strip_ts(line)}" for line in case.peer_events[-10:])
    return "\n".join(out)


def _recipient_details(r: RecipientResult) -> list[str]:
    out = [f"  to=<{r.recipient}>"]
    for check in r.checks:
        mark = "ok  " if check.ok else "FAIL"
        out.append(f"    {mark} {check.key}: expected {check.expected!r}, observed {check.observed!r}")
    if r.observed is None:
        out.append(f"    nothing observed: {r.error}")
        return out
    out.append("    Postfix log of this attempt:")
    out.extend(f"      {_strip_ts(line)}" for line in r.observed.log_lines)
    s = r.observed.server
    if s is not None:
        tls = f"STARTTLS {s.tls_version} {s.cipher} SNI={s.sni or '(none)'}" if s.starttls else "no STARTTLS"
        out.append(
            f"    the fake server {s.server} [{s.address}]:{s.port} saw: EHLO {s.ehlo}, {tls}, "
            f"{'accepted the message' if s.received else 'no message data'}"
        )
    return out


def _strip_ts(line: str) -> str:
    """Drop Docker's RFC 3339 timestamp: Postfix's own syslog time follows it."""
    head, _, rest = line.partition(" ")
    return rest if head[:4].isdigit() and "T" in head else line


def print_results(results: list[CaseResult], console: Console | None = None) -> None:
    """Print the table, then the details of every failed case."""
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    console.print(results_table(results))
    for case in results:
        if not case.passed:
            console.print(failure_details(case), markup=False, highlight=False)
