"""Results as JSON for machines (``mxharness run --json FILE``), and back.

The document's schema is docs/results-json.md (``schema_version`` :data:`SCHEMA_VERSION`); that page is the
contract, and the tests hold this module to it. :func:`results_document` builds the document from
:class:`~harness.results.CaseResult` values; :func:`results_from_document` rebuilds them, so a report (HTML,
JUnit) can be made later from a saved run.
"""

from __future__ import annotations

__all__ = [
    "SCHEMA_VERSION",
    "dumps_results",
    "release_key",
    "results_document",
    "results_from_document",
    "sorted_releases",
]

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from harness.errors import ScenarioIssue
from harness.model import Expect
from harness.results import CaseResult, Check, Observed, RecipientResult, ServerSession
from harness.trace import DnsQuery, dns_queries

#: Version of the document's schema. Keys may be added within a version; a key removed, renamed or changed in
#: meaning makes a new version.
SCHEMA_VERSION = 1

#: Every key of ``expect`` in the order the checks run: Postfix's side, then what the fake server saw.
_EXPECT_KEYS = (
    "status", "dsn", "reason", "relay", "tls", "received", "starttls", "sni", "protocol", "cipher", "client_cert",
)  # fmt: skip


def release_key(release: str | None) -> tuple[int, ...]:
    """A Postfix release as a version, for sorting: ``3.10.13`` → (3, 10, 13), after ``3.7.11`` → (3, 7, 11)."""
    return tuple(int(part) for part in (release or "").split(".") if part.isdigit())


def sorted_releases(releases: Iterable[str | None]) -> list[str]:
    """Each release once, in version order (3.5.25, 3.7.11, 3.10.13): how every report lists them."""
    return sorted({r for r in releases if r}, key=lambda r: (release_key(r), r))


def results_document(
    results: Sequence[CaseResult], *, started: datetime | None = None, finished: datetime | None = None
) -> dict[str, Any]:
    """The JSON document of a run (docs/results-json.md).

    Args:
        results: every case of the run, in run order.
        started, finished: when the run started and ended (aware datetimes; written as RFC 3339 UTC).

    Returns:
        A dict of JSON types only (str, int, float, bool, None, list, dict).
    """
    recipients = [r for case in results for r in case.recipients]
    cases_passed = sum(1 for case in results if case.passed)
    recipients_passed = sum(1 for r in recipients if r.passed)
    return {
        "schema_version": SCHEMA_VERSION,
        "mxharness_version": _own_version(),
        "started": _time(started),
        "finished": _time(finished),
        "postfix_releases": sorted_releases(case.release for case in results),
        "passed": bool(results) and cases_passed == len(results),
        "summary": {
            "cases": len(results),
            "cases_passed": cases_passed,
            "cases_failed": len(results) - cases_passed,
            "recipients": len(recipients),
            "recipients_passed": recipients_passed,
            "recipients_failed": len(recipients) - recipients_passed,
        },
        "cases": [_case(case) for case in results],
    }


def dumps_results(
    results: Sequence[CaseResult], *, started: datetime | None = None, finished: datetime | None = None
) -> str:
    """:func:`results_document` as UTF-8 JSON text, indented by 2, ending with a newline."""
    document = results_document(results, started=started, finished=finished)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def results_from_document(document: Mapping[str, Any]) -> list[CaseResult]:
    """Rebuild the cases of a document made by :func:`results_document` (``dns_queries`` are derived again
    from ``peer_events``; ``summary``, the run's times and each recipient's ``tls_model`` are not part of a
    CaseResult: reports compute the model again). Keys added within schema version 1 (``server_names``,
    ``main_cf``, ``maps``, ``message_id``, ``tls_model``, a server's ``client_cert``) may be absent: they read as
    empty (``client_cert`` as false).

    Raises:
        ValueError: the document has another ``schema_version``, or a key is missing or mistyped.
    """
    found = document.get("schema_version")
    if found != SCHEMA_VERSION:
        raise ValueError(
            f"results document: schema_version {found!r}, this mxharness reads {SCHEMA_VERSION}. "
            "Hint: read it with the mxharness release that wrote it (see mxharness_version)."
        )
    try:
        return [_case_from(case) for case in document["cases"]]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"results document: missing or mistyped key {exc}. Hint: see docs/results-json.md.") from exc


# --- to JSON -----------------------------------------------------------------------------------------------


def _case(case: CaseResult) -> dict[str, Any]:
    return {
        "scenario": case.scenario,
        "case": case.case,
        "source_file": case.source_file,
        "passed": case.passed,
        "release": case.release,
        "duration_s": case.duration_s,
        "error": case.error,
        "config_issues": [
            {"file": i.file, "line": i.line, "key": i.key, "message": i.message} for i in case.config_issues
        ],
        "kept_pod": case.kept_pod,
        "server_chains": {host: list(chain) for host, chain in case.server_chains.items()},
        "server_names": {host: list(names) for host, names in case.server_names.items()},
        "main_cf": case.main_cf,
        "maps": dict(case.maps),
        "config_changes": list(case.config_changes),
        "postfix_warnings": list(case.postfix_warnings),
        "recipients": [_recipient(r, case) for r in case.recipients],
        "dns_queries": [_dns(q) for q in dns_queries(case)],
        "postfix_log": list(case.postfix_log),
        "peer_events": list(case.peer_events),
    }


