"""Results for people in a terminal: the result table, the failure details and the per-case trace.

Pure formatting of :mod:`harness.results` objects with rich; the live progress display of a run is
:mod:`harness.progress`. Colours are off when the output is not a terminal and when ``NO_COLOR`` is set
(rich's own detection). Text from logs and scenarios is never read as rich markup.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.model import Expect
from harness.results import CaseResult, RecipientResult, ServerSession
from harness.trace import build_timeline, dns_queries, split_docker_time

__all__ = [
    "PLAIN_WIDTH",
    "TONE_STYLES",
    "expected_text",
    "failure_details",
    "make_console",
    "print_results",
    "print_trace",
    "recipient_details",
    "results_table",
    "server_view",
    "trace_text",
]

#: rich styles of the tones of :class:`harness.trace.TraceEntry`: statuses, TLS levels, problems.
TONE_STYLES = {
    "sent": "green",
    "deferred": "yellow",
    "bounced": "bold red",
    "Verified": "green",
    "Trusted": "cyan",
    "Untrusted": "dark_orange",
    "Anonymous": "magenta",
    "none": "dim",
    "error": "red",
    "warning": "yellow",
}
_SOURCE_STYLES = {"dns": "blue", "smtp": "magenta", "peer": "dim", "postfix": ""}
#: Width of the output when it is not a terminal (a CI log, a file): wide enough for Postfix's lines.
PLAIN_WIDTH = 200


def make_console(file: IO[str] | None = None) -> Console:
    """A console for mxharness output: the terminal's width, or :data:`PLAIN_WIDTH` when not a terminal.

    Colour follows rich's detection: off when the output is not a terminal, and when ``NO_COLOR`` is set to a
    non-empty value (no-color.org).
    """
    stream = file or sys.stdout
    return Console(file=file, width=None if stream.isatty() else PLAIN_WIDTH)


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
            observed = _observed_text(r) if r.observed else Text(r.error or "nothing observed", style="red")
            verdict = Text("pass", style="green") if r.passed else Text("FAIL", style="bold red")
            table.add_row(
                Text(case.scenario),
                Text(case.case),
                Text(r.recipient),
                Text(case.release or "?"),
                Text(expected_text(r.expect)),
                observed,
                verdict,
            )
    return table


def _observed_text(r: RecipientResult) -> Text:
    o = r.observed
    assert o is not None
    text = Text()
    text.append(o.status, style=TONE_STYLES.get(o.status, ""))
    text.append(f" {o.dsn} ")
    text.append(f"tls={o.tls}", style=TONE_STYLES.get(o.tls, ""))
    text.append(f" relay={o.relay}")
    if o.status != "sent":
        text.append(f" ({o.reason})")
    return text


def failure_details(case: CaseResult) -> str:
    """Why a case failed, in Postfix's terms.

    Per failed recipient: each ``expect`` key with expected and observed, the observed status line, the Postfix
    log lines of its queue id, and what the fake server saw (STARTTLS, TLS version and cipher, SNI, the
    certificate chain it presented). Then the DNS queries the case made. For a case that could not finish: the
    error and the log tails. Plain text (no markup), for the terminal and for pytest's failure report.
    """
    out = [f"{case.source_file}: {case.scenario} / {case.case}: FAILED (Postfix {case.release or '?'})"]
    if case.config_issues:
        out.append("  Postfix rejected the configuration of this case; no mail was sent:")
        out.extend(f"    {issue}" for issue in case.config_issues)
        return "\n".join(out)
    if case.error:
        out.append(f"  error: {case.error}")
    for r in case.recipients:
        if not r.passed:
            out.extend(recipient_details(r, case))
    queries = dns_queries(case)
    out.append(f"  DNS queries made ({len(queries)}):" if queries else "  DNS queries made: none")
    out.extend(f"    {q.summary()}" for q in queries)
    if case.error:
        out.append("  last Postfix log lines:")
        out.extend(f"    {_strip_ts(line)}" for line in case.postfix_log[-25:])
        out.append("  last peer events:")
        out.extend(f"    {_strip_ts(line)}" for line in case.peer_events[-10:])
    return "\n".join(out)


def recipient_details(r: RecipientResult, case: CaseResult) -> list[str]:
    """One recipient's part of :func:`failure_details`: its checks, status line, Postfix log lines, the fake
    server's view and the certificate chain presented; lines indented by two spaces."""
    out = [f"  to=<{r.recipient}>"]
    for check in r.checks:
        mark = "ok  " if check.ok else "FAIL"
        out.append(f"    {mark} {check.key}: expected {check.expected!r}, observed {check.observed!r}")
    if r.observed is None:
        out.append(f"    expected: {expected_text(r.expect)}")
        out.append(f"    nothing observed: {r.error}")
        return out
    out.append(f"    observed: {r.observed.summary()}")
    out.append(f"    Postfix log of queue id {r.observed.queue_id}:")
    out.extend(f"      {_strip_ts(line)}" for line in r.observed.log_lines)
    s = r.observed.server
    if s is not None:
        out.append(f"    the fake server {s.server} [{s.address}]:{s.port} saw: {server_view(s)}")
        chain = case.server_chains.get(s.server, ())
        if chain:
            out.append("    certificate chain it presented (leaf first):")
            out.extend(f"      [{i}] {subject}" for i, subject in enumerate(chain))
    elif r.observed.relay != "none":
        out.append(f"    the fake servers recorded no session with {r.observed.relay}")
    return out


