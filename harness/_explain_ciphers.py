"""Cipher restrictions: whether Postfix and the server share a cipher, where the model can be sure of it.

Postfix 3.7 ``src/smtp/smtp_tls_policy.c`` (``set_cipher_grade``) and ``src/tls/tls_misc.c`` (``tls_set_ciphers``):

* The grade is the policy table entry's ``ciphers=``, else ``smtp_tls_ciphers`` at ``may`` and
  ``smtp_tls_mandatory_ciphers`` at ``encrypt`` and above (both ``medium`` by default); its list is
  ``tls_<grade>_cipherlist``.
* The exclusions are the entry's ``exclude=``, which replaces main.cf's, else ``smtp_tls_exclude_ciphers`` and, at
  ``encrypt`` and above only, ``smtp_tls_mandatory_exclude_ciphers``. Each word (commas, spaces or colons between)
  is appended to the list as ``:!word``, so it means what OpenSSL's cipher string syntax says: ``AES128`` is every
  cipher with 128-bit AES (GCM included), ``SHA256`` only the ciphers whose MAC is SHA-256 (not
  ``…-GCM-SHA256``, an AEAD cipher), a full name only that cipher.
* The lists apply to TLS 1.2 and older only: a TLS 1.3 handshake does not use them.

Observed on Postfix 3.5.25, 3.7.11 and 3.10.13 (a server limited to one ``ECDHE-ECDSA-…`` cipher, TLS 1.2, against
exclusions of ``AES128``, ``AES256``, ``AES``, ``AESGCM``, ``CHACHA20``, ``ECDHE``, ``EECDH``, ``kECDHE``,
``ECDSA``, ``aECDSA``, ``SHA1``, ``SHA``, ``SHA256``, ``SHA384``, ``AES256+SHA384``, ``ECDHE+AES128``, a full
name, and a hardening list of legacy names; each release alike; ``scenarios/faults/tls-versions.yaml`` keeps the
``AES128`` case): no cipher in common → ``SSL alert number 40`` and ``4.7.5 Cannot start TLS: handshake failure``
on the first attempt, at ``may`` too; ``smtp_tls_mandatory_exclude_ciphers`` does not apply at ``may``; ``exclude=``
replaces main.cf's lists; a TLS 1.3 server delivers whatever the exclusions.

What the model is sure of: ciphers named in full from the ``ECDHE-ECDSA``/``ECDHE-RSA`` AES and ChaCha20 families,
exclusions made of the words above (and the legacy names that match none of those ciphers; a word OpenSSL does not
know is ignored), the ``medium`` and ``high`` grades with Postfix's own lists (3.7's or 3.10's, ``@SECLEVEL`` up to 2
added), a server with an ECDSA key whose handshake is TLS 1.2 (or TLS 1.3 with its default list). Anything else with
a restriction on either side is "not sure" (:attr:`CipherCheck.certain`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness._explain_inputs import CaseInputs, Setting
from harness._explain_policy import TlsPolicy
from harness.model import ServerSpec

__all__ = ["CipherCheck", "check_ciphers", "excluding_words", "seclevel_caveat"]


@dataclass(frozen=True)
class _Cipher:
    """A TLS 1.2 cipher by its OpenSSL name and the parts OpenSSL's aliases select on."""

    name: str
    kx: str  # ECDHE | RSA (kRSA)
    auth: str  # ECDSA | RSA
    enc: str  # AES128 | AES256 | CHACHA20
    mode: str  # GCM | CBC | POLY1305
    mac: str  # AEAD | SHA1 | SHA256 | SHA384


_SUITES = {
    "AES128-GCM-SHA256": ("AES128", "GCM", "AEAD"),
    "AES256-GCM-SHA384": ("AES256", "GCM", "AEAD"),
    "CHACHA20-POLY1305": ("CHACHA20", "POLY1305", "AEAD"),
    "AES128-SHA256": ("AES128", "CBC", "SHA256"),
    "AES256-SHA384": ("AES256", "CBC", "SHA384"),
    "AES128-SHA": ("AES128", "CBC", "SHA1"),
    "AES256-SHA": ("AES256", "CBC", "SHA1"),
}
#: The ciphers the model knows: in every medium/high list of 3.5 to 3.10, and selected by the aliases below. The two
#: with RSA key exchange only witness that exclusions leave Postfix a cipher (no scenario server is limited to them).
_KNOWN = {
    **{
        f"ECDHE-{auth}-{suite}": _Cipher(f"ECDHE-{auth}-{suite}", "ECDHE", auth, *parts)
        for auth in ("ECDSA", "RSA")
        for suite, parts in _SUITES.items()
    },
    **{suite: _Cipher(suite, "RSA", "RSA", *_SUITES[suite]) for suite in ("AES128-GCM-SHA256", "AES256-GCM-SHA384")},
}
#: What the peer's Python offers at TLS 1.2 with its default list and an ECDSA key (part of it: enough to know that
#: a cipher is shared; observed: AES256-GCM first, ChaCha20 when AES-GCM is excluded).
_SERVER_DEFAULT = ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305")

