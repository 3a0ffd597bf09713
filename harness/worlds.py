"""Worlds shared between scenarios: ``include``, ``destinations`` and the world library of ``scenarios/worlds/``.

A **world** is the ``pki``, ``dns`` and ``servers`` of a scenario. A scenario may take the world of others with
``include: [fastmail, ../partners/acme.yaml]``: a bare name is a file of the world library (``NAME.yaml`` in
:func:`library_folder`), a path ending in ``.yaml``/``.yml`` a scenario file relative to the including file's folder.
The loader (:func:`harness.scenario.load_scenario`) merges each included scenario's ``pki.cas``, ``pki.certs``,
``dns`` and ``servers`` under the scenario's own, as a case's world is merged over its scenario's
(:mod:`harness.overrides`): an entry of the scenario replaces the included entry of the same name as a whole (DNS
owners and server hosts compared case-insensitively, without the trailing dot). Included scenarios may include
others; two of them may define the same entry only if it is the same in both. Their cases and ``postfix`` are not
taken.

A scenario's ``destinations`` name the recipient domains its world describes, each with the public ``source`` of
its MX layout and certificate naming and the ``date`` the source shows them for. The **world library** is the
scenarios of ``scenarios/worlds/`` with destinations (well-known mailbox providers and hosted mail); their cases
check what each world claims on real Postfix, and ``mxharness compare`` sends one message to each destination.

Typical use::

    from harness.worlds import destinations_of, library_worlds

    for world in library_worlds():
        print(world.name, [d.domain for d in destinations_of(world)])
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ScenarioError, ScenarioIssue
from harness.model import DnsNode, Pki, Scenario, ServerSpec
from harness.overrides import host_key, owner_key

__all__ = [
    "Destination",
    "apply_worlds",
    "destinations_of",
    "find_world",
    "library_folder",
    "library_worlds",
    "merged_worlds",
]

_Loc = tuple[str | int, ...]
_Included = dict[str, dict[str, tuple[str, str, Any]]]  # section → comparison key → (name, world, entry)
_SECTIONS = ("cas", "certs", "dns", "servers")
_SUFFIXES = (".yaml", ".yml")
_including = threading.local()  # the files whose includes are being loaded, for cycles


@dataclass(frozen=True)
class Destination:
    """A recipient domain a world describes (``destinations.DOMAIN`` of a scenario).

    Attributes:
        domain: the recipient domain, the next-hop of its mail.
        recipient: the address ``mxharness compare`` sends to (``to``, default ``postmaster@DOMAIN``).
        source: where its MX layout and certificate naming are published, as the file cites it.
        date: the date the source shows them for (``2016-02-25``, ``2024-06``, ``2024`` or ``undated``).
        world: the scenario's name; file: its file.
    """

    domain: str
    recipient: str
    source: str
    date: str
    world: str
    file: str


def destinations_of(scenario: Scenario) -> tuple[Destination, ...]:
    """The destinations a scenario describes, in file order."""
    return tuple(
        Destination(
            domain.lower().rstrip("."),
            spec.to or f"postmaster@{domain.lower().rstrip('.')}",
            " ".join(spec.source.split()),
            spec.date,
            scenario.name,
            scenario.source_file,
        )
        for domain, spec in scenario.destinations.items()
    )


def library_folder() -> Path:
    """The world library: ``$MXHARNESS_WORLDS``, else ``scenarios/worlds`` of the project's checkout."""
    configured = os.environ.get("MXHARNESS_WORLDS")
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "scenarios" / "worlds"


def find_world(name: str, folder: Path | None = None) -> Path | None:
    """The file of library world ``name`` (``NAME.yaml`` or ``NAME.yml`` in the library), or None."""
    folder = folder or library_folder()
    return next((folder / f"{name}{s}" for s in _SUFFIXES if (folder / f"{name}{s}").is_file()), None)


def library_worlds(folder: Path | None = None) -> list[Scenario]:
    """The scenarios of the world library (or of ``folder``) that describe destinations, by file name.

    Raises:
        ScenarioError: a file of the library has problems (all of them), or two worlds describe one destination
            (``mxharness compare`` would not know which to use).
    """
    from harness.scenario import load_scenarios

    folder = folder or library_folder()
    if not folder.is_dir():
        hint = "set MXHARNESS_WORLDS to a folder of world scenarios"
        raise ScenarioError(ScenarioIssue(str(folder), None, "", f"the world library is not a folder. Hint: {hint}"))
    worlds = [s for s in load_scenarios([folder]) if s.destinations]
    seen: dict[str, Scenario] = {}
    issues = []
    for world in worlds:
        for d in destinations_of(world):
            other = seen.setdefault(d.domain, world)
            if other is not world:
                message = f"{d.domain} is also a destination of {other.name} ({other.source_file})"
                issues.append(ScenarioIssue(world.source_file, None, f'destinations["{d.domain}"]', message))
    if issues:
        raise ScenarioError(issues)
    return worlds


