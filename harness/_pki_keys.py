"""Private keys for the fake world's CAs and certificates, taken from a pool made in advance.

Generating an RSA key is the costly step of building a world (2048 bits: about 0.1 s; 4096 bits: up to a second on
this project's machines), and a scenario file may hold several. The package therefore ships a pool of keys per
RSA size (``harness/keys/<type>.pem``, made by ``scripts/make-key-pool``). Each key of the pool is handed out at most
once per process, so two certificates of a run never share a key (a rotated certificate under a pinned public-key
fingerprint gets a key of its own, as in the real world); once a pool is used up, keys are generated. EC keys are
generated every time (a millisecond each).

These keys are for the lab only: they are public, in this package.
"""

from __future__ import annotations

__all__ = ["POOLED_TYPES", "take_key"]

import threading
from collections.abc import Callable
from importlib import resources

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

#: Key types with a pool in ``harness/keys/``: the slow ones to generate.
POOLED_TYPES = ("rsa2048", "rsa3072", "rsa4096", "rsa1024")

_lock = threading.Lock()
_pools: dict[str, list[bytes]] = {}


def _pool(key: str) -> list[bytes]:
    """The PEM blocks of ``key``'s pool not handed out yet in this process (read on first use)."""
    if key not in _pools:
        path = resources.files("harness") / "keys" / f"{key}.pem"
        text = path.read_text() if path.is_file() else ""
        end = "-----END PRIVATE KEY-----"
        _pools[key] = [(block + end + "\n").encode() for block in text.split(end) if block.strip()]
    return _pools[key]


_Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def take_key(key: str, generate: Callable[[], _Key]) -> _Key:
    """A private key of type ``key`` never handed out before in this process: the next of its pool, or
    ``generate()`` when there is no pool or it is used up."""
    with _lock:
        pool = _pool(key) if key in POOLED_TYPES else []
        pem = pool.pop(0) if pool else None
    if pem is None:
        return generate()
    # Our own keys: the RSA consistency check (tens of milliseconds a key) would cost what the pool saves.
    loaded = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    assert isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return loaded
