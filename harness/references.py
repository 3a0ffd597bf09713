"""Cross-references between the sections of a scenario: issuers, certificates, addresses, trust, names.

The schema (:mod:`harness.model`) checks each entry on its own; this module checks what entries say about each
other — the world sections (``pki``, ``dns``, ``servers``, in :mod:`harness.references_world`) on the scenario and
again on every case's merged world, then trust, releases, master.cf, maps and case names. Entries that failed the
schema still count as existing, so a user sees one error per mistake, not a cascade.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from harness._draft_config import LEVELS
from harness._explain_maps import FILE_TYPES, table_entries, table_refs
from harness.model import Case, CasePki, CaSpec, CertSpec, DnsNode, Pki, PostfixSpec, Scenario, ServerSpec
from harness.overrides import merged_world, owner_key
from harness.references_world import All, Unchecked, check_world, near
from harness.releases import release_error, suite_for_release

__all__ = ["Unchecked", "check_references", "policy_level_warnings", "valid_parts"]

Path_ = tuple[str | int, ...]


def valid_parts(data: Mapping[str, Any]) -> tuple[Scenario, Unchecked]:
    """A scenario of the entries of ``data`` that pass the schema one by one (pki, dns, servers, trust, case
    names, case world overrides), and the names of those that do not, so that references are checked without
    errors about entries the schema already rejected."""
    cas, bad_cas = _valid_entries(_part(data.get("pki", {}), "cas"), CaSpec)
    world, unchecked = _valid_world(data)
    raw_cases = data.get("cases")
    cases = []
    case_unchecked: dict[int, Unchecked] = {}
    for i, raw in enumerate(raw_cases if isinstance(raw_cases, list) else []):
        raw = raw if isinstance(raw, Mapping) else {}
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        postfix = _valid_or_default(raw.get("postfix"), PostfixSpec)
        (certs, dns, servers), case_unchecked[i] = _valid_world(raw)
        pki_override = CasePki.model_construct(certs=certs)
        cases.append(
            Case.model_construct(name=name, postfix=postfix, pki=pki_override, dns=dns or None, servers=servers or None)
        )
    certs, dns, servers = world
    scenario = Scenario.model_construct(
        pki=Pki.model_construct(cas=cas, certs=certs),
        dns=dns,
        servers=servers,
        postfix=_valid_or_default(data.get("postfix"), PostfixSpec),
        cases=cases,
    )
    return scenario, Unchecked(bad_cas, unchecked.certs, unchecked.owners, case_unchecked)


_World = tuple[dict[str, CertSpec], dict[str, DnsNode], dict[str, ServerSpec]]


def _valid_world(data: Mapping[str, Any]) -> tuple[_World, Unchecked]:
    """The valid ``pki.certs``, ``dns`` and ``servers`` entries of a scenario or a case, and the names of the others."""
    certs, bad_certs = _valid_entries(_part(data.get("pki", {}), "certs"), CertSpec)
    dns, bad_owners = _valid_entries(data.get("dns"), DnsNode)
    servers, bad_servers = _valid_entries(data.get("servers"), ServerSpec)
    if not isinstance(bad_servers, All):  # a server's host name is checked even when its entry is not valid
        servers.update({host: ServerSpec() for host in bad_servers})
    owners = bad_owners if isinstance(bad_owners, All) else frozenset(owner_key(n) for n in bad_owners)
    return (certs, dns, servers), Unchecked(certs=bad_certs, owners=owners)


_NOT_A_MAPPING = object()


def _part(section: Any, key: str) -> Any:
    """``section[key]``; when ``section`` is not a mapping, a value that makes every name of the part unchecked."""
    return section.get(key) if isinstance(section, Mapping) else _NOT_A_MAPPING


def _valid_entries(section: Any, model: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str] | All]:
    if section is None:
        return {}, frozenset()
    if not isinstance(section, Mapping):
        return {}, All()
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


def check_references(s: Scenario, unchecked: Unchecked) -> Iterator[tuple[Path_, str]]:
    """Cross-references between sections; names in ``unchecked`` exist but failed the schema."""
    cas = s.pki.cas
    base = list(check_world(s, unchecked))
    yield from base
    yield from _case_worlds(s, unchecked, set(base))
    yield from _undefined_maps(s)

    specs = [(("postfix",), s.postfix)] + [(("cases", i, "postfix"), c.postfix) for i, c in enumerate(s.cases)]
    for loc, spec in specs:
        if spec.release is not None and suite_for_release(spec.release) is None:
            yield (*loc, "release"), release_error(spec.release)
        yield from _check_master_cf((*loc, "master.cf"), spec.master_cf)
        for i, ca_name in enumerate(spec.trust or []):
            if ca_name not in cas and ca_name not in unchecked.cas:
                yield (*loc, "trust", i), f"no CA named {ca_name!r} in pki.cas{near(ca_name, cas)}"

    seen: set[str] = set()
    for i, case in enumerate(s.cases):
        if case.name is None:  # failed the schema
            continue
        if case.name in seen:
            yield ("cases", i, "name"), f"case name {case.name!r} is used twice in this scenario"
        seen.add(case.name)


def _case_worlds(s: Scenario, unchecked: Unchecked, reported: set[tuple[Path_, str]]) -> Iterator[tuple[Path_, str]]:
    """The world checks on each case's merged world (scenario-format.md, "Worlds that change between cases").

    A problem in an entry the case wrote is reported at the case's key; a problem that the case's entries cause
    in an entry of the scenario (a server whose address the case took away) at the scenario's key, naming the
    case. What the scenario's world has wrong on its own is reported once, by the caller.
    """
    for i, case in enumerate(s.cases):
        if not case.changes_world:
            continue
        for loc, message in check_world(merged_world(s, case), unchecked.for_case(i)):
            if _from_case(loc, case):
                yield ("cases", i, *loc), message
            elif (loc, message) not in reported:
                reported.add((loc, message))
                fact, hint_mark, hint = message.partition(". Hint: ")
                note = f" (in case {case.name!r}, whose world entries replace the scenario's)"
                yield loc, f"{fact}{note}{hint_mark}{hint}"


def _from_case(loc: Path_, case: Case) -> bool:
    """Whether the world entry at ``loc`` of a merged world is one the case wrote."""
    if loc[0] == "dns":
        return bool(case.dns) and loc[1] in (case.dns or {})
    if loc[0] == "servers":
        return bool(case.servers) and loc[1] in (case.servers or {})
    if loc[:2] == ("pki", "certs") and case.pki is not None:
        return loc[2] in case.pki.certs
    return False


_FILE_MAP = re.compile(r"\b(hash|btree|lmdb|cdb|dbm|sdbm|texthash|regexp|pcre|cidr):(/[^\s,]+)")


def _undefined_maps(s: Scenario) -> Iterator[tuple[Path_, str]]:
    """A file-based map that a case's main.cf or master.cf names but the scenario never writes: Postfix would find
    no file (or the image's own) and fail at run time, so this is an error at load time."""
    reported: set[tuple[Path_, str]] = set()
    for i, case in enumerate(s.cases):
        if case.postfix.config_dir or s.postfix.config_dir:
            continue  # the configuration folder holds the maps (harness.postfix_config)
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


_POLICY_MAPS_IN_MASTER_CF = re.compile(r"smtp_tls_policy_maps\s*=\s*([^\s,}]+(?:\s*,\s*[^\s,}]+)*)")


def policy_level_warnings(s: Scenario) -> Iterator[tuple[Path_, int, str]]:
    """Entries of a policy table (a scenario's ``maps`` file that a case's ``smtp_tls_policy_maps`` names, in main.cf
    or a master.cf ``-o``) whose security level Postfix does not know, as (key path of the map, 0-based line in its
    text, message).

    Postfix logs ``invalid security level`` for such an entry and defers mail to its destination; a scenario may
    reproduce that on purpose, so these are warnings, not errors. The levels and the closest-match hint are the
    ones ``mxharness draft`` uses for a reporter's policy table (:mod:`harness._draft_config`).
    """
    reported: set[tuple[Path_, int]] = set()
    for i, case in enumerate(s.cases):
        main_cf = {**(s.postfix.main_cf or {}), **(case.postfix.main_cf or {})}
        values = [main_cf.get("smtp_tls_policy_maps", "")]
        for text in (s.postfix.master_cf, case.postfix.master_cf):
            values += _POLICY_MAPS_IN_MASTER_CF.findall(text or "")
        for value in values:
            value = re.sub(r"\$[({]?config_directory[)}]?", "/etc/postfix", value)
            for ref in table_refs(value):
                kind, _, path = ref.removeprefix("proxy:").partition(":")
                if kind not in FILE_TYPES:
                    continue  # pattern tables (regexp, pcre, cidr) and inline: are not read here
                if case.postfix.maps and path in case.postfix.maps:
                    loc: Path_ = ("cases", i, "postfix", "maps", path)
                    text = case.postfix.maps[path]
                elif s.postfix.maps and path in s.postfix.maps:
                    loc, text = ("postfix", "maps", path), s.postfix.maps[path]
                else:
                    continue  # not defined: an error of its own (_undefined_maps)
                for line, key, entry in table_entries(text):
                    if (loc, line) in reported:
                        continue
                    reported.add((loc, line))
                    word = re.split(r"[,\s]+", entry)[0] if entry else ""
                    if not word:
                        yield loc, line - 1, _level_message(key, "")
                    elif word.lower() not in LEVELS:
                        yield loc, line - 1, _level_message(key, word)


def _level_message(key: str, level: str) -> str:
    problem = (
        f"policy table entry {key!r}: unknown security level {level!r}{near(level.lower(), LEVELS)}"
        if level
        else f"policy table entry {key!r} has no security level"
    )
    said = f'invalid security level "{level}"' if level else "invalid empty policy"
    return (
        f"{problem}. Postfix logs '{said}' for it and defers mail to {key} (4.7.5 client TLS configuration "
        f"problem). Hint: one of {', '.join(LEVELS)}; a scenario that reproduces this on purpose can ignore this "
        "warning"
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
