"""Postfix lookup tables as the TLS model reads them: the policy table and the transport table.

Covered: the indexed file types the harness builds with ``postmap`` (``hash``, ``btree``, ``lmdb``, ``cdb``,
``dbm``, ``sdbm``), ``texthash`` (same file format, read as text) and ``inline:{ key=value, … }``, all of them
fixed-string tables: the key is found exactly, after folding to lower case (``DICT_FLAG_FOLD_FIX``, postmap(1)
folds keys when it builds the file). A file's entries are ``key  value`` lines; a line that starts with white
space continues the previous one; blank lines and ``#`` comments are ignored (postmap(1), "INPUT FILE FORMAT").
The first table of a list that has the key answers (``maps_find``). Pattern tables (``regexp``, ``pcre``,
``cidr``) and network tables (``ldap``, ``mysql``, ``socketmap``, …) are not modelled: a lookup through one
reports itself as not modelled instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from harness.postfix_config import logical_lines

__all__ = ["FILE_TYPES", "MapEntry", "MapLookup", "lookup", "table_entries", "table_refs"]

#: Table types that are a ``key value`` file on disk.
FILE_TYPES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash")


@dataclass(frozen=True)
class MapEntry:
    """A table entry that answered a lookup.

    Attributes:
        table: the table as configured (``hash:/etc/postfix/tls_policy``).
        key: the key as written in the table.
        value: the value (continuation lines joined with a space).
        line: the line of the key in the file (1-based), None for ``inline:``.
    """

    table: str
    key: str
    value: str
    line: int | None

    def describe(self) -> str:
        """``"fastmail.fm secure ciphers=high" (/etc/postfix/tls_policy line 1)``."""
        where = self.table.split(":", 1)[1] if ":" in self.table else self.table
        at = f"{where} line {self.line}" if self.line is not None else self.table
        return f'"{self.key} {self.value}" ({at})'


@dataclass(frozen=True)
class MapLookup:
    """The result of looking up one key: the entry, or None; ``unsupported`` names a table the model cannot read."""

    entry: MapEntry | None
    unsupported: str | None = None


def table_refs(value: str) -> list[str]:
    """The tables of a parameter value such as ``hash:/etc/postfix/a, texthash:/etc/postfix/b`` (``inline:{…}``
    kept whole)."""
    refs: list[str] = []
    for m in re.finditer(r"(\w+:\{[^}]*(?:\{[^}]*\}[^}]*)*\})|([^\s,]+)", value):
        refs.append(m.group(0))
    return refs


def lookup(tables: str, key: str, files: Mapping[str, str], *, config_directory: str = "/etc/postfix") -> MapLookup:
    """Look ``key`` up in the tables of parameter value ``tables``, in order.

    Args:
        tables: the parameter's value (already ``$``-expanded).
        key: the lookup key (folded to lower case here).
        files: map path → content (the scenario's ``maps``).

    Returns:
        The first answer; or ``unsupported`` when a table before any answer is of a type the model does not read
        or a file it does not know.
    """
    folded = key.lower()
    for ref in table_refs(tables):
        kind, _, rest = ref.partition(":")
        if kind == "inline":
            entries = _inline(rest)
            for k, v in entries:
                if k.lower() == folded:
                    return MapLookup(MapEntry(ref, k, v, None))
            continue
        if kind not in FILE_TYPES:
            return MapLookup(None, f"{ref} ({kind} tables are not modelled)")
        path = rest.replace("${config_directory}", config_directory).replace("$config_directory", config_directory)
        if path not in files:
            return MapLookup(None, f"{ref} (no such file among the scenario's maps)")
        for line, k, v in _entries(files[path]):
            if k.lower() == folded:
                return MapLookup(MapEntry(ref, k, v, line))
    return MapLookup(None)


def table_entries(text: str) -> list[tuple[int, str, str]]:
    """``(line, key, value)`` of each entry of a ``key value`` file (empty: the table lists nothing)."""
    return _entries(text)


def _entries(text: str) -> list[tuple[int, str, str]]:
    """``(line, key, value)`` of a ``key value`` file (postmap(1) input format)."""
    out: list[tuple[int, str, str]] = []
    for number, line in logical_lines(text):
        key, _, value = line.partition(" ")
        if "\t" in key:
            key, _, more = key.partition("\t")
            value = f"{more} {value}"
        out.append((number, key, value.strip()))
    return out


def _inline(body: str) -> list[tuple[str, str]]:
    """Entries of ``inline:{ key=value, { key = value with spaces } }`` (Postfix 3.0+)."""
    inner = body.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    out: list[tuple[str, str]] = []
    for m in re.finditer(r"\{([^}]*)\}|([^\s,{}][^,{}]*)", inner):
        item = (m.group(1) or m.group(2) or "").strip()
        if "=" in item:
            k, _, v = item.partition("=")
            out.append((k.strip(), v.strip()))
    return out
