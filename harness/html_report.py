"""A self-contained HTML report of a run (``mxharness run --html FILE``), for reading and for projecting.

One file: inline CSS, no JavaScript, no external resource (fonts, images, scripts), only in-page links. Large
type and high contrast for a projector; status (sent/deferred/bounced) and TLS levels (Verified, Trusted,
Untrusted, Anonymous, none) in colour, always with their word so nothing depends on colour alone. Lines wrap at
spaces only: a host name, an address or a ``host[address]:port`` is never split.

Layout: a summary (per scenario, one row per recipient, linking to its case), then per scenario its description
and per case: expected vs observed of each recipient (with the fake server's view, the names of the certificate
it presented and the Message-ID), the TLS model's account of it as the terminal shows it under a failed recipient
(:func:`harness._explain_report.explanation_lines`: names checked, match list, why, the changes that would
deliver it; open for a failed recipient, collapsed for a passed one), the case's main.cf and maps (collapsed), and
the case's timeline
(:func:`harness.trace.build_timeline`), where the steps of the story stand out and routine lines are muted.
Every text from a scenario or a log goes through :func:`html.escape`.
"""

from __future__ import annotations

__all__ = ["render_html"]

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from harness._explain_report import disagreement_lines, explanation_lines
from harness.report import expected_text, server_view
from harness.results import CaseResult, RecipientResult
from harness.results_json import sorted_releases
from harness.trace import CHAIN_LABEL, LEAF_NAMES_LABEL, TraceEntry, build_timeline, split_docker_time

