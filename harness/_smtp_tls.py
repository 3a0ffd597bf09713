"""Server-side TLS of the fake SMTP servers: contexts, SNI certificate selection, client certificates. Private:
import from :mod:`harness.smtp`.

This module imports only the standard library and the other peer modules: it runs inside the peer container
(Debian bookworm: Python 3.11, OpenSSL 3.0).
"""

from __future__ import annotations

__all__ = ["server_tls_context", "tls_summary"]

import ctypes
import functools
import ssl
import warnings
from collections.abc import Sequence
from typing import Any

from harness._smtp_endpoint import SmtpServerError, SniCertificate, TlsSettings

_SNI_ATTRIBUTE = "_mxharness_sni"
_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_SSL_VERIFY_PEER = 0x01  # OpenSSL's SSL_VERIFY_PEER without SSL_VERIFY_FAIL_IF_NO_PEER_CERT


def server_tls_context(
    cert_chain_file: str,
    key_file: str,
    *,
    settings: TlsSettings | None = None,
    sni: Sequence[SniCertificate] = (),
) -> ssl.SSLContext:
    """Build the server-side TLS context of an endpoint; it records the SNI each client sends.

    Every context (the default one and one per SNI name) gets the same settings. During the handshake the
    SNI callback switches the connection to the context whose name equals the client's SNI (exact,
    case-insensitive; RFC 6066 §3); no SNI or an unknown name keeps the default certificate.

    Args:
        cert_chain_file: PEM, leaf first then intermediates: the default certificate.
        key_file: PEM private key of that leaf.
        settings: versions, ciphers, security level, client certificate request (None: the defaults, i.e.
            TLSv1.2 to TLSv1.3, Python's cipher list at security level 2, no CertificateRequest).
        sni: certificates by SNI name.

    Raises:
        SmtpServerError: a file is missing or unreadable, a key does not match its certificate, the cipher
            string selects no cipher, or the security level refuses the key (e.g. RSA 1024 at level ≥ 2).
    """
    settings = settings or TlsSettings()
    default = _context(cert_chain_file, key_file, settings)
    by_name = {entry.name: _context(entry.cert_chain_file, entry.key_file, settings) for entry in sni}

    def select(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        # Called during the handshake with the very SSLObject the transport keeps, so the name can be read back
        # from it once the handshake is done.
        setattr(ssl_object, _SNI_ATTRIBUTE, server_name)
        chosen = by_name.get(server_name.lower().removesuffix(".")) if server_name else None
        if chosen is not None:
            ssl_object.context = chosen

    default.sni_callback = select
    return default


def _context(cert_chain_file: str, key_file: str, settings: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLSv1 and TLSv1.1 are deprecated in Python's ssl; emulating servers stuck on them is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Explicit even for the default: Debian's Python (the peer's) leaves the floor to OpenSSL, upstream's is 1.2.
        context.minimum_version = _VERSIONS[settings.min_version or "TLSv1.2"]
        if settings.max_version is not None:
            context.maximum_version = _VERSIONS[settings.max_version]
    if settings.ciphers is not None or settings.seclevel is not None:
        # Python's default list excludes the SHA-1 suites TLSv1/TLSv1.1 need, so a level without a list
        # starts from OpenSSL's DEFAULT.
        ciphers = settings.ciphers if settings.ciphers is not None else "DEFAULT"
        level = f":@SECLEVEL={settings.seclevel}" if settings.seclevel is not None else ""
        try:
            context.set_ciphers(ciphers + level)
        except ssl.SSLError as exc:
            raise SmtpServerError(
                f"cipher string {ciphers + level!r} selects no cipher: {exc}. "
                "Hint: check it with `openssl ciphers -v '<string>'`."
            ) from exc
    try:
        context.load_cert_chain(cert_chain_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SmtpServerError(
            f"cannot load TLS certificate {cert_chain_file} with key {key_file}: {exc}. "
            "Hint: check that both files exist, are PEM, and that the key belongs to the first certificate "
            "(a small RSA key also needs tls.seclevel 0 or 1)."
        ) from exc
    if settings.request_client_cert:
        context.verify_mode = ssl.CERT_OPTIONAL
        _accept_any_client_certificate(context)
    return context


def tls_summary(ssl_object: Any) -> dict[str, Any]:
    """What a finished handshake negotiated: ``version``, ``cipher``, ``sni`` (None when the client sent none)
    and ``client_cert`` (whether the client presented a certificate)."""
    if ssl_object is None:
        return {"version": None, "cipher": None, "sni": None, "client_cert": False}
    cipher = ssl_object.cipher()
    return {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "sni": getattr(ssl_object, _SNI_ATTRIBUTE, None),
        "client_cert": ssl_object.getpeercert(binary_form=True) is not None,
    }


# --- asking for a client certificate without requiring a trusted one ---------------------------------------
#
# Python's ssl has CERT_OPTIONAL (OpenSSL SSL_VERIFY_PEER), which sends the CertificateRequest, but then aborts
# the handshake (alert unknown_ca) when the client sends a certificate that does not chain to a loaded CA: that
# is a server requiring a trusted certificate, not Postfix's smtpd_tls_ask_ccert, which asks, accepts whatever
# comes and only records it. OpenSSL does the latter with a verify callback returning 1, which Python does not
# expose; it is installed here with ctypes on the SSL_CTX of the context. The SSL_CTX pointer is the first field
# after the object header of CPython's PySSLContext (Modules/_ssl.c, unchanged since 3.6); it is checked
# against three values Python reports for the same context before anything is changed.

_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_ACCEPT_ANY = _VERIFY_CALLBACK(lambda _preverify_ok, _store: 1)


@functools.cache
def _libssl() -> ctypes.CDLL:
    import _ssl  # the extension module linked against the libssl that Python's ssl uses

    library = ctypes.CDLL(getattr(_ssl, "__file__", None))  # a static build exports the symbols itself
    library.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    library.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    library.SSL_CTX_get_security_level.argtypes = [ctypes.c_void_p]
    library.SSL_CTX_get_security_level.restype = ctypes.c_int
    library.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    library.SSL_CTX_get_options.restype = ctypes.c_uint64
    library.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
    library.SSL_CTX_set_verify.restype = None
    return library


def _accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make ``context`` (CERT_OPTIONAL) accept any client certificate, or none, as Postfix's
    ``smtpd_tls_ask_ccert = yes`` does.

    Raises:
        SmtpServerError: this Python's ssl cannot be reached through ctypes.
    """
    try:
        library = _libssl()
        pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
        seen = (
            library.SSL_CTX_get_verify_mode(pointer),
            library.SSL_CTX_get_security_level(pointer),
            library.SSL_CTX_get_options(pointer),
        )
    except (OSError, AttributeError) as exc:
        raise _no_client_cert_request(repr(exc)) from exc
    expected = (_SSL_VERIFY_PEER, context.security_level, int(context.options))
    if pointer is None or seen != expected:
        raise _no_client_cert_request(f"the SSL_CTX found reports {seen}, Python reports {expected}")
    library.SSL_CTX_set_verify(pointer, _SSL_VERIFY_PEER, _ACCEPT_ANY)


def _no_client_cert_request(facts: str) -> SmtpServerError:
    return SmtpServerError(
        f"tls.request_client_cert: cannot install OpenSSL's verify callback in this Python ({facts}). "
        "Hint: the peer needs CPython with its ssl module linked to OpenSSL (Debian's python3 is)."
    )
