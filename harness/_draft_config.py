"""The reporter's Postfix configuration for :mod:`harness.draft`: main.cf (or ``postconf -n`` output) and the TLS
policy table. Private.

main.cf syntax (postconf(5)): ``name = value``; a line that starts with whitespace continues the previous one; a
line whose first non-blank character is ``#`` is a comment; a later definition of a name wins. The policy table
(``smtp_tls_policy_maps``, postconf(5) and TLS_README "TLS policy table"): ``next-hop level [name=value …]``,
with the same comment and continuation rules as every Postfix lookup table source (postmap(1)).

Only what acts on the SMTP client's delivery is carried into the drafted ``postfix`` section (:func:`client_main_cf`):
the ``smtp_*`` and ``tls_*`` parameters, ``relayhost``, ``inet_protocols`` and ``disable_dns_lookups``. Parameters
that need something the draft does not have (a client certificate, a SASL password table, another lookup table,
a local address) or that the harness owns (``smtp_tls_session_cache_database``) are left out, each with a reason.
"""

from __future__ import annotations

__all__ = [
    "LEVELS",
    "MainCf",
    "PolicyEntry",
    "PolicyTable",
    "client_main_cf",
    "policy_map",
    "read_main_cf",
    "read_policy",
]

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.errors import ScenarioError, ScenarioIssue
from harness.postfix_config import logical_lines
from harness.references_world import near

#: The security levels of smtp_tls_security_level and the policy table (postconf(5)), weakest first.
LEVELS = ("none", "may", "encrypt", "fingerprint", "dane", "dane-only", "verify", "secure")
#: Lookup table types whose source is a file the harness can install (postmap-built or read as text).
_FILE_TABLES = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash", "regexp", "pcre", "cidr")
_TABLE_REFERENCE = re.compile(rf"(?:proxy:)?(?P<type>{'|'.join(_FILE_TABLES)}):(?P<path>/[^\s,]+)")
_PARAMETER = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)\s*=\s*(?P<value>.*)")
_CLIENT_PARAMETERS = frozenset({"relayhost", "inet_protocols", "disable_dns_lookups"})
_LEFT_OUT = {
    "smtp_tls_session_cache_database": "a resumed TLS session hides the verification result; the harness keeps "
    "no session cache",
    "smtp_tls_cert_file": "the client certificate was not given",
    "smtp_tls_key_file": "the client certificate was not given",
    "smtp_tls_dcert_file": "the client certificate was not given",
    "smtp_tls_dkey_file": "the client certificate was not given",
    "smtp_tls_eccert_file": "the client certificate was not given",
    "smtp_tls_eckey_file": "the client certificate was not given",
    "smtp_tls_chain_files": "the client certificate was not given",
    "smtp_bind_address": "the address is not in the pod",
    "smtp_bind_address6": "the address is not in the pod",
}
_DEFAULT_POLICY_PATH = "/etc/postfix/tls_policy"


@dataclass(frozen=True)
class MainCf:
    """Parameters of a main.cf as given: name → value (last definition wins), name → line of that definition."""

    file: str
    parameters: dict[str, str]
    lines: dict[str, int]


@dataclass(frozen=True)
class PolicyEntry:
    """One policy table entry: the lookup key (next-hop), the security level and the attributes as written."""

    line: int
    key: str
    level: str
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class PolicyTable:
    """A policy table as given: its file name, its text (kept as written) and its entries."""

    file: str
    text: str
    entries: tuple[PolicyEntry, ...]

    def lookup(self, nexthop: str) -> PolicyEntry | None:
        """The entry Postfix uses for a next-hop: the exact key (``example.com``, ``[mx.example.com]:587``), else
        for a bare domain the nearest parent entry ``.example.com`` (smtp_tls_policy_maps is not in
        ``parent_domain_matches_subdomains``, so only the dotted form matches subdomains)."""
        entries = {entry.key.lower(): entry for entry in self.entries}
        key = nexthop.lower()
        if key in entries:
            return entries[key]
        if key.startswith("["):
            return None
        labels = key.split(".")
        for index in range(1, len(labels)):
            if (parent := "." + ".".join(labels[index:])) in entries:
                return entries[parent]
        return None


def read_main_cf(path: str | Path) -> MainCf:
    """Read a main.cf or ``postconf -n`` output.

    Raises:
        ScenarioError: the file cannot be read, or lines are not ``name = value`` (every such line, with its number).
    """
    name = str(path)
    issues: list[ScenarioIssue] = []
    parameters: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, text in logical_lines(_read(name, "main.cf")):
        if m := _PARAMETER.fullmatch(text):
            parameters[m["name"]] = m["value"].strip()
            lines[m["name"]] = number
        else:
            issues.append(
                ScenarioIssue(
                    name,
                    number,
                    "",
                    f"not a main.cf line: {text[:60]!r}. Hint: main.cf lines are `name = value` "
                    "(give main.cf or `postconf -n` output, not master.cf)",
                )
            )
    if issues:
        raise ScenarioError(issues)
    return MainCf(name, parameters, lines)