def apply_worlds(
    data: Mapping[str, Any], file: str
) -> tuple[dict[str, Any], list[tuple[_Loc, str]], list[ScenarioIssue]]:
    """A scenario's ``include`` and ``destinations``, for the loader: the included worlds merged under its own.

    Args:
        data: the scenario as plain data (what its YAML parsed to).
        file: the scenario's file (``include`` paths are relative to its folder; to the working directory for a
            scenario built in code).

    Returns:
        The data with the included entries (as checked model objects), the ``(key path, message)`` problems of its
        ``include`` and ``destinations`` (a world not found, an include cycle, two worlds that disagree, a
        destination without a DNS entry), and the problems inside the included files (ScenarioIssue, each with its
        own file and line).
    """
    entries = data.get("include")
    entries = [entries] if isinstance(entries, str) else entries
    problems: list[tuple[_Loc, str]] = []
    issues: list[ScenarioIssue] = []
    from harness.scenario import load_scenario  # (that module calls this one while it loads)

    included: _Included = {"cas": {}, "certs": {}, "dns": {}, "servers": {}}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        path = _include_path(entry, file) if isinstance(entry, str) else None
        if path is None:
            problems.append((("include", i), _not_found(entry, file)))
            continue
        stack: set[Path] = getattr(_including, "files", set())
        own = None if file.startswith("<") else Path(file).resolve()
        if path in stack or path == own:
            problems.append(
                (
                    ("include", i),
                    f"{entry!r} is being loaded already: an include cycle. Hint: include no file that includes this",
                )
            )
            continue
        _including.files = stack | {p for p in (own,) if p is not None}
        try:
            world = load_scenario(path)
        except ScenarioError as exc:
            issues += exc.issues
            continue
        finally:
            _including.files = stack
        problems += [(("include", i), message) for message in _collect(world, included)]
    merged = _merged(data, included)
    return merged, problems + _destination_problems(merged), issues


def merged_worlds(worlds: Sequence[Scenario]) -> tuple[Pki, dict[str, DnsNode], dict[str, ServerSpec]]:
    """The worlds of several scenarios in one, by the rules of ``include`` (an entry two worlds share must be the
    same in both).

    Raises:
        ScenarioError: two worlds define an entry differently (naming both files).
    """
    included: _Included = {"cas": {}, "certs": {}, "dns": {}, "servers": {}}
    issues = [ScenarioIssue(w.source_file, None, "", message) for w in worlds for message in _collect(w, included)]
    if issues:
        raise ScenarioError(issues)
    cas, certs, dns, servers = ({name: value for name, _, value in included[s].values()} for s in _SECTIONS)
    return Pki(cas=cas, certs=certs), dns, servers


def _collect(world: Scenario, included: _Included) -> list[str]:
    """Add ``world``'s entries to ``included``; a message for each entry another world defined differently."""
    problems = []
    for section, key, name, value in _entries(world):
        seen = included[section].get(key)
        if seen is not None and seen[2] != value:
            problems.append(
                f"{world.name} and {seen[1]} both define {section} entry {name!r}, differently. Hint: rename one, or "
                "define the entry in the including scenario"
            )
        included[section].setdefault(key, (name, world.name, value))
    return problems


def _entries(world: Scenario) -> Iterator[tuple[str, str, str, Any]]:
    """``(section, comparison key, name, value)`` of every entry of a scenario's world."""
    parts: list[tuple[str, Mapping[str, Any], Callable[[str], str]]] = [
        ("cas", world.pki.cas, str),
        ("certs", world.pki.certs, str),
        ("dns", world.dns, owner_key),
        ("servers", world.servers, host_key),
    ]
    for section, entries, key in parts:
        for name, value in entries.items():
            yield section, key(name), name, value


def _merged(data: Mapping[str, Any], included: _Included) -> dict[str, Any]:
    """``data`` with the included entries first and its own after them, each replacing an included one of its
    name. A section that is not a mapping is left as it is, for the schema to report."""

    def merge(section: str, own: Any, key: Callable[[str], str]) -> Any:
        if own is not None and not isinstance(own, Mapping):
            return own
        own = dict(own or {})
        mine = {key(str(name)) for name in own}
        return {**{name: value for k, (name, _, value) in included[section].items() if k not in mine}, **own}

    out = dict(data)
    pki = data.get("pki")
    if pki is None or isinstance(pki, Mapping):
        pki = dict(pki or {})
        pki["cas"] = merge("cas", pki.get("cas"), str)
        pki["certs"] = merge("certs", pki.get("certs"), str)
        out["pki"] = pki
    out["dns"] = merge("dns", data.get("dns"), owner_key)
    out["servers"] = merge("servers", data.get("servers"), host_key)
    return out


def _destination_problems(data: Mapping[str, Any]) -> list[tuple[_Loc, str]]:
    """A destination needs a DNS entry in the world (its MX records, or an address for mail without MX)."""
    destinations, dns = data.get("destinations"), data.get("dns")
    if not isinstance(destinations, Mapping):
        return []
    owners = {owner_key(str(name)) for name in dns} if isinstance(dns, Mapping) else set()
    return [
        (("destinations", domain), f"no dns entry for {domain}. Hint: add `{domain}: {{MX: 10 mx.{domain}}}` to dns")
        for domain in destinations
        if owner_key(str(domain)) not in owners
    ]


def _include_path(entry: str, file: str) -> Path | None:
    """The scenario file an ``include`` entry names, or None when there is none."""
    if entry.endswith(_SUFFIXES):
        base = Path.cwd() if file.startswith("<") else Path(file).parent
        path = (base / Path(entry).expanduser()).resolve()
        return path if path.is_file() else None
    found = find_world(entry)
    return found.resolve() if found else None


def _not_found(entry: Any, file: str) -> str:
    if not isinstance(entry, str):
        return f"expected a world name or a .yaml path, found {entry!r}. Hint: write `include: [fastmail]`"
    if entry.endswith(_SUFFIXES):
        where = "the working directory" if file.startswith("<") else f"{Path(file).parent}/"
        return f"no file {entry!r} (relative to {where}). Hint: a path is relative to the including scenario's folder"
    folder = library_folder()
    known = sorted(p.stem for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    close = difflib.get_close_matches(entry, known, n=1, cutoff=0.6)
    near = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no world {entry!r} in the library {folder}{near}. Hint: one of {', '.join(known) or '(none)'}"
