"""Certificate name matching as Postfix 3.6 and later do it: match list → reference names → OpenSSL's host check.

Postfix 3.6+ (``src/tls/tls_client.c``, ``add_namechecks``) turns each entry of the match list
(``smtp_tls_verify_cert_match``, ``smtp_tls_secure_cert_match`` or the policy table's ``match=``) into a name that it
hands to OpenSSL with ``SSL_add1_host()``, partial wildcards off (``X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS``):

* ``nexthop`` → the next-hop domain; ``dot-nexthop`` → ``.`` + the next-hop domain (any name below it);
* ``hostname`` → the server's host name as published in the MX record (not CNAME-expanded);
* ``.domain`` → any name below ``domain``, at any depth; ``.`` alone is ignored with a warning;
* anything else → that name, literally. OpenSSL 3.0's ``SSL_add1_host()`` takes a string that parses as an IP
  address as *the* IP address to check (only one: a second one is an error that Postfix logs and skips).

OpenSSL (``crypto/x509/v3_utl.c``, ``X509_check_host``/``X509_check_ip``, 3.0) then compares. A certificate's DNS
subjectAltNames are its names; its subject CNs count only when it has no DNS subjectAltName at all (an IP
subjectAltName does not count as one). Comparison is ASCII case-insensitive and exact, trailing dots included. A
certificate name may be a wildcard only as a whole first label (``*.example.com``) with at least two more dots'
worth of labels after it; it then stands for exactly one label. A reference name starting with ``.`` matches any
certificate name that ends with it (wildcards included: ``*.example.com`` is "below" ``.example.com``). The check
passes when any reference host name matches (``vpm->hosts``) and, if an IP address was given, that address is among
the IP subjectAltNames too. Postfix ≤ 3.5 used its own matcher (wildcards over several labels; not modelled).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CertNames", "NameCheck", "ReferenceName", "certificate_names", "check_names", "host_matches", "references"]

_LDH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


@dataclass(frozen=True)
class ReferenceName:
    """One name Postfix asks OpenSSL to find in the certificate.

    Attributes:
        entry: the match list entry it came from (``nexthop``, ``.example.com``, …).
        name: what OpenSSL gets (``example.com``, ``.example.com``, ``192.0.2.1``).
        kind: ``host`` (one name), ``subdomains`` (a leading dot: any name below) or ``ip``.
    """

    entry: str
    name: str
    kind: str

    def describe(self) -> str:
        """``.example.com (dot-nexthop: any name below example.com)`` and the like."""
        words = {"subdomains": f"any name below {self.name[1:]}", "ip": "an IP address", "host": "exactly this name"}
        source = self.entry if self.entry.lower() in ("nexthop", "dot-nexthop", "hostname") else "literal"
        return f"{self.name} ({source}: {words[self.kind]})"


@dataclass(frozen=True)
class CertNames:
    """The names of a certificate as OpenSSL's host check sees them.

    Attributes:
        dns: DNS subjectAltNames, verbatim.
        ips: IP subjectAltNames (canonical text).
        cns: subject common names.
    """

    dns: tuple[str, ...]
    ips: tuple[str, ...]
    cns: tuple[str, ...]

    @property
    def host_names(self) -> tuple[str, ...]:
        """What reference host names are compared with: the DNS subjectAltNames, else the CNs (RFC 6125 §6.4.4)."""
        return self.dns if self.dns else self.cns

    def describe(self) -> str:
        """The names in words, saying which part of the certificate counts."""
        if self.dns:
            ignored = f"; its CN {', '.join(self.cns)} is ignored" if self.cns else ""
            return f"DNS subjectAltNames {', '.join(self.dns)}{ignored}"
        if self.cns:
            why = "it has no DNS subjectAltName" if not self.ips else "its subjectAltNames are IP addresses only"
            return f"CN {', '.join(self.cns)} (used because {why})"
        return "no DNS name at all"


@dataclass(frozen=True)
class NameCheck:
    """The outcome of OpenSSL's name check for one certificate.

    Attributes:
        matched: whether the check passes.
        matches: (reference name, certificate name) pairs that matched.
        ip_required: the IP address that must also be an IP subjectAltName, if one was given.
        ip_ok: whether it is (True when none was required).
        warnings: match entries Postfix ignored, in its words.
    """

    matched: bool
    matches: tuple[tuple[str, str], ...]
    ip_required: str | None
    ip_ok: bool
    warnings: tuple[str, ...] = ()


def references(match: Sequence[str], *, nexthop: str, hostname: str) -> tuple[tuple[ReferenceName, ...], list[str]]:
    """The reference names of a match list (Postfix 3.7 ``add_namechecks``).

    Args:
        match: the entries, as split by Postfix (policy ``match=`` on ``:``, main.cf on comma, space and ``:``).
        nexthop: the next-hop domain (no brackets, no port).
        hostname: the MX host name as published (for a bracketed next-hop, the next-hop itself).

    Returns:
        (names, warnings): the names in order, and what Postfix warns about (``ignoring invalid match name``,
        ``error loading match name`` for a second IP address).
    """
    out: list[ReferenceName] = []
    warnings: list[str] = []
    have_ip = False
    for entry in match:
        low = entry.lower()
        if low == "nexthop":
            out.append(ReferenceName(entry, nexthop, "host"))
        elif low == "dot-nexthop":
            out.append(ReferenceName(entry, "." + nexthop, "subdomains"))
        elif low == "hostname":
            out.append(ReferenceName(entry, hostname, "host"))
        elif entry == ".":
            warnings.append('ignoring invalid match name: "."')
        elif entry.startswith("."):
            out.append(ReferenceName(entry, entry, "subdomains"))
        elif _is_ip(entry):
            if have_ip:
                warnings.append(f'error loading match name: "{entry}" (OpenSSL takes one IP address)')
                continue
            have_ip = True
            out.append(ReferenceName(entry, str(ipaddress.ip_address(entry)), "ip"))
        else:
            out.append(ReferenceName(entry, entry, "host"))
    return tuple(out), warnings


def certificate_names(san: Sequence[str], cns: Sequence[str]) -> CertNames:
    """A certificate's names from its ``san`` entries (an entry that parses as an address is an IP
    subjectAltName, as :func:`harness._pki_formats.san_entry` writes it) and its subject CNs."""
    dns = tuple(s for s in san if not _is_ip(s))
    ips = tuple(str(ipaddress.ip_address(s)) for s in san if _is_ip(s))
    return CertNames(dns=dns, ips=ips, cns=tuple(cns))


def check_names(refs: Sequence[ReferenceName], cert: CertNames) -> NameCheck:
    """OpenSSL's check of ``refs`` against ``cert`` (``check_id`` in ``crypto/x509/x509_vfy.c``, 3.0): some
    reference host name matches a certificate host name, and the reference IP address (if any) is an IP
    subjectAltName. With no usable reference name at all Postfix fails the check itself (``must_fail``)."""
    hosts = [r for r in refs if r.kind != "ip"]
    ip = next((r.name for r in refs if r.kind == "ip"), None)
    matches = tuple((r.name, name) for r in hosts for name in cert.host_names if host_matches(name, r.name))
    ip_ok = ip is None or ip in cert.ips
    matched = bool(refs) and (not hosts or bool(matches)) and ip_ok
    return NameCheck(matched=matched, matches=matches, ip_required=ip, ip_ok=ip_ok)


def host_matches(pattern: str, reference: str) -> bool:
    """Whether certificate name ``pattern`` matches reference name ``reference`` (OpenSSL 3.0 ``equal_wildcard``
    with ``X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS``; a reference starting with ``.`` matches any name below it).

    >>> host_matches("*.example.com", "mx.example.com"), host_matches("*.example.com", "a.b.example.com")
    (True, False)
    >>> host_matches("mx.example.com", ".example.com"), host_matches("m*.example.com", "mx.example.com")
    (True, False)
    """
    below = len(reference) > 1 and reference[0] == "."
    star = None if below else _valid_star(pattern)
    if star is None:
        return _equal_nocase(pattern, reference, below=below)
    prefix, suffix = pattern[:star], pattern[star + 1 :]
    if len(reference) < len(prefix) + len(suffix):
        return False
    start, end = len(prefix), len(reference) - len(suffix)
    if not (_equal_nocase(prefix, reference[:start]) and _equal_nocase(reference[end:], suffix)):
        return False
    whole_label = not prefix and suffix.startswith(".")
    if whole_label and start == end:
        return False  # the wildcard stands for at least one character
    if not whole_label and reference[:4].lower() == "xn--":
        return False
    if end == start + 1 and reference[start] == "*":
        return True
    return all(c in _LDH for c in reference[start:end])  # one label: no dot


def _equal_nocase(pattern: str, subject: str, *, below: bool = False) -> bool:
    if below and len(pattern) > len(subject):
        pattern = pattern[len(pattern) - len(subject) :]  # skip_prefix: compare the tail with ".domain"
    return len(pattern) == len(subject) and _ascii_lower(pattern) == _ascii_lower(subject)


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def _valid_star(pattern: str) -> int | None:
    """Where the one permitted wildcard is (OpenSSL ``valid_star``), or None when the name is no wildcard."""
    star: int | None = None
    label_start, hyphen, idna, dots = True, False, False, 0
    for i, c in enumerate(pattern):
        if c == "*":
            at_end = i == len(pattern) - 1 or pattern[i + 1] == "."
            if star is not None or idna or dots or not label_start or not at_end:
                return None
            star, label_start = i, False
        elif c.isascii() and c.isalnum():
            if label_start and pattern[i : i + 4].lower() == "xn--":
                idna = True
            label_start = hyphen = False
        elif c == ".":
            if hyphen or label_start:
                return None
            label_start, hyphen, idna, dots = True, False, False, dots + 1
        elif c == "-":
            if label_start:
                return None
            hyphen = True
        else:
            return None
    if label_start or hyphen or dots < 2:
        return None
    return star


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