def server_view(s: ServerSession) -> str:
    """What a fake server saw, in one line: ``EHLO mail.example.test, STARTTLS TLSv1.3 … SNI=(none), …``."""
    tls = f"STARTTLS {s.tls_version} {s.cipher} SNI={s.sni or '(none)'}" if s.starttls else "no STARTTLS"
    return f"EHLO {s.ehlo}, {tls}, {'accepted the message' if s.received else 'no message data'}"


def _strip_ts(line: str) -> str:
    """Drop Docker's RFC 3339 timestamp: Postfix's own syslog time follows it."""
    return split_docker_time(line)[1]


def trace_text(case: CaseResult) -> Text:
    """The case's timeline (:func:`harness.trace.build_timeline`) as lines for a terminal or a log.

    One line per entry: seconds since the first entry, the source (``postfix``, ``dns``, ``smtp``, ``peer``),
    who acted and what happened (Postfix's own words for its lines); indented lines below for details such as
    the certificate chain a server presented. Statuses and TLS levels are coloured by :data:`TONE_STYLES`.
    """
    timeline = build_timeline(case)
    start = next((e.time for e in timeline if e.time is not None), None)
    verdict = "pass" if case.passed else "FAIL"
    text = Text()
    text.append(f"trace of {case.scenario} / {case.case} ", style="bold")
    text.append(verdict, style="green" if case.passed else "bold red")
    text.append(f" (Postfix {case.release or '?'}, {len(timeline)} entries)\n")
    for entry in timeline:
        offset = f"+{(entry.time - start).total_seconds():.3f} s" if entry.time and start else ""
        text.append(f"  {offset:>10} ")
        text.append(f"{entry.source:<7} ", style=_SOURCE_STYLES.get(entry.source, ""))
        who = f"{entry.who}: " if entry.who and not (entry.kind == "connect" or entry.source == "dns") else ""
        text.append(who, style="dim")
        text.append(entry.text, style=TONE_STYLES.get(entry.tone or "", ""))
        text.append("\n")
        for detail in entry.details:
            text.append(f"{'':21}{detail}\n", style="dim")
    text.rstrip()
    return text


def print_trace(case: CaseResult, console: Console) -> None:
    """Print :func:`trace_text` unwrapped (long Postfix lines stay whole, for grep and copy)."""
    console.print(trace_text(case), soft_wrap=True)


def print_results(results: list[CaseResult], console: Console | None = None) -> None:
    """Print the table, then the details of every failed case."""
    console = console or make_console()
    console.print(results_table(results))
    for case in results:
        if not case.passed:
            console.print(failure_details(case), markup=False, highlight=False, soft_wrap=True)
