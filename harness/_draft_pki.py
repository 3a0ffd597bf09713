"""The ``pki`` section of a draft: the certificates the servers presented, as far as the paste shows them. Private:
part of :mod:`harness.draft`.

Sources, best first: posttls-finger's ``-C`` chain print (subject and issuer of every certificate sent, and with
its PEM blocks the names, key and dates), the ``depth=N verify=V subject=…`` lines of ``smtp_tls_loglevel`` 2
(the chain OpenSSL built, trust anchor included), ``subject_CN=…, issuer_CN=…`` (level 1). Names come from
``subjectAltName:`` lines (Postfix ≤ 3.5 at level 2) or the PEM. Whether the chain was trusted comes from the
``… TLS connection established`` level and the verification failures (src/tls/tls_verify.c):
``num=62:hostname mismatch`` and ``num=64`` mean a trusted chain with the wrong name (3.6+ logs such a session
``Untrusted``); ``untrusted issuer …``, ``self-signed certificate`` and ``not trusted by local or TLSA policy`` an
untrusted one. Everything taken from elsewhere than the paste is said in :attr:`DraftedPki.guesses`.
"""

from __future__ import annotations

__all__ = ["DraftedPki", "draft_pki", "slug"]

import re
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness._draft_facts import Peer, PeerKey
from harness._pki_formats import format_dn, parse_dn, san_entry

