"""Scenario loader: YAML file → validated, frozen :class:`~harness.model.Scenario`.

Errors name the file, the line and the key path, say what was expected and what was found, and give a
"did you mean" where a name is close: ``scenarios/x.yaml:14: servers.mx1.cert: no certificate named 'mx' in
pki.certs (did you mean 'mx1'?)``. All problems of a file are collected and raised together as one
:class:`~harness.errors.ScenarioError`.

YAML is read with ruamel.yaml (YAML 1.2, which keeps line numbers); the shape is checked by the pydantic models
in :mod:`harness.model`; the cross-references between sections are checked here.
"""

from __future__ import annotations

import difflib
import ipaddress
import types
import typing
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

from harness.errors import ScenarioError, ScenarioIssue
from harness.model import Case, CaSpec, CertSpec, DnsNode, Pki, PostfixSpec, Scenario, ServerSpec

__all__ = ["load_scenario", "load_scenarios", "scenario_files", "scenario_from_dict"]

Path_ = tuple[str | int, ...]


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into scenario files (``*.yaml``/``*.yml``, folders searched recursively, sorted).

    Raises:
        ScenarioError: a path does not exist, or a folder holds no scenario file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise ScenarioError(ScenarioIssue(str(path), None, "", "no *.yaml scenario files in this folder"))
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ScenarioError(
                ScenarioIssue(str(path), None, "", "no such file or folder. Hint: give a scenario file or a folder")
            )
    unique: dict[Path, Path] = {}  # a file named twice (`scenarios scenarios/x.yaml`) is loaded once
    for path in out:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    """Load every scenario under ``paths`` (files or folders); scenario names must be unique in the run.

    Raises:
        ScenarioError: with every issue of every file, so one call reports all mistakes.
    """
    issues: list[ScenarioIssue] = []
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for path in scenario_files(paths):
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            issues.extend(exc.issues)
            continue
        if scenario.name in seen:
            issues.append(
                ScenarioIssue(
                    str(path),
                    scenario._name_line,
                    "name",
                    f"scenario name {scenario.name!r} is also used by {seen[scenario.name]}. "
                    "Hint: scenario names are unique in a run",
                )
            )
        seen[scenario.name] = str(path)
        scenarios.append(scenario)
    if issues:
        raise ScenarioError(issues)
    return scenarios


def load_scenario(path: str | Path) -> Scenario:
    """Load one scenario file.

    Args:
        path: the YAML file.

    Returns:
        The validated scenario; its ``source_file`` is ``path`` as given.

    Raises:
        ScenarioError: unreadable file, malformed YAML, or any schema or reference problem (all of them).
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(ScenarioIssue(name, None, "", f"cannot read the file: {exc}")) from None
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        problem = f"{exc.problem}" + (f" ({exc.context})" if exc.context else "")
        raise ScenarioError(
            ScenarioIssue(name, line, "", f"malformed YAML: {problem}. Hint: check indentation and quoting")
        ) from None
    except YAMLError as exc:
        raise ScenarioError(ScenarioIssue(name, None, "", f"malformed YAML: {exc}")) from None
    return _validate(tree, name, first_line=1)


def scenario_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Build a scenario from plain data (what the YAML would have parsed to), with the same checks as a file.

    Raises:
        ScenarioError: as :func:`load_scenario`, without line numbers.
    """
    return _validate(data, source, first_line=None)


