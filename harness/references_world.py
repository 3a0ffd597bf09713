"""Cross-references inside a scenario's world — ``pki``, ``dns`` and ``servers`` — checked on the scenario and, by
:mod:`harness.references`, again on every case's merged world.

A certificate's issuer exists and is a CA (or the certificate is self-signed), names and dates parse, an MX or
CNAME target is listed in ``dns``, a server's host has an address and its certificates exist, fault keys that need
a certificate have one, no two entries serve one address and port. Entries that failed the schema still count as
existing (:class:`Unchecked`), so a user sees one error per mistake, not a cascade.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.model import CertSpec, Scenario, ServerSpec
from harness.model_servers import invalid_address
from harness.overrides import host_key, owner_key

__all__ = ["Unchecked", "check_world", "near"]

Path_ = tuple[str | int, ...]


class All:
    """Stands for every name of a section that is not a mapping at all."""

    def __contains__(self, name: object) -> bool:
        return True


@dataclass(frozen=True)
class _Either:
    """A name is in it when it is in either container."""

    first: Container[str]
    second: Container[str]

    def __contains__(self, name: object) -> bool:
        return name in self.first or name in self.second


@dataclass(frozen=True)
class Unchecked:
    """Names of entries that failed the schema: they exist, but their content is not known.

    Attributes:
        cases: case index → the names of that case's world overrides that failed the schema.
    """

    cas: Container[str] = frozenset()
    certs: Container[str] = frozenset()
    owners: Container[str] = frozenset()  # fully qualified, lower case
    cases: Mapping[int, Unchecked] = field(default_factory=dict)

    def for_case(self, index: int) -> Unchecked:
        """The unchecked names of case ``index``'s merged world: the scenario's and the case's own."""
        own = self.cases.get(index)
        if own is None:
            return self
        return Unchecked(self.cas, _Either(self.certs, own.certs), _Either(self.owners, own.owners))


