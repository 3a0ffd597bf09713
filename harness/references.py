"""Cross-references between the sections of a scenario: issuers, certificates, addresses, trust, names.

The schema (:mod:`harness.model`) checks each entry on its own; this module checks what entries say about each
other — a certificate's issuer exists and is a CA, a server's host has an address record, an MX target has an
address, TLSA ``cert:NAME`` names a certificate, no issuer cycle, no two spellings of one name. Entries that
failed the schema still count as existing, so a user sees one error per mistake, not a cascade.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness.model import Case, CaSpec, CertSpec, DnsNode, Pki, PostfixSpec, Scenario, ServerSpec
from harness.releases import release_error, suite_for_release

__all__ = ["Unchecked", "check_references", "valid_parts"]

Path_ = tuple[str | int, ...]


class _All:
    """Stands for every name of a section that is not a mapping at all."""

    def __contains__(self, name: object) -> bool:
        return True


@dataclass(frozen=True)
class Unchecked:
    """Names of entries that failed the schema: they exist, but their content is not known."""

    cas: Container[str] = frozenset()
    certs: Container[str] = frozenset()
    owners: Container[str] = frozenset()  # fully qualified, lower case


def valid_parts(data: Mapping[str, Any]) -> tuple[Scenario, Unchecked]:
    """A scenario of the entries of ``data`` that pass the schema one by one (pki, dns, servers, trust, case
    names), and the names of those that do not, so that references are checked without errors about entries
    the schema already rejected."""
    pki = data.get("pki", {})
    if isinstance(pki, Mapping):
        cas, bad_cas = _valid_entries(pki.get("cas"), CaSpec)
        certs, bad_certs = _valid_entries(pki.get("certs"), CertSpec)
    else:
        cas, bad_cas, certs, bad_certs = {}, _All(), {}, _All()
    dns, bad_owners = _valid_entries(data.get("dns"), DnsNode)
    servers, bad_servers = _valid_entries(data.get("servers"), ServerSpec)
    if not isinstance(bad_servers, _All):  # a server's host name is checked even when its entry is not valid
        servers.update({host: ServerSpec() for host in bad_servers})
    raw_cases = data.get("cases")
    cases = []
    for raw in raw_cases if isinstance(raw_cases, list) else []:
        raw = raw if isinstance(raw, Mapping) else {}
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        postfix = _valid_or_default(raw.get("postfix"), PostfixSpec)
        cases.append(Case.model_construct(name=name, postfix=postfix))
    scenario = Scenario.model_construct(
        pki=Pki.model_construct(cas=cas, certs=certs),
        dns=dns,
        servers=servers,
        postfix=_valid_or_default(data.get("postfix"), PostfixSpec),
        cases=cases,
    )
    owners = bad_owners if isinstance(bad_owners, _All) else frozenset(_fqdn(n) for n in bad_owners)
    return scenario, Unchecked(cas=bad_cas, certs=bad_certs, owners=owners)


def _valid_entries(section: Any, model: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str] | _All]:
    if section is None:
        return {}, frozenset()
    if not isinstance(section, Mapping):
        return {}, _All()
    good: dict[str, Any] = {}
    bad: set[str] = set()
    for name, value in section.items():
        try:
            good[str(name)] = model.model_validate(value)
        except ValidationError:
            bad.add(str(name))
            if model is DnsNode and isinstance(value, Mapping):  # its other record types are still checked
                good[str(name)] = _valid_fields(value, DnsNode)
    return good, frozenset(bad)


def _valid_or_default(value: Any, model: type[PostfixSpec]) -> PostfixSpec:
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError:
        return _valid_fields(value, model) if isinstance(value, Mapping) else model()


_M = TypeVar("_M", bound=BaseModel)


def _valid_fields(value: Mapping[str, Any], model: type[_M]) -> _M:
    """A model of the keys of ``value`` that pass on their own (for models whose every field is optional), so
    that one bad key does not hide the references of the others."""
    good: dict[str, Any] = {}
    for key, item in value.items():
        try:
            model.model_validate({key: item})
        except ValidationError:
            continue
        good[key] = item
    return model.model_validate(good)


def _near(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_references(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    """Cross-references between sections; names in ``unchecked`` exist but failed the schema."""
    from harness import pki  # the DN and date parsers live with the certificate factory

    now = datetime.now(UTC)
    cas, certs = s.pki.cas, s.pki.certs

    def no_ca(name: str) -> bool:
        return name not in cas and name not in unchecked.cas

    def no_cert(name: str) -> bool:
        return name not in certs and name not in unchecked.certs

    for name, ca in cas.items():
        yield from _check_dn(("pki", "cas", name, "subject"), ca.subject, pki)
        if ca.issuer is not None and no_ca(ca.issuer):
            yield (
                ("pki", "cas", name, "issuer"),
                f"no CA named {ca.issuer!r} in pki.cas{_near(ca.issuer, cas)}",
            )
        yield from _check_dates(("pki", "cas", name), ca.not_before, ca.not_after, now, pki)
    for name in _issuer_cycles(s):
        yield ("pki", "cas", name, "issuer"), f"CA {name!r} is its own issuer through a cycle of issuers"
    for name, cert in certs.items():
        if no_ca(cert.issuer):
            near = _near(cert.issuer, cas)
            yield ("pki", "certs", name, "issuer"), f"no CA named {cert.issuer!r} in pki.cas{near}"
        yield from _check_leaf_names(("pki", "certs", name), cert, pki)
        yield from _check_dates(("pki", "certs", name), cert.not_before, cert.not_after, now, pki)

    yield from _same_names("dns", s.dns, _fqdn, "owner names are case-insensitive, trailing dot optional")
    yield from _same_names("servers", s.servers, _host_key, "host names are case-insensitive, [ ] optional")
    owners = {_fqdn(n) for n in s.dns}
    with_address = _resolvable(s)
    for owner, node in s.dns.items():
        for value in node.MX or []:
            target = _fqdn(value.split()[1])
            if target not in with_address and target not in unchecked.owners and target != ".":
                yield ("dns", owner, "MX"), f"MX target {target!r} has no A or AAAA record in dns"
        for value in node.CNAME or []:
            target = _fqdn(value)
            if target not in with_address and target not in unchecked.owners:
                yield ("dns", owner, "CNAME"), f"CNAME target {target!r} has no A or AAAA record in dns"
        for value in node.TLSA or []:
            data = value.split()[3]
            kind, _, ref = data.partition(":")
            if kind == "cert" and no_cert(ref):
                yield ("dns", owner, "TLSA"), f"no certificate named {ref!r} in pki.certs{_near(ref, certs)}"
            if kind == "ca" and no_ca(ref):
                yield ("dns", owner, "TLSA"), f"no CA named {ref!r} in pki.cas{_near(ref, cas)}"
        if node.CNAME and len(node.records()) > 1:
            yield ("dns", owner, "CNAME"), "a name with a CNAME has no other records (RFC 1034 §3.6.2)"

    for host, server in s.servers.items():
        if not _is_ip(host) and _fqdn(host) not in with_address and _fqdn(host) not in unchecked.owners:
            # Suggest only names that have an address: another name without one would not help.
            hint = " (it has no A or AAAA record)" if _fqdn(host) in owners else _near(_fqdn(host), with_address)
            yield ("servers", host), f"server host {host!r} has no address in dns{hint}. Hint: add `A: auto`"
        if server.cert is not None and no_cert(server.cert):
            near = _near(server.cert, certs)
            yield ("servers", host, "cert"), f"no certificate named {server.cert!r} in pki.certs{near}"

    yield from _shared_endpoints(s)
    yield from _undefined_maps(s)

    specs = [(("postfix",), s.postfix)] + [(("cases", i, "postfix"), c.postfix) for i, c in enumerate(s.cases)]
    for loc, spec in specs:
        if spec.release is not None and suite_for_release(spec.release) is None:
            yield (*loc, "release"), release_error(spec.release)
        yield from _check_master_cf((*loc, "master.cf"), spec.master_cf)
        for i, ca_name in enumerate(spec.trust or []):
            if no_ca(ca_name):
                yield (*loc, "trust", i), f"no CA named {ca_name!r} in pki.cas{_near(ca_name, cas)}"

    seen: set[str] = set()
    for i, case in enumerate(s.cases):
        if case.name is None:  # failed the schema
            continue
        if case.name in seen:
            yield ("cases", i, "name"), f"case name {case.name!r} is used twice in this scenario"
        seen.add(case.name)


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


def _same_names(section: str, names: Iterable[str], key: Callable[[str], str], why: str) -> Iterator[tuple[Path_, str]]:
    """Entries that are one name (``Example.com`` and ``example.com.``): the second would shadow the first."""
    first: dict[str, str] = {}
    for name in names:
        if key(name) in first:
            yield (
                (section, name),
                f"{name!r} is the same name as {first[key(name)]!r} ({why}). Hint: merge them",
            )
        first.setdefault(key(name), name)


def _host_key(host: str) -> str:
    return str(ipaddress.ip_address(host.strip("[]"))) if _is_ip(host) else _fqdn(host)


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


def _fqdn(name: str) -> str:
    return name.lower().rstrip(".") or "."


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _resolvable(s: Scenario) -> set[str]:
    """Owner names that resolve to an address: A/AAAA records, or a CNAME chain that ends at one."""
    direct = {_fqdn(n) for n, node in s.dns.items() if node.A or node.AAAA}
    cnames = {_fqdn(n): _fqdn(node.CNAME[0]) for n, node in s.dns.items() if node.CNAME}
    resolved = set(direct)
    for name in cnames:
        seen, target = {name}, cnames[name]
        while target in cnames and target not in seen:
            seen.add(target)
            target = cnames[target]
        if target in direct:
            resolved.add(name)
    return resolved


def _shared_endpoints(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """Two server entries on one address and port: the peer cannot bind both (names of one host share one
    server entry)."""
    owner_addresses: dict[str, list[str]] = {}
    for owner, node in s.dns.items():
        for value in (node.A or []) + (node.AAAA or []):
            if value != "auto":
                owner_addresses.setdefault(_fqdn(owner), []).append(str(ipaddress.ip_address(value)))
    used: dict[tuple[str, int], str] = {}
    for host, server in s.servers.items():
        addresses = [_host_key(host)] if _is_ip(host) else owner_addresses.get(_fqdn(host), [])
        for address in addresses:
            for port in server.ports:
                other = used.setdefault((address, port), host)
                if _host_key(other) != _host_key(host):  # one name in two spellings is reported on its own
                    yield (
                        ("servers", host),
                        (
                            f"address {address} port {port} is served by {other!r} already. Hint: a server listens on "
                            "every address of its host; give one server entry, under one of the names"
                        ),
                    )


_FILE_MAP = re.compile(r"\b(hash|btree|lmdb|cdb|dbm|sdbm|texthash|regexp|pcre|cidr):(/[^\s,]+)")


def _undefined_maps(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """A file-based map that a case's main.cf or master.cf names but the scenario never writes: Postfix would find
    no file (or the image's own) and fail at run time, so this is an error at load time."""
    reported: set[tuple[Path_, str]] = set()
    for i, case in enumerate(s.cases):
        maps = {**(s.postfix.maps or {}), **(case.postfix.maps or {})}
        sources: list[tuple[Path_, str]] = []
        levels: list[tuple[Path_, PostfixSpec]] = [(("postfix",), s.postfix), (("cases", i, "postfix"), case.postfix)]
        for loc, spec in levels:
            for name, value in (spec.main_cf or {}).items():
                if not (case.postfix.main_cf and name in case.postfix.main_cf and loc[0] == "postfix"):
                    sources.append(((*loc, "main.cf", name), value))
            if spec.master_cf:
                sources.append(((*loc, "master.cf"), spec.master_cf))
        for loc, text in sources:
            text = re.sub(r"\$[({]?config_directory[)}]?", "/etc/postfix", text)
            for kind, path in _FILE_MAP.findall(text):
                if path not in maps and (loc, path) not in reported:
                    reported.add((loc, path))
                    yield (
                        loc,
                        (
                            f"the map {kind}:{path} is used but the scenario does not define it. "
                            f"Hint: add it under postfix.maps, e.g. `{path}: |` followed by its lines"
                        ),
                    )


def _check_master_cf(loc: Path_, text: str | None) -> Iterator[tuple[Path_, str]]:
    """Each master.cf entry's first line has the eight fields of master(5): service type private unpriv chroot
    wakeup maxproc command; a continuation line (white space first) holds only arguments."""
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#") or line[0].isspace():
            continue
        fields = line.split()
        if len(fields) < 8:
            yield (
                loc,
                (
                    f"line {number} of master.cf has {len(fields)} fields: {line.strip()!r}. Hint: an entry is "
                    "`service type private unpriv chroot wakeup maxproc command [args]`, e.g. "
                    "`out unix - - n - - smtp`; arguments go on lines that start with white space"
                ),
            )