def _recipient(r: RecipientResult, case: CaseResult) -> dict[str, Any]:
    from harness._explain_report import model_document  # the TLS model (harness/explain.py) beside Postfix

    expected = {key: getattr(r.expect, key) for key in _EXPECT_KEYS if getattr(r.expect, key) is not None}
    return {
        "recipient": r.recipient,
        "message_id": r.message_id,
        "passed": r.passed,
        "release": r.release,
        "error": r.error,
        "expected": expected,
        "observed": _observed(r.observed) if r.observed else None,
        "checks": [{"key": c.key, "expected": c.expected, "observed": c.observed, "ok": c.ok} for c in r.checks],
        "tls_model": model_document(case, r),
    }


def _observed(o: Observed) -> dict[str, Any]:
    return {
        "status": o.status,
        "dsn": o.dsn,
        "reason": o.reason,
        "relay": o.relay,
        "relay_host": o.relay_host,
        "relay_address": o.relay_address,
        "relay_port": o.relay_port,
        "tls": o.tls,
        "tls_protocol": o.tls_protocol,
        "tls_cipher": o.tls_cipher,
        "queue_id": o.queue_id,
        "received": o.received,
        "server": _server(o.server) if o.server else None,
        "log_lines": list(o.log_lines),
    }


def _server(s: ServerSession) -> dict[str, Any]:
    return {
        "server": s.server,
        "address": s.address,
        "port": s.port,
        "ehlo": s.ehlo,
        "starttls": s.starttls,
        "tls_version": s.tls_version,
        "cipher": s.cipher,
        "sni": s.sni,
        "client_cert": s.client_cert,
        "received": s.received,
    }


def _dns(q: DnsQuery) -> dict[str, Any]:
    return {
        "time": _time(q.time),
        "qname": q.qname,
        "qtype": q.qtype,
        "rcode": q.rcode,
        "ad": q.ad,
        "answers": list(q.answers),
        "client": q.client,
    }


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _own_version() -> str:
    try:
        return version("mxharness")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


# --- from JSON ---------------------------------------------------------------------------------------------


def _case_from(d: Mapping[str, Any]) -> CaseResult:
    return CaseResult(
        scenario=d["scenario"],
        case=d["case"],
        source_file=d["source_file"],
        recipients=tuple(_recipient_from(r, d["scenario"], d["case"]) for r in d["recipients"]),
        release=d["release"],
        error=d["error"],
        config_issues=tuple(ScenarioIssue(i["file"], i["line"], i["key"], i["message"]) for i in d["config_issues"]),
        kept_pod=d["kept_pod"],
        server_chains={host: tuple(chain) for host, chain in d["server_chains"].items()},
        # Added within schema version 1: absent from documents of earlier releases.
        server_names={host: tuple(names) for host, names in d.get("server_names", {}).items()},
        main_cf=d.get("main_cf", ""),
        maps=dict(d.get("maps", {})),
        config_changes=tuple(d.get("config_changes", ())),
        postfix_warnings=tuple(d.get("postfix_warnings", ())),
        postfix_log=tuple(d["postfix_log"]),
        peer_events=tuple(d["peer_events"]),
        duration_s=float(d["duration_s"]),
    )


def _recipient_from(d: Mapping[str, Any], scenario: str, case: str) -> RecipientResult:
    observed = d["observed"]
    return RecipientResult(
        scenario=scenario,
        case=case,
        recipient=d["recipient"],
        expect=Expect.model_validate(d["expected"]),
        observed=_observed_from(observed) if observed is not None else None,
        checks=tuple(Check(c["key"], c["expected"], c["observed"], c["ok"]) for c in d["checks"]),
        release=d["release"],
        error=d["error"],
        message_id=d.get("message_id"),  # added within schema version 1
    )


def _observed_from(d: Mapping[str, Any]) -> Observed:
    server = d["server"]
    return Observed(
        status=d["status"],
        dsn=d["dsn"],
        reason=d["reason"],
        relay=d["relay"],
        relay_host=d["relay_host"],
        relay_address=d["relay_address"],
        relay_port=d["relay_port"],
        tls=d["tls"],
        queue_id=d["queue_id"],
        tls_protocol=d["tls_protocol"],
        tls_cipher=d["tls_cipher"],
        received=d["received"],
        server=ServerSession(**server) if server is not None else None,
        log_lines=tuple(d["log_lines"]),
    )