_DIGEST_BY_LENGTH = {16: "md5", 20: "sha1", 28: "sha224", 32: "sha256", 48: "sha384", 64: "sha512"}
_EC_KEYS = {"P-256": "ec256", "prime256v1": "ec256", "P-384": "ec384", "secp384r1": "ec384", "P-521": "ec521"}
_EC_KEYS |= {"secp521r1": "ec521", "secp256r1": "ec256"}
_RSA_SIZES = (1024, 2048, 3072, 4096)
_UNTRUSTED = re.compile(r"untrusted issuer|self-signed|not trusted by local|unable to get", re.IGNORECASE)
_NAME_MISMATCH_NUMS = (62, 64)
_SAN_CHARACTERS = re.compile(r"[A-Za-z0-9_*.-]+")  # DNS names as certificates carry them, wildcards included
_DNS_NAME = re.compile(
    r"(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)


@dataclass
class DraftedPki:
    """The drafted certificates.

    Attributes:
        cas, certs: ``pki.cas`` and ``pki.certs`` entries (plain dicts in YAML key order).
        cert_of: the ``pki.certs`` NAME each server presents.
        trust: the CA NAMEs for ``postfix.trust`` (roots of the chains the log shows trusted).
        templates: a fingerprint as logged → the ``{{ … }}`` placeholder that gives the drafted certificate's own.
        guesses: what is not in the paste, as sentences.
    """

    cas: dict[str, dict[str, Any]] = field(default_factory=dict)
    certs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cert_of: dict[PeerKey, str] = field(default_factory=dict)
    trust: list[str] = field(default_factory=list)
    templates: dict[str, str] = field(default_factory=dict)
    guesses: list[str] = field(default_factory=list)
    _ca_by_dn: dict[tuple[str, str | None], str] = field(default_factory=dict)
    _cert_by_identity: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def names(self, key: PeerKey) -> list[str]:
        """The names Postfix matches in the certificate drafted for the server ``key``: its DNS SANs, else the
        CommonName of its subject (RFC 6125 §6.4.4; IP SANs do not count)."""
        spec = self.certs.get(self.cert_of.get(key, ""), {})
        sans = [name for name in spec.get("san", []) if isinstance(san_entry(name), x509.DNSName)]
        if sans:
            return sans
        subject = spec.get("cn") or spec.get("subject") or ""
        return [subject.rsplit("/CN=", 1)[-1]] if subject else []


def slug(text: str, *, fallback: str = "x") -> str:
    """A scenario NAME from free text: lower case, runs of other characters as one ``-`` (``*.`` dropped)."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower().replace("*.", "")).strip("-")
    return words[:50].strip("-") or fallback


def draft_pki(groups: list[tuple[str, list[Peer]]]) -> DraftedPki:
    """Draft a certificate (and its CAs) for every server that presented one or failed its handshake.

    Args:
        groups: (next-hop, its servers) pairs. A server whose certificate the log does not describe (at
            ``smtp_tls_loglevel`` 1 only the ``… TLS connection established`` line is logged) is taken to present
            the certificate of a described server of the same next-hop; when none is described, the undescribed
            servers of a next-hop share one certificate that names them all.
    """
    pki = DraftedPki()
    any_trusted = False
    for nexthop, peers in groups:
        undescribed: list[Peer] = []
        described = None
        for peer in peers:
            if peer.described:
                any_trusted |= _draft_one(pki, peer)
                described = described or peer
            elif peer.has_certificate or peer.handshake_failed:
                undescribed.append(peer)
        if undescribed and described is not None:
            for peer in undescribed:
                pki.cert_of[peer.key] = pki.cert_of[described.key]
                any_trusted |= _trusted(peer, pki)
            hosts = ", ".join(p.host for p in undescribed)
            pki.guesses.append(f"{hosts}: its certificate is not in the log; taken to be {described.host}'s")
        elif undescribed:
            any_trusted |= _draft_shared(pki, nexthop, undescribed)
    if pki.cas and not any_trusted:
        pki.guesses.append("no chain in the log was trusted: postfix.trust is empty")
    return pki


def _draft_shared(pki: DraftedPki, nexthop: str, peers: list[Peer]) -> bool:
    """One certificate for servers whose certificates the log does not describe: it names them all."""
    first = peers[0]
    notes = [f"the log does not describe it: it names {', '.join(p.host for p in peers)} (the servers' names)"]
    spec: dict[str, Any] = {}
    self_signed = any("self-signed" in reason for p in peers for _, _, reason in p.failures)
    if self_signed:
        spec["self_signed"] = True
    else:
        issuer = _untrusted_issuer(first)
        if issuer is None:
            notes.append(f"its issuer is not in the log: a CA 'Unknown CA of {nexthop}' issues it")
        spec["issuer"] = _add_cas(pki, [issuer or f"/CN=Unknown CA of {nexthop}"[:67]], notes)
    spec["san"] = _usable_sans(list(dict.fromkeys(p.host for p in peers if p.host))) or ["server.invalid"]
    spec["key"] = _key(first, None, notes)
    spec |= _dates(first, None, notes)
    name = _unique(slug(f"{nexthop}-servers", fallback="servers"), pki.certs)
    pki.certs[name] = spec
    pki.guesses.extend(f"certificate {name}: {note}" for note in notes)
    trusted = False
    for peer in peers:
        pki.cert_of[peer.key] = name
        trusted |= _trusted(peer, pki)
    return trusted


def _draft_one(pki: DraftedPki, peer: Peer) -> bool:
    """Add ``peer``'s certificate; returns whether its chain is trusted."""
    pem = _pem_certificate(peer)
    chain = _ca_chain(peer)
    leaf_subject = _leaf_subject(peer, pem)
    sans = _usable_sans(list(peer.sans) or _pem_sans(pem))
    self_issued = [p for p in peer.printed if p.index == 0 and p.issuer == p.subject]
    self_signed = not chain and (
        any("self-signed" in reason for _, _, reason in peer.failures)
        or bool(self_issued)
        or (peer.issuer_cn is not None and peer.issuer_cn == peer.common_name)
    )
    identity = (peer.fingerprint, leaf_subject, peer.common_name, tuple(sans), tuple(chain))
    if identity in pki._cert_by_identity:
        pki.cert_of[peer.key] = pki._cert_by_identity[identity]
        return _trusted(peer, pki)
    notes: list[str] = []
    spec: dict[str, Any] = {}
    if not chain and not self_signed:
        chain = [f"/CN=Unknown CA of {peer.host}"[:67]]
        notes.append("its issuer is not in the log: a CA 'Unknown CA of …' issues it")
    if self_signed:
        spec["self_signed"] = True
    else:
        spec["issuer"] = _add_cas(pki, chain, notes)
    cn = peer.common_name if peer.common_name and _valid_dn(peer.common_name) else None
    if leaf_subject and _valid_dn(leaf_subject):
        spec["subject"] = leaf_subject
    elif cn:
        spec["cn"] = cn
    if not sans and not _names_complete(peer):
        if cn and _DNS_NAME.fullmatch(cn):
            sans = [cn]
            notes.append(f"its DNS names are not in the log: its CommonName {cn} is taken as its one name")
        elif not spec.keys() & {"subject", "cn"}:
            sans = [peer.host]
            notes.append(f"its names are not in the log: {peer.host} (the server's name) is taken")
    if sans:
        spec["san"] = sans
    spec["key"] = _key(peer, pem, notes)
    spec |= _dates(peer, pem, notes)
    name = _unique(slug(peer.common_name or (sans[0] if sans else peer.host), fallback="server"), pki.certs)
    pki.certs[name] = spec
    pki.cert_of[peer.key] = pki._cert_by_identity[identity] = name
    pki.guesses.extend(f"certificate {name}: {note}" for note in notes)
    _templates(pki, name, peer)
    return _trusted(peer, pki)


def _trusted(peer: Peer, pki: DraftedPki) -> bool:
    """Whether the log shows ``peer``'s chain trusted; its root CA is then added to :attr:`DraftedPki.trust`."""
    nums = {num for _, num, _ in peer.failures}
    if any(_UNTRUSTED.search(reason) for _, _, reason in peer.failures):
        return False
    trusted = peer.level in ("Trusted", "Verified") or bool(nums & set(_NAME_MISMATCH_NUMS))
    trusted |= bool(peer.chain) and all(verify for _, verify in peer.chain.values()) and peer.level is None
    trusted |= (
        peer.level == "Untrusted"
        and bool(peer.failures)
        and all("expired" in reason or "not yet valid" in reason for _, _, reason in peer.failures)
    )
    spec = pki.certs.get(pki.cert_of.get(peer.key, ""), {})
    root = _root_of(pki, spec.get("issuer"))
    if trusted and root and root not in pki.trust:
        pki.trust.append(root)
    if peer.level == "Untrusted" and not peer.failures:
        pki.guesses.append(
            f"{peer.namaddr}: the log says Untrusted without a reason (smtp_tls_loglevel 1 at a level that does "
            "not verify): its CA is taken as not trusted"
        )
    return trusted


def _root_of(pki: DraftedPki, name: str | None) -> str | None:
    seen: set[str] = set()
    while name and name in pki.cas and name not in seen:
        seen.add(name)
        issuer = pki.cas[name].get("issuer")
        if issuer is None:
            return name
        name = issuer
    return None


def _ca_chain(peer: Peer) -> list[str]:
    """The subject DNs of the CAs above the leaf, top first (a root, when the log shows one, is first)."""
    printed = sorted(peer.printed, key=lambda p: p.index)
    if printed:
        top_issuer = printed[-1].issuer if printed[-1].issuer != printed[-1].subject else None
        return ([top_issuer] if top_issuer else []) + [p.subject for p in reversed(printed[1:])]
    depths = sorted((d for d in peer.chain if d > 0), reverse=True)
    issuer = _untrusted_issuer(peer)
    if depths:
        top = [issuer] if issuer and issuer != peer.chain[depths[0]][0] else []
        return top + [peer.chain[depth][0] for depth in depths]
    if issuer:
        return [issuer]
    if peer.issuer_cn and peer.issuer_cn != peer.common_name:
        return [peer.issuer_cn]
    return []


def _untrusted_issuer(peer: Peer) -> str | None:
    for _, _, reason in peer.failures:
        if reason.lower().startswith("untrusted issuer "):
            return reason[len("untrusted issuer ") :].strip()
    return None


def _add_cas(pki: DraftedPki, chain: list[str], notes: list[str]) -> str:
    """Add the CAs of ``chain`` (top first); returns the NAME of the one that issues the leaf."""
    parent: str | None = None
    for subject in chain:
        key = (subject, parent)
        if key not in pki._ca_by_dn:
            spec: dict[str, Any] = {"subject": _usable_subject(subject, fallback=f"Drafted CA {len(pki.cas) + 1}")}
            if parent is not None:
                spec["issuer"] = parent
            elif not subject.startswith("/"):
                notes.append(f"its issuer {subject!r} is known by its CommonName only and taken as a root CA")
            name = _unique(slug(_cn_of(subject), fallback="ca"), pki.cas)
            pki.cas[name] = spec
            pki._ca_by_dn[key] = name
        parent = pki._ca_by_dn[key]
    assert parent is not None
    return parent


def _leaf_subject(peer: Peer, pem: x509.Certificate | None) -> str | None:
    printed = [p for p in peer.printed if p.index == 0]
    if printed:
        return printed[0].subject
    if 0 in peer.chain:
        return peer.chain[0][0]
    return format_dn(pem.subject) if pem is not None else None


def _names_complete(peer: Peer) -> bool:
    """Whether the log would have listed DNS names had there been any: Postfix ≤ 3.5 at smtp_tls_loglevel 2 logs
    a ``CommonName`` line after the ``subjectAltName:`` lines (tls_verify.c of 2.11-3.5)."""
    return bool(peer.chain) and peer.common_name is not None and peer.signature is None and not peer.finger


def _key(peer: Peer, pem: x509.Certificate | None, notes: list[str]) -> str:
    """The certificate's key type: from the PEM, the server-signature detail of 3.6+, else the cipher's
    authentication algorithm (a TLS 1.2 ``ECDHE-RSA-…`` cipher needs an RSA key, ``ECDHE-ECDSA-…`` an EC one)."""
    if pem is not None:
        key = pem.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size in _RSA_SIZES:
            return f"rsa{key.key_size}"
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_KEYS:
            return _EC_KEYS[key.curve.name]
    if peer.signature:
        if m := re.search(r"\((\d+) bits\)", peer.signature):
            size = int(m[1])
            if peer.signature.upper().startswith("RSA") and size in _RSA_SIZES:
                return f"rsa{size}"
        for curve, key_type in _EC_KEYS.items():
            if f"({curve})" in peer.signature:
                return key_type
    cipher = peer.cipher or ""
    if "ECDSA" in cipher:
        notes.append(f"its key is not in the log: ec256 (the cipher {cipher} needs an EC key; its curve is a guess)")
        return "ec256"
    if cipher and not cipher.startswith("TLS_"):
        notes.append(f"its key is not in the log: rsa2048 (the cipher {cipher} needs an RSA key; its size is a guess)")
    else:
        notes.append("its key is not in the log: rsa2048")
    return "rsa2048"


def _dates(peer: Peer, pem: x509.Certificate | None, notes: list[str]) -> dict[str, str]:
    """``not_before``/``not_after`` from the PEM, or an expiry/not-yet-valid failure (dates not logged)."""
    if pem is not None:
        start, end = pem.not_valid_before_utc, pem.not_valid_after_utc
        return {"not_before": start.astimezone(UTC).isoformat(), "not_after": end.astimezone(UTC).isoformat()}
    reasons = " ".join(reason for depth, _, reason in peer.failures if not depth)
    if "expired" in reasons:
        notes.append("it has expired (the date is not in the log: yesterday)")
        return {"not_after": "-1d"}
    if "not yet valid" in reasons:
        notes.append("it is not yet valid (the date is not in the log: tomorrow)")
        return {"not_before": "+1d"}
    return {}


def _pem_certificate(peer: Peer) -> x509.Certificate | None:
    for printed in peer.printed:
        if printed.index == 0 and printed.pem:
            try:
                return x509.load_pem_x509_certificate(printed.pem.encode())
            except ValueError:
                return None
    return None


def _pem_sans(pem: x509.Certificate | None) -> list[str]:
    if pem is None:
        return []
    try:
        extension = pem.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*extension.get_values_for_type(x509.DNSName), *map(str, extension.get_values_for_type(x509.IPAddress))]


