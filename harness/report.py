"""Results for people in a terminal: the result table, the failure details and the per-case trace.

Pure formatting of :mod:`harness.results` objects with rich; the live progress display of a run is
:mod:`harness.progress`. Colours are off when the output is not a terminal and when ``NO_COLOR`` is set
(rich's own detection). Text from logs and scenarios is never read as rich markup.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.model import Expect
from harness.results import CaseResult, RecipientResult, ServerSession
from harness.results_json import sorted_releases
from harness.trace import LEAF_NAMES_LABEL, build_timeline, dns_queries, split_docker_time

__all__ = [
    "PLAIN_WIDTH",
    "TONE_STYLES",
    "configuration_notes",
    "expected_cell",
    "expected_text",
    "failure_details",
    "make_console",
    "observed_cell",
    "print_results",
    "print_trace",
    "recipient_details",
    "results_table",
    "results_view",
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
    parts += [f"{k}={v}" for k, v in _server_expect(expect)]
    text = " ".join(parts) or "(anything)"
    return text + (f" ({expect.reason})" if expect.reason else "")


_SERVER_KEYS = ("starttls", "sni", "protocol", "cipher", "client_cert")


def _server_expect(expect: Expect) -> list[tuple[str, str]]:
    """The ``expect`` keys about what the fake server saw, as (key, text)."""
    values = []
    for key in _SERVER_KEYS:
        value = getattr(expect, key)
        if value is not None:
            values.append((key, _yes(value) if isinstance(value, bool) else str(value)))
    return values


def expected_cell(expect: Expect) -> Text:
    """``expect`` in the lines of the result table: status, dsn, ``tls=`` and ``received=``; ``relay=``; the reason."""
    first = [p for p in (expect.status, expect.dsn) if p]
    if expect.tls is not None:
        first.append(f"tls={expect.tls}")
    if expect.received is not None:
        first.append(f"received={_yes(expect.received)}")
    lines = [" ".join(first)] if first else []
    lines += [f"relay={expect.relay}"] if expect.relay is not None else []
    if server := _server_expect(expect):
        lines.append("server: " + " ".join(f"{k}={v}" for k, v in server))
    lines += [f"({_one_line(expect.reason)})"] if expect.reason else []
    return Text("\n".join(lines) or "(anything)")


def observed_cell(r: RecipientResult) -> Text:
    """What was observed, in the lines of :func:`expected_cell` so the two read side by side: status, dsn, TLS
    level (and ``received=`` when it was expected); ``relay=``; the reason (when not sent, or when expected).

    Statuses and TLS levels have their :data:`TONE_STYLES`; a value whose ``expect`` key failed is bold red.
    """
    o = r.observed
    if o is None:
        return Text(_one_line(r.error or "nothing observed"), style="red")
    failed = {c.key for c in r.checks if not c.ok}

    def style(key: str, tone: str = "") -> str:
        return "bold red" if key in failed else TONE_STYLES.get(tone, "")

    text = Text()
    text.append(o.status, style=style("status", o.status))
    text.append(" ")
    text.append(o.dsn, style=style("dsn"))
    text.append(" ")
    text.append(f"tls={o.tls}", style=style("tls", o.tls))
    if r.expect.received is not None:
        text.append(" ")
        text.append(f"received={_yes(o.received)}", style=style("received"))
    text.append("\n")
    text.append(f"relay={o.relay}", style=style("relay"))
    server_checks = [c for c in r.checks if c.key in _SERVER_KEYS]
    if server_checks:  # what the fake server saw, where the scenario asks about it
        text.append("\nserver:")
        for check in server_checks:
            text.append(" ")
            text.append(f"{check.key}={check.observed}", style=style(check.key))
    if o.status != "sent" or r.expect.reason is not None:
        text.append("\n")
        text.append(f"({_one_line(o.reason)})", style=style("reason"))
    return text


def results_table(results: Iterable[CaseResult]) -> Table:
    """The whole run as one rich Table (for embedding): scenario, case, recipient, Postfix release, expected,
    observed, verdict; one row per recipient. The terminal shows :func:`results_view` instead.

    Short columns never wrap; expected and observed wrap at spaces only (the relay has its own line).
    """
    table = Table(header_style="bold", expand=False)
    for column in ("scenario", "case", "recipient", "release", "expected", "observed", "result"):
        table.add_column(column, no_wrap=column not in ("expected", "observed"))
    for case in results:
        for r in case.recipients:
            cells = (case.scenario, case.case, r.recipient, case.release or "?")
            table.add_row(*map(Text, cells), expected_cell(r.expect), observed_cell(r), _verdict(r.passed))
    return table


# --- the result view: one table (or block) per scenario -------------------------------------------------------

_HEADERS = ("case", "recipient", "expected", "observed", "result")
_WRAPPED = (False, False, True, True, False)
#: Between two columns of the table: padding, rule, padding.
_GAP = 3
#: Block layout: where the labels (``expected``/``observed``) and their values start.
_LABEL_AT, _VALUE_AT = 8, 18


def results_view(results: Sequence[CaseResult], width: int) -> list[tuple[Text, Table | Text]]:
    """What :func:`print_results` shows: per scenario (in run order) a heading with its name, its Postfix
    release(s) and its verdicts, then its rows, one per recipient: case, recipient, expected, observed, result.

    The rows are a table when it fits in ``width`` without breaking a word, else blocks of lines. Text wraps
    only at spaces: a host name, an address or a ``relay=host[address]:port`` is never split across lines.
    """
    scenarios: dict[str, list[CaseResult]] = {}
    for case in results:
        scenarios.setdefault(case.scenario, []).append(case)
    view: list[tuple[Text, Table | Text]] = []
    for name, cases in scenarios.items():
        releases = {c.release for c in cases}
        rows = [_row(case, r, show_release=len(releases) > 1) for case in cases for r in case.recipients]
        widths = _column_widths(rows, width)
        view.append(
            (_wrap(_heading(name, cases), width, indent=2), _table(rows, widths) if widths else _blocks(rows, width))
        )
    return view


def _heading(name: str, cases: list[CaseResult]) -> Text:
    releases = ", ".join(sorted_releases(c.release for c in cases)) or "?"
    passed = sum(1 for c in cases if c.passed)
    text = Text(name, style="bold")
    text.append(f" · Postfix {releases} · {len(cases)} case{'s' if len(cases) != 1 else ''}: ")
    text.append(f"{passed} passed", style="green" if passed else "")
    text.append(", ")
    text.append(f"{len(cases) - passed} failed", style="bold red" if passed < len(cases) else "")
    files = sorted({c.source_file for c in cases})
    text.append(f" · {', '.join(files)}", style="dim")
    return text


def _row(case: CaseResult, r: RecipientResult, *, show_release: bool) -> tuple[Text, ...]:
    label = Text(case.case)
    if show_release:
        label.append(f"\nPostfix {case.release or '?'}", style="dim")
    return label, Text(r.recipient), expected_cell(r.expect), observed_cell(r), _verdict(r.passed)


def _column_widths(rows: list[tuple[Text, ...]], width: int) -> list[int] | None:
    """Widths of the table's columns within ``width``, or None when some word would not fit its column.

    Short columns get their longest line; expected and observed at least their longest word, then a fair share
    of the room left, up to their longest line.
    """
    lines = [
        [header, *(line for row in rows for line in row[i].plain.split("\n"))] for i, header in enumerate(_HEADERS)
    ]
    longest = [max(cell_len(line) for line in column) for column in lines]
    least = [
        max(cell_len(word) for line in column for word in [*line.split(), ""]) if wrapped else longest[i]
        for i, (column, wrapped) in enumerate(zip(lines, _WRAPPED, strict=True))
    ]
    spare = width - _GAP * (len(_HEADERS) - 1) - sum(least)
    if spare < 0:
        return None
    widths = list(least)
    wanting = sorted(range(len(widths)), key=lambda i: longest[i] - least[i])
    for number, i in enumerate(wanting):  # the room left, shared fairly: who needs least is served first
        grant = min(longest[i] - least[i], spare // (len(wanting) - number))
        widths[i] += grant
        spare -= grant
    return widths


def _table(rows: list[tuple[Text, ...]], widths: list[int]) -> Table:
    table = Table(box=box.SQUARE, show_edge=False, pad_edge=False, show_lines=True, header_style="bold", expand=False)
    for header, column_width in zip(_HEADERS, widths, strict=True):
        table.add_column(header, width=column_width, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*(_wrap(cell, w) for cell, w in zip(row, widths, strict=True)))
    return table


def _blocks(rows: list[tuple[Text, ...]], width: int) -> Text:
    """Per recipient: ``  pass  case  recipient``, then ``expected`` and ``observed`` with their values."""
    out = Text()
    for case, recipient, expected, observed, verdict in rows:
        head = Text("  ").append_text(verdict).append("  ").append_text(case).append("  ").append_text(recipient)
        out.append_text(_wrap(head, width, indent=_LABEL_AT)).append("\n")
        for label, value in (("expected", expected), ("observed", observed)):
            out.append(f"{'':{_LABEL_AT}}{label:<{_VALUE_AT - _LABEL_AT}}", style="dim")
            out.append_text(_wrap(value, width, first=_VALUE_AT, indent=_VALUE_AT)).append("\n")
    out.rstrip()
    return out


def _wrap(text: Text, width: int, *, first: int = 0, indent: int = 0) -> Text:
    """``text`` wrapped at spaces only, to ``width`` cells.

    The first line continues a line already ``first`` cells long; every further line (wrapped, or after a newline
    in ``text``) starts with ``indent`` spaces. A word is never broken: one longer than the room stands alone.
    Spaces between words are kept, except where a line is broken.
    """
    out = Text()
    column = first
    for number, line in enumerate(text.split("\n", allow_blank=True)):
        if number:
            out.append("\n" + " " * indent)
            column = indent
        start = column
        for match in re.finditer(r"(\s*)(\S+)", line.plain):
            word = line[match.start(2) : match.end(2)]
            space = cell_len(match.group(1))
            if column > start and column + space + word.cell_len > width:
                out.append("\n" + " " * indent)
                column, space = indent, 0
            out.append(" " * space)
            out.append_text(word)
            column += space + word.cell_len
    return out


def _verdict(passed: bool) -> Text:
    return Text("pass", style="green") if passed else Text("FAIL", style="bold red")


def _yes(value: bool) -> str:
    return "true" if value else "false"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def failure_details(case: CaseResult) -> str:
    """Why a case failed, in Postfix's terms.

    Per failed recipient: each ``expect`` key with expected and observed, the observed status line, the Postfix
    log lines of its queue id, and what the fake server saw (STARTTLS, TLS version and cipher, SNI, the
    certificate chain it presented), and the TLS model's account of it (:mod:`harness.explain`, when the scenario
    file can be read again). Then the DNS queries the case made. For a case that could not finish: the
    error and the log tails. Plain text (no markup), for the terminal and for pytest's failure report.
    """
    from harness._explain_report import explanation_lines  # the TLS model (0.2 s to import): only for failures

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
            out.extend(explanation_lines(case, r.recipient))  # the TLS model's account (harness/explain.py)
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
        names = case.server_names.get(s.server, ())
        if names:
            out.append(f"    {LEAF_NAMES_LABEL} {', '.join(names)}")
    elif r.observed.relay != "none":
        out.append(f"    the fake servers recorded no session with {r.observed.relay}")
    return out


def server_view(s: ServerSession) -> str:
    """What a fake server saw, in one line: ``EHLO mail.example.test, STARTTLS TLSv1.3 … SNI=(none), …``, with
    ``client certificate`` when Postfix presented one."""
    tls = f"STARTTLS {s.tls_version} {s.cipher} SNI={s.sni or '(none)'}" if s.starttls else "no STARTTLS"
    tls += ", client certificate" if s.client_cert else ""
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


def configuration_notes(results: Sequence[CaseResult]) -> str:
    """What the harness changed in each configuration folder (``postfix.config_dir``), then Postfix's warnings: each
    distinct list once, naming every case it applies to; "" when no case has either. The changes and the warnings
    are grouped apart, so that cases with the same changes and other warnings share one block of changes. In a run
    on several releases a case is named once, with the releases in brackets when the list is not that of all its
    releases."""
    ran_on: dict[str, list[str]] = {}
    for case in results:
        ran_on.setdefault(f"{case.scenario}/{case.case}", []).append(case.release or "?")
    out: list[str] = []
    for heading, lists in (
        ("configuration folder changed for the pod", [case.config_changes for case in results]),
        ("Postfix warned", [case.postfix_warnings for case in results]),
    ):
        blocks: dict[tuple[str, ...], dict[str, list[str]]] = {}
        for case, lines in zip(results, lists, strict=True):
            if lines:
                names = blocks.setdefault(lines, {})
                names.setdefault(f"{case.scenario}/{case.case}", []).append(case.release or "?")
        for lines, names in blocks.items():
            labels = [
                name
                if sorted_releases(on) == sorted_releases(ran_on[name])
                else f"{name} [{', '.join(sorted_releases(on))}]"
                for name, on in names.items()
            ]
            out += [""] if out else []
            out.append(f"{heading} ({', '.join(labels)}):")
            out += [f"  - {line}" for line in lines]
    return "\n".join(out)


def print_results(results: list[CaseResult], console: Console | None = None) -> None:
    """Print :func:`results_view` at the console's width, then the details of every failed case, then, in bold red,
    every recipient on which the TLS model and Postfix disagree (:mod:`harness._explain_report`)."""
    console = console or make_console()
    for number, (heading, rows) in enumerate(results_view(results, console.width)):
        if number:
            console.print()
        console.print(heading, soft_wrap=True)
        console.print(rows, soft_wrap=isinstance(rows, Text))  # Text is wrapped already, at spaces only
    if changes := configuration_notes(results):
        console.print()
        console.print(changes, markup=False, highlight=False, soft_wrap=True)
    for case in results:
        if not case.passed:
            console.print()
            console.print(failure_details(case), markup=False, highlight=False, soft_wrap=True)
    from harness._explain_report import disagreement_lines  # the TLS model (0.2 s to import): only here

    if disagreement := disagreement_lines(results):  # last, where it is seen: the model is wrong, or Postfix moved
        console.print()
        console.print(Text("\n".join(disagreement), style="bold red"), soft_wrap=True)
