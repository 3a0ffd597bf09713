"""A self-contained HTML report of a run (``mxharness run --html FILE``), for reading and for projecting.

One file: inline CSS, no JavaScript, no external resource (fonts, images, scripts), only in-page links. Large
type and high contrast for a projector; status (sent/deferred/bounced) and TLS levels (Verified, Trusted,
Untrusted, Anonymous, none) in colour, always with their word so nothing depends on colour alone. Layout: a
summary table (one row per recipient, linking to its case), then per scenario its description and per case the
expected vs observed table of each recipient and the case's timeline (:func:`harness.trace.build_timeline`).
Every text from a scenario or a log goes through :func:`html.escape`.
"""

from __future__ import annotations

__all__ = ["render_html"]

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from harness.report import expected_text, server_view
from harness.results import CaseResult, RecipientResult
from harness.trace import TraceEntry, build_timeline, split_docker_time

_CSS = """
:root { --sent: #17703a; --deferred: #a34f00; --bounced: #b3261e; --verified: #17703a; --trusted: #0b5cad;
  --untrusted: #a34f00; --anonymous: #6a1b9a; --none: #5f6368; --ink: #111; --muted: #555; --rule: #ccc;
  --tint: #f3f4f6; }
html { font-size: 20px; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink);
  background: #fff; line-height: 1.45; margin: 0 auto; padding: 1rem 2rem 4rem; max-width: 110rem; }
h1 { font-size: 2.2rem; margin: .5rem 0; } h2 { font-size: 1.7rem; margin: 2.5rem 0 .3rem; }
h3 { font-size: 1.35rem; margin: 1.8rem 0 .4rem; } h4 { font-size: 1.1rem; margin: 1.2rem 0 .3rem; }
a { color: inherit; }
.meta, .notes { color: var(--muted); } .notes { max-width: 60rem; }
code, pre, .mono, .timeline td.what { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: .85rem; }
pre { background: var(--tint); padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .25rem .6rem; border-bottom: 1px solid var(--rule); }
th { background: var(--tint); }
td { overflow-wrap: anywhere; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .3rem; color: #fff; font-weight: 700;
  font-size: .85em; background: var(--none); }
.pass { background: var(--sent); } .fail { background: var(--bounced); }
.tone-sent, .tone-Verified { --c: var(--verified); } .tone-deferred { --c: var(--deferred); }
.tone-bounced, .tone-error { --c: var(--bounced); } .tone-Trusted { --c: var(--trusted); }
.tone-Untrusted, .tone-warning { --c: var(--untrusted); } .tone-Anonymous { --c: var(--anonymous); }
.tone-none { --c: var(--none); }
.badge[class*="tone-"] { background: var(--c); }
.timeline tr[class*="tone-"] td.what { color: var(--c); font-weight: 600; }
.timeline tr[class*="tone-"] td:first-child { border-left: .35rem solid var(--c); }
.timeline td.t { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
.src { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: .3rem; font-size: .8rem;
  font-weight: 700; padding: 0 .3rem; }
.src-postfix { background: #e8eaed; } .src-dns { background: #d2e3fc; } .src-smtp { background: #e9d5f5; }
.src-peer { background: #eee; color: var(--muted); }
.timeline td.who { color: var(--muted); font-size: .8rem; }
.details { color: var(--muted); font-weight: 400; white-space: pre-wrap; }
.ok { color: var(--sent); font-weight: 700; } .bad { color: var(--bounced); font-weight: 700; }
.problem { border-left: .4rem solid var(--bounced); background: #fdecea; padding: .4rem .8rem; }
details > summary { cursor: pointer; color: var(--muted); }
@media print { html { font-size: 12px; } section.case { break-inside: avoid-page; } }
"""


