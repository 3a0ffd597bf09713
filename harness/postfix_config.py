"""A user's own Postfix configuration folder (a copy of their /etc/postfix): main.cf, master.cf and every map or
file the configuration references.

Pure functions over files on the host: nothing here talks to Docker. What cannot run in the pod is switched off in
:mod:`harness.postfix_neutralise`; :mod:`harness.postfix` renders the result.

Postfix's syntax (postconf(5), master(5)): a line starting with white space continues the previous one, ``#``
starts a comment line, the last definition of a parameter wins, and ``$name``, ``${name}`` and ``$(name)`` expand
to another parameter's value (``${name?text}`` / ``${name:text}``: text when name is non-empty / empty).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import Case, Scenario

__all__ = [
    "DEFAULT_CONFIG_DIRECTORY",
    "MAP_TYPES_IN_POD",
    "ConfigFolderError",
    "MapReference",
    "PostfixConfig",
    "config_folder",
    "config_folder_problems",
    "config_for",
    "expand",
    "load_postfix_config",
    "logical_lines",
    "master_cf_overrides",
    "master_entries",
    "parse_main_cf",
]

DEFAULT_CONFIG_DIRECTORY = "/etc/postfix"

#: Map types the pod's Postfix can open without a server (``postconf -m`` of the image, minus the network ones).
MAP_TYPES_IN_POD = frozenset(
    "btree cdb cidr environ fail hash inline internal lmdb pcre pipemap proxy randmap regexp static texthash"
    " unionmap unix".split()
)
#: Map types Postfix knows that need a server or a library the pod does not have.
MAP_TYPES_NOT_IN_POD = frozenset("ldap mysql pgsql sqlite memcache socketmap tcp nis nisplus netinfo dbm sdbm".split())
#: Map types whose argument is a file to copy (the others name a server, a pattern list or nothing).
FILE_MAP_TYPES = frozenset("btree cdb cidr hash lmdb pcre regexp texthash".split())
#: Map types ``postmap`` builds (the file holds the source text; Postfix reads path.db/.lmdb/.cdb).
INDEXED_MAP_TYPES = frozenset("btree cdb hash lmdb".split())

# Defaults of the parameters configurations use in paths (Debian's Postfix 3.x, `postconf -d`).
_PATH_DEFAULTS = {
    "config_directory": DEFAULT_CONFIG_DIRECTORY,
    "data_directory": "/var/lib/postfix",
    "queue_directory": "/var/spool/postfix",
    "daemon_directory": "/usr/lib/postfix/sbin",
    "meta_directory": "/etc/postfix",
    "shlib_directory": "/usr/lib/postfix",
}
# Caches Postfix writes itself (btree/lmdb under data_directory): state, not configuration to copy.
_STATE_PARAMETERS = frozenset(
    "smtp_tls_session_cache_database smtpd_tls_session_cache_database lmtp_tls_session_cache_database"
    " tlsproxy_tls_session_cache_database address_verify_map postscreen_cache_map".split()
)
# Parameters whose values are match lists: a "/file" element is a file of patterns (postconf(5)).
_LIST_PARAMETER = re.compile(r"(_domains|_networks|_list|^mydestination)$")
_MAP_TOKEN = re.compile(r"(?<![\w.-])(?P<type>[a-z][a-z0-9]*):(?P<arg>\{[^}]*\}|[^\s,]+)")


class ConfigFolderError(ValueError):
    """The configuration folder cannot be used as given (missing, no main.cf, unsupported map type).

    ``key`` is the parameter at fault, if one is; the message says what was found and how to fix it.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class MapReference:
    """A ``type:name`` lookup table named by a parameter (main.cf, or a master.cf ``-o``).

    Attributes:
        parameter: the parameter whose value names it (``smtp_tls_policy_maps``).
        type: the map type after any ``proxy:`` prefix (``hash``).
        name: the argument after ``type:`` with ``$parameters`` expanded (``/etc/postfix/tls_policy``).
    """

    parameter: str
    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"