class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps a YAML float as the text the user wrote.

    No schema field is a float: a float is a Postfix value, a release or a DSN, and its text matters
    (``release: 3.10`` is not ``3.1``).
    """


def _float_text(constructor: RoundTripConstructor, node: ScalarNode) -> str:
    return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:float", _float_text)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


def _validate(tree: Any, file: str, *, first_line: int | None) -> Scenario:
    if not isinstance(tree, Mapping):
        found = "an empty file" if tree is None else _kind(tree)
        message = f"a scenario is a mapping of keys, found {found}"
        raise ScenarioError(ScenarioIssue(file, first_line, "", message))
    data = _plain(tree)
    issues: list[ScenarioIssue] = []
    try:
        scenario = Scenario.model_validate(data)
        unchecked = _Unchecked()
    except ValidationError as exc:
        issues = [_issue_from_pydantic(err, tree, file) for err in exc.errors()]
        scenario, unchecked = _valid_parts(data)  # so that one run reports reference problems too
    problems = _check_references(scenario, unchecked)
    issues += [ScenarioIssue(file, _line_of(tree, loc), _dotted(loc), msg) for loc, msg in problems]
    if issues:
        raise ScenarioError(sorted(issues, key=lambda issue: issue.line or 0))
    scenario._source_file = file
    if isinstance(tree, CommentedMap) and "name" in tree:
        scenario._name_line = tree.lc.key("name")[0] + 1
    return scenario


def _kind(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"the value {value!r}"


class _All:
    """Stands for every name of a section that is not a mapping at all."""

    def __contains__(self, name: object) -> bool:
        return True


@dataclass(frozen=True)
class _Unchecked:
    """Names of entries that failed the schema: they exist, but their content is not known."""

    cas: Container[str] = frozenset()
    certs: Container[str] = frozenset()
    owners: Container[str] = frozenset()  # fully qualified, lower case


def _valid_parts(data: Mapping[str, Any]) -> tuple[Scenario, _Unchecked]:
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
    return scenario, _Unchecked(cas=bad_cas, certs=bad_certs, owners=owners)


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
    return good, frozenset(bad)


def _valid_or_default(value: Any, model: type[PostfixSpec]) -> PostfixSpec:
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError:
        return model()


def _plain(node: Any) -> Any:
    """ruamel's round-trip types (CommentedMap, ScalarFloat, …) → plain Python, so pydantic sees ordinary data."""
    if isinstance(node, Mapping):
        return {str(k) if not isinstance(k, str | int | float | bool) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


# --- pydantic errors → file:line: key: message ---------------------------------------------------------------


def _issue_from_pydantic(err: Any, tree: Any, file: str) -> ScenarioIssue:
    loc: Path_ = tuple(_yaml_key(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown key {key!r}{hint}. Allowed here: {', '.join(sorted(allowed))}"
    elif kind == "missing":
        msg = "this key is required"
    elif kind == "literal_error":
        msg = f"{err['msg'].replace('Input should be', 'expected')}, found {err['input']!r}"
    elif kind == "string_pattern_mismatch":
        msg = f"{err['input']!r} does not have the required form {err['ctx']['pattern']!r}"
        if loc and loc[-1] == "name":
            msg += ". Hint: lower-case letters, digits and '-', e.g. `secure-defers`"
        elif loc and loc[-1] in ("to", "from"):
            msg = f"{err['input']!r} is not a mail address. Hint: write `user@example.com`"
    elif kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    else:
        msg = f"{err['msg']}, found {err.get('input')!r}"
    return ScenarioIssue(file, _line_of(tree, loc), _dotted(loc), msg)


def _yaml_key(part: Any) -> str | int:
    """pydantic locations use field names; the user wrote the YAML alias."""
    return (
        {"main_cf": "main.cf", "master_cf": "master.cf", "from_": "from"}.get(part, part)
        if isinstance(part, str)
        else part
    )


def _allowed_keys(loc: Path_) -> list[str]:
    """The keys a mapping at ``loc`` may hold, found by walking the model's field types."""
    node: Any = Scenario
    for part in loc:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = next((f for n, f in node.model_fields.items() if (f.alias or n) == part or n == part), None)
            if field is None:
                return []
            node = field.annotation
        else:  # dict value or list item: step into its value type
            args = typing.get_args(node)
            node = args[-1] if args else None
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [f.alias or n for n, f in node.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated so the walk reaches the model or container type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation


def _line_of(tree: Any, loc: Path_) -> int | None:
    """1-based line of the deepest part of ``loc`` that exists in the YAML tree (None for dict input)."""
    line: int | None = None
    node = tree
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    if line is None and isinstance(tree, CommentedMap):
        line = tree.lc.line + 1
    return line


def _dotted(loc: Path_) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif any(c in part for c in "./: "):  # host names, addresses, map paths: keep them one key
            out += f'["{part}"]'
        else:
            out += f".{part}" if out else part
    return out


# --- cross-references ----------------------------------------------------------------------------------------


def _near(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_references(s: Scenario, unchecked: _Unchecked) -> Iterator[tuple[Path_, str]]:
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
    with_address = {_fqdn(n) for n, node in s.dns.items() if node.A or node.AAAA}
    for owner, node in s.dns.items():
        for value in node.MX or []:
            target = _fqdn(value.split()[1])
            if target not in with_address and target not in unchecked.owners and target != ".":
                yield ("dns", owner, "MX"), f"MX target {target!r} has no A or AAAA record in dns"
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
            hint = " (it has no A or AAAA record)" if _fqdn(host) in owners else _near(host, list(s.dns))
            yield ("servers", host), f"server host {host!r} has no address in dns{hint}. Hint: add `A: auto`"
        if server.cert is not None and no_cert(server.cert):
            near = _near(server.cert, certs)
            yield ("servers", host, "cert"), f"no certificate named {server.cert!r} in pki.certs{near}"

    specs = [(("postfix",), s.postfix)] + [(("cases", i, "postfix"), c.postfix) for i, c in enumerate(s.cases)]
    for loc, spec in specs:
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
