"""Changes that would make an undelivered message deliver, each checked with the model, with its trade-off.

Candidates follow from why the attempts failed: a certificate name that the match list misses (a ``match=`` for the
certificate's name or its domain, ``match=hostname``, ``verify`` instead of ``secure``, the global
``smtp_tls_secure_cert_match``), a chain that does not verify (trusting its root CA, the missing intermediate), a
certificate to pin (``fingerprint``), cipher exclusions that leave nothing in common with the server (without the
words that exclude its ciphers), and weaker levels (``encrypt``, ``may``) as the last resort. Each candidate is
applied to a copy of the case's configuration and the model is run again; only changes after which the message is
predicted ``sent`` are offered. The trade-offs are the ones Postfix's TLS_README and RFC 7672 §1.3 describe (an MX
answer without DNSSEC is not authenticated).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace

from harness._explain_attempt import Attempt
from harness._explain_ciphers import excluding_words
from harness._explain_inputs import CaseInputs
from harness._explain_maps import FILE_TYPES, table_refs
from harness._explain_trust import DigestOf, symbolic
from harness.explain import Decision, Fix, decide

__all__ = ["find_fixes"]

_POLICY_FILE = "/etc/postfix/tls_policy"
_MAX_FIXES = 6

Candidate = tuple[str, str, CaseInputs]


def find_fixes(inputs: CaseInputs, decision: Decision, *, digest_of: DigestOf | None = None) -> tuple[Fix, ...]:
    """The checked changes for ``decision`` (a message the model does not see delivered), best first."""
    policy = decision.policy
    if policy is None:
        return ()
    failed = [a for a in decision.attempts if a.outcome.kind != "sent"]
    candidates: list[Candidate] = []
    level = policy.level
    if any(a.outcome.kind == "skip" for a in failed) and policy.entry is not None:
        candidates += _entry_fixes(inputs, decision)
    checked = [a for a in failed if a.cert is not None and a.outcome.reason == "Server certificate not verified"]
    if level in ("verify", "secure") and any(a.chain and a.chain.trusted for a in checked):
        candidates += _name_fixes(inputs, decision, [a for a in checked if a.chain and a.chain.trusted])
    if any(a.chain and not a.chain.trusted for a in checked):
        candidates += _trust_fixes(inputs, decision, [a for a in checked if a.chain and not a.chain.trusted])
    if checked:
        pins = "|".join(dict.fromkeys(symbolic(f"{{{{ fingerprint {a.cert} }}}}") for a in checked))
        candidates += _policy(
            inputs,
            decision,
            "fingerprint",
            match=pins,
            why=(
                "pins the certificate: nothing else is checked (no CA, no name, no dates); delivery stops when the "
                "server renews its certificate. In a scenario write the digest as {{ fingerprint NAME }}"
            ),
        )
    handshake = [a for a in failed if a.outcome.reason == "Cannot start TLS: handshake failure"]
    if handshake:
        candidates += _cipher_fixes(inputs, decision, handshake)
    if level in ("fingerprint", "verify", "secure"):
        candidates += _policy(
            inputs,
            decision,
            "encrypt",
            why=(
                "no authentication at all: protects against passive eavesdropping only; an active attacker can present "
                "any certificate"
            ),
        )
    no_tls = [a for a in failed if a.outcome.dsn == "4.7.4" or "refused to start TLS" in a.outcome.reason]
    if level in ("encrypt", "fingerprint", "verify", "secure") and no_tls:
        candidates += _filter_fixes(inputs, decision)
        candidates += _policy(
            inputs,
            decision,
            "may",
            why=("plaintext when the server does not do TLS: anyone on the path can read and change the mail"),
        )
    return _checked(candidates, decision.recipient, digest_of, decision.via)


def _cipher_fixes(inputs: CaseInputs, decision: Decision, attempts: list[Attempt]) -> list[Candidate]:
    """Without the exclusion words that remove every cipher the server allows: in the policy table entry's
    ``exclude=``, else in main.cf's exclusion lists."""
    policy = decision.policy
    assert policy is not None
    listed = [s.tls.ciphers for a in attempts if (s := inputs.servers.get(a.address.server or "")) and s.tls.ciphers]
    out: list[Candidate] = []
    for ciphers in dict.fromkeys(listed):
        if policy.exclude is not None:
            words = excluding_words(policy.exclude, ciphers)
            if not words:
                continue
            kept = [w for w in _words(policy.exclude) if w not in words]
            tokens = re.split(r"[,\s]+", policy.entry.value.strip())[1:] if policy.entry else []
            attrs = [t for t in tokens if not t.lower().startswith("exclude=")]
            exclude = [f"exclude={':'.join(kept)}"] if kept else []
            why = f"Postfix may then use the ciphers {', '.join(words)} excluded, for this destination only"
            out += _policy(inputs, decision, policy.level, why=why, base=[policy.level, *attrs, *exclude])
            continue
        names = ["smtp_tls_exclude_ciphers"]
        if policy.level != "may":
            names.append("smtp_tls_mandatory_exclude_ciphers")
        for name in names:
            setting = inputs.param(name, policy.service)
            words = excluding_words(setting.value, ciphers)
            if not words or inputs.main_cf.get(name) != setting:
                continue  # only main.cf's own value (not a master.cf -o) is changed here
            rest = ", ".join(w for w in _words(setting.value) if w not in words)
            why = (
                f"Postfix may then use the ciphers {', '.join(words)} excluded, with every server; to keep the "
                f"exclusion elsewhere, give {decision.route.nexthop} a policy table entry with exclude= instead"
            )
            changed = inputs.with_param(name, rest, "main.cf, the suggested change")
            out.append((f"main.cf: {name} = {setting.value} → {rest or '(empty)'}", why, changed))
    return out


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[,:\s]+", value) if w]


