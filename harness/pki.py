"""Certificate factory: CAs with given subject DNs, intermediates and server certificates, made at run time.

A scenario's ``pki`` section names root and intermediate CAs by their subject DN (for example
``/C=US/O=DigiCert Inc/OU=www.digicert.com/CN=DigiCert High Assurance EV Root CA``) and server certificates by
issuer, SAN list, subject and validity. Postfix logs these DNs (``depth=1 verify=1 subject=/C=US/O=…``,
``untrusted issuer /CN=…``), so a scenario that reproduces a real report must control them exactly.
trustme cannot: its CA subjects are fixed ("Testing CA #…") and its leaves carry no chosen subject or
validity. This module therefore builds certificates directly with ``cryptography``'s X.509 builder, the
basis trustme itself uses, with the same profile (BasicConstraints, KeyUsage, SKI/AKI, SHA-256 signatures).
trustme stays in the tests as an independent second source.

Typical use::

    pki = Pki()
    pki.add_ca("root", subject="/C=US/O=DigiCert Inc/CN=DigiCert High Assurance EV Root CA")
    pki.add_ca("inter", subject="/O=DigiCert Inc/CN=DigiCert SHA2 High Assurance Server CA", issuer="root")
    leaf = pki.add_cert("mx", issuer="inter", san=["*.messagingengine.com", "messagingengine.com"])
    leaf.chain_pem  # leaf + intermediate: what the server sends

Nothing here touches the file system; callers write the PEM bytes where they are needed.
"""

from __future__ import annotations

__all__ = [
    "KEY_TYPES",
    "IssuedCa",
    "IssuedCert",
    "KeyPool",
    "Pki",
    "PrivateKey",
    "UnknownNameError",
    "When",
    "fingerprint",
    "format_dn",
    "parse_dn",
    "parse_when",
    "tlsa_data",
]

import difflib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness._pki_formats import (
    When,
    fingerprint,
    format_dn,
    parse_dn,
    parse_when,
    san_entry,
    tlsa_data,
    validity_window,
)
from harness._pki_profile import KEY_TYPES, KEY_USAGE_FLAGS, PrivateKey, generate_key, key_pem, sign

_LEAF_LIFETIME = timedelta(days=365)
_CA_LIFETIME = timedelta(days=3650)