_CSS = """
:root { --sent: #17703a; --deferred: #a34f00; --bounced: #b3261e; --verified: #17703a; --trusted: #0b5cad;
  --untrusted: #806600; --anonymous: #6a1b9a; --none: #5f6368; --ink: #111; --muted: #4a4a4a; --faint: #6b6b6b;
  --rule: #c8c8c8; --tint: #f1f3f5; --name: #fff4c2; }
html { font-size: 20px; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--ink);
  background: #fff; line-height: 1.45; margin: 0 auto; padding: 1rem 2rem 4rem; max-width: 110rem; }
h1 { font-size: 2.2rem; margin: .5rem 0; } h2 { font-size: 1.7rem; margin: 2.5rem 0 .3rem; }
h3 { font-size: 1.4rem; margin: 2.2rem 0 .4rem; padding-top: .8rem; border-top: 3px solid var(--rule); }
h4 { font-size: 1.1rem; margin: 1.2rem 0 .3rem; }
a { color: inherit; }
.meta, .notes { color: var(--muted); } .notes { max-width: 60rem; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: var(--tint); padding: .6rem .8rem; margin: .3rem 0; white-space: pre-wrap;
  overflow-wrap: break-word; }
.w { white-space: nowrap; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: .3rem .6rem; border-bottom: 1px solid var(--rule); }
th { background: var(--tint); }
.summary { width: 100%; font-size: .9rem; } .summary td:nth-child(2) { width: 30%; }
.summary td:nth-child(3) { width: 45%; } .summary .rcpt { color: var(--muted); margin-left: 3.6rem; }
.summary th.scenario { background: #e3e7ec; font-size: 1.05rem; padding-top: .5rem; }
.summary th.scenario .meta { font-weight: 400; }
.line { display: block; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .3rem; color: #fff; font-weight: 700;
  font-size: .85em; background: var(--none); white-space: nowrap; }
.pass { background: var(--sent); } .fail { background: var(--bounced); }
.tone-sent, .tone-Verified { --c: var(--verified); } .tone-deferred { --c: var(--deferred); }
.tone-bounced, .tone-error { --c: var(--bounced); } .tone-Trusted { --c: var(--trusted); }
.tone-Untrusted, .tone-warning { --c: var(--untrusted); } .tone-Anonymous { --c: var(--anonymous); }
.tone-none { --c: var(--none); }
.badge[class*="tone-"] { background: var(--c); }
.timeline { width: 100%; }
.timeline td.what { overflow-wrap: break-word; font-size: .85rem;
  font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.timeline tr[class*="tone-"] td.what { color: var(--c); font-weight: 700; }
.timeline tr[class*="tone-"] td:first-child { border-left: .4rem solid var(--c); }
.timeline tr.key td.what { font-weight: 700; }
.timeline tr.status.tone-sent td { background: #e9f5ec; } .timeline tr.status.tone-deferred td { background: #fff1e0; }
.timeline tr.status.tone-bounced td, .timeline tr.status.tone-error td { background: #fdecea; }
.timeline tr.minor td { color: var(--faint); font-size: .8rem; padding-top: .1rem; padding-bottom: .1rem; }
.timeline tr.minor td.what { font-size: .75rem; }
.timeline td.t { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
.src { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: .3rem; font-size: .8rem;
  font-weight: 700; padding: 0 .3rem; }
.src-postfix { background: #e3e5e8; } .src-dns { background: #cfe0fb; } .src-smtp { background: #ead7f6; }
.src-peer { background: #eee; color: var(--muted); }
.timeline .who { color: var(--muted); font-weight: 400; font-size: .8rem; }
.facts th { background: none; color: var(--muted); font-weight: 400; white-space: nowrap; }
.details { color: var(--muted); font-weight: 400; margin-top: .2rem; }
.chain { margin: .1rem 0 .1rem 1rem; }
.names { margin-top: .3rem; color: var(--ink); font-weight: 400; }
.name { background: var(--name); border: 1px solid #d9b400; border-radius: .25rem; padding: 0 .3rem;
  font-weight: 700; white-space: nowrap; }
.ok { color: var(--sent); font-weight: 700; } .bad { color: var(--bounced); font-weight: 700; }
.problem { border-left: .4rem solid var(--bounced); background: #fdecea; padding: .4rem .8rem; }
details { margin: .4rem 0; } details > summary { cursor: pointer; color: var(--muted); }
details h5 { font-size: .9rem; margin: .6rem 0 .1rem; }
@media print { html { font-size: 12px; } section.case { break-inside: avoid-page; } details > * { display: block; } }
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
    releases = ", ".join(sorted_releases(c.release for c in results)) or "?"
    when = f" · {generated.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if generated else ""
    head = (
        f'<h1>{_e(title)}</h1>\n<p class="meta">{len(results)} case(s): {passed} passed, '
        f"{len(results) - passed} failed · Postfix {_e(releases)}{when}</p>"
    )
    body = [head, _summary(results, anchors)]
    if disagreement := disagreement_lines(results):  # as the terminal ends a run: the model or Postfix moved
        heading, *recipients = disagreement
        listed = "\n".join(line.strip() for line in recipients)
        body.append(f'<div class="problem"><p><strong>{_t(heading)}</strong></p><pre>{_t(listed)}</pre></div>')
    scenario = None
    for case in results:
        if case.scenario != scenario:
            scenario = case.scenario
            body.append(f"<h2>{_t(scenario)}</h2>")
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
    """One table; per scenario a heading row (name, Postfix release, verdicts), then a row per recipient: its
    verdict, case and address, expected, observed."""
    groups: dict[str, list[CaseResult]] = {}
    for case in results:
        groups.setdefault(case.scenario, []).append(case)
    rows = ["<tr><th>case, recipient</th><th>expected</th><th>observed</th></tr>"]
    for scenario, cases in groups.items():
        releases = ", ".join(sorted_releases(c.release for c in cases)) or "?"
        passed = sum(1 for c in cases if c.passed)
        rows.append(
            f'<tr><th class="scenario" colspan="3">{_t(scenario)} <span class="meta">· Postfix {_e(releases)} · '
            f"{passed} of {len(cases)} case(s) passed</span></th></tr>"
        )
        for case in cases:
            for r in case.recipients:
                rows.append(
                    f'<tr><td><span class="line w">{_verdict(r.passed)} <a href="#{anchors[id(case)]}">'
                    f'{_e(case.case)}</a></span><span class="line w rcpt">{_e(r.recipient)}</span></td>'
                    f"<td>{_expected(r)}</td><td>{_observed(r)}</td></tr>"
                )
    return '<table class="summary">\n' + "\n".join(rows) + "\n</table>"


def _case_section(case: CaseResult, anchor: str) -> str:
    out = [
        f'<section class="case" id="{anchor}">',
        f"<h3>{_verdict(case.passed)} {_t(case.scenario)} / {_t(case.case)}</h3>",
        f'<p class="meta">{_t(case.source_file)} · Postfix {_e(case.release or "?")} · {case.duration_s:.1f} s</p>',
    ]
    if case.config_issues:
        issues = "\n".join(str(issue) for issue in case.config_issues)
        out.append(
            '<div class="problem"><p>Postfix rejected the configuration of this case; no mail was sent:</p>'
            f"<pre>{_t(issues)}</pre></div>"
        )
    elif case.error:
        out.append(f'<div class="problem"><p>The case could not finish:</p><pre>{_t(case.error)}</pre></div>')
    for r in case.recipients:
        out.append(_recipient(r, case))
    out.append(_configuration(case))
    out.append(_timeline(build_timeline(case)))
    out.append("</section>")
    return "\n".join(out)


def _recipient(r: RecipientResult, case: CaseResult) -> str:
    out = [f"<h4>to=&lt;{_t(r.recipient)}&gt; {_verdict(r.passed)}</h4>"]
    rows = [
        f"<tr><td>{_e(c.key)}</td><td>{_t(c.expected)}</td><td>{_t(c.observed)}</td>"
        f'<td class="{"ok" if c.ok else "bad"}">{"ok" if c.ok else "FAIL"}</td></tr>'
        for c in r.checks
    ]
    if rows:
        head = "<tr><th>key</th><th>expected</th><th>observed</th><th></th></tr>"
        out.append('<table class="checks">' + head + "".join(rows) + "</table>")
    facts = [] if rows else [("expected", _t(expected_text(r.expect)))]
    facts.append(("observed", _observed(r)))
    if r.message_id:
        facts.append(("Message-ID", f'<span class="mono">&lt;{_t(r.message_id)}&gt;</span>'))
    o = r.observed
    if o is not None and o.server is not None:
        s = o.server
        facts.append(("the fake server", f"{_t(f'{s.server}[{s.address}]:{s.port}')} saw: {_t(server_view(s))}"))
        names = case.server_names.get(s.server, ())
        if names:
            facts.append(("its leaf certificate names", _names(names)))
    out.append('<table class="facts">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts) + "</table>")
    if o is not None and not r.passed:
        lines = "\n".join(split_docker_time(line)[1] for line in o.log_lines)
        out.append(
            f"<details open><summary>Postfix log of queue id {_e(o.queue_id)}</summary><pre>{_t(lines)}</pre></details>"
        )
    out.append(_account(r, case))
    return "\n".join(out)


def _account(r: RecipientResult, case: CaseResult) -> str:
    """The TLS model's account of the recipient's message, as under a failed recipient in the terminal (""
    when the scenario cannot be read again): open when the recipient failed, collapsed when it passed."""
    lines = explanation_lines(case, r.recipient, indent="")
    if not lines:
        return ""
    head = lines[0].removesuffix(":")
    summary = f"why: {head}" if r.passed else head
    body = "\n".join(line.removeprefix("  ") for line in lines[1:])
    opened = "" if r.passed else " open"
    return f'<details class="model"{opened}><summary>{_t(summary)}</summary><pre>{_t(body)}</pre></details>'


def _configuration(case: CaseResult) -> str:
    """The case's main.cf and maps as the harness wrote them, collapsed."""
    if not case.main_cf and not case.maps:
        return ""
    files = [("/etc/postfix/main.cf", case.main_cf)] if case.main_cf else []
    files += sorted(case.maps.items())
    names = ", ".join(path.rsplit("/", 1)[-1] for path, _ in files)
    parts = "".join(f'<h5 class="mono">{_t(path)}</h5><pre>{_t(text)}</pre>' for path, text in files)
    return (
        f'<details class="config"><summary>Postfix configuration of this case: {_t(names)}</summary>{parts}</details>'
    )