def _filter_fixes(inputs: CaseInputs, decision: Decision) -> list[Candidate]:
    """For the hop to a content filter on this machine: no TLS on that service only (FILTER_README's amavis
    service; the filter speaks plain SMTP on loopback)."""
    rt = decision.route
    service = inputs.service(rt.transport)
    if rt.content_filter is None or service is None or not _loopback(rt.nexthop):
        return []
    change = f"master.cf: service {service.name} ({service.type}, smtp): add -o smtp_tls_security_level=none"
    why = (
        f"no TLS on the hop to the content filter only: it stays on this machine ({rt.nexthop}), so there is no "
        "network to protect; the other deliveries keep their levels"
    )
    return [(change, why, inputs.with_service_option(service, "smtp_tls_security_level", "none"))]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _name_fixes(inputs: CaseInputs, decision: Decision, attempts: list[Attempt]) -> list[Candidate]:
    policy = decision.policy
    assert policy is not None
    names = list(dict.fromkeys(n for a in attempts if a.cert_names for n in a.cert_names.host_names))
    wild = [n[2:] for n in names if n.startswith("*.") and "*" not in n[2:]]
    parents = [n.split(".", 1)[1] for n in names if "*" not in n and n.count(".") >= 2]
    out: list[Candidate] = []
    for domain in dict.fromkeys([*wild, *parents]):
        out += _policy(
            inputs,
            decision,
            policy.level,
            match="." + domain,
            why=(
                f"trusts any certificate for a name below {domain} from a CA Postfix trusts: any server of "
                f"{domain} is accepted for {decision.route.nexthop}"
            ),
        )
    for name in [n for n in names if "*" not in n][:1]:
        out += _policy(
            inputs,
            decision,
            policy.level,
            match=name,
            why=(
                f"trusts exactly the name {name} in the server's certificate; delivery breaks when the provider "
                "changes the name in its certificate"
            ),
        )
    if policy.level == "secure":
        out += _policy(
            inputs,
            decision,
            "secure",
            match="hostname:nexthop:dot-nexthop",
            why=(
                "also accepts the MX host name, as verify does: that name comes from the MX answer, which is not "
                "authenticated without DNSSEC, so a forged MX reply can send the mail to any host with a valid "
                "certificate for its own name"
            ),
        )
        out += _policy(
            inputs,
            decision,
            "verify",
            keep_match=False,
            why=(
                "checks the MX host name instead of the next-hop: trusts the MX answer, which is not authenticated "
                "without DNSSEC (a forged MX reply wins)"
            ),
        )
        if policy.entry is None or "match=" not in policy.entry.value:
            value = "hostname, nexthop, dot-nexthop"
            changed = inputs.with_param("smtp_tls_secure_cert_match", value, "main.cf, the suggested change")
            out.append(
                (
                    f"main.cf: smtp_tls_secure_cert_match = {value}",
                    (
                        "the same as match=hostname, for every destination at secure: each of them then trusts its "
                        "unauthenticated MX answer"
                    ),
                    changed,
                )
            )
    return out


