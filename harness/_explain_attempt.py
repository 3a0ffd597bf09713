"""One connection attempt: what Postfix 3.7's SMTP client does with one server address, step by step.

Rules (Postfix 3.7 ``src/smtp/smtp_proto.c`` ``smtp_start_tls``/``smtp_helo``, ``src/smtp/smtp_connect.c``,
``src/tls/tls_client.c``; observed on 3.7.11 where marked in ``scenarios/faults``):

* ``none``: no STARTTLS. ``may``: STARTTLS when offered, else plaintext; a refused STARTTLS continues in plaintext.
  ``encrypt`` and above: not offered → ``4.7.4 TLS is required, but was not offered by host H[A]``; refused →
  the server's reply and DSN (4xx defers, 5xx bounces: ``smtp_site_fail``).
* A handshake that fails (``tls.handshake: abort``, no common TLS version) → ``4.7.5 Cannot start TLS: handshake
  failure``, at ``may`` too on the first attempt (the plaintext retry waits for ``minimal_backoff_time``).
  At levels that check the certificate Postfix runs OpenSSL at security level 1, where OpenSSL 3 refuses the SHA-1
  signatures of TLSv1/TLSv1.1 (observed on 3.7.11, scenarios/faults/tls-versions.yaml). Postfix ≤ 3.5 does not know
  the ``>=TLSv1.2`` form of the protocols parameters (3.6+): the session fails the same way (observed on 3.5.25).
  No cipher in common (Postfix's exclusions against a server's cipher list, :mod:`harness._explain_ciphers`):
  the same failure, at ``may`` too (observed on 3.5.25, 3.7.11 and 3.10.13).
* ``may``/``encrypt``: the certificate is not checked; the TLS line says ``Trusted`` when the chain verifies, else
  ``Untrusted`` (``Anonymous`` only without a server certificate). ``fingerprint``: a digest must match →
  ``Verified``; else ``Untrusted`` on 3.6+ (the digests are DANE records there), and on ≤ 3.5 ``Trusted`` for a
  trusted chain (observed on 3.5.25, scenarios/faults/certs-keys.yaml). ``verify``/``secure``: the chain must
  verify and a reference name match → ``Verified``; otherwise ``4.7.5 Server certificate not verified``. The TLS
  line of such a failure says ``Untrusted`` on 3.6.0 to 3.10.3 (OpenSSL's host check is part of chain verification
  there) and ``Trusted`` for a trusted chain with a wrong name on ≤ 3.5 and ≥ 3.10.4 (postfix-tls-notes.md).
* Every failure here is soft except a 5xx reply: Postfix tries the next address, and reports the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from harness._explain_ciphers import check_ciphers, seclevel_caveat
from harness._explain_dane import DANE_LEVELS, check_dane, dane_host
from harness._explain_inputs import CaseInputs
from harness._explain_names import CertNames, NameCheck, ReferenceName, certificate_names, check_names, references
from harness._explain_policy import TlsPolicy
from harness._explain_route import Address, MxHost, Route
from harness._explain_smtp import (
    CASE_TIMEOUT_S,
    Outcome,
    Slowness,
    after_tls,
    ehlo_offers_starttls,
    opening,
    reply_dsn,
    slowness,
    stage_timeout,
)
from harness._explain_trust import ChainCheck, DigestOf, check_chain, check_fingerprints, common_names
from harness.model import ServerSpec

__all__ = ["Attempt", "attempt"]

_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


#: Postfix ≤ 3.5 matched names with its own code (src/tls/tls_verify.c: a wildcard may cover several labels).
_OLD_MATCHER = "name matching of Postfix 3.5 and older (its own matcher, not OpenSSL's) is not modelled"
_PENDING = Outcome("deferred", "4.0.0", "", "none", "soft")


@dataclass(frozen=True)
class Attempt:
    """One address tried, with the reasoning.

    Attributes:
        host, address: where.
        outcome: how it ended.
        steps: the reasoning in plain words, in order.
        cert: the ``pki.certs`` NAME the server presented (None without TLS).
        cert_names: its names as OpenSSL matches them.
        references: the reference names checked (``verify``/``secure``).
        names: the name check's outcome.
        chain: the chain check's outcome.
        sni: the SNI name Postfix sent (None: none).
    """

    host: MxHost
    address: Address
    outcome: Outcome
    steps: tuple[str, ...]
    cert: str | None = None
    cert_names: CertNames | None = None
    references: tuple[ReferenceName, ...] = ()
    names: NameCheck | None = None
    chain: ChainCheck | None = None
    sni: str | None = None


def attempt(
    inputs: CaseInputs,
    policy: TlsPolicy,
    rt: Route,
    host: MxHost,
    address: Address,
    recipient: str,
    *,
    digest_of: DigestOf | None = None,
) -> Attempt:
    """Follow Postfix through one connection to ``address`` of ``host`` for ``recipient``."""
    steps: list[str] = []
    at = f"{host.name}[{address.text}]:{rt.port}"

    def done(outcome: Outcome) -> Attempt:
        return Attempt(host, address, outcome, tuple(steps))

    if policy.level == "invalid":
        steps.append(f"Postfix warns ({policy.problem}) and skips the host: TLS policy lookup failed.")
        return done(Outcome("deferred", "4.7.5", "client TLS configuration problem", "none", "skip"))
    if policy.level in DANE_LEVELS and policy.dane is None:
        dane = dane_host(inputs, policy.level, policy.global_level.value, policy.service, rt, host)
        if dane.level == "invalid":
            steps.append(dane.why)
            return done(Outcome("deferred", "4.7.5", dane.reason, "none", "skip", dane.certain, dane.note))
        policy = replace(policy, dane=dane)
        if dane.level in ("may", "encrypt"):
            protocols = inputs.param("smtp_tls_protocols" if dane.level == "may" else "smtp_tls_mandatory_protocols")
            policy = replace(policy, level=dane.level, protocols=protocols.value)
        result = attempt(inputs, policy, rt, host, address, recipient, digest_of=digest_of)
        result = replace(result, steps=(dane.why, *result.steps))
        if not dane.certain and result.outcome.certain:
            result = replace(result, outcome=replace(result.outcome, certain=False, note=dane.note))
        return result
    level = policy.level
    wrapper = inputs.param("smtp_tls_wrappermode", policy.service).value.lower() in ("yes", "true", "1")
    if wrapper and level in ("none", "may"):
        steps.append('smtp_tls_wrappermode = yes needs "encrypt" or stronger: Postfix warns and skips the host.')
        return done(Outcome("deferred", "4.3.0", "server unavailable or unable to receive mail", "none", "silent"))
    if address.server is None:
        steps.append(f"Nothing listens at {address.text} port {rt.port}: the connection is refused.")
        return done(Outcome("deferred", "4.4.1", f"connect to {at}: Connection refused", "none", "refused"))
    server = inputs.servers[address.server]
    slow = slowness(inputs, policy, server, at)
    result = _session(inputs, policy, rt, host, address, server, recipient, steps, slow, wrapper, digest_of)
    sasl = inputs.param("smtp_sasl_auth_enable", policy.service).value.lower() in ("yes", "true", "1")
    if sasl and server.auth and result.outcome.certain:
        note = "SASL authentication (smtp_sasl_auth_enable = yes) is not modelled"
        result = replace(result, outcome=replace(result.outcome, certain=False, note=note))
    return result


def _session(
    inputs: CaseInputs,
    policy: TlsPolicy,
    rt: Route,
    host: MxHost,
    address: Address,
    server: ServerSpec,
    recipient: str,
    steps: list[str],
    slow: Slowness,
    wrapper: bool,
    digest_of: DigestOf | None,
) -> Attempt:
    """The connection once a server answers: greeting, EHLO, STARTTLS, handshake, then the certificate."""
    at = f"{host.name}[{address.text}]:{rt.port}"
    level = policy.level

    def done(outcome: Outcome) -> Attempt:
        return Attempt(host, address, outcome, tuple(steps))

    def plaintext(why: str) -> Attempt:
        steps.append(why)
        return done(after_tls(server, recipient, "none", at, steps, slow))

    implicit = rt.port in server.implicit_tls
    if implicit and not wrapper:
        steps.append(f"Port {rt.port} speaks TLS from the first byte; Postfix waits for a plaintext greeting.")
        reason = f"conversation with {at} timed out while receiving the initial server greeting"
        timed_out = Outcome("deferred", "4.4.2", reason, "none", "soft")
        limit = stage_timeout(inputs, policy, "greeting")
        if limit >= CASE_TIMEOUT_S:
            note = f"smtp_helo_timeout = {limit:g} s is longer than a case waits"
            return done(replace(timed_out, certain=False, note=note))
        return done(timed_out)
    if wrapper and not implicit:
        note = "smtp_tls_wrappermode = yes against a plaintext port is not modelled"
        return done(Outcome("deferred", "4.7.5", "Cannot start TLS: handshake failure", "none", "soft", False, note))
    if not wrapper:
        unusual = opening(server, slow)
        if unusual is not None:
            steps.append(unusual.note)
            return done(unusual)
    if level == "none":
        return plaintext('Security level "none": Postfix does not use STARTTLS.')
    if not wrapper:
        engine = _engine_problem(inputs, policy)
        if engine:
            steps.append(engine)
            if level == "may":
                result = plaintext('At "may" Postfix then delivers in plaintext.')
            else:
                reason = "TLS is required, but our TLS engine is unavailable"
                result = done(Outcome("deferred", "4.7.5", reason, "none", "soft"))
            cert_file = inputs.param("smtp_tls_cert_file", policy.service).value
            if not cert_file.startswith("/etc/postfix/"):  # the image may have it (Debian's snakeoil certificate)
                note = f"whether {cert_file} exists in the image is not modelled"
                result = replace(result, outcome=replace(result.outcome, certain=False, note=note))
            return result
        if server.cert is None or not server.starttls or not ehlo_offers_starttls(server):
            why = "it has no certificate" if server.cert is None else "its EHLO reply does not list STARTTLS"
            steps.append(f"The server does not offer STARTTLS ({why}).")
            if level == "may":
                return plaintext('At "may" Postfix continues in plaintext.')
            reason = f"TLS is required, but was not offered by host {host.name}[{address.text}]"
            return done(Outcome("deferred", "4.7.4", reason, "none", "soft"))
        slow_starttls = slow("starttls", "none")
        if slow_starttls is not None:
            steps.append(slow_starttls.note)
            return done(slow_starttls)
        refusal = server.replies.starttls
        if refusal == "drop":
            note = "a connection dropped after STARTTLS is not modelled"
            return done(Outcome("deferred", "4.4.2", "lost connection", "none", "soft", False, note))
        if refusal is not None and not refusal.startswith("2"):
            steps.append(f"The server answers STARTTLS with {refusal!r}.")
            if level == "may":
                return plaintext('At "may" Postfix continues in plaintext.')
            code, dsn = reply_dsn(refusal)
            status, kind = ("bounced", "hard") if code.startswith("5") else ("deferred", "soft")
            reason = f"TLS is required, but host {host.name}[{address.text}] refused to start TLS: {refusal}"
            return done(Outcome(status, dsn, reason, "none", kind))
        steps.append("The server offers STARTTLS and Postfix uses it.")
    else:
        steps.append(f"smtp_tls_wrappermode = yes: TLS from the first byte on port {rt.port}.")
    failure, sure = _handshake_problem(server, policy, inputs.version)
    handshake_failure = Outcome("deferred", "4.7.5", "Cannot start TLS: handshake failure", "none", "soft")
    if failure:
        steps.append(failure)
        note = "" if sure else f"the TLS versions OpenSSL allows with Postfix {inputs.release} are not modelled"
        return done(replace(handshake_failure, certain=sure, note=note))
    ciphers = check_ciphers(inputs, policy, server, _common_versions(server, policy))
    if ciphers.step:
        steps.append(ciphers.step)
    if ciphers.fails:
        return done(handshake_failure)
    result = _certificate(inputs, policy, rt, host, address, server, recipient, steps, slow, digest_of)
    if not ciphers.certain and result.outcome.certain:
        result = replace(result, outcome=replace(result.outcome, certain=False, note=ciphers.note))
    return result


def _certificate(
    inputs: CaseInputs,
    policy: TlsPolicy,
    rt: Route,
    host: MxHost,
    address: Address,
    server: ServerSpec,
    recipient: str,
    steps: list[str],
    slow: Slowness,
    digest_of: DigestOf | None,
) -> Attempt:
    """The certificate part: SNI, chain, names or fingerprint, and the resulting TLS line and status."""
    at = f"{host.name}[{address.text}]:{rt.port}"
    sni = {"": None, "hostname": host.name, "nexthop": rt.nexthop}.get(policy.servername, policy.servername)
    chosen = server.cert
    assert chosen is not None
    if sni is not None:
        by_sni = {k.lower(): v for k, v in server.sni.items()}.get(sni.lower())
        steps.append(
            f"Postfix sends SNI {sni} ({policy.servername_origin}); the server presents "
            f"{'certificate ' + by_sni if by_sni else 'its default certificate ' + chosen}."
        )
        chosen = by_sni or chosen
    elif server.sni:
        steps.append(
            f"Postfix sends no SNI ({policy.servername_origin}): the server presents its default certificate {chosen}."
        )
    spec = inputs.certs[chosen]
    cert_names = certificate_names(spec.san, common_names(spec))
    chain = check_chain(
        chosen, certs=inputs.certs, cas=inputs.cas, chain=server.chain, trust=inputs.trust, now=inputs.now
    )
    trust_words = "verifies" if chain.trusted else f"does not verify ({chain.problem})"
    steps.append(f"Certificate {chosen}: {cert_names.describe()}. Its chain {trust_words}: {' ← '.join(chain.path)}.")
    base = Attempt(host, address, _PENDING, (), cert=chosen, cert_names=cert_names, chain=chain, sni=sni)

    def done(outcome: Outcome, refs: tuple[ReferenceName, ...] = (), names: NameCheck | None = None) -> Attempt:
        return replace(base, outcome=outcome, steps=tuple(steps), references=refs, names=names)

    plain_tls = "Trusted" if chain.trusted else "Untrusted"
    level = policy.level
    if level in ("may", "encrypt"):
        steps.append(f'At "{level}" Postfix does not check the certificate: TLS is "{plain_tls}".')
        out = after_tls(server, recipient, plain_tls, at, steps, slow)
        caveat = seclevel_caveat(inputs, policy)
        return done(replace(out, certain=False, note=caveat) if caveat else out)
    not_verified = Outcome("deferred", "4.7.5", "Server certificate not verified", "Untrusted", "soft")
    if level in DANE_LEVELS and policy.dane is not None:
        refs, _ = references((host.name, rt.nexthop), nexthop=rt.nexthop, hostname=host.name)
        names = check_names(refs, cert_names)
        verdict = check_dane(
            policy.dane,
            leaf=chosen,
            certs=inputs.certs,
            cas=inputs.cas,
            chain=server.chain,
            pkix_trusted=chain.trusted,
            version=inputs.version,
            names_match=names.matched,
            cert_names=cert_names.host_names,
        )
        steps.extend(verdict.steps)
        if verdict.reason:
            out = Outcome("deferred", "4.7.5", verdict.reason, verdict.tls, "soft")
        else:
            out = after_tls(server, recipient, verdict.tls, at, steps, slow)
        if not verdict.certain:
            out = replace(out, certain=False, note=verdict.note)
        return done(out, refs, names)
    if level == "fingerprint":
        digest = inputs.param("smtp_tls_fingerprint_digest", policy.service).value
        fp = check_fingerprints(policy.match, chosen, digest=digest, digest_of=digest_of)
        steps.append(f"Fingerprint check ({policy.match_origin}): {fp.why}.")
        if fp.matched is None:
            return done(replace(not_verified, certain=False, note=fp.why))
        if fp.matched:
            return done(after_tls(server, recipient, "Verified", at, steps, slow))
        if inputs.version < (3, 6):  # Postfix 3.5 checks the digest after OpenSSL's chain verification
            tls = "Trusted" if chain.trusted else "Untrusted"
            steps.append(f'No digest matches: Postfix 3.5 logs "{tls} TLS connection established" and defers.')
            return done(replace(not_verified, tls=tls))
        steps.append("OpenSSL: num=65:no matching DANE TLSA records; Postfix defers.")
        return done(not_verified)
    if inputs.version < (3, 6) and chain.trusted:  # then the names decide, with a matcher the model lacks
        not_verified = replace(not_verified, certain=False, note=_OLD_MATCHER)
    refs, warnings = references(policy.match, nexthop=rt.nexthop, hostname=host.name)
    names = check_names(refs, cert_names)
    for warning in warnings:
        steps.append(f"Postfix warns: {warning}.")
    steps.append(_names_step(refs, names, policy))
    if chain.trusted and names.matched:
        delivered = after_tls(server, recipient, "Verified", at, steps, slow)
        if inputs.version < (3, 6):
            delivered = replace(delivered, certain=False, note=_OLD_MATCHER)
        return done(delivered, refs, names)
    tls = "Untrusted" if not chain.trusted else _mismatch_tls(inputs.version)
    problem = (
        chain.problem
        if not chain.trusted
        else ("num=64:IP address mismatch" if not names.ip_ok else "num=62:hostname mismatch")
    )
    steps.append(
        f'Postfix logs "server certificate verification failed for {at}: {problem}", then "{tls} TLS '
        'connection established", and defers: Server certificate not verified.'
    )
    return done(replace(not_verified, tls=tls), refs, names)


def _names_step(refs: tuple[ReferenceName, ...], names: NameCheck, policy: TlsPolicy) -> str:
    listed = ", ".join(r.describe() for r in refs) or "none"
    head = f"Names checked: {listed}."
    if names.matched:
        pairs = ", ".join(f"{cert} matches {ref}" for ref, cert in names.matches) or f"IP address {names.ip_required}"
        return f"{head} The certificate's {pairs}."
    if not refs:
        return f"{head} With no name to check Postfix fails the check."
    if not names.ip_ok:
        return f"{head} The IP address {names.ip_required} is not an IP subjectAltName of the certificate."
    return f"{head} None of them matches a name of the certificate."


def _engine_problem(inputs: CaseInputs, policy: TlsPolicy) -> str | None:
    """Why Postfix's TLS engine would not start (``smtp_tls_cert_file`` names a file that the scenario does not
    write: observed on 3.7.11, scenarios/faults/tls-implicit-and-client-cert.yaml), if so."""
    cert_file = inputs.param("smtp_tls_cert_file", policy.service).value
    if cert_file and cert_file not in inputs.maps:
        return f"smtp_tls_cert_file = {cert_file} does not exist: Postfix's TLS engine is unavailable."
    return None


def _handshake_problem(server: ServerSpec, policy: TlsPolicy, version: tuple[int, ...]) -> tuple[str | None, bool]:
    """Why the TLS handshake fails (None: it does not), and whether the model is sure. The TLSv1.2 floor at levels
    that check the certificate is OpenSSL 3's (Debian bookworm and later); on an older release it is not modelled."""
    if server.tls.handshake == "abort":
        return "The server accepts STARTTLS and closes the connection before the handshake.", True
    if version < (3, 6) and re.search(r"[<>]=", policy.protocols):
        return (
            f"Postfix {'.'.join(map(str, version))} does not know the protocols form {policy.protocols!r} (new in "
            "3.6): it rejects the list and the TLS session fails.",
            True,
        )
    low = _VERSIONS.index(server.tls.min_version or "TLSv1.2")
    high = _VERSIONS.index(server.tls.max_version or "TLSv1.3")
    configured = _client_versions(policy.protocols)
    if policy.level in DANE_LEVELS and high < _VERSIONS.index("TLSv1.2"):
        return "A server below TLSv1.2 at a DANE level: the TLS versions OpenSSL allows are not modelled.", False
    client = _usable_versions(configured, policy)
    common = _common_versions(server, policy)
    if not common:
        sure = version >= (3, 6) or not any(v in configured for v in _VERSIONS[low : high + 1])
        return (
            f"No TLS version in common: the server allows {_VERSIONS[low]} to {_VERSIONS[high]}, Postfix "
            f'{", ".join(v for v in _VERSIONS if v in client) or "none"} at "{policy.level}" '
            f"(protocols {policy.protocols!r}; levels that check the certificate need TLSv1.2+ with OpenSSL 3).",
            sure,
        )
    return None, True