def near(name: str, names: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``names``, or nothing."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_world(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    """Every cross-reference problem of the world sections of ``s``, as (key path, message)."""
    yield from _check_pki(s, unchecked)
    yield from _check_dns(s, unchecked)
    yield from _check_servers(s, unchecked)
    yield from _shared_endpoints(s)


# --- pki ----------------------------------------------------------------------------------------------------


def _check_pki(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    from harness import pki  # the DN and date parsers live with the certificate factory

    now = datetime.now(UTC)
    cas = s.pki.cas
    for name, ca in cas.items():
        yield from _check_dn(("pki", "cas", name, "subject"), ca.subject, pki)
        if ca.issuer is not None and ca.issuer not in cas and ca.issuer not in unchecked.cas:
            yield ("pki", "cas", name, "issuer"), f"no CA named {ca.issuer!r} in pki.cas{near(ca.issuer, cas)}"
        yield from _check_dates(("pki", "cas", name), ca.not_before, ca.not_after, now, pki)
    for name in _issuer_cycles(s):
        yield ("pki", "cas", name, "issuer"), f"CA {name!r} is its own issuer through a cycle of issuers"
    for name, cert in s.pki.certs.items():
        loc: Path_ = ("pki", "certs", name)
        if cert.self_signed and cert.issuer is not None:
            yield (
                (*loc, "issuer"),
                "a self-signed certificate has no issuer. Hint: remove `issuer`, or `self_signed: true` to have "
                "the CA issue it",
            )
        elif cert.issuer is None and not cert.self_signed:
            yield (
                (*loc, "issuer"),
                "this key is required: the NAME of a CA in pki.cas. Hint: for a certificate that signs itself, "
                "write `self_signed: true` instead",
            )
        elif cert.issuer is not None and cert.issuer not in cas and cert.issuer not in unchecked.cas:
            yield (*loc, "issuer"), f"no CA named {cert.issuer!r} in pki.cas{near(cert.issuer, cas)}"
        yield from _check_leaf_names(loc, cert, pki)
        yield from _check_dates(loc, cert.not_before, cert.not_after, now, pki)


def _check_leaf_names(loc: Path_, cert: CertSpec, pki: Any) -> Iterator[tuple[Path_, str]]:
    """What :meth:`harness.pki.Pki.add_cert` would reject in a certificate's names, found before any run."""
    from cryptography import x509

    from harness._pki_formats import san_entry

    dns_names = []
    for i, entry in enumerate(cert.san):
        try:
            if isinstance(san_entry(entry), x509.DNSName):
                dns_names.append((i, entry))
        except ValueError as exc:
            yield (*loc, "san", i), str(exc)
    if cert.subject is not None and cert.cn is not None:
        yield (*loc, "cn"), "both `subject` and `cn` given. Hint: give one of them"
    if cert.subject is not None:
        yield from _check_dn((*loc, "subject"), cert.subject, pki)
    elif cert.cn is not None:
        if cert.cn.startswith("/") or "=" in cert.cn:
            yield (*loc, "cn"), f"cn {cert.cn!r} looks like a DN. Hint: use `subject:` for a full DN"
        else:
            yield from _check_dn((*loc, "cn"), cert.cn, pki)
    elif dns_names:  # the subject is the first DNS name of `san`
        yield from _check_dn((*loc, "san", dns_names[0][0]), dns_names[0][1], pki)
    elif cert.san:
        yield (*loc, "san"), "no DNS name in `san` to take the subject from. Hint: add `cn:` or a DNS name"


def _check_dn(loc: Path_, text: str, pki: Any) -> Iterator[tuple[Path_, str]]:
    try:
        pki.parse_dn(text)
    except ValueError as exc:
        yield loc, str(exc)


def _check_dates(
    loc: Path_, not_before: str | None, not_after: str | None, now: datetime, pki: Any
) -> Iterator[tuple[Path_, str]]:
    parsed: dict[str, datetime] = {}
    for key, value in (("not_before", not_before), ("not_after", not_after)):
        if value is None:
            continue
        try:
            parsed[key] = pki.parse_when(value, now=now)
        except ValueError as exc:
            yield (*loc, key), str(exc)
    if len(parsed) == 2 and parsed["not_after"] <= parsed["not_before"]:
        yield (*loc, "not_after"), f"not_after ({not_after}) is not later than not_before ({not_before})"


def _issuer_cycles(s: Scenario) -> list[str]:
    cyclic = []
    for start in s.pki.cas:
        seen = {start}
        issuer = s.pki.cas[start].issuer
        while issuer is not None and issuer in s.pki.cas:
            if issuer == start:  # on the cycle; a CA that only leads into one is not its own issuer
                cyclic.append(start)
                break
            if issuer in seen:
                break
            seen.add(issuer)
            issuer = s.pki.cas[issuer].issuer
    return cyclic


# --- dns ----------------------------------------------------------------------------------------------------


def _not_listed(kind: str, target: str) -> str:
    return (
        f"{kind} target {target!r} is not in dns. Hint: give it an address (`{target}: {{A: auto}}`); to test a "
        f"target that does not resolve on purpose, list it without one (`{target}: {{}}`) or with a `fault:`"
    )


def _check_dns(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    cas, certs = s.pki.cas, s.pki.certs
    yield from _same_names("dns", s.dns, owner_key, "owner names are case-insensitive, trailing dot optional")
    owners = {owner_key(n) for n in s.dns}
    for owner, node in s.dns.items():
        for value in node.MX or []:
            raw = value.split()[1]
            target = owner_key(raw)
            # An IP literal as MX target is invalid (RFC 5321 §5.1) but seen in the wild; Postfix connects to it.
            if not _is_address(raw) and target not in owners and target not in unchecked.owners and target != ".":
                yield ("dns", owner, "MX"), _not_listed("MX", target)
        for value in node.CNAME or []:
            target = owner_key(value)
            if target not in owners and target not in unchecked.owners:
                yield ("dns", owner, "CNAME"), _not_listed("CNAME", target)
        for value in node.TLSA or []:
            kind, _, ref = value.split()[3].partition(":")
            if kind == "cert" and ref not in certs and ref not in unchecked.certs:
                yield ("dns", owner, "TLSA"), f"no certificate named {ref!r} in pki.certs{near(ref, certs)}"
            if kind == "ca" and ref not in cas and ref not in unchecked.cas:
                yield ("dns", owner, "TLSA"), f"no CA named {ref!r} in pki.cas{near(ref, cas)}"
        if node.CNAME and len(node.records()) > 1:
            yield ("dns", owner, "CNAME"), "a name with a CNAME has no other records (RFC 1034 §3.6.2)"


def _same_names(section: str, names: Iterable[str], key: Callable[[str], str], why: str) -> Iterator[tuple[Path_, str]]:
    """Entries that are one name (``Example.com`` and ``example.com.``): the second would shadow the first."""
    first: dict[str, str] = {}
    for name in names:
        if key(name) in first:
            yield (section, name), f"{name!r} is the same name as {first[key(name)]!r} ({why}). Hint: merge them"
        first.setdefault(key(name), name)


def resolvable(s: Scenario) -> set[str]:
    """Owner names that resolve to an address: A/AAAA records, or a CNAME chain that ends at one."""
    direct = {owner_key(n) for n, node in s.dns.items() if node.A or node.AAAA}
    cnames = {owner_key(n): owner_key(node.CNAME[0]) for n, node in s.dns.items() if node.CNAME}
    resolved = set(direct)
    for name in cnames:
        seen, target = {name}, cnames[name]
        while target in cnames and target not in seen:
            seen.add(target)
            target = cnames[target]
        if target in direct:
            resolved.add(name)
    return resolved


# --- servers ------------------------------------------------------------------------------------------------

#: Server keys that configure TLS and so mean nothing without a certificate.
_TLS_KEYS = ("chain", "sni", "implicit_tls", "tls")
_PLAIN = ServerSpec()


def _check_servers(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    certs = s.pki.certs
    yield from _same_names("servers", s.servers, host_key, "host names are case-insensitive, [ ] optional")
    owners = {owner_key(n) for n in s.dns}
    with_address = resolvable(s)
    for host, server in s.servers.items():
        loc: Path_ = ("servers", host)
        name = owner_key(host)
        if (
            not _is_address(host.strip("[]"))
            and not invalid_address(host)  # the schema reports a broken address: no host name either
            and name not in with_address
            and name not in unchecked.owners
        ):
            # Suggest only names that have an address: another name without one would not help.
            hint = " (it has no A or AAAA record)" if name in owners else near(name, with_address)
            yield loc, f"server host {host!r} has no address in dns{hint}. Hint: add `A: auto`"
        if server.cert is not None and server.cert not in certs and server.cert not in unchecked.certs:
            yield (*loc, "cert"), f"no certificate named {server.cert!r} in pki.certs{near(server.cert, certs)}"
        for sni_name, cert in server.sni.items():
            if cert not in certs and cert not in unchecked.certs:
                yield (*loc, "sni", sni_name), f"no certificate named {cert!r} in pki.certs{near(cert, certs)}"
        if server.cert is None:
            for key in _TLS_KEYS:
                if key in server.model_fields_set and getattr(server, key) != getattr(_PLAIN, key):
                    yield (
                        (*loc, key),
                        f"`{key}` has no effect without `cert`: the server offers no TLS. Hint: add `cert: NAME`, "
                        f"or remove `{key}`",
                    )
        for i, port in enumerate(server.implicit_tls):
            if port not in server.ports:
                ports = ", ".join(str(p) for p in server.ports)
                yield (
                    (*loc, "implicit_tls", i),
                    f"port {port} is not one of the server's ports ({ports}). Hint: add it to `ports`, e.g. "
                    f"`ports: [{ports}, {port}]`",
                )


def _shared_endpoints(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Two server entries on one address and port: the peer cannot bind both (names of one host share one
    server entry)."""
    owner_addresses: dict[str, list[str]] = {}
    for owner, node in s.dns.items():
        for value in (node.A or []) + (node.AAAA or []):
            if value != "auto":
                owner_addresses.setdefault(owner_key(owner), []).append(str(ipaddress.ip_address(value)))
    used: dict[tuple[str, int], str] = {}
    for host, server in s.servers.items():
        addresses = [host_key(host)] if _is_address(host.strip("[]")) else owner_addresses.get(owner_key(host), [])
        for address in addresses:
            for port in server.ports:
                other = used.setdefault((address, port), host)
                if host_key(other) != host_key(host):  # one name in two spellings is reported on its own
                    yield (
                        ("servers", host),
                        f"address {address} port {port} is served by {other!r} already. Hint: a server listens on "
                        "every address of its host; give one server entry, under one of the names",
                    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