def _trust_fixes(inputs: CaseInputs, decision: Decision, attempts: list[Attempt]) -> list[Candidate]:
    out: list[Candidate] = []
    for a in attempts:
        spec = inputs.certs[a.cert] if a.cert else None
        if spec is None or spec.issuer is None:
            continue
        chain = [spec.issuer]
        while (parent := inputs.cas[chain[-1]].issuer) is not None and len(chain) < 10:
            chain.append(parent)
        root = chain[-1]
        if root not in inputs.trust:
            trust = (*inputs.trust, root)
            out.append(
                (
                    f"postfix.trust: [{', '.join(trust)}] (puts CA {root} in smtp_tls_CAfile)",
                    (f"Postfix then trusts every certificate {root} issues, for any destination"),
                    replace(inputs, trust=trust),
                )
            )
        missing = [ca for ca in chain[:-1] if ca not in inputs.trust]
        server = inputs.servers.get(a.address.server or "")
        if server is not None and server.chain == "leaf" and missing:
            trust = tuple(dict.fromkeys((*inputs.trust, *missing, root)))
            out.append(
                (
                    f"postfix.trust: [{', '.join(trust)}] (adds the intermediate the server omits)",
                    (
                        "works around the server's mistake; the server should send its intermediate "
                        "(servers.HOST.chain: full)"
                    ),
                    replace(inputs, trust=trust),
                )
            )
    return out


def _entry_fixes(inputs: CaseInputs, decision: Decision) -> list[Candidate]:
    policy = decision.policy
    assert policy is not None and policy.entry is not None
    tokens = policy.entry.value.replace(",", " ").split()
    level = tokens[0].lower() if tokens else ""
    out: list[Candidate] = []
    if any(t.lower().startswith("match=") for t in tokens):
        for stronger in ("secure", "verify"):
            out += _policy(
                inputs,
                decision,
                stronger,
                why=(
                    f"match= applies only at fingerprint, verify and secure: at {stronger} the certificate is "
                    "authenticated by these names"
                ),
                base=[stronger, *tokens[1:]],
            )
    kept = [t for t in tokens[1:] if t.split("=", 1)[0].lower() in ("ciphers", "protocols", "exclude")]
    out += _policy(
        inputs,
        decision,
        level or "may",
        why="the entry then says only what Postfix accepts at this level",
        base=[level or "may", *kept],
    )
    return out


def _policy(
    inputs: CaseInputs,
    decision: Decision,
    level: str,
    *,
    why: str,
    match: str | None = None,
    keep_match: bool = True,
    base: list[str] | None = None,
) -> list[Candidate]:
    """A candidate that sets the policy table entry of the next-hop to ``level`` (keeping its other attributes,
    replacing ``match=`` when one is given)."""
    policy = decision.policy
    assert policy is not None
    entry = policy.entry
    tokens = base or (entry.value.replace(",", " ").split() if entry is not None else [policy.level])
    attrs = [t for t in tokens[1:] if not (t.lower().startswith("match=") and (match or not keep_match))]
    if level in ("none", "may", "encrypt"):
        attrs = [t for t in attrs if not t.lower().startswith("match=")]
    value = " ".join([level, *attrs, *([f"match={match}"] if match else [])])
    key = entry.key if entry is not None else decision.route.destination
    line = f"{key} {value}"
    if entry is not None:
        kind, _, path = entry.table.partition(":")
        if kind not in FILE_TYPES or entry.line is None or path not in inputs.maps:
            return []
        lines = inputs.maps[path].splitlines()
        lines[entry.line - 1] = line
        changed = inputs.with_map(path, "\n".join(lines) + "\n")
        wider = f" (a parent-domain entry: it covers every domain below {key[1:]})" if key.startswith(".") else ""
        return [(f'{path}: "{entry.key} {entry.value}" → "{line}"{wider}', why, changed)]
    tables = inputs.param("smtp_tls_policy_maps").value
    for ref in table_refs(tables):
        kind, _, path = ref.partition(":")
        if kind in FILE_TYPES and path in inputs.maps:
            changed = inputs.with_map(path, inputs.maps[path].rstrip("\n") + f"\n{line}\n")
            return [(f'{path}: add "{line}"', why, changed)]
    if tables:
        return []
    changed = inputs.with_param(
        "smtp_tls_policy_maps", f"texthash:{_POLICY_FILE}", "main.cf, the suggested change"
    ).with_map(_POLICY_FILE, line + "\n")
    return [(f'main.cf: smtp_tls_policy_maps = texthash:{_POLICY_FILE}, with "{line}"', why, changed)]


def _checked(candidates: list[Candidate], recipient: str, digest_of: DigestOf | None, via: str) -> tuple[Fix, ...]:
    fixes: dict[str, Fix] = {}
    for change, why, changed in candidates:
        if change in fixes:
            continue
        after = decide(changed, recipient, digest_of=digest_of, via=via).prediction
        if after.status == "sent" and after.certain:
            fixes[change] = Fix(change, why, after)
        if len(fixes) >= _MAX_FIXES:
            break
    return tuple(fixes.values())