def _expected(r: RecipientResult) -> str:
    x = r.expect
    first = [_e(v) for v in (x.status, x.dsn) if v]
    if x.tls is not None:
        first.append(f"tls={_e(x.tls)}")
    if x.received is not None:
        first.append(f"received={'true' if x.received else 'false'}")
    lines = [" ".join(first)] if first else []
    lines += [f'<span class="mono">{_t(f"relay={x.relay}")}</span>'] if x.relay is not None else []
    lines += [f"({_t(x.reason)})"] if x.reason else []
    return "".join(f'<span class="line">{line}</span>' for line in lines) or "(anything)"


def _observed(r: RecipientResult) -> str:
    o = r.observed
    if o is None:
        return f'<span class="bad">{_t(r.error or "nothing observed")}</span>'
    received = f" received={'true' if o.received else 'false'}" if r.expect.received is not None else ""
    lines = [
        f"{_badge(o.status, o.status)} {_e(o.dsn)} TLS {_badge(o.tls, o.tls)}{received}",
        f'<span class="mono">{_t(f"relay={o.relay}")}</span>',
    ]
    if o.status != "sent" or r.expect.reason is not None:
        lines.append(f"({_t(o.reason)})")
    return "".join(f'<span class="line">{line}</span>' for line in lines)


# Entries that are routine in every case (and DNS answers without records): muted, so that the story stands out.
_MINOR = {("postfix", "start"), ("postfix", "queue"), ("peer", "ready")}
_MINOR |= {("smtp", stage) for stage in ("greeting", "ehlo", "helo", "mail", "rcpt", "data_command", "quit", "close")}
# The steps of the story (and MX and TLSA queries): a connection with the certificate the server presents,
# Postfix's verification verdict, its "… TLS connection established" line, its notes and the status line.
_KEY = {("smtp", "connect"), ("postfix", "verify"), ("postfix", "tls"), ("postfix", "note"), ("postfix", "status")}