@dataclass(frozen=True)
class PostfixConfig:
    """A configuration folder, read.

    Attributes:
        folder: the folder on the host.
        main_cf: every parameter of main.cf, in file order (value as written, not expanded).
        master_cf: master.cf as written ("" when the folder has none: the image's is used).
        maps: every map the configuration references.
        files: pod path → content of each referenced map or pattern file the folder holds.
        missing: referenced map or pattern files under ``config_directory`` that the folder lacks (an empty one
            stands in: Postfix would stop on a missing one).
        outside: referenced files outside ``config_directory`` (left as the image has them).
    """

    folder: Path
    main_cf: dict[str, str]
    master_cf: str
    maps: tuple[MapReference, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()

    @property
    def config_directory(self) -> str:
        """Where the folder is installed in the pod: main.cf's ``config_directory``, default /etc/postfix."""
        return self.expanded("config_directory") or DEFAULT_CONFIG_DIRECTORY

    def expanded(self, name: str) -> str:
        """Parameter ``name`` with ``$parameters`` expanded ("" when unset and without a known default)."""
        return expand(self.main_cf.get(name, _PATH_DEFAULTS.get(name, "")), self.main_cf)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(number of the first physical line, text)`` of every logical line of a Postfix file (main.cf, a lookup
    table's source for postmap(1)): blank and ``#`` comment lines dropped, a line starting with white space joined
    to the one before with a single space."""
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[:1].isspace() and out:
            out[-1] = (out[-1][0], f"{out[-1][1]} {stripped}")
        else:
            out.append((number, stripped))
    return out


def parse_main_cf(text: str) -> dict[str, str]:
    """main.cf text → ``{name: value}`` in file order; the last definition of a name wins (postconf(5)).

    Logical lines as :func:`logical_lines` reads them; a value keeps its inner spacing and loses surrounding
    white space.

    Raises:
        ConfigFolderError: a line that is not ``name = value``.
    """
    params: dict[str, str] = {}
    for number, line in logical_lines(text):
        name, equals, value = line.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z0-9_.-]+", name.strip()):
            raise ConfigFolderError(f"main.cf line {number}: not `name = value`: {line!r}")
        params.pop(name.strip(), None)  # keep the order of the definition that counts
        params[name.strip()] = value.strip()
    return params


def expand(value: str, params: dict[str, str], depth: int = 0) -> str:
    """``value`` with ``$name``, ``${name}``, ``$(name)``, ``${name?text}`` and ``${name:text}`` expanded from
    ``params`` (then from the defaults of the path parameters); unknown names expand to "" as in Postfix."""
    if depth > 20 or "$" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        name = m["braced"] or m["paren"] or m["plain"]
        raw = params.get(name, _PATH_DEFAULTS.get(name, ""))
        current = expand(raw, params, depth + 1)
        if m["op"] == "?":
            return expand(m["text"], params, depth + 1) if current else ""
        if m["op"] == ":":
            return "" if current else expand(m["text"], params, depth + 1)
        return current

    pattern = r"\$(?:\{(?P<braced>\w+)(?:(?P<op>[?:])(?P<text>[^}]*))?\}|\((?P<paren>\w+)\)|(?P<plain>\w+))"
    return re.sub(pattern, one, value)


_ENTRY_START = re.compile(r"^[^\s#]")


def master_entries(text: str) -> list[list[str]]:
    """master.cf text → entries, each the list of its lines (first line, then continuation lines)."""
    entries: list[list[str]] = []
    for line in text.splitlines():
        if _ENTRY_START.match(line):
            entries.append([line])
        elif line.strip() and not line.lstrip().startswith("#") and entries:
            entries[-1].append(line)
    return entries


def master_cf_overrides(master_cf: str) -> Iterator[tuple[str, str, str]]:
    """``(service/type, name, value)`` of every ``-o name=value`` in master.cf (master(5))."""
    for entry in master_entries(master_cf):
        fields = " ".join(entry).split()
        service = f"{fields[0]}/{fields[1]}" if len(fields) > 1 else fields[0]
        args = fields[8:]
        for i, arg in enumerate(args):
            setting = arg[2:] if arg.startswith("-o") and len(arg) > 2 else None
            if arg == "-o" and i + 1 < len(args):
                setting = args[i + 1]
            if setting and "=" in setting:
                name, _, value = setting.partition("=")
                yield service, name, value


def _references(params: dict[str, str], master_cf: str) -> Iterator[tuple[str, str, str]]:
    """``(parameter, type, argument)`` of every map token in main.cf values and master.cf ``-o`` values."""
    values = [(name, value) for name, value in params.items()]
    values += [(name, value) for _, name, value in master_cf_overrides(master_cf)]
    for name, value in values:
        for m in _MAP_TOKEN.finditer(expand(value, params)):
            kind, arg = m["type"], m["arg"]
            while kind == "proxy" and ":" in arg:  # proxy:hash:/path → hash:/path
                kind, _, arg = arg.partition(":")
            if kind in MAP_TYPES_IN_POD or kind in MAP_TYPES_NOT_IN_POD:
                yield name, kind, arg


def _pattern_files(params: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``(parameter, path)`` of each ``/file`` element of a match-list parameter."""
    for name, value in params.items():
        if _LIST_PARAMETER.search(name):
            for token in re.split(r"[\s,]+", expand(value, params)):
                if token.startswith("/"):
                    yield name, token


def load_postfix_config(folder: Path) -> PostfixConfig:
    """Read a configuration folder: main.cf (required), master.cf (optional) and every referenced file.

    A referenced path under ``config_directory`` (/etc/postfix unless main.cf says otherwise) is read from the
    same relative path in ``folder``.

    Raises:
        ConfigFolderError: the folder or its main.cf does not exist, main.cf has a line Postfix could not read,
            or a map type needs something the pod does not have (``mysql:``, ``ldap:`` …) — naming the map.
    """
    if not folder.is_dir():
        raise ConfigFolderError(f"{folder} is not a folder. Hint: copy the server's /etc/postfix there")
    main_path = folder / "main.cf"
    if not main_path.is_file():
        raise ConfigFolderError(f"{folder} has no main.cf. Hint: copy the server's /etc/postfix there")
    params = parse_main_cf(main_path.read_text(errors="replace"))
    master_path = folder / "master.cf"
    master_cf = master_path.read_text(errors="replace") if master_path.is_file() else ""
    config_directory = expand(params.get("config_directory", DEFAULT_CONFIG_DIRECTORY), params).rstrip("/")
    maps: list[MapReference] = []
    wanted: list[str] = []
    for parameter, kind, arg in _references(params, master_cf):
        if parameter in _STATE_PARAMETERS:
            continue  # Postfix's own databases under data_directory, not configuration
        if kind in MAP_TYPES_NOT_IN_POD:
            raise ConfigFolderError(
                f"{parameter} = …{kind}:{arg}…: the map type {kind!r} needs a server or library the pod does not "
                "have. Hint: export the table to a file (`postmap -s`) and use hash:, or override the parameter in "
                "the scenario's main.cf",
                key=parameter,
            )
        reference = MapReference(parameter, kind, arg)
        if reference not in maps:
            maps.append(reference)
        if kind in FILE_MAP_TYPES and arg.startswith("/") and arg not in wanted:
            wanted.append(arg)
    wanted += [path for _, path in _pattern_files(params) if path not in wanted]
    files: dict[str, str] = {}
    missing: list[str] = []
    outside: list[str] = []
    for path in wanted:
        if not path.startswith(config_directory + "/"):
            outside.append(path)
            continue
        source = folder / path[len(config_directory) + 1 :]
        if source.is_file():
            files[path] = source.read_text(errors="replace")
        else:
            missing.append(path)
    return PostfixConfig(folder, params, master_cf, tuple(maps), files, tuple(missing), tuple(outside))


def config_folder(scenario: Scenario, case: Case) -> Path | None:
    """The case's ``postfix.config_dir`` (the case's, else the scenario's), relative to the scenario file's folder
    (to the working directory for a scenario built in code); None when it has none."""
    value = case.postfix.config_dir or scenario.postfix.config_dir
    return None if value is None else _resolve(scenario.source_file, value)


def _resolve(file: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute() and file != "<dict>":
        path = Path(file).parent / path
    return path.resolve()


def config_for(scenario: Scenario, case: Case) -> PostfixConfig | None:
    """The case's configuration folder, read (once per folder and process).

    Raises:
        ConfigFolderError: see :func:`load_postfix_config`.
    """
    folder = config_folder(scenario, case)
    return None if folder is None else _load_cached(folder)


@functools.lru_cache(maxsize=32)
def _load_cached(folder: Path) -> PostfixConfig:
    return load_postfix_config(folder)


def config_folder_problems(scenario: Scenario, file: str) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """``(key path, message)`` for each ``postfix.config_dir`` that cannot be read (the message names the
    parameter at fault inside the folder, if one is).

    Args:
        file: the scenario file (relative folders are resolved against its folder).
    """
    levels: list[tuple[tuple[str | int, ...], str | None]] = [(("postfix", "config_dir"), scenario.postfix.config_dir)]
    levels += [(("cases", i, "postfix", "config_dir"), c.postfix.config_dir) for i, c in enumerate(scenario.cases)]
    for loc, value in levels:
        if value is None:
            continue
        try:
            _load_cached(_resolve(file, value))
        except ConfigFolderError as exc:
            yield loc, str(exc)