def _templates(pki: DraftedPki, name: str, peer: Peer) -> None:
    """Placeholders for the logged fingerprints of ``peer``'s certificate (certificate and public key)."""
    pairs = [(peer.fingerprint, "fingerprint"), (peer.pkey_fingerprint, "pubkey_fingerprint")]
    pairs += [(p.cert_digest, "fingerprint") for p in peer.printed if p.index == 0]
    pairs += [(p.pkey_digest, "pubkey_fingerprint") for p in peer.printed if p.index == 0]
    for value, function in pairs:
        digest = _DIGEST_BY_LENGTH.get(len(value.split(":"))) if value else None
        if value and digest:
            pki.templates[value.upper()] = f"{{{{ {function} {name} {digest} }}}}"


def _usable_sans(names: list[str]) -> list[str]:
    """The names a certificate can carry (:func:`harness._pki_formats.san_entry`); a mangled one is dropped."""
    usable = []
    for name in names:
        try:
            entry = san_entry(name)
        except ValueError:
            continue
        if isinstance(entry, x509.IPAddress) or _SAN_CHARACTERS.fullmatch(name):
            usable.append(name)
    return usable


def _usable_subject(dn: str, *, fallback: str) -> str:
    """``dn`` when the harness can make a certificate with it, else its CommonName, else ``fallback``."""
    for candidate in (dn, _cn_of(dn)):
        if _valid_dn(candidate):
            return candidate
    return fallback


def _valid_dn(text: str) -> bool:
    try:
        parse_dn(text)
    except ValueError:
        return False
    return True


def _cn_of(dn: str) -> str:
    m = re.search(r"/CN=([^/]*)", dn)
    return (m[1] if m else dn.rsplit("=", 1)[-1]).strip() or dn


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    return candidate