def read_policy(path: str | Path) -> PolicyTable:
    """Read a TLS policy table source file.

    Raises:
        ScenarioError: the file cannot be read, an entry has no security level or an unknown one (with the
            closest known level).
    """
    name = str(path)
    text = _read(name, "policy table")
    issues: list[ScenarioIssue] = []
    entries: list[PolicyEntry] = []
    for number, line in logical_lines(text):
        key, *words = line.split()
        if not words:
            issues.append(
                ScenarioIssue(
                    name,
                    number,
                    "",
                    f"entry {key!r} has no security level. Hint: write `{key} secure` or another "
                    f"level: {', '.join(LEVELS)}",
                )
            )
        elif words[0].lower() not in LEVELS:
            issues.append(
                ScenarioIssue(
                    name,
                    number,
                    "",
                    f"entry {key!r}: unknown security level {words[0]!r}{near(words[0].lower(), LEVELS)}. "
                    f"Hint: one of {', '.join(LEVELS)} (postconf(5), smtp_tls_policy_maps)",
                )
            )
        else:
            entries.append(PolicyEntry(number, key, words[0].lower(), tuple(words[1:])))
    if issues:
        raise ScenarioError(issues)
    return PolicyTable(name, text, tuple(entries))


def client_main_cf(main_cf: MainCf, *, given_maps: set[str]) -> tuple[dict[str, str], list[str]]:
    """The parameters of ``main_cf`` that act on the SMTP client, and why each other one is left out.

    Args:
        main_cf: the reporter's configuration.
        given_maps: absolute paths of the lookup tables the draft has (the policy table).

    Returns:
        (parameters to carry, in file order; sentences for the draft's comments). ``smtp_tls_policy_maps`` is not
        among the parameters: :func:`policy_map` decides it.
    """
    kept: dict[str, str] = {}
    left_out: dict[str, list[str]] = {}
    for name, value in main_cf.parameters.items():
        reason = _left_out_reason(name, value, given_maps)
        if reason is None:
            kept[name] = value
        elif reason:
            left_out.setdefault(reason, []).append(name)
    return kept, [f"{_listed(names)}: {reason}" for reason, names in left_out.items()]


def _listed(names: list[str], most: int = 12) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _left_out_reason(name: str, value: str, given_maps: set[str]) -> str | None:
    """Why a parameter is left out; None to keep it; "" to leave it out without a word (decided elsewhere)."""
    if name == "smtp_tls_policy_maps":
        return ""
    if name in _LEFT_OUT:
        return _LEFT_OUT[name]
    if name.startswith("smtp_sasl_"):
        return "SASL needs a password table that was not given"
    if not (name.startswith(("smtp_", "tls_")) or name in _CLIENT_PARAMETERS):
        return "not a parameter of the SMTP client's delivery"
    if name == "relayhost" and not value:
        return ""
    missing = [m.group(0) for m in _TABLE_REFERENCE.finditer(value) if m["path"] not in given_maps]
    if missing:
        return f"names lookup tables that were not given ({', '.join(missing)})"
    return None


def policy_map(main_cf: MainCf | None, policy: PolicyTable | None) -> tuple[str, str, list[str]]:
    """Where the policy table goes: (table type, absolute path, notes).

    The table main.cf's ``smtp_tls_policy_maps`` names (the one whose file name is the given policy file's, else
    the first file-based one; ``proxy:`` dropped); without one, ``texthash:/etc/postfix/tls_policy`` (texthash
    needs no postmap run).
    """
    notes: list[str] = []
    value = main_cf.parameters.get("smtp_tls_policy_maps", "") if main_cf else ""
    tables = [(m["type"], m["path"]) for m in _TABLE_REFERENCE.finditer(value)]
    wanted = PurePosixPath(policy.file).name if policy else None
    chosen = next((t for t in tables if PurePosixPath(t[1]).name == wanted), tables[0] if tables else None)
    if chosen is None:
        if value:
            notes.append(f"smtp_tls_policy_maps = {value}: no file-based table in it; the draft uses texthash")
        return "texthash", _DEFAULT_POLICY_PATH, notes
    others = [f"{t}:{p}" for t, p in tables if (t, p) != chosen]
    if others:
        notes.append(f"smtp_tls_policy_maps: only {chosen[0]}:{chosen[1]} is drafted; left out {', '.join(others)}")
    return chosen[0], chosen[1], notes


def _read(name: str, what: str) -> str:
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise ScenarioError(ScenarioIssue(name, None, "", f"cannot read the {what}: {exc.strerror or exc}")) from None
    if b"\0" in data:
        raise ScenarioError(ScenarioIssue(name, None, "", f"a binary file, not a {what}. Hint: give its source text"))
    return data.decode("utf-8", errors="replace")
