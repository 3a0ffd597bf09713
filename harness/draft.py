"""Scenarios drafted from bug reports: Postfix log excerpts and posttls-finger output, with the reporter's main.cf
and TLS policy table, become a scenario that reproduces what was logged when ``mxharness run`` runs it.

What is taken from where:

* the log (``smtp_tls_loglevel`` 1 or 2, Postfix 2.x or 3.x wording, syslog prefixes of the forms
  :mod:`harness._maillog_parse` accepts, wrapped lines, several queue ids): each recipient's first ``status=``
  line → a message with ``expect``; the servers tried for it, in order → the next-hop's MX records (or the
  relayhost's address records), their addresses and ports → ``dns``; the certificate chain as logged
  (``depth=N … subject=``, ``subjectAltName:``, ``CommonName``, ``subject_CN=…, issuer_CN=…``) → ``pki``; the
  TLS protocol and cipher and server replies quoted in reasons → ``servers``.
* posttls-finger output (``posttls-finger -c -l secure …``, with or without its SMTP chat or ``-C`` chain print):
  the same facts for one destination, the servers in the order it tried them, and the level from ``-l``.
* ``dig``/``host``/``nslookup`` answers pasted alongside: MX preferences and addresses.
* main.cf: the parameters of the SMTP client (see :mod:`harness._draft_config`); the policy table: as given, a
  logged fingerprint in it replaced by the placeholder of the drafted certificate (``{{ fingerprint NAME md5 }}``).

Everything else is guessed, and every guess is listed in the comment at the top of the draft ("MX preference of
in2-smtp… not in the log: assumed 20"). Local parts of addresses are replaced by placeholders (``user``,
``user2`` …) unless ``keep_addresses`` is set. Lines that are not understood are skipped and counted, never an
error.
"""

from __future__ import annotations

__all__ = ["Draft", "draft_scenario"]

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness._draft_cases import DraftedCases, draft_cases
from harness._draft_config import MainCf, PolicyTable, client_main_cf, policy_map, read_main_cf, read_policy
from harness._draft_facts import Facts, collect_facts
from harness._draft_input import Origin, Paste, read_paste
from harness._draft_levels import release_tuple
from harness._draft_pki import DraftedPki, draft_pki, slug
from harness._draft_privacy import Placeholders
from harness._draft_world import destinations, draft_world
from harness._draft_yaml import render_yaml
from harness.errors import ScenarioError, ScenarioIssue
from harness.model import SLUG
from harness.releases import DEFAULT_RELEASE
from harness.scenario import scenario_from_dict

