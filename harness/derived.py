"""Derived values in ``main.cf`` values and ``maps`` contents: ``{{ fingerprint NAME }}`` and friends.

Certificates are made fresh at every run, so a scenario cannot write a fingerprint or TLSA digest of one. It writes
a placeholder instead, which :func:`substitute_settings` replaces when a case runs, after the case's world is
built (:mod:`harness.runner`):

* ``{{ fingerprint NAME [DIGEST] }}``: the certificate's fingerprint — the digest of its DER form — in Postfix's
  form, upper-case hex bytes joined by colons, as ``smtp_tls_fingerprint_cert_match`` and the policy table's
  ``match=`` take it at the ``fingerprint`` security level. DIGEST is ``sha256`` by default (Postfix ≥ 3.6's
  ``smtp_tls_fingerprint_digest``); also ``md5``, ``sha1``, ``sha224``, ``sha384``, ``sha512``.
* ``{{ pubkey_fingerprint NAME [DIGEST] }}``: the same over the DER SubjectPublicKeyInfo (Postfix's public-key
  fingerprint).
* ``{{ tlsa NAME USAGE SELECTOR MTYPE }}``: the certificate association data of a TLSA record (RFC 6698 §2.1),
  lower-case hex only; SELECTOR 0 or 1, MTYPE 0, 1 or 2.
* ``{{ chain_file NAME }}``: the certificate's private key followed by its chain (leaf first, up to the root), in
  PEM, several lines: the one-file form ``smtp_tls_chain_files`` takes (Postfix ≥ 3.4), e.g. for a client
  certificate Postfix presents. NAME must be a ``pki.certs`` NAME. The key is made at every run, like all the
  world's keys, so none is written in a scenario.

NAME is a ``pki.certs`` or ``pki.cas`` NAME of the case's world. :func:`template_problems` finds unknown names and
functions when the scenario loads.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, replace

from harness.model import Scenario
from harness.pki import Pki, UnknownNameError, fingerprint, tlsa_data
from harness.postfix import PostfixSettings
from harness.references_world import Unchecked, near

__all__ = ["DIGESTS", "FUNCTIONS", "Derived", "parse", "substitute", "substitute_settings", "template_problems"]

FUNCTIONS = ("fingerprint", "pubkey_fingerprint", "tlsa", "chain_file")
#: Digest names Postfix's ``smtp_tls_fingerprint_digest`` accepts (OpenSSL digest names).
DIGESTS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
_TEMPLATE = re.compile(r"\{\{([^{}\n]*)\}\}")  # on one line, nothing braced inside
_USAGE = (
    "Hint: write {{ fingerprint NAME [DIGEST] }}, {{ pubkey_fingerprint NAME [DIGEST] }}, "
    "{{ tlsa NAME USAGE SELECTOR MTYPE }} or {{ chain_file NAME }}"
)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Derived:
    """One parsed ``{{ … }}``: the function, the certificate or CA NAME, and the function's other arguments."""

    function: str
    name: str
    digest: str = "sha256"
    tlsa: tuple[int, int, int] = (3, 1, 1)

    def value(self, pki: Pki) -> str:
        """The value for the certificate or CA called :attr:`name` in ``pki`` (a certificate first).

        Raises:
            UnknownNameError: ``pki`` holds neither a certificate nor a CA of that name.
        """
        if self.function == "chain_file":
            issued = pki.cert(self.name)  # a leaf's key and chain, never a CA's
            return (issued.key_pem + issued.chain_pem).decode().rstrip("\n")
        try:
            cert = pki.cert(self.name).certificate
        except UnknownNameError:
            try:
                cert = pki.ca(self.name).certificate
            except UnknownNameError:
                raise UnknownNameError(
                    f"no certificate or CA named {self.name!r} in the world. Hint: check pki.certs and pki.cas"
                ) from None
        if self.function == "tlsa":
            return tlsa_data(cert, selector=self.tlsa[1], matching_type=self.tlsa[2])
        return fingerprint(cert, digest=self.digest, public_key=self.function == "pubkey_fingerprint")


