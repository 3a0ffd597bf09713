"""Chain trust and certificate fingerprints, as OpenSSL and Postfix judge them, from the scenario's ``pki`` specs.

Chain trust (OpenSSL 3.0 ``X509_verify_cert``, default flags, trusted certificates first): starting at the server's
certificate, each issuer is taken from the trust store (the CAs of ``postfix.trust`` that the harness puts in
``smtp_tls_CAfile``/``smtp_tls_CApath``) when it is there, else from what the server sent (``servers.HOST.chain``:
``full`` = the intermediates, ``leaf`` = nothing, ``with-root`` = the intermediates and the root). The chain is
trusted when it ends at a self-signed CA of the trust store (an intermediate alone in the store is not an anchor:
Postfix sets no ``X509_V_FLAG_PARTIAL_CHAIN``) and every certificate on it is within its validity dates. A
self-signed server certificate is never trusted. Postfix logs OpenSSL's reason (``src/tls/tls_verify.c``):
``self-signed certificate``, ``untrusted issuer /CN=…``, ``certificate has expired``, ``certificate not yet
valid``. RSA keys of 1024 bits pass at OpenSSL security level 0/1, which is what Postfix uses by default (observed
on 3.7.11).

Fingerprints (``fingerprint`` level, Postfix 3.7 ``tls_dane_add_fpt_digests``): each ``match=`` value (``|``
between values in the policy table, comma or space in ``smtp_tls_fingerprint_cert_match``) is compared with both the
certificate digest and the public-key digest of the server's certificate, with ``smtp_tls_fingerprint_digest``
(sha256 at compatibility level 3.6). The certificates are made at run time, so the model compares the
``{{ fingerprint NAME }}`` / ``{{ pubkey_fingerprint NAME }}`` placeholders (:mod:`harness.derived`) by NAME;
a literal digest is compared only when a ``digest_of`` callable is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from harness._pki_formats import parse_dn, validity_window
from harness.derived import parse as parse_derived
from harness.model import CaSpec, CertSpec

__all__ = [
    "ChainCheck",
    "DigestOf",
    "FingerprintCheck",
    "check_chain",
    "check_fingerprints",
    "common_names",
    "readable",
    "symbolic",
]

#: As harness.pki issues them: a leaf lives a year, a CA ten years, unless the scenario gives dates.
_LEAF_LIFETIME = timedelta(days=365)
_CA_LIFETIME = timedelta(days=3650)

#: (certificate NAME, digest name, public key?) → the colon-separated upper-case hex digest.
DigestOf = Callable[[str, str, bool], str]

_TEMPLATE = re.compile(r"\{\{([^{}\n]*)\}\}")
_SYMBOL = re.compile(r"\{\{(fingerprint|pubkey_fingerprint)/([^/{}\s]+)/(\w+)\}\}")


def symbolic(text: str) -> str:
    """``{{ fingerprint mx }}`` → ``{{fingerprint/mx/sha256}}``: one word, as the real digest is once the harness
    substitutes it (so that a policy entry splits into the same attributes); other templates are left alone."""

    def one(m: re.Match[str]) -> str:
        try:
            derived = parse_derived(m.group(1))
        except ValueError:
            return m.group(0)
        if derived.function == "tlsa":
            return m.group(0)
        return f"{{{{{derived.function}/{derived.name}/{derived.digest}}}}}"

    return _TEMPLATE.sub(one, text)


def readable(text: str) -> str:
    """The inverse of :func:`symbolic`, for showing: ``{{ fingerprint mx }}`` (the digest named unless sha256)."""

    def one(m: re.Match[str]) -> str:
        digest = "" if m.group(3) == "sha256" else f" {m.group(3)}"
        return f"{{{{ {m.group(1)} {m.group(2)}{digest} }}}}"

    return _SYMBOL.sub(one, text)


@dataclass(frozen=True)
class ChainCheck:
    """OpenSSL's verdict on the chain a server presents.

    Attributes:
        trusted: whether the chain verifies against the trust store.
        path: the chain as built, leaf first, each with where it came from (``digicert-root (trust store)``).
        problem: OpenSSL's reason as Postfix logs it, when not trusted.
    """

    trusted: bool
    path: tuple[str, ...]
    problem: str | None = None


@dataclass(frozen=True)
class FingerprintCheck:
    """Whether a ``fingerprint`` level match list names the server's certificate.

    Attributes:
        matched: True, False, or None when a literal digest could not be compared.
        why: in words.
    """

    matched: bool | None
    why: str


def common_names(spec: CertSpec | CaSpec) -> tuple[str, ...]:
    """The subject CNs of a certificate spec: its ``cn``, the CNs of its ``subject`` DN, or (as
    :mod:`harness.pki` does) its first DNS ``san`` entry."""
    if isinstance(spec, CertSpec) and spec.cn:
        return (spec.cn,)
    if spec.subject:
        name = parse_dn(spec.subject)
        return tuple(str(a.value) for a in name if a.oid.dotted_string == "2.5.4.3")
    if isinstance(spec, CertSpec):
        dns = [s for s in spec.san if not _looks_ip(s)]
        return (dns[0],) if dns else ()
    return ()


def check_chain(
    leaf: str,
    *,
    certs: Mapping[str, CertSpec],
    cas: Mapping[str, CaSpec],
    chain: str,
    trust: Sequence[str],
    now: datetime,
) -> ChainCheck:
    """Verify the chain of certificate ``leaf`` as the server sends it in mode ``chain`` against ``trust``."""
    spec = certs[leaf]
    path = [f"{leaf} (the server's certificate)"]
    if spec.self_signed or spec.issuer is None:
        return ChainCheck(False, tuple(path), "self-signed certificate")
    sent = _sent_cas(spec.issuer, cas, chain)
    on_path: list[tuple[str, CaSpec]] = []
    issuer: str | None = spec.issuer
    problem = None
    while issuer is not None:
        ca = cas[issuer]
        dn = ca.subject if ca.subject.startswith("/") else "/CN=" + ca.subject
        if issuer in trust:
            path.append(f"{issuer} (in the trust store)")
        elif issuer in sent:
            path.append(f"{issuer} (sent by the server)")
        else:
            problem = f"untrusted issuer {dn}"
            break
        on_path.append((issuer, ca))
        if ca.issuer is None:
            if issuer not in trust:
                problem = (
                    f"untrusted issuer {dn} (the root {issuer} was sent by the server but is not in the trust store)"
                )
            break
        issuer = ca.issuer
        if len(on_path) > 20:
            break
    if problem is None:
        problem = _dates(leaf, spec, on_path, now)
    return ChainCheck(problem is None, tuple(path), problem)


def check_fingerprints(
    values: Sequence[str], leaf: str, *, digest: str, digest_of: DigestOf | None
) -> FingerprintCheck:
    """Whether any fingerprint of ``values`` is the certificate or public-key digest of certificate ``leaf``."""
    unknown = []
    for value in values:
        text = value.strip()
        symbol = _SYMBOL.fullmatch(text)
        if symbol:
            function, name, its_digest = symbol.groups()
            if name == leaf and its_digest == digest:
                kind = "public-key" if function == "pubkey_fingerprint" else "certificate"
                return FingerprintCheck(True, f"{readable(text)} is the {kind} {digest} digest of {leaf}")
            continue
        if digest_of is None:
            unknown.append(text)
            continue
        wanted = text.upper().replace(":", "")
        for public_key in (False, True):
            if digest_of(leaf, digest, public_key).replace(":", "").upper() == wanted:
                return FingerprintCheck(True, f"{text} is a {digest} digest of {leaf}")
    if unknown:
        return FingerprintCheck(None, f"literal digest(s) {', '.join(unknown)} cannot be compared before the run")
    return FingerprintCheck(False, f"no value is a {digest} digest of {leaf} (certificate or public key)")


def _sent_cas(issuer: str, cas: Mapping[str, CaSpec], chain: str) -> set[str]:
    """The CA names a server sends along with a leaf issued by ``issuer`` (``servers.HOST.chain``)."""
    if chain == "leaf":
        return set()
    sent: set[str] = set()
    name: str | None = issuer
    while name is not None and name in cas and name not in sent:
        ca = cas[name]
        if ca.issuer is None and chain != "with-root":
            break
        sent.add(name)
        name = ca.issuer
    return sent


def _dates(leaf: str, spec: CertSpec, cas: list[tuple[str, CaSpec]], now: datetime) -> str | None:
    items: list[tuple[str, CertSpec | CaSpec, timedelta]] = [(leaf, spec, _LEAF_LIFETIME)]
    items += [(name, ca, _CA_LIFETIME) for name, ca in cas]
    for name, item, lifetime in items:
        start, end = validity_window(now, item.not_before, item.not_after, lifetime=lifetime)
        if now > end:
            return f"certificate has expired ({name}, not after {end:%Y-%m-%d %H:%M} UTC)"
        if now < start:
            return f"certificate not yet valid ({name}, not before {start:%Y-%m-%d %H:%M} UTC)"
    return None


def _looks_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