_DEFAULT_RELEASE_VERSION = {"3.7": "3.7.11"}
_LISTED = 12  # line numbers listed in one comment line before "… and N more"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Draft:
    """A drafted scenario.

    Attributes:
        name: the scenario's name.
        text: the scenario as YAML, with the comments that say where each part came from.
        data: the same as plain data (what the YAML parses to).
        guesses: facts not in the input that the draft assumes (also in the text's header).
        warnings: reasons why the draft may not reproduce the report.
        problems: checks the drafted scenario fails when loaded (empty unless the draft has a bug); such a draft
            needs editing before it runs.
        paste: what was read.
    """

    name: str
    text: str
    data: dict[str, Any]
    guesses: tuple[str, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    paste: Paste


def draft_scenario(
    logs: Sequence[str | Path],
    *,
    policy: str | Path | None = None,
    main_cf: str | Path | None = None,
    keep_addresses: bool = False,
    name: str | None = None,
) -> Draft:
    """Draft a scenario from a bug report.

    Args:
        logs: files with Postfix log excerpts and/or posttls-finger output (and pasted DNS answers), read in order.
        policy: the reporter's TLS policy table source (``smtp_tls_policy_maps``).
        main_cf: the reporter's main.cf or ``postconf -n`` output.
        keep_addresses: keep the local parts of addresses instead of placeholders.
        name: the scenario name (default ``drafted-`` and the first next-hop).

    Returns:
        The draft.

    Raises:
        ScenarioError: an input file cannot be read or is binary; main.cf or policy table lines that are not of
            their form; a name that is not a slug; input with nothing to draft from (no Postfix delivery or TLS
            line, no posttls-finger output). Every issue names the file and, where it applies, the line.
    """
    paste, main, table = _read_inputs(logs, policy, main_cf, name)
    facts = collect_facts(paste)
    if not facts.outcomes and not any(p.host for p in facts.peers.values()):
        raise ScenarioError(_nothing_to_draft(logs, paste))
    placeholders = Placeholders(keep=keep_addresses)
    map_type, map_path, map_notes = policy_map(main, table)
    kept, left_out = client_main_cf(main, given_maps={map_path}) if main else ({}, [])
    found = destinations(facts, paste.commands, relayhost=kept.get("relayhost"))
    if not found:
        raise ScenarioError(_nothing_to_draft(logs, paste))
    pki = draft_pki([(destination.nexthop, destination.hosts) for destination in found])
    world = draft_world(
        found, paste.dns_answers, pki, placeholders, wrappermode=kept.get("smtp_tls_wrappermode", "no") == "yes"
    )
    cases = draft_cases(
        found,
        pki,
        placeholders,
        level_of=lambda key: _configured_level(key, main, table),
        release=release_tuple(_DEFAULT_RELEASE_VERSION.get(DEFAULT_RELEASE, DEFAULT_RELEASE)),
        release_name=_DEFAULT_RELEASE_VERSION.get(DEFAULT_RELEASE, DEFAULT_RELEASE),
        extra_mx=world.extra_mx,
    )
    postfix, postfix_notes = _postfix(kept, cases, pki, table, map_type, map_path)
    scenario_name = name or f"drafted-{slug(found[0].nexthop if found else 'report')}"[:63].rstrip("-")
    data: dict[str, Any] = {"name": scenario_name}
    data["description"] = _description(facts, placeholders)
    inputs = [*logs, *(p for p in (policy, main_cf) if p is not None)]
    data["source"] = "mxharness draft " + " ".join(Path(p).name for p in inputs)
    if pki.cas or pki.certs:
        data["pki"] = {key: value for key, value in (("cas", pki.cas), ("certs", pki.certs)) if value}
    data["dns"] = world.dns
    if world.servers:
        data["servers"] = world.servers
    data["postfix"] = postfix
    data["cases"] = [{"name": "as-reported", "send": cases.send}]
    guesses = [*world.guesses, *pki.guesses, *cases.guesses, *postfix_notes]
    if placeholders.replaced:
        guesses.append(
            f"local parts of {placeholders.replaced} address(es) replaced by placeholders (user, user2 …); "
            "--keep-addresses keeps them"
        )
    warnings = cases.warnings
    problems = _problems(data)
    header = _header(logs, policy, main_cf, paste, facts, guesses, [*map_notes, *left_out], warnings, problems)
    header_text = [placeholders.scrub(line) for line in header]
    text = render_yaml(
        data, header=header_text, send_comments=[placeholders.scrub(c) if c else c for c in cases.comments]
    )
    return Draft(scenario_name, text, data, tuple(guesses), tuple(warnings), tuple(problems), paste)


def _read_inputs(
    logs: Sequence[str | Path], policy: str | Path | None, main_cf: str | Path | None, name: str | None
) -> tuple[Paste, MainCf | None, PolicyTable | None]:
    """Read every input, raising one error with the issues of all of them."""
    issues: list[ScenarioIssue] = []
    if name is not None and not (re.fullmatch(SLUG[1:-1], name) and len(name) <= 63):
        issues.append(ScenarioIssue("--name", None, "", f"{name!r} is not a scenario name. Hint: a-z, 0-9 and '-'"))
    if not logs:
        issues.append(ScenarioIssue("LOGFILE", None, "", "no log file given. Hint: mxharness draft smtp.log"))
    paste = _collect(issues, lambda: read_paste(list(logs))) if logs else None
    main = _collect(issues, lambda: read_main_cf(main_cf)) if main_cf else None
    table = _collect(issues, lambda: read_policy(policy)) if policy else None
    if issues or paste is None:
        raise ScenarioError(issues)
    return paste, main, table


def _collect(issues: list[ScenarioIssue], read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except ScenarioError as exc:
        issues.extend(exc.issues)
        return None


def _nothing_to_draft(logs: Sequence[str | Path], paste: Paste) -> ScenarioIssue:
    return ScenarioIssue(
        ", ".join(str(p) for p in logs),
        None,
        "",
        f"nothing to draft from: of {paste.lines} line(s), none is a Postfix delivery (status=) or TLS line of "
        f"smtp, nor posttls-finger output ({len(paste.skipped)} not understood, {paste.other_programs} of other "
        "programs). Hint: give the smtp lines of the delivery, ideally at smtp_tls_loglevel = 2, or the output of "
        "`posttls-finger -c -l secure DOMAIN`",
    )


def _configured_level(key: str, main: MainCf | None, table: PolicyTable | None) -> tuple[str, str] | None:
    """The level the configuration given sets for a next-hop: its policy entry, else main.cf's
    smtp_tls_security_level (or the Postfix 2.2 smtp_use_tls/smtp_enforce_tls), else Postfix's default ``none``;
    None when it cannot say (nothing given, or main.cf names a policy table that was not given)."""
    if table is not None and (entry := table.lookup(key)):
        return entry.level, f"{table.file}:{entry.line}"
    if main is None or (table is None and main.parameters.get("smtp_tls_policy_maps")):
        return None
    parameters = main.parameters
    if level := parameters.get("smtp_tls_security_level"):
        return level, main.file
    if parameters.get("smtp_enforce_tls") == "yes":
        return ("verify" if parameters.get("smtp_enforce_peername", "yes") == "yes" else "encrypt"), main.file
    return ("may" if parameters.get("smtp_use_tls") == "yes" else "none"), main.file


def _postfix(
    kept: dict[str, str],
    cases: DraftedCases,
    pki: DraftedPki,
    table: PolicyTable | None,
    map_type: str,
    map_path: str,
) -> tuple[dict[str, Any], list[str]]:
    """The ``postfix`` section and notes about it."""
    notes: list[str] = []
    main_cf = dict(kept) | cases.main_cf
    text = table.text if table else ""
    digests = set()
    for logged, template in pki.templates.items():
        if re.search(re.escape(logged), text, re.IGNORECASE):
            text = re.sub(re.escape(logged), template, text, flags=re.IGNORECASE)
            digests.add(template.split()[-2])
            notes.append(f"the policy table's {logged} is the logged fingerprint: now {template}")
    if len(digests) == 1 and "smtp_tls_fingerprint_digest" not in main_cf and digests != {"sha256"}:
        main_cf["smtp_tls_fingerprint_digest"] = digests.pop()
        notes.append(
            f"smtp_tls_fingerprint_digest = {main_cf['smtp_tls_fingerprint_digest']}: the log's fingerprints use it "
            "(Postfix ≤ 3.5's default; 3.6 and later default to sha256)"
        )
    if cases.policy_lines:
        text = (text.rstrip("\n") + "\n" if text.strip() else "") + "\n".join(cases.policy_lines) + "\n"
    postfix: dict[str, Any] = {}
    if pki.cas:
        postfix["trust"] = list(pki.trust)
    if text.strip():
        main_cf["smtp_tls_policy_maps"] = f"{map_type}:{map_path}"
    if main_cf:
        postfix["main.cf"] = main_cf
    if text.strip():
        postfix["maps"] = {map_path: text if text.endswith("\n") else text + "\n"}
    return postfix, notes


def _description(facts: Facts, placeholders: Placeholders) -> str:
    if not facts.outcomes:
        finger = any(p.finger for p in facts.peers.values())
        return "Drafted from posttls-finger output." if finger else "Drafted from a log without status lines."
    first = facts.outcomes[0].delivery
    more = f" (and {len(facts.outcomes) - 1} more recipient(s))" if len(facts.outcomes) > 1 else ""
    text = f"Drafted from a report: {first.recipient} {first.status}, {first.dsn} ({first.reason}){more}."
    return placeholders.scrub(text)


def _problems(data: dict[str, Any]) -> list[str]:
    try:
        scenario_from_dict(data, source="draft")
    except ScenarioError as exc:
        return [str(issue) for issue in exc.issues]
    return []


def _header(
    logs: Sequence[str | Path],
    policy: str | Path | None,
    main_cf: str | Path | None,
    paste: Paste,
    facts: Facts,
    guesses: list[str],
    left_out: list[str],
    warnings: list[str],
    problems: list[str],
) -> list[str]:
    given = ["standard input" if str(p) == "-" else str(p) for p in logs]
    given += [f"{policy} (policy table)"] * bool(policy) + [f"{main_cf} (main.cf)"] * bool(main_cf)
    finger = sum(1 for e in paste.entries if e.finger)
    lines = [
        f"Drafted by `mxharness draft` from {', '.join(given)}. Run it with `mxharness run FILE`.",
        f"Read {paste.lines} line(s): {len(paste.entries) - finger} Postfix log line(s), {finger} posttls-finger "
        f"line(s), {len(paste.dns_answers)} DNS answer(s), {paste.joined} continuation(s) of wrapped lines, "
        f"{paste.other_programs} line(s) of other programs, {len(paste.skipped)} not understood (skipped).",
    ]
    if facts.version:
        lines.append(
            f"The log is from Postfix {facts.version}; the draft runs on the default release {DEFAULT_RELEASE}."
        )
    for title, items in (
        ("Guessed (not in the input):", guesses),
        ("Left out of main.cf:", left_out),
        ("Passed over in the log:", list(facts.passed_over)),
        ("Warnings:", warnings),
        ("PROBLEMS (edit the draft before running it):", problems),
    ):
        if items:
            lines += ["", title, *(f"- {item}" for item in items)]
    if paste.skipped:
        lines += ["", f"Not understood (skipped): {_where(paste.skipped)}"]
    return lines


def _where(origins: tuple[Origin, ...]) -> str:
    by_file: dict[str, list[int]] = {}
    for origin in origins:
        by_file.setdefault(origin.file, []).append(origin.line)
    parts = []
    for file, numbers in by_file.items():
        more = f" and {len(numbers) - _LISTED} more" if len(numbers) > _LISTED else ""
        parts.append(f"{file} line(s) {', '.join(map(str, numbers[:_LISTED]))}{more}")
    return "; ".join(parts)