_ALIASES: dict[str, Callable[[_Cipher], bool]] = {
    "AES128": lambda c: c.enc == "AES128",
    "AES256": lambda c: c.enc == "AES256",
    "AES": lambda c: c.enc.startswith("AES"),
    "AESGCM": lambda c: c.mode == "GCM",
    "CHACHA20": lambda c: c.enc == "CHACHA20",
    "ECDHE": lambda c: c.kx == "ECDHE",
    "EECDH": lambda c: c.kx == "ECDHE",
    "kECDHE": lambda c: c.kx == "ECDHE",
    "kEECDH": lambda c: c.kx == "ECDHE",
    "ECDSA": lambda c: c.auth == "ECDSA",
    "aECDSA": lambda c: c.auth == "ECDSA",
    "aRSA": lambda c: c.auth == "RSA",
    "kRSA": lambda c: c.kx == "RSA",
    "SHA1": lambda c: c.mac == "SHA1",
    "SHA": lambda c: c.mac == "SHA1",
    "SHA256": lambda c: c.mac == "SHA256",
    "SHA384": lambda c: c.mac == "SHA384",
}
#: Words that select none of the known ciphers (legacy algorithms, other key exchanges), each observed so on 3.5.25,
#: 3.7.11 and 3.10.13 (``aECDH`` is no OpenSSL word since 1.1.0, and ``AECDH`` is anonymous ECDH: either way none).
_NONE_OF_THEM = frozenset(
    "aNULL eNULL NULL LOW 3DES RC4 RC2 MD5 PSK SRP IDEA SEED CAMELLIA ARIA ADH AECDH aECDH aDSS DSS kDHE kEDH EDH "
    "DHE".split()
)
#: Every word OpenSSL 1.1.1 and 3.x know besides cipher names (``cipher_aliases`` of ssl/ssl_ciph.c). Any other word
#: (``EXPORT``, ``DES``, ``KRB5``, ``aECDH``: gone since OpenSSL 1.1.0; a typo) is ignored: it excludes nothing.
#: Those not in the two tables above (``RSA`` is ``kRSA+aRSA``, ``ECDH`` is ``kECDHE``, ``HIGH`` …) are not modelled.
_OPENSSL_WORDS = frozenset(
    "ALL COMPLEMENTOFALL COMPLEMENTOFDEFAULT kRSA kEDH kDHE DH kEECDH kECDHE ECDH kPSK kRSAPSK kECDHEPSK kDHEPSK kSRP "
    "kGOST aRSA aDSS DSS aNULL aECDSA ECDSA aPSK aGOST01 aGOST12 aGOST aSRP EDH DHE EECDH ECDHE NULL RSA ADH AECDH PSK "
    "SRP 3DES RC4 RC2 IDEA SEED eNULL GOST89 AES128 AES256 AES AESGCM AESCCM AESCCM8 CAMELLIA128 CAMELLIA256 CAMELLIA "
    "CHACHA20 ARIA ARIAGCM ARIA128 ARIA256 MD5 SHA1 SHA GOST94 GOST89MAC SHA256 SHA384 GOST12 SSLv3 TLSv1 TLSv1.0 "
    "TLSv1.2 LOW MEDIUM HIGH FIPS DEFAULT".split()
)
_OPENSSL_FOLDED = frozenset(w.lower() for w in _OPENSSL_WORDS)

