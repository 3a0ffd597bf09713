"""The one-line reason of a change, from the TLS model (:mod:`harness.explain`, docs/explain.md).

The model reads a scenario's ``postfix`` keys, not a configuration folder, so a case that ran a folder is shown to it
as what ran: the main.cf the harness wrote for the case (the folder's, changed for the pod), the folder's SMTP
client services of master.cf (their ``-o`` settings), and the case's maps. A reason is given only where the model
is sure of both sides and agrees with what Postfix logged (status, DSN and TLS level); otherwise the line says that
the model cannot tell, or that it disagrees (a finding for docs/explain.md), and the observed outcomes stand alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness._explain_policy import TlsPolicy
from harness._explain_text import why
from harness.explain import Decision, Explanation, disagreements, explain_case
from harness.model import Case, PostfixSpec, Scenario
from harness.postfix_config import config_for, master_entries, parse_main_cf
from harness.results import CaseResult, Observed

__all__ = ["Side", "explanations", "reason"]

_CLIENT_COMMANDS = ("smtp", "lmtp")


@dataclass(frozen=True)
class Side:
    """A comparison scenario's case on one side, and what ran."""

    scenario: Scenario
    case: Case
    result: CaseResult


def explanations(side: Side) -> tuple[Explanation | None, ...]:
    """The model's explanation of each message of the case, in ``send`` order (None where it cannot be had)."""
    none: tuple[Explanation | None, ...] = (None,) * len(side.case.send)
    if not side.result.main_cf:
        return none  # the case did not get as far as writing its configuration
    try:
        scenario, case = _model_view(side)
        return tuple(explain_case(scenario, case, fixes=False, release=side.result.release))
    except Exception:  # a report never fails because of the model; the differential test guards the model itself
        return none


def reason(before: Explanation | None, after: Explanation | None, observed: Sequence[Observed | None]) -> str | None:
    """One line on why the outcome changed: what differs in the TLS policy, then the deciding fact of the new
    outcome (a name that matches now, the names that do not, the chain, STARTTLS).

    Args:
        observed: what Postfix logged before and after.

    Returns:
        The line; a note when the model is not sure or disagrees with Postfix; None without explanations.
    """
    if before is None or after is None:
        return None
    for side, e, seen in (("before", before, observed[0]), ("after", after, observed[1])):
        if not e.prediction.certain:
            caveat = e.prediction.caveats[0] if e.prediction.caveats else "outside the model"
            return f"the TLS model cannot tell ({side}: {caveat})"
        differ = disagreements(e.prediction, seen) if seen is not None else ()
        if differ:
            keys = ", ".join(f"{d.key} {d.model}" for d in differ)
            return f"the TLS model disagrees with Postfix {side} (model: {keys}): see docs/explain.md"
    parts = _policy_diff(before.decision, after.decision)
    fact = _fact(after.decision) or _fact(before.decision)
    if fact:
        parts.append(fact)
    return "; ".join(parts) or None


def _model_view(side: Side) -> tuple[Scenario, Case]:
    """The scenario as the model can read it (see the module docstring)."""
    scenario, case = side.scenario, side.case
    config = config_for(scenario, case)
    if config is None:
        return scenario, case
    own = scenario.postfix
    spec = {
        "release": own.release,
        "hostname": own.hostname,
        "trust": own.trust,
        "main.cf": parse_main_cf(side.result.main_cf),
        "master.cf": _client_services(config.master_cf) or None,
        "maps": dict(side.result.maps),
    }
    view = scenario.model_copy(update={"postfix": PostfixSpec.model_validate(spec)})
    return view, case.model_copy(update={"postfix": PostfixSpec()})


def _client_services(master_cf: str) -> str:
    """The master.cf entries that run the SMTP or LMTP client, whose ``-o`` settings decide TLS for their mail."""
    entries = [e for e in master_entries(master_cf) if len(" ".join(e).split()) > 7]
    return "\n".join("\n".join(e) for e in entries if " ".join(e).split()[7] in _CLIENT_COMMANDS)


def _policy_diff(before: Decision, after: Decision) -> list[str]:
    """What differs in the TLS policy: the policy table entry (or where the level comes from), the level, the
    match list (``entry "a" → "b" (/etc/postfix/tls_policy line 5)``, ``match nexthop, dot-nexthop → .x.com``)."""
    b, a = before.policy, after.policy
    if b is None or a is None:
        return [] if b is a else ["the TLS policy does not apply on one side (the model follows only the SMTP client)"]
    out = []
    if b.entry != a.entry:
        entry = a.entry or b.entry
        where = f" ({entry.table.partition(':')[2]} line {entry.line})" if entry and entry.line else ""
        out.append(f"policy table entry {_entry(b)} → {_entry(a)}{where}")
    elif b.entry is None and b.level_origin != a.level_origin:
        out.append(f"{b.level_origin} → {a.level_origin}")
    if b.level != a.level:
        out.append(f'level "{b.level}" → "{a.level}"')
    match_b, match_a = _match(b.level, b.match), _match(a.level, a.match)
    if match_b != match_a:
        out.append(f"match {match_b} → {match_a}")
    return out


def _entry(p: TlsPolicy) -> str:
    return f'"{p.entry.key} {p.entry.value}"' if p.entry is not None else "(none)"


def _match(level: str, match: Sequence[str]) -> str:
    return ", ".join(match) if level in ("verify", "secure") and match else "(none checked)"


def _fact(d: Decision) -> str | None:
    """The deciding fact of an outcome, in a few words."""
    sent = next((a for a in d.attempts if a.outcome.kind == "sent"), None)
    if sent is not None:
        if sent.names is not None and sent.names.matched and sent.names.matches:
            reference, name = sent.names.matches[0]
            return f"the certificate name {name} matches {reference}"
        if d.policy is not None and d.policy.level in ("may", "encrypt"):
            return f'"{d.policy.level}" does not check the certificate'
        return None
    failed = [a for a in d.attempts if a.outcome.kind != "sent"]
    last = failed[-1] if failed else None
    if last is not None and last.chain is not None and not last.chain.trusted:
        return f"the chain does not verify ({last.chain.problem})"
    if last is not None and last.names is not None and not last.names.matched and last.cert_names is not None:
        refs = ", ".join(r.name for r in last.references) or "none"
        listed = last.cert_names.host_names
        names = ", ".join(listed[:3]) + (f" and {len(listed) - 3} more" if len(listed) > 3 else "") or "no DNS name"
        return f"no name checked ({refs}) is among the certificate's ({names})"
    lines = why(d)
    return lines[0] if lines else None
