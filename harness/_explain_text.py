"""The words of an explanation: the model's reasoning for one message, one fact per line, for a mail admin.

Used by ``mxharness explain``, by failure reports and by :meth:`harness.explain.Explanation.text`. Plain text, no
markup; host names and addresses are never split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness._explain_attempt import Attempt
from harness._explain_dane import DANE_LEVELS
from harness._explain_names import host_matches
from harness._explain_trust import readable

if TYPE_CHECKING:
    from harness.explain import Decision, Explanation, Prediction

__all__ = ["outcome_words", "render", "why"]


def render(e: Explanation) -> list[str]:
    """The lines of an explanation (see docs/explain.md for an example)."""
    d = e.decision
    out = [
        f"{e.scenario} / {e.case}: to=<{e.recipient}>",
        f"  model of Postfix {e.release}: {outcome_words(e.prediction)}",
    ]
    out += [f"  not sure: {c}" for c in e.prediction.caveats]
    if e.folder:
        out.append(
            f"  configuration: the folder {e.folder} (main.cf, master.cf, maps) as the pod runs it, with the "
            "scenario's keys on top"
        )
    out += _route_lines(d)
    out += _policy_lines(d)
    out += _attempt_lines(d.attempts)
    reasons = why(d)
    if reasons:
        out.append("  why:")
        out += [f"    {line}" for line in reasons]
    if e.prediction.status not in ("sent", None):
        if e.fixes:
            out.append("  what would make it deliver (each change checked with the model):")
            for fix in e.fixes:
                out.append(f"    - {fix.change}")
                out.append(f"      → {outcome_words(fix.after)}; trade-off: {fix.trade_off}")
        elif e.fixes_searched and d.policy is not None and d.attempts:
            out.append("  no change to the TLS settings that the model tried makes it deliver")
    return [readable(line) for line in out]


def outcome_words(p: Prediction) -> str:
    """``deferred, DSN 4.7.5, TLS Untrusted (Server certificate not verified) via in2-smtp…``."""
    if p.status is None and p.dsn is None and p.tls is None:
        return "no prediction"
    text = f"{p.status or '?'}, DSN {p.dsn or '?'}, TLS {p.tls or '?'}"
    if p.reason and p.status != "sent":
        text += f" ({p.reason})"
    relays = [r for r in p.relays if r != "none"]
    if relays:
        text += f" via {' or '.join(relays)}"
    elif p.relays:
        text += ", relay=none"
    return text


def _route_lines(d: Decision) -> list[str]:
    rt = d.route
    port = f", port {rt.port}" if rt.port != 25 else ""
    out = [f"  next-hop: {rt.destination}{port}: {rt.origin}; transport {rt.transport}"]
    if rt.note:
        out.append(f"    ({rt.note})")
    res = d.resolution
    if res.failure:
        out.append(f"  DNS: {res.failure[2]}")
        return out
    if not res.hosts:
        return out
    if rt.mx_lookup and res.hosts[0].preference is not None:
        hosts = ", ".join(f"{h.name} (preference {h.preference})" for h in res.hosts)
        out.append(f"  MX hosts of {rt.nexthop}: {hosts}; the host name as published is what 'hostname' means")
    elif rt.mx_lookup:
        out.append(f"  {rt.nexthop} has no MX record: Postfix connects to its own address")
    else:
        out.append(f"  the brackets mean no MX lookup: Postfix connects to {rt.nexthop} itself")
    return out


def _policy_lines(d: Decision) -> list[str]:
    policy = d.policy
    if policy is None:
        return []
    out = []
    glob = policy.global_level
    if policy.entry is not None:
        out.append(f"  security level: {policy.level}, from the {policy.level_origin}")
        out.append(f"    (without it: {glob.describe()})")
    else:
        out.append(f"  security level: {policy.level}, from {policy.level_origin}")
        if policy.tables:
            out.append(f"    (no entry for {', '.join(policy.keys)} in smtp_tls_policy_maps = {policy.tables})")
        else:
            out.append("    (no policy table: smtp_tls_policy_maps is empty)")
    if policy.level == "invalid":
        out.append(f'  the policy is invalid: Postfix warns "{policy.problem}", skips every host and defers')
        return out
    if policy.level in ("verify", "secure"):
        out.append(f"  match list: {', '.join(policy.match)}, from {policy.match_origin}")
    elif policy.level == "fingerprint":
        out.append(f"  fingerprints: {' | '.join(policy.match)}, from {policy.match_origin}")
    if policy.servername:
        out.append(f"  SNI: {policy.servername}, from {policy.servername_origin}")
    return out


def _attempt_lines(attempts: tuple[Attempt, ...]) -> list[str]:
    out: list[str] = []
    previous: Attempt | None = None
    for number, a in enumerate(attempts):
        where = f"{a.host.name}[{a.address.text}]"
        last = number == len(attempts) - 1
        if previous is not None and _same(previous, a):
            out.append(f"  {where}: the same, {_attempt_end(a, last=last)}")
            continue
        note = f" ({a.host.note})" if a.host.note else ""
        out.append(f"  {where}{note}:")
        out += [f"    - {step}" for step in a.steps]
        out.append(f"    → {_attempt_end(a, last=last)}")
        previous = a
    return out


def _same(one: Attempt, other: Attempt) -> bool:
    """Whether two attempts went the same way, apart from the host and address they name."""

    def plain(a: Attempt) -> tuple[str, ...]:
        return tuple(s.replace(f"{a.host.name}[{a.address.text}]", "H").replace(a.host.name, "H") for s in a.steps)

    return plain(one) == plain(other) and one.outcome.kind == other.outcome.kind


def _attempt_end(a: Attempt, *, last: bool) -> str:
    o = a.outcome
    if o.kind == "sent":
        return f"sent, TLS {o.tls}"
    if o.kind == "hard":
        then = "; Postfix bounces the message now"
    else:
        then = "; no address is left" if last else "; Postfix tries the next address"
    return f"{o.status} {o.dsn}, TLS {o.tls} ({o.reason}){then}"


def why(d: Decision) -> list[str]:
    """The reason behind the outcome, in a sentence or three, from the attempts whose failure is reported."""
    p = d.prediction
    policy = d.policy
    if policy is None or not d.attempts:
        return []
    if policy.level in DANE_LEVELS:
        done = next((a for a in d.attempts if a.outcome.kind == "sent"), None) if p.status == "sent" else None
        reported = done or [a for a in d.attempts if a.outcome.kind != "sent"][-1]
        return [s for s in reported.steps if s.startswith(("DANE", "No TLSA", "OpenSSL", "Postfix 3.5"))][-3:]
    if p.status == "sent":
        sent = next((a for a in d.attempts if a.outcome.kind == "sent"), None)
        if sent is not None and sent.names is not None and sent.names.matched:
            pairs = ", ".join(f"{cert} matches {ref}" for ref, cert in sent.names.matches[:2])
            return [f"The chain is trusted and a name matches ({pairs or 'the IP address'}): TLS Verified."]
        return []
    failed = [a for a in d.attempts if a.outcome.kind != "sent"]
    last = failed[-1] if failed else d.attempts[-1]
    o = last.outcome
    if policy.level == "invalid":
        return [f"The policy table entry is invalid ({policy.problem}): Postfix does not try any server."]
    if o.reason == "Server certificate not verified" and last.chain is not None:
        return _why_not_verified(d, last)
    if o.dsn == "4.7.4" and d.route.content_filter is not None:
        return [
            f'The content filter at {d.route.destination} does not offer STARTTLS, and at "{policy.level}" '
            f"({policy.level_origin}) TLS is required for this hop too: every message through the filter waits."
        ]
    if o.dsn == "4.7.4":
        return [f'The server does not offer STARTTLS, and at "{policy.level}" TLS is required.']
    if "refused to start TLS" in o.reason:
        return [f'The server refuses STARTTLS, and at "{policy.level}" TLS is required.']
    if o.kind == "refused":
        return ["No server accepts the connection: this is not a TLS matter."]
    return [last.steps[-1]] if last.steps else []


def _why_not_verified(d: Decision, a: Attempt) -> list[str]:
    policy = d.policy
    assert policy is not None and a.chain is not None
    if policy.level == "fingerprint":
        return ['No fingerprint in the match list is this certificate\'s; at "fingerprint" nothing else counts.']
    if not a.chain.trusted:
        return [
            f'The certificate\'s chain does not verify ({a.chain.problem}). At "{policy.level}" that alone defers '
            "the mail, whatever names the certificate carries."
        ]
    names = a.cert_names.host_names if a.cert_names else ()
    listed = ", ".join(names) or "no DNS name"
    refs = ", ".join(r.name for r in a.references) or "none"
    names_host = any(host_matches(n, a.host.name) for n in names)
    out = []
    if policy.level == "secure" and not any(m.lower() == "hostname" for m in policy.match):
        mx = f", and the certificate names the MX host {a.host.name}" if names_host else ""
        out.append(f"The chain is trusted{mx}.")
        out.append(
            'But at "secure" Postfix does not check the MX host name: that name comes from an MX answer that is not '
            f"authenticated (no DNSSEC). It checks the names of its match list instead ({refs}), and the "
            f"certificate names only {listed}."
        )
    else:
        out.append(f"The chain is trusted, but no name Postfix checks ({refs}) is among the certificate's: {listed}.")
    if a.outcome.tls == "Untrusted":
        out.append(
            'Postfix 3.6 to 3.10.3 log such a connection as "Untrusted" although the chain is trusted: the name '
            'check is part of OpenSSL\'s verification there. Postfix 3.5 logs "Trusted" and then defers: the '
            "confusing pair of the seed report."
        )
    return out