#: Postfix's tls_{high,medium}_cipherlist defaults (strings of libpostfix-tls: 3.5.25 and 3.7.11 alike; 3.10.13).
_LISTS_3_7 = {"high": "aNULL:-aNULL:HIGH:@STRENGTH", "medium": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"}
_LEGACY = "!SEED:!IDEA:!3DES:!RC2:!RC4:!RC5:!kDH:!kECDH:!aDSS:!MD5"
_LISTS_3_10 = {
    "high": f"aNULL:-aNULL:HIGH:{_LEGACY}:@STRENGTH",
    "medium": f"aNULL:-aNULL:HIGH:MEDIUM:{_LEGACY}:+RC4:@STRENGTH",
}
_SECLEVEL = re.compile(r":@SECLEVEL=(\d+)$")


@dataclass(frozen=True)
class CipherCheck:
    """Whether Postfix and the server share a cipher.

    Attributes:
        fails: no cipher in common: the handshake fails.
        certain: False when a restriction is outside what the model knows (``note`` says which).
        step: the reasoning in plain words (empty when neither side restricts its ciphers).
        note: why the model is not sure.
    """

    fails: bool = False
    certain: bool = True
    step: str = ""
    note: str = ""


@dataclass(frozen=True)
class _Client:
    grade: Setting
    cipherlist: Setting
    exclusions: tuple[str, ...]
    said: str  # where the exclusions come from, in words


def check_ciphers(inputs: CaseInputs, policy: TlsPolicy, server: ServerSpec, versions: Sequence[str]) -> CipherCheck:
    """Whether the handshake finds a cipher, for ``server`` reached with ``policy`` when the TLS versions both sides
    allow are ``versions`` (not empty; the highest is negotiated)."""
    client = _client(inputs, policy)
    standard = _standard_list(inputs, client)
    if server.tls.ciphers is None and not client.exclusions and standard:
        return CipherCheck()
    words = _client_words(client, policy)

    def unsure(why: str) -> CipherCheck:
        return CipherCheck(certain=False, step=f"{words}. {why}.", note=why)

    if policy.dane is not None:
        return unsure("cipher restrictions at a DANE level are not modelled")
    if not standard:
        return unsure(f"the cipher list of {client.grade.describe()} ({client.cipherlist.describe()}) is not modelled")
    if any(w[:1] in "!+-@" for w in client.exclusions):
        return unsure("an exclusion that starts with !, +, - or @ (Postfix refuses the list) is not modelled")
    verdicts = {name: _excluded(cipher, client.exclusions) for name, cipher in _KNOWN.items()}
    unknown = [w for w in client.exclusions if any(_selects(w, c) is None for c in _KNOWN.values())]
    not_known = f"what {', '.join(unknown)} excludes is not modelled"
    if not any(v is False for v in verdicts.values()):
        return unsure(
            not_known if unknown else "exclusions that leave Postfix no cipher the model knows are not modelled"
        )
    names = [n for n in (server.cert, *server.sni.values()) if n is not None and n in inputs.certs]
    keys = {inputs.certs[n].key for n in names}
    ecdsa = bool(keys) and all(k.startswith("ec") for k in keys)
    top = versions[-1]
    if server.tls.ciphers is None:
        if top == "TLSv1.3":
            return CipherCheck(step=f"{words}. The handshake is TLS 1.3, to which these lists do not apply.")
        shared = [c for c in _SERVER_DEFAULT if verdicts[c] is False]
        if top == "TLSv1.2" and ecdsa and shared:
            return CipherCheck(step=f"{words}. The server's default list has {shared[0]}, which Postfix keeps.")
        return unsure("which of the server's default ciphers Postfix's exclusions leave is not modelled")
    listed = [t for t in re.split(r"[:,\s]+", server.tls.ciphers) if t]
    said = f"The server allows only {', '.join(listed)} (tls.ciphers)"
    if not all(t in _KNOWN and _KNOWN[t].auth == "ECDSA" for t in listed) or not ecdsa or top != "TLSv1.2":
        why = "a server cipher list other than full ECDHE-ECDSA names with an ECDSA key and TLS 1.2 is not modelled"
        return unsure(f"{said}: {why}")
    kept = [t for t in listed if verdicts[t] is False]
    if kept:
        return CipherCheck(step=f"{words}. {said}; Postfix's list has {kept[0]}: they share it.")
    if all(verdicts[t] for t in listed):
        why = "; ".join(f"{t} is excluded by {_excluder(_KNOWN[t], client.exclusions)}" for t in listed)
        step = (
            f"{words}. {said}; {why}. No cipher in common: the server answers with a handshake failure alert "
            '("SSL alert number 40"), and Postfix defers: Cannot start TLS: handshake failure.'
        )
        return CipherCheck(fails=True, step=step)
    return unsure(f"{said}: {not_known}")


def excluding_words(exclusions: str, server_ciphers: str) -> tuple[str, ...]:
    """The words of the exclusion list ``exclusions`` that exclude a cipher of the server's list ``server_ciphers``
    (full names the model knows), for a suggested change."""
    listed = [_KNOWN[t] for t in _words(server_ciphers) if t in _KNOWN]
    return tuple(w for w in _words(exclusions) if any(_selects(w, c) for c in listed))


def seclevel_caveat(inputs: CaseInputs, policy: TlsPolicy) -> str:
    """A cipher list with ``@SECLEVEL`` can change whether a chain counts as trusted at ``may``/``encrypt``: not
    modelled. Only the list of the grade in use counts (``tls_high_cipherlist`` does not apply to a medium
    session)."""
    client = _client(inputs, policy)
    if "SECLEVEL" in client.cipherlist.value.upper():
        return f"{client.cipherlist.name} with @SECLEVEL is not modelled"
    return ""


def _client(inputs: CaseInputs, policy: TlsPolicy) -> _Client:
    """Postfix's grade, its list and the exclusions for ``policy`` (``set_cipher_grade``)."""
    service = policy.service
    mandatory = policy.level != "may"
    if policy.ciphers:
        grade = Setting("ciphers", policy.ciphers, "ciphers= of the policy table entry")
    else:
        grade = inputs.param("smtp_tls_mandatory_ciphers" if mandatory else "smtp_tls_ciphers", service)
    if grade.value.lower() in ("medium", "high") and not grade.value.startswith("$"):
        cipherlist = inputs.param(f"tls_{grade.value.lower()}_cipherlist", service)
    else:
        cipherlist = Setting("cipher list", "", f"the {grade.value or 'empty'} grade")
    if policy.exclude is not None:
        return _Client(grade, cipherlist, _words(policy.exclude), f"exclude={policy.exclude} of the policy table entry")
    settings = [inputs.param("smtp_tls_exclude_ciphers", service)]
    if mandatory:
        settings.append(inputs.param("smtp_tls_mandatory_exclude_ciphers", service))
    given = [s for s in settings if s.value.strip()]
    exclusions = tuple(w for s in given for w in _words(s.value))
    return _Client(grade, cipherlist, exclusions, " and ".join(s.describe() for s in given))


def _standard_list(inputs: CaseInputs, client: _Client) -> bool:
    """Whether the grade is ``medium`` or ``high`` with Postfix's own list for it (3.5/3.7's or 3.10's;
    ``@SECLEVEL=0..2`` added at the end is allowed: its effect on trust is :func:`seclevel_caveat`'s)."""
    grade = client.grade.value.lower()
    if grade not in ("medium", "high"):
        return False
    if client.cipherlist.origin == f"Postfix {inputs.release} default":
        return True
    value = client.cipherlist.value.strip()
    level = _SECLEVEL.search(value)
    if level is not None:
        if int(level.group(1)) > 2:
            return False
        value = value[: level.start()]
    # Either release's list selects every cipher the model knows (all are OpenSSL HIGH): observed with 3.7's
    # medium list on 3.10.13 too (tls-versions.yaml, verify-with-seclevel-0-still-refuses-tls1).
    return value in (_LISTS_3_7[grade], _LISTS_3_10[grade])


def _words(value: str) -> tuple[str, ...]:
    """The words of an exclusion list (``tls_set_ciphers``: commas, white space or colons between)."""
    return tuple(w for w in re.split(r"[,:\s]+", value) if w)


def _selects(word: str, cipher: _Cipher) -> bool | None:
    """Whether OpenSSL's cipher string word selects ``cipher`` (None: a word the model does not know). OpenSSL
    compares names case-sensitively and ignores a word it does not know (in ``A+B``: the whole word)."""
    if "-" in word:  # a cipher name: only that cipher, unless OpenSSL ignores it
        if word.upper() == cipher.name and word != cipher.name:
            return None  # another spelling of this very cipher
        return word == cipher.name
    answers: list[bool | None] = []
    for part in word.split("+"):
        if part in _ALIASES:
            answers.append(_ALIASES[part](cipher))
        elif part in _NONE_OF_THEM:
            answers.append(False)
        elif part in _OPENSSL_WORDS or part.lower() in _OPENSSL_FOLDED:
            answers.append(None)  # an alias the model does not follow, or one in other letter case
        else:
            return False  # not a word OpenSSL knows: the rule is ignored
    if False in answers:
        return False
    return None if None in answers else True


def _excluded(cipher: _Cipher, exclusions: Sequence[str]) -> bool | None:
    """Whether an exclusion removes ``cipher`` (None: a word the model does not know might)."""
    verdicts = [_selects(w, cipher) for w in exclusions]
    if any(verdicts):
        return True
    return None if None in verdicts else False


def _excluder(cipher: _Cipher, exclusions: Sequence[str]) -> str:
    return next(w for w in exclusions if _selects(w, cipher))


def _client_words(client: _Client, policy: TlsPolicy) -> str:
    grade = client.grade.value or "empty"
    grade = f'Ciphers: Postfix at "{policy.level}" uses the {grade} grade ({client.grade.describe()})'
    if client.exclusions:
        return f"{grade} without {', '.join(client.exclusions)} ({client.said})"
    return grade