def parse(inner: str) -> Derived:
    """Parse the text between ``{{`` and ``}}``.

    Raises:
        ValueError: an unknown function or digest, or the wrong arguments, with a hint.
    """
    words = inner.split()
    shown = "{{ " + " ".join(words) + " }}"
    if not words:
        raise ValueError(f"empty {shown}. {_USAGE}")
    function, args = words[0], words[1:]
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r} in {shown}{near(function, FUNCTIONS)}. {_USAGE}")
    if function == "chain_file":
        if len(args) != 1:
            raise ValueError(f"{shown} needs one certificate NAME. Hint: write {{{{ chain_file client }}}}")
        return Derived(function, args[0])
    if function == "tlsa":
        numbers = [int(a) if a.isdigit() else -1 for a in args[1:]]
        if len(args) != 4 or not (0 <= numbers[0] <= 255 and numbers[1] in (0, 1) and numbers[2] in (0, 1, 2)):
            raise ValueError(
                f"{shown} needs a NAME, a USAGE 0-255, a SELECTOR 0 or 1 and an MTYPE 0, 1 or 2 (RFC 6698 §2.1). "
                "Hint: write {{ tlsa mx 3 1 1 }}"
            )
        return Derived(function, args[0], tlsa=(numbers[0], numbers[1], numbers[2]))
    if len(args) not in (1, 2):
        raise ValueError(
            f"{shown} needs a certificate or CA NAME and optionally a digest. Hint: write {{{{ {function} mx }}}}"
        )
    digest = args[1].lower() if len(args) == 2 else "sha256"
    if digest not in DIGESTS:
        raise ValueError(
            f"unknown digest {args[1]!r} in {shown}{near(digest, DIGESTS)}. Hint: one of {', '.join(DIGESTS)} "
            "(Postfix's smtp_tls_fingerprint_digest)"
        )
    return Derived(function, args[0], digest=digest)


def _templates(text: str) -> Iterator[tuple[int, Derived | ValueError]]:
    """Each ``{{ … }}`` of ``text`` with the 0-based line it starts on, parsed or the parse error."""
    for match in _TEMPLATE.finditer(text):
        line = text.count("\n", 0, match.start())
        try:
            yield line, parse(match[1])
        except ValueError as exc:
            yield line, exc
    rest = _TEMPLATE.sub(lambda m: " " * len(m[0]), text)
    if "{{" in rest:
        yield (
            text.count("\n", 0, rest.index("{{")),
            ValueError("'{{' without a closing '}}'. Hint: write {{ fingerprint NAME }} on one line"),
        )


def substitute(text: str, pki: Pki) -> str:
    """``text`` with every ``{{ … }}`` replaced by its value for ``pki``.

    Raises:
        ValueError: a malformed ``{{ … }}`` or an unknown name (the loader reports these before any run).
    """
    if "{{" not in text:
        return text
    return _TEMPLATE.sub(lambda m: parse(m[1]).value(pki), text)


def substitute_settings(settings: PostfixSettings, pki: Pki) -> PostfixSettings:
    """A case's Postfix settings with the derived values of its world filled in (main.cf values, map contents)."""
    return replace(
        settings,
        main_cf={name: substitute(value, pki) for name, value in settings.main_cf.items()},
        maps={path: substitute(text, pki) for path, text in settings.maps.items()},
    )


def template_problems(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, int, str]]:
    """Every malformed ``{{ … }}`` and unknown NAME in the scenario's and the cases' main.cf and maps, as (key path,
    0-based line inside the value, message). A case's names are those of its merged world."""
    cas = list(s.pki.cas)
    levels: list[tuple[Path_, Iterable[str]]] = [(("postfix",), s.pki.certs)]
    specs = [s.postfix]
    for i, case in enumerate(s.cases):
        levels.append((("cases", i, "postfix"), [*s.pki.certs, *(case.pki.certs if case.pki else {})]))
        specs.append(case.postfix)
    for (loc, cert_names), spec in zip(levels, specs, strict=True):
        certs = list(cert_names)
        texts = [(("main.cf", k), v) for k, v in (spec.main_cf or {}).items()]
        texts += [(("maps", k), v) for k, v in (spec.maps or {}).items()]
        for key, text in texts:
            for line, found in _templates(text):
                problem = found if isinstance(found, ValueError) else _unknown(found, certs, cas, unchecked)
                if problem is not None:
                    yield (*loc, *key), line, str(problem)


def _unknown(found: Derived, certs: list[str], cas: list[str], unchecked: Unchecked) -> str | None:
    name = found.name
    known: list[Container[str]] = [certs, cas, unchecked.certs, unchecked.cas]
    if name in certs and name in cas:
        return f"{name!r} names both a certificate and a CA, so it is ambiguous here. Hint: rename one of them"
    if found.function == "chain_file":
        if name in certs or name in unchecked.certs:
            return None
        hint = "Hint: {{ chain_file NAME }} takes a pki.certs NAME"
        return f"no certificate named {name!r} in pki.certs{near(name, certs)}. {hint}"
    if any(name in names for names in known):
        return None
    return (
        f"no certificate or CA named {name!r} in pki{near(name, [*certs, *cas])}. "
        f"Hint: {{{{ {found.function} NAME }}}} takes a pki.certs or pki.cas NAME"
    )