def _usable_versions(configured: set[str], policy: TlsPolicy) -> set[str]:
    """The versions Postfix can use: levels that check the certificate need TLSv1.2+ with OpenSSL 3."""
    if policy.level in ("fingerprint", "verify", "secure"):
        return configured & {"TLSv1.2", "TLSv1.3"}
    return configured


def _common_versions(server: ServerSpec, policy: TlsPolicy) -> list[str]:
    """The TLS versions both sides allow, lowest first (the highest is negotiated)."""
    low = _VERSIONS.index(server.tls.min_version or "TLSv1.2")
    high = _VERSIONS.index(server.tls.max_version or "TLSv1.3")
    client = _usable_versions(_client_versions(policy.protocols), policy)
    return [v for v in _VERSIONS[low : high + 1] if v in client]


def _client_versions(spec: str) -> set[str]:
    """The TLS versions a Postfix protocols setting allows (``>=TLSv1.2``, ``!TLSv1, !TLSv1.1``, ``TLSv1.3``)."""
    allowed = set(_VERSIONS)
    included: set[str] = set()
    for token in spec.replace(",", " ").replace(":", " ").split():
        if token.startswith(">=") and token[2:] in _VERSIONS:
            allowed &= set(_VERSIONS[_VERSIONS.index(token[2:]) :])
        elif token.startswith("<=") and token[2:] in _VERSIONS:
            allowed &= set(_VERSIONS[: _VERSIONS.index(token[2:]) + 1])
        elif token.startswith("!"):
            allowed.discard(token[1:])
        elif token in _VERSIONS:
            included.add(token)
    return allowed & included if included else allowed


def _mismatch_tls(version: tuple[int, ...]) -> str:
    """The TLS line's level for a trusted chain with a wrong name: ``Untrusted`` on 3.6.0 to 3.10.3."""
    return "Untrusted" if (3, 6) <= version[:2] and version < (3, 10, 4) else "Trusted"