class UnknownNameError(KeyError, ValueError):
    """A CA or certificate name that the :class:`Pki` does not hold.

    It is a ``KeyError`` (a failed lookup by name) and a ``ValueError`` (bad input, as every other scenario
    mistake this module reports), so callers may catch either.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class IssuedCa:
    """A certificate authority made by :meth:`Pki.add_ca`.

    Attributes:
        name: the scenario's name for it (``pki.cas.NAME``).
        certificate: its certificate.
        private_key: its key, used to sign what it issues.
        cert_pem: the certificate, PEM.
        key_pem: the key, unencrypted PKCS#8 PEM.
        is_root: True for a self-signed root, False for an intermediate.
        issuer_name: the issuing CA's name, None for a root.
    """

    name: str
    certificate: x509.Certificate
    private_key: PrivateKey
    cert_pem: bytes
    key_pem: bytes
    is_root: bool
    issuer_name: str | None


@dataclass(frozen=True)
class IssuedCert:
    """A server certificate made by :meth:`Pki.add_cert`.

    Attributes:
        name: the scenario's name for it (``pki.certs.NAME``).
        certificate: the leaf certificate.
        private_key: the leaf's key.
        cert_pem: the leaf alone, PEM.
        key_pem: the leaf's key, unencrypted PKCS#8 PEM.
        chain_pem: the leaf followed by every intermediate up to, not including, the root: what a correctly
            configured server sends (RFC 8446 §4.4.2, RFC 5246 §7.4.2). The leaf alone when self-signed.
        root: the root CA at the top of the chain; None for a self-signed certificate.
        intermediates: the intermediate CAs in chain order (the leaf's issuer first); empty when a root
            issued the leaf, or when it is self-signed.
    """

    name: str
    certificate: x509.Certificate
    private_key: PrivateKey
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes
    root: IssuedCa | None
    intermediates: tuple[IssuedCa, ...] = ()

    @property
    def self_signed(self) -> bool:
        """Whether the certificate signs itself (no CA issued it)."""
        return self.root is None


class KeyPool:
    """Private keys made at run time and handed out by position: the n-th key of a type that a set of
    certificates (:class:`Pki`) asks for is the n-th key of this pool. Within one set every key is its own;
    two worlds of one run (two scenarios, or a case that re-issues its CAs) hold the same key pairs, which
    no case can see: a case runs in one world. Generating an RSA key costs about 0.1 s, and a run of many
    scenarios thereby generates as many keys as its largest world has, not as all of them together.

    Nothing is kept beyond the pool's life (the :class:`~harness.runner.Runner`'s); thread-safe.
    """

    def __init__(self) -> None:
        self._keys: dict[str, list[PrivateKey]] = {}
        self._lock = threading.Lock()

    def key(self, key_type: str, index: int) -> PrivateKey:
        """The ``index``-th key (from 0) of ``key_type`` (one of :data:`KEY_TYPES`), made when first asked for.

        Raises:
            ValueError: an unknown key type.
        """
        with self._lock:
            keys = self._keys.setdefault(key_type, [])
            while len(keys) <= index:
                keys.append(generate_key(key_type))
            return keys[index]


class Pki:
    """A set of CAs and server certificates, each under a scenario name.

    Args:
        now: the reference time for default validity and offsets such as ``-1d``; default the current time.
            A naive datetime is taken as UTC.
        keys: where the keys come from (a run's :class:`KeyPool`); default: a new key for each CA and
            certificate.
    """

    def __init__(self, *, now: datetime | None = None, keys: KeyPool | None = None) -> None:
        moment = now or datetime.now(UTC)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        self._now = moment.replace(microsecond=0)
        self._cas: dict[str, IssuedCa] = {}
        self._certs: dict[str, IssuedCert] = {}
        self.keys = keys
        self._keys_used: dict[str, int] = {}  # per key type: how many keys of the pool this set holds

    def _new_key(self, key_type: str) -> PrivateKey:
        """A key no CA or certificate of this set (or of the set it was copied from) has."""
        if self.keys is None:
            return generate_key(key_type)
        index = self._keys_used.get(key_type, 0)
        key = self.keys.key(key_type, index)
        self._keys_used[key_type] = index + 1
        return key

    @property
    def now(self) -> datetime:
        """The reference time (UTC) for defaults and offsets."""
        return self._now

    def add_ca(
        self,
        name: str,
        *,
        subject: str,
        issuer: str | None = None,
        key: str = "rsa2048",
        not_before: When | None = None,
        not_after: When | None = None,
    ) -> IssuedCa:
        """Make a root CA (no ``issuer``) or an intermediate signed by the CA named ``issuer``.

        The certificate carries BasicConstraints CA:TRUE (critical), KeyUsage keyCertSign + cRLSign
        (critical), SubjectKeyIdentifier and AuthorityKeyIdentifier (RFC 5280 §4.2.1.1-3, §4.2.1.9).

        Args:
            name: the scenario's name for the CA; unique among CAs.
            subject: subject DN in OpenSSL form or a bare common name (see :func:`parse_dn`).
            issuer: name of an existing CA, or None for a self-signed root.
            key: one of :data:`KEY_TYPES`.
            not_before: start of validity (see :func:`parse_when`); default one day before ``now``.
            not_after: end of validity; default ten years after ``now``.

        Returns:
            The new CA.

        Raises:
            ValueError: bad subject, key type or dates, or a duplicate name.
            UnknownNameError: ``issuer`` names no CA.
        """
        _check_new_name(name, self._cas, "CA")
        subject_name = parse_dn(subject)
        signer = self.ca(issuer) if issuer is not None else None
        start, end = validity_window(self._now, not_before, not_after, lifetime=_CA_LIFETIME)
        private_key = self._new_key(key)  # last: the costly step, once the input is known to be good
        usage = dict.fromkeys(KEY_USAGE_FLAGS, False) | {"key_cert_sign": True, "crl_sign": True}
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(**usage), True),
        ]
        certificate = sign(subject_name, private_key, signer, start, end, extensions)
        ca = IssuedCa(
            name=name,
            certificate=certificate,
            private_key=private_key,
            cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
            key_pem=key_pem(private_key),
            is_root=signer is None,
            issuer_name=issuer,
        )
        self._cas[name] = ca
        return ca

    def add_cert(
        self,
        name: str,
        *,
        issuer: str | None,
        san: Sequence[str] = (),
        subject: str | None = None,
        cn: str | None = None,
        key: str = "rsa2048",
        not_before: When | None = None,
        not_after: When | None = None,
    ) -> IssuedCert:
        """Make a server certificate signed by the CA named ``issuer``, or by itself when ``issuer`` is None.

        The leaf carries BasicConstraints CA:FALSE, KeyUsage digitalSignature (+ keyEncipherment for RSA,
        RFC 5280 §4.2.1.3), ExtendedKeyUsage serverAuth + clientAuth, SubjectKeyIdentifier,
        AuthorityKeyIdentifier and, when ``san`` is not empty, a subjectAltName (RFC 5280 §4.2.1.6).
        Without SANs, TLS clients (Postfix included) match the subject CN instead. A self-signed leaf has the
        same profile, its issuer DN is its subject and its AuthorityKeyIdentifier its own key's, so OpenSSL
        reports it as ``self-signed certificate`` (X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT).

        Args:
            name: the scenario's name for the certificate; unique among certificates.
            issuer: name of an existing CA, or None for a self-signed certificate.
            san: subjectAltName entries in order. An entry that parses as an IPv4/IPv6 address becomes an IP
                SAN, anything else a DNS SAN, taken verbatim (wildcards such as ``*.example.com`` or
                ``m*.example.com`` and trailing dots are kept: scenarios test how Postfix matches them).
            subject: subject DN (see :func:`parse_dn`). Excludes ``cn``.
            cn: a bare common name for the subject. Excludes ``subject``.
            key: one of :data:`KEY_TYPES`.
            not_before: start of validity (see :func:`parse_when`); default one day before ``now``.
            not_after: end of validity; default one year after ``now``. ``not_after="-1d"`` alone makes an
                expired certificate (its default start moves a year before its end).

        Returns:
            The new certificate with its chain.

        Raises:
            ValueError: no subject can be derived (no ``subject``, ``cn`` or DNS SAN), both ``subject`` and
                ``cn`` given, a bad SAN, key type or dates, or a duplicate name.
            UnknownNameError: ``issuer`` names no CA.
        """
        _check_new_name(name, self._certs, "certificate")
        signer = self.ca(issuer) if issuer is not None else None
        alt_names = [san_entry(entry) for entry in san]
        subject_name = _leaf_subject(name, subject, cn, alt_names)
        start, end = validity_window(self._now, not_before, not_after, lifetime=_LEAF_LIFETIME)
        private_key = self._new_key(key)
        is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
        usage = dict.fromkeys(KEY_USAGE_FLAGS, False) | {
            "digital_signature": True,
            "key_encipherment": is_rsa,
        }
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(**usage), True),
            (
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                False,
            ),
        ]
        if alt_names:
            extensions.append((x509.SubjectAlternativeName(alt_names), False))
        certificate = sign(subject_name, private_key, signer, start, end, extensions)
        intermediates: list[IssuedCa] = []
        top = signer
        while top is not None and not top.is_root:
            intermediates.append(top)
            top = self._cas[top.issuer_name or ""]
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        issued = IssuedCert(
            name=name,
            certificate=certificate,
            private_key=private_key,
            cert_pem=cert_pem,
            key_pem=key_pem(private_key),
            chain_pem=cert_pem + b"".join(ca.cert_pem for ca in intermediates),
            root=top,
            intermediates=tuple(intermediates),
        )
        self._certs[name] = issued
        return issued

    @property
    def ca_names(self) -> tuple[str, ...]:
        """The names of the CAs made so far, in the order made."""
        return tuple(self._cas)

    @property
    def cert_names(self) -> tuple[str, ...]:
        """The names of the server certificates made so far, in the order made."""
        return tuple(self._certs)

    def copy(self, *, certs: Iterable[str] | None = None) -> Pki:
        """A new set with the same reference time, the same CAs and the named certificates (default: all) —
        the very objects, nothing re-issued. Certificates added to the copy do not appear here.

        Raises:
            UnknownNameError: a name in ``certs`` that this set does not hold.
        """
        other = Pki(now=self._now, keys=self.keys)
        other._keys_used = dict(self._keys_used)  # keys added to the copy differ from every key of this set
        other._cas = dict(self._cas)
        other._certs = {name: self.cert(name) for name in (self._certs if certs is None else certs)}
        return other

    def ca(self, name: str) -> IssuedCa:
        """The CA made under ``name``.

        Raises:
            UnknownNameError: no such CA; the message lists the known names.
        """
        try:
            return self._cas[name]
        except KeyError:
            raise _unknown(name, self._cas, "CA", "pki.cas") from None

    def cert(self, name: str) -> IssuedCert:
        """The server certificate made under ``name``.

        Raises:
            UnknownNameError: no such certificate; the message lists the known names.
        """
        try:
            return self._certs[name]
        except KeyError:
            raise _unknown(name, self._certs, "certificate", "pki.certs") from None


def _leaf_subject(name: str, subject: str | None, cn: str | None, alt_names: list[x509.GeneralName]) -> x509.Name:
    if subject is not None and cn is not None:
        raise ValueError(f"certificate {name!r}: both subject and cn given. Hint: give one of them.")
    if subject is not None:
        return parse_dn(subject)
    if cn is None:
        dns_names = [n.value for n in alt_names if isinstance(n, x509.DNSName)]
        if not dns_names:
            raise ValueError(
                f"certificate {name!r}: no subject: neither subject, cn nor a DNS name in san. "
                "Hint: add cn: or a DNS name to san."
            )
        cn = dns_names[0]
    if cn.startswith("/") or "=" in cn:
        raise ValueError(f"certificate {name!r}: cn {cn!r} looks like a DN. Hint: use subject: for a full DN.")
    return parse_dn(cn)


def _check_new_name(name: str, existing: dict[str, IssuedCa] | dict[str, IssuedCert], kind: str) -> None:
    if not name:
        raise ValueError(f"empty {kind} name. Hint: give every {kind} a name.")
    if name in existing:
        raise ValueError(f"duplicate {kind} name {name!r}. Hint: names must be unique among {kind}s.")


def _unknown(
    name: str, known: dict[str, IssuedCa] | dict[str, IssuedCert], kind: str, section: str
) -> UnknownNameError:
    listed = ", ".join(sorted(known)) or "none"
    return UnknownNameError(
        f"no {kind} named {name!r} in {section} (known: {listed}){_did_you_mean(name, known)}. "
        f"Hint: define it in {section}; a {kind} must be made before what refers to it."
    )


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
