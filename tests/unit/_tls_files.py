"""Certificate files for the fake-server tests: trustme leaves, and a 1024-bit RSA one trustme cannot make."""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def write_leaf(ca: trustme.CA, folder: Path, *names: str) -> tuple[str, str]:
    """Issue a leaf for ``names`` and write ``<first name>.pem`` (chain) and ``.key``; return their paths."""
    leaf = ca.issue_cert(*names)
    chain, key = folder / f"{names[0]}.pem", folder / f"{names[0]}.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(chain), str(key)


def write_self_signed_rsa(folder: Path, name: str, *, bits: int) -> tuple[str, str]:
    """A self-signed RSA certificate of ``bits`` for ``name`` (SAN and CN); return the chain and key paths."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    chain_path, key_path = folder / f"{name}-rsa{bits}.pem", folder / f"{name}-rsa{bits}.key"
    chain_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(chain_path), str(key_path)
