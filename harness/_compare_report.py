"""Reports of a comparison: the terminal text, the ``--json`` document (docs/compare.md) and ``--junit`` XML.

The text lists the changes first — worse, then better, then other changes — each with its outcome before and after
(status, DSN, level of the TLS line) and the TLS model's reason, then the unchanged destinations on one line each,
then one verdict line. What the pod changed in the configurations, and Postfix's warnings, are shown where the two
sides differ.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from harness.results import Observed
from harness.results_json import results_document, sorted_releases

if TYPE_CHECKING:
    from harness.compare import Change, Comparison

__all__ = ["SCHEMA_VERSION", "compare_document", "compare_junit", "outcome", "report_text"]

#: Version of the ``--json`` document of ``mxharness compare`` (docs/compare.md).
SCHEMA_VERSION = 1

_TONE = {"worse": ("red", True), "better": ("green", True), "changed": ("yellow", False), "unchanged": (None, False)}


def outcome(o: Observed | None, error: str | None = None) -> str:
    """``deferred 4.7.5 tls=Untrusted`` (``no result: …`` without an observation)."""
    if o is None:
        return f"no result ({error})" if error else "no result"
    return f"{o.status} {o.dsn} tls={o.tls}"


def report_text(c: Comparison, *, style: Callable[[str, str | None, bool], str] | None = None) -> str:
    """The comparison for the terminal.

    Args:
        style: colours a heading (text, colour, bold); default: none.
    """
    from harness.compare import ORDER

    paint = style or (lambda text, colour, bold: text)
    lines = [f"before: {c.before.label}", f"after:  {c.after.label}"]
    releases = sorted_releases(r.release for r in (*c.before_results, *c.after_results))
    worlds = sorted({ch.world for ch in c.changes})
    lines.append(
        f"{len(c.changes)} message(s) to {len({ch.domain for ch in c.changes})} destination(s) of "
        f"{', '.join(worlds) or 'no world'}; Postfix {', '.join(releases) or '(did not run)'}"
    )
    lines += [f"note: {note}" for note in c.notes]
    lines += _configuration_lines(c)
    width = max((len(_label(ch)) for ch in c.changes), default=0)
    for kind in ORDER:
        group = [ch for ch in c.changes if ch.kind == kind]
        if not group:
            continue
        tone = "worse" if group[0].worse else "better" if group[0].better else kind
        colour, bold = _TONE.get(tone, (None, False))
        lines += ["", paint(f"{kind.upper()} ({len(group)})", colour, bold)]
        for ch in group:
            if kind == "unchanged":
                lines.append(f"  {_label(ch):<{width}}  {outcome(ch.after)}")
                continue
            before, after = outcome(ch.before, ch.before_error), outcome(ch.after, ch.after_error)
            lines.append(f"  {_label(ch):<{width}}  {before}  →  {after}")
            if ch.reason:
                lines.append(f"  {'':<{width}}  because: {ch.reason}")
    lines += ["", paint(_verdict(c), *(_TONE["worse"] if c.worse else (None, True)))]
    return "\n".join(lines)


def compare_document(
    c: Comparison, *, started: datetime | None = None, finished: datetime | None = None
) -> dict[str, Any]:
    """The ``--json`` document (docs/compare.md): the verdict, one entry per message, and each side's run as
    ``mxharness run --json`` writes it."""
    counts = {
        kind: sum(1 for ch in c.changes if ch.kind == kind) for kind in dict.fromkeys(ch.kind for ch in c.changes)
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "compare",
        "before": _side(c.before.label, c.before.postfix.config_dir),
        "after": _side(c.after.label, c.after.postfix.config_dir),
        "worse": bool(c.worse),
        "summary": {
            "messages": len(c.changes),
            "worse": len(c.worse),
            "better": sum(1 for ch in c.changes if ch.better),
            "unchanged": counts.get("unchanged", 0),
            "kinds": counts,
        },
        "notes": list(c.notes),
        "changes": [_change(ch) for ch in c.changes],
        "runs": {
            "before": results_document(c.before_results, started=started, finished=finished),
            "after": results_document(c.after_results, started=started, finished=finished),
        },
    }


def dumps_document(c: Comparison, *, started: datetime | None = None, finished: datetime | None = None) -> str:
    """:func:`compare_document` as JSON text, indented by 2, ending with a newline."""
    return json.dumps(compare_document(c, started=started, finished=finished), indent=2, ensure_ascii=False) + "\n"


def compare_junit(c: Comparison, *, started: datetime | None = None) -> str:
    """JUnit XML for CI: one testsuite, one testcase per message (classname ``compare.WORLD``), a ``failure`` for
    each change for the worse with before → after and the reason; the others pass with it in ``system-out``."""
    suite = ET.Element("testsuite", name="mxharness compare", tests=str(len(c.changes)), failures=str(len(c.worse)))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    if started is not None:
        suite.set("timestamp", started.isoformat(timespec="seconds"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("before", c.before.label), ("after", c.after.label)):
        ET.SubElement(properties, "property", name=name, value=value)
    for ch in c.changes:
        case = ET.SubElement(suite, "testcase", classname=f"compare.{ch.world}", name=_label(ch))
        summary = f"{ch.kind}: {outcome(ch.before, ch.before_error)} → {outcome(ch.after, ch.after_error)}"
        detail = summary + (f"\nbecause: {ch.reason}" if ch.reason else "")
        if ch.worse:
            failure = ET.SubElement(case, "failure", message=summary, type=ch.kind)
            failure.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def _label(ch: Change) -> str:
    """The destination as a report names it: its domain, or the address when it is not ``postmaster@DOMAIN``."""
    label = ch.domain if ch.recipient.lower() == f"postmaster@{ch.domain}" else ch.recipient
    return label + (" via smtp" if ch.via == "smtp" else "")


def _verdict(c: Comparison) -> str:
    better = sum(1 for ch in c.changes if ch.better)
    unchanged = sum(1 for ch in c.changes if ch.kind == "unchanged")
    other = len(c.changes) - len(c.worse) - better - unchanged
    counts = f"{len(c.worse)} worse, {better} better, {other} otherwise changed, {unchanged} unchanged"
    if c.worse:
        return f"WORSE for {len({ch.domain for ch in c.worse})} destination(s): {counts}"
    return f"nothing got worse: {counts}"


def _configuration_lines(c: Comparison) -> list[str]:
    """What differs between the sides besides the configurations: the pod's changes and Postfix's warnings."""
    lines: list[str] = []
    for what, get in (("changes for the pod", _changes), ("Postfix warnings", _warnings)):
        before, after = get(c.before_results), get(c.after_results)
        if before == after:
            if before:
                lines.append(f"{what}: {len(before)}, the same on both sides (in --json under runs)")
            continue
        for side, own, other in (("before", before, after), ("after", after, before)):
            lines += [f"{what}, {side} only: {item}" for item in own if item not in other]
    issues = [
        f"{side}: {i}"
        for side, rs in (("before", c.before_results), ("after", c.after_results))
        for r in rs
        for i in r.config_issues
    ]
    lines += [f"Postfix rejected the configuration, {issue}" for issue in issues]
    return lines


def _changes(results: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(change for r in results for change in r.config_changes))


def _warnings(results: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for r in results for w in r.postfix_warnings))


def _side(label: str, config_dir: str | None) -> dict[str, Any]:
    return {"label": label, "config_dir": config_dir}


def _change(ch: Change) -> dict[str, Any]:
    return {
        "kind": ch.kind,
        "worse": ch.worse,
        "better": ch.better,
        "destination": ch.domain,
        "recipient": ch.recipient,
        "via": ch.via,
        "world": ch.world,
        "case": ch.case,
        "before": _observed(ch.before, ch.before_error),
        "after": _observed(ch.after, ch.after_error),
        "reason": ch.reason,
    }


def _observed(o: Observed | None, error: str | None) -> dict[str, Any]:
    if o is None:
        return {"status": None, "error": error}
    return {"status": o.status, "dsn": o.dsn, "tls": o.tls, "relay": o.relay, "reason": o.reason}