def render_html(
    results: Sequence[CaseResult],
    *,
    notes: Mapping[str, Sequence[str]] | None = None,
    title: str = "mxharness report",
    generated: datetime | None = None,
) -> str:
    """The whole report as one HTML document.

    Args:
        results: every case of the run, in run order.
        notes: scenario name → paragraphs shown under its heading (the scenario's ``description`` and
            ``source``).
        title: the page's title and heading.
        generated: when the run finished (aware datetime), shown in the header.

    Returns:
        HTML5 text with inline CSS and no external reference.
    """
    notes = notes or {}
    anchors = {id(case): f"case-{i}-{_slug(case.scenario)}-{_slug(case.case)}" for i, case in enumerate(results, 1)}
    passed = sum(1 for case in results if case.passed)
    releases = ", ".join(sorted({c.release for c in results if c.release})) or "?"
    when = f" · {generated.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if generated else ""
    head = (
        f'<h1>{_e(title)}</h1>\n<p class="meta">{len(results)} case(s): {passed} passed, '
        f"{len(results) - passed} failed · Postfix {_e(releases)}{when}</p>"
    )
    body = [head, _summary(results, anchors)]
    scenario = None
    for case in results:
        if case.scenario != scenario:
            scenario = case.scenario
            body.append(f"<h2>{_e(scenario)}</h2>")
            body.extend(f'<p class="notes">{_e(p)}</p>' for p in notes.get(scenario, ()) if p)
        body.append(_case_section(case, anchors[id(case)]))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}: {passed}/{len(results)} passed</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _summary(results: Sequence[CaseResult], anchors: Mapping[int, str]) -> str:
    rows = []
    for case in results:
        for r in case.recipients:
            rows.append(
                f'<tr><td><a href="#{anchors[id(case)]}">{_e(case.scenario)} / {_e(case.case)}</a></td>'
                f"<td>{_e(r.recipient)}</td><td>{_e(expected_text(r.expect))}</td><td>{_observed(r)}</td>"
                f"<td>{_verdict(r.passed)}</td></tr>"
            )
    head = "<tr><th>case</th><th>recipient</th><th>expected</th><th>observed</th><th>result</th></tr>"
    return f'<table class="summary">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _case_section(case: CaseResult, anchor: str) -> str:
    out = [
        f'<section class="case" id="{anchor}">',
        f"<h3>{_verdict(case.passed)} {_e(case.scenario)} / {_e(case.case)}</h3>",
        f'<p class="meta">{_e(case.source_file)} · Postfix {_e(case.release or "?")} · {case.duration_s:.1f} s</p>',
    ]
    if case.config_issues:
        issues = "\n".join(str(issue) for issue in case.config_issues)
        out.append(
            '<div class="problem"><p>Postfix rejected the configuration of this case; no mail was sent:</p>'
            f"<pre>{_e(issues)}</pre></div>"
        )
    elif case.error:
        out.append(f'<div class="problem"><p>The case could not finish:</p><pre>{_e(case.error)}</pre></div>')
    for r in case.recipients:
        out.append(_recipient(r, case))
    out.append(_timeline(build_timeline(case)))
    out.append("</section>")
    return "\n".join(out)


def _recipient(r: RecipientResult, case: CaseResult) -> str:
    out = [f"<h4>to=&lt;{_e(r.recipient)}&gt; {_verdict(r.passed)}</h4>"]
    rows = [
        f"<tr><td>{_e(c.key)}</td><td>{_e(c.expected)}</td><td>{_e(c.observed)}</td>"
        f'<td class="{"ok" if c.ok else "bad"}">{"ok" if c.ok else "FAIL"}</td></tr>'
        for c in r.checks
    ]
    if rows:
        head = "<tr><th>key</th><th>expected</th><th>observed</th><th></th></tr>"
        out.append('<table class="checks">' + head + "".join(rows) + "</table>")
    else:
        out.append(f"<p>expected: {_e(expected_text(r.expect))}</p>")
    out.append(f"<p>observed: {_observed(r)}</p>")
    o = r.observed
    if o is not None and o.server is not None:
        s = o.server
        out.append(f"<p>the fake server {_e(s.server)}[{_e(s.address)}]:{s.port} saw: {_e(server_view(s))}</p>")
    if o is not None and not r.passed:
        lines = "\n".join(split_docker_time(line)[1] for line in o.log_lines)
        out.append(
            f"<details open><summary>Postfix log of queue id {_e(o.queue_id)}</summary><pre>{_e(lines)}</pre></details>"
        )
    return "\n".join(out)


def _observed(r: RecipientResult) -> str:
    o = r.observed
    if o is None:
        return f'<span class="bad">{_e(r.error or "nothing observed")}</span>'
    reason = "" if o.status == "sent" else f" ({_e(o.reason)})"
    return (
        f"{_badge(o.status, o.status)} {_e(o.dsn)} TLS {_badge(o.tls, o.tls)} "
        f'relay <span class="mono">{_e(o.relay)}</span>{reason}'
    )


def _timeline(entries: Sequence[TraceEntry]) -> str:
    if not entries:
        return "<p>No log lines or events were recorded.</p>"
    start = next((e.time for e in entries if e.time is not None), None)
    rows = []
    for e in entries:
        offset = f"+{(e.time - start).total_seconds():.3f} s" if e.time and start else ""
        stamp = f' title="{e.time.astimezone(UTC).isoformat(timespec="microseconds")}"' if e.time else ""
        tone = f' class="tone-{_e(e.tone)}"' if e.tone else ""
        details = f'<div class="details">{_e(chr(10).join(e.details))}</div>' if e.details else ""
        rows.append(
            f'<tr{tone}><td class="t"{stamp}>{offset}</td>'
            f'<td><span class="src src-{_e(e.source)}">{_e(_SOURCE_NAMES.get(e.source, e.source))}</span></td>'
            f'<td class="who">{_e(e.who)}</td><td class="what">{_e(e.text)}{details}</td></tr>'
        )
    head = "<tr><th>time</th><th>source</th><th>who</th><th>what happened</th></tr>"
    return '<h4>Timeline</h4>\n<table class="timeline">\n' + head + "\n" + "\n".join(rows) + "\n</table>"


_SOURCE_NAMES = {"postfix": "Postfix", "dns": "DNS", "smtp": "SMTP", "peer": "world"}


def _badge(tone: str, text: str) -> str:
    return f'<span class="badge tone-{_e(tone)}">{_e(text)}</span>'


def _verdict(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
