"""The peer's SMTP endpoints of a world: one world-spec ``servers[]`` entry per address and port of a server, with
its certificate files and fault knobs (docs/internal/world-spec.md).

Part of :mod:`harness.world`. Every *(faults)* key of the spec is written, normalised: ``replies.rcpt`` is always
a mapping with a ``default`` entry, ``delays`` names every stage, absent replies are null.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.model_servers import REPLY_STAGES, ServerSpec
from harness.pki import IssuedCert, Pki

__all__ = ["WORLD_DIR", "presented_chain", "server_entries"]

WORLD_DIR = "/world"
#: RSA keys below this many bits need OpenSSL security level 0 on the server that presents them.
_RSA_SECLEVEL_1_BITS = 2048


def presented_chain(issued: IssuedCert, mode: str) -> tuple[x509.Certificate, ...]:
    """What a server sends for ``issued`` in chain mode ``mode`` (``servers.HOST.chain``), leaf first.

    ``full``: leaf and intermediates, not the root (RFC 8446 §4.4.2); ``leaf``: the leaf alone; ``with-root``: leaf,
    intermediates and the root. A self-signed certificate is sent alone in every mode.
    """
    leaf = issued.certificate
    if mode == "leaf":
        return (leaf,)
    chain = [leaf, *(ca.certificate for ca in issued.intermediates)]
    if mode == "with-root" and issued.root is not None:
        chain.append(issued.root.certificate)
    return tuple(chain)


def server_entries(
    host: str, spec: ServerSpec, addresses: list[str], pki: Pki
) -> tuple[list[dict[str, object]], dict[str, bytes]]:
    """The world-spec entries of one server (one per address and port) and the files they name.

    Args:
        host: the server's key in ``servers`` (written as ``host``).
        spec: the server.
        addresses: every address it listens on.
        pki: the world's certificates (references already checked by the loader).

    Returns:
        (entries, files): files maps an absolute path under ``/world`` to its bytes.
    """
    files: dict[str, bytes] = {}
    chain_file = key_file = None
    presented: list[x509.Certificate] = []
    sni: list[dict[str, object]] = []
    if spec.cert is not None:
        chain_file, key_file, chain = _cert_files(pki.cert(spec.cert), spec.chain, files)
        presented += chain
        for name, cert in spec.sni.items():
            sni_chain, sni_key, chain = _cert_files(pki.cert(cert), spec.chain, files)
            presented += chain
            sni.append({"name": name, "cert_chain": sni_chain, "key": sni_key})
    weak_key = any(
        isinstance(k := c.public_key(), rsa.RSAPublicKey) and k.key_size < _RSA_SECLEVEL_1_BITS for c in presented
    )
    tls: dict[str, object] = {
        "min_version": spec.tls.min_version,
        "max_version": spec.tls.max_version,
        "ciphers": spec.tls.ciphers,
        # OpenSSL 3 refuses RSA keys under 2048 bits, and TLSv1/TLSv1.1, above security level 0.
        "seclevel": 0 if weak_key or spec.tls.allows_old_protocols else None,
        "request_client_cert": spec.tls.request_client_cert,
        "handshake": spec.tls.handshake,
    }
    replies: dict[str, object] = {stage: getattr(spec.replies, stage) for stage in REPLY_STAGES}
    replies["rcpt"] = {"default": None, **(spec.replies.rcpt or {})}
    common: dict[str, object] = {
        "cert_chain": chain_file,
        "key": key_file,
        "sni": sni,
        "starttls": spec.starttls and chain_file is not None,
        "tls": tls,
        "replies": replies,
        "delays": {stage: getattr(spec.delays, stage) for stage in REPLY_STAGES},
        "require_starttls": spec.require_starttls,
        "auth": spec.auth,
    }
    entries: list[dict[str, object]] = []
    for address in addresses:
        for port in spec.ports:
            implicit = port in spec.implicit_tls
            entry: dict[str, object] = {
                "host": host,
                "address": address,
                "port": port,
                **common,
                "implicit_tls": implicit,
            }
            if implicit:
                entry["starttls"] = False  # TLS from the first byte: nothing to upgrade
            entries.append(entry)
    return entries, files


def _cert_files(issued: IssuedCert, mode: str, files: dict[str, bytes]) -> tuple[str, str, list[x509.Certificate]]:
    """Write the chain file (per chain mode) and the key file of a certificate; returns their spec paths."""
    chain = list(presented_chain(issued, mode))
    chain_path = f"tls/{issued.name}.pem" if mode == "full" else f"tls/{issued.name}.{mode}.pem"
    key_path = f"tls/{issued.name}.key"
    files[f"{WORLD_DIR}/{chain_path}"] = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    files[f"{WORLD_DIR}/{key_path}"] = issued.key_pem
    return chain_path, key_path, chain