def _timeline(entries: Sequence[TraceEntry]) -> str:
    if not entries:
        return "<p>No log lines or events were recorded.</p>"
    start = next((e.time for e in entries if e.time is not None), None)
    rows = []
    for e in entries:
        offset = f"+{(e.time - start).total_seconds():.3f} s" if e.time and start else ""
        stamp = f' title="{e.time.astimezone(UTC).isoformat(timespec="microseconds")}"' if e.time else ""
        classes = [f"tone-{_e(e.tone)}"] if e.tone else []
        classes += ["key"] if _is_key(e) else ["minor"] if _is_minor(e) else []
        classes += ["status"] if e.kind == "status" else []
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        rows.append(
            f'<tr{attribute}><td class="t"{stamp}>{offset}</td>'
            f'<td><span class="src src-{_e(e.source)}">{_e(_SOURCE_NAMES.get(e.source, e.source))}</span></td>'
            f'<td class="what">{_who(e)}{_t(e.text)}{_details(e)}</td></tr>'
        )
    head = "<tr><th>time</th><th>source</th><th>what happened</th></tr>"
    return '<h4>Timeline</h4>\n<table class="timeline">\n' + head + "\n" + "\n".join(rows) + "\n</table>"


def _who(e: TraceEntry) -> str:
    """Who acted, before the text as in the terminal's trace (a connection and a DNS query name it already)."""
    return "" if not e.who or e.kind == "connect" or e.source == "dns" else f'<span class="who">{_t(e.who)}:</span> '


def _is_key(e: TraceEntry) -> bool:
    return (e.source, e.kind) in _KEY or (e.source == "dns" and e.text.startswith(("MX ", "TLSA ")))


def _is_minor(e: TraceEntry) -> bool:
    nodata = e.source == "dns" and e.text.endswith("no records") and not _is_key(e)
    script = e.kind == "log" and e.who.startswith("postfix/postfix-script")  # "starting the Postfix mail system"
    return ((e.source, e.kind) in _MINOR and e.tone is None) or nodata or script  # a refusal is never routine


def _details(e: TraceEntry) -> str:
    """The chain a server presented (leaf first) and its leaf's names highlighted; other details as lines."""
    if not (e.chain or e.names):
        return f'<div class="details">{"".join(f"<div>{_t(line)}</div>" for line in e.details)}</div>' * bool(e.details)
    out = ['<div class="details">']
    if e.chain:
        out.append(_e(CHAIN_LABEL))
        out.extend(f'<div class="chain">[{i}] {_t(subject)}</div>' for i, subject in enumerate(e.chain))
    if e.names:
        out.append(f'<div class="names">{_e(LEAF_NAMES_LABEL)} {_names(e.names)}</div>')
    return "".join(out) + "</div>"


def _names(names: Sequence[str]) -> str:
    return " ".join(f'<span class="name">{_e(name)}</span>' for name in names)


_SOURCE_NAMES = {"postfix": "Postfix", "dns": "DNS", "smtp": "SMTP", "peer": "world"}


def _badge(tone: str, text: str) -> str:
    return f'<span class="badge tone-{_e(tone)}">{_e(text)}</span>'


def _verdict(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# A word with punctuation (host[address]:port, postfix/smtp[221], num=62:hostname): browsers may break it after a
# hyphen or a slash. Such a word is kept on one line; a long one may break only before ``[``, ``<``, ``/``, ``@`` or
# after ``=``, so that a host name or an address is never split; only a part still longer than _WHOLE may break.
_WORD = re.compile(r"[^\s]*[^\w\s][^\s]*")
_BREAK = re.compile(r"(?=\[|&lt;|/|@)|(?<==)")
_LONG = 30
#: A part longer than this (a Message-ID, a long path) may break where the browser likes: host names are shorter.
_WHOLE = 40


def _t(text: object) -> str:
    """:func:`_e`, with lines breaking at spaces (and within a long word only where :data:`_BREAK` allows)."""

    def word(match: re.Match[str]) -> str:
        parts = _BREAK.split(match.group()) if len(match.group()) > _LONG else [match.group()]
        return "<wbr>".join(f'<span class="w">{part}</span>' if len(part) <= _WHOLE else part for part in parts if part)

    return _WORD.sub(word, _e(text))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
