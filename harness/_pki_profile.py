"""The X.509 profile of :mod:`harness.pki`: key generation, key serialisation and signing.

Private module; :data:`KEY_TYPES` and :data:`PrivateKey` are re-exported by :mod:`harness.pki`.
"""

from __future__ import annotations

__all__ = ["KEY_TYPES", "KEY_USAGE_FLAGS", "PrivateKey", "generate_key", "key_pem", "sign"]

import difflib
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The private key types the factory makes."""

_KEY_FACTORIES: dict[str, Callable[[], PrivateKey]] = {
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "rsa4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
    "ec256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ec384": lambda: ec.generate_private_key(ec.SECP384R1()),
    # Weak and uncommon keys, for scenarios about what Postfix's OpenSSL accepts (security level 2 refuses
    # RSA below 2048 bits; a server presenting one needs security level 0 itself).
    "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "rsa3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "ec521": lambda: ec.generate_private_key(ec.SECP521R1()),
}


class _Signer(Protocol):
    """What :func:`sign` needs of an issuing CA (:class:`harness.pki.IssuedCa`)."""

    @property
    def certificate(self) -> x509.Certificate: ...

    @property
    def private_key(self) -> PrivateKey: ...


KEY_TYPES: tuple[str, ...] = tuple(_KEY_FACTORIES)
"""Key type names accepted by ``key=``: rsa2048, rsa4096, ec256 (P-256), ec384 (P-384), rsa1024, rsa3072,
ec521 (P-521)."""

# x509.KeyUsage takes every flag as a keyword; callers switch on the ones they need.
KEY_USAGE_FLAGS = tuple(
    "digital_signature content_commitment key_encipherment data_encipherment key_agreement key_cert_sign"
    " crl_sign encipher_only decipher_only".split()
)


def generate_key(key: str) -> PrivateKey:
    """A new private key of type ``key`` (one of :data:`KEY_TYPES`).

    Raises:
        ValueError: an unknown key type, with the closest known one.
    """
    try:
        factory = _KEY_FACTORIES[key]
    except KeyError:
        raise ValueError(
            f"unknown key type {key!r}. Hint: use one of {', '.join(KEY_TYPES)}" + _did_you_mean(key) + "."
        ) from None
    return factory()


def key_pem(private_key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def sign(
    subject: x509.Name,
    private_key: PrivateKey,
    signer: _Signer | None,
    not_before: datetime,
    not_after: datetime,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Build and sign a certificate; ``signer`` None means self-signed."""
    public_key = private_key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    if signer is None:
        issuer_name, signing_key, issuer_ski = subject, private_key, ski
    else:
        issuer_name = signer.certificate.subject
        signing_key = signer.private_key
        issuer_ski = signer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _did_you_mean(word: str) -> str:
    close = difflib.get_close_matches(word, list(KEY_TYPES), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
