"""The pool of lab keys (harness._pki_keys): every key handed out once per process, then generation."""

from __future__ import annotations

from importlib import resources

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import _pki_keys
from harness._pki_profile import generate_key


def _public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_package_ships_a_pool_of_each_slow_key_type() -> None:
    # The files themselves: other tests of this process may have used up the in-memory pools.
    for key in _pki_keys.POOLED_TYPES:
        text = (resources.files("harness") / "keys" / f"{key}.pem").read_text()
        assert text.count("-----BEGIN PRIVATE KEY-----") >= 4, key
        loaded = serialization.load_pem_private_key(text.encode(), password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size == int(key[3:])


def test_no_key_is_handed_out_twice_even_after_the_pool_is_used_up(monkeypatch) -> None:
    # A pool of two keys: the third key comes from the generator, and all three differ.
    monkeypatch.setitem(_pki_keys._pools, "rsa1024", list(_pki_keys._pool("rsa1024")[:2]))
    keys = [generate_key("rsa1024") for _ in range(3)]
    assert all(isinstance(k, rsa.RSAPrivateKey) and k.key_size == 1024 for k in keys)
    assert len({_public(k) for k in keys}) == 3
    assert _pki_keys._pools["rsa1024"] == []


def test_ec_keys_are_generated_each_time() -> None:
    first, second = generate_key("ec256"), generate_key("ec256")
    assert isinstance(first, ec.EllipticCurvePrivateKey) and first.curve.name == "secp256r1"
    assert _public(first) != _public(second)
