"""The two sides of a comparison: a configuration folder (a copy of /etc/postfix), or a policy table alone.

A :class:`Configuration` is what ``postfix`` a side's scenarios get: ``config_dir`` for a folder (read and
neutralised for the pod as for ``mxharness run --postfix-config``), or ``main.cf``/``maps`` keys for a policy table
given with ``--policy`` (over the folder of ``--before``, or over Postfix's opportunistic default
``smtp_tls_security_level = may``). :func:`policy_domains` lists the destinations a side's policy tables name, so
that ``mxharness compare`` can choose the library's worlds the configurations care about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ScenarioError, ScenarioIssue
from harness.model import PostfixSpec
from harness.postfix_config import ConfigFolderError, PostfixConfig, expand, load_postfix_config

__all__ = [
    "Configuration",
    "folder_configuration",
    "opportunistic_configuration",
    "policy_configuration",
    "policy_domains",
]

#: Where ``--policy FILE`` goes when the configuration names no policy table of its own.
POLICY_PATH = "/etc/postfix/tls_policy"
#: The table types whose source file lists its keys (postmap(1) builds the indexed ones).
_KEYED = ("hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash")
_TABLE = re.compile(r"(?:proxy:)?(?P<type>[a-z]+):(?P<path>/[^\s,]+)")


@dataclass(frozen=True)
class Configuration:
    """One side of a comparison.

    Attributes:
        label: how reports name it (the folder as given, or ``FILE as smtp_tls_policy_maps``).
        postfix: the ``postfix`` keys its scenarios get (``config_dir`` absolute; ``main.cf``/``maps`` on top).
        folder: the configuration folder as read, if the side has one.
    """

    label: str
    postfix: PostfixSpec
    folder: PostfixConfig | None = field(default=None, compare=False)


def opportunistic_configuration() -> Configuration:
    """What ``--policy FILE`` alone is compared with: ``smtp_tls_security_level = may`` and no policy table, the
    opportunistic TLS most servers run (on the harness's main.cf defaults, docs/scenario-format.md)."""
    spec = PostfixSpec.model_validate({"main.cf": {"smtp_tls_security_level": "may"}})
    return Configuration("smtp_tls_security_level = may, no policy table", spec)


def folder_configuration(path: str | Path, *, option: str = "--before") -> Configuration:
    """A copy of a server's /etc/postfix, read as ``postfix.config_dir`` reads it.

    Args:
        option: the command-line option that named it, for errors.

    Raises:
        ScenarioError: the folder cannot be used (no main.cf, a main.cf line Postfix could not read, a map type the
            pod cannot open), naming the folder, the option and the parameter at fault.
    """
    folder = Path(path).expanduser().resolve()
    try:
        config = load_postfix_config(folder)
    except ConfigFolderError as exc:
        where = (str(Path(path) / "main.cf"), exc.key) if exc.key else (str(path), option)
        raise ScenarioError(ScenarioIssue(where[0], None, where[1], f"{option}: {exc}")) from None
    return Configuration(str(path), PostfixSpec(config_dir=str(folder)), config)


def policy_configuration(path: str | Path, *, base: Configuration | None = None) -> Configuration:
    """``base`` (default: ``smtp_tls_security_level = may`` and nothing else set) with the policy table ``path``
    as its ``smtp_tls_policy_maps`` table: over the file of the folder's own table (``hash:``, ``texthash:`` …), or
    as ``hash:/etc/postfix/tls_policy`` when the folder names none.

    Raises:
        ScenarioError: the file cannot be read, a line is not ``destination level [attribute=value …]`` (file and
            line), or the base folder's policy tables are several or not files (then ``--after`` says it better).
    """
    text = _policy_text(Path(path))
    label = f"{path} as smtp_tls_policy_maps"
    if base is None:
        main_cf = {"smtp_tls_security_level": "may", "smtp_tls_policy_maps": f"hash:{POLICY_PATH}"}
        return Configuration(label, PostfixSpec.model_validate({"main.cf": main_cf, "maps": {POLICY_PATH: text}}))
    tables = _tables(base)
    if len(tables) > 1 or any(kind not in _KEYED for kind, _ in tables):
        listed = ", ".join(f"{kind}:{where}" for kind, where in tables)
        message = f"the policy tables of {base.label} are {listed}: --policy replaces one file. Hint: give --after"
        raise ScenarioError(ScenarioIssue(str(path), None, "--policy", message))
    postfix = base.postfix.model_copy(update={"maps": {tables[0][1] if tables else POLICY_PATH: text}})
    if not tables:
        postfix = postfix.model_copy(update={"main_cf": {"smtp_tls_policy_maps": f"hash:{POLICY_PATH}"}})
    return Configuration(f"{base.label} with {label}", postfix, base.folder)


def policy_domains(config: Configuration) -> tuple[str, ...]:
    """The keys of the configuration's policy tables (main.cf and master.cf ``smtp_tls_policy_maps``), lower
    case, in file order: domains, ``.parent`` domains and ``[host]:port`` next-hops as written."""
    files = {**(config.folder.files if config.folder else {}), **(config.postfix.maps or {})}
    keys: list[str] = []
    for _, path in _tables(config):
        for line in files.get(path, "").splitlines():
            if line.strip() and not line.lstrip().startswith("#") and not line[0].isspace():
                key = line.split()[0].lower()
                if key not in keys:
                    keys.append(key)
    return tuple(keys)


def _tables(config: Configuration) -> list[tuple[str, str]]:
    """``(type, path)`` of each policy table the configuration names: the scenario's ``smtp_tls_policy_maps`` when it
    sets one, else the folder's (main.cf and master.cf ``-o``, ``$config_directory`` expanded when it was read)."""
    override = (config.postfix.main_cf or {}).get("smtp_tls_policy_maps")
    if override is None and config.folder is not None:
        refs = [(r.type, r.name) for r in config.folder.maps if r.parameter == "smtp_tls_policy_maps"]
        return list(dict.fromkeys(refs))
    params = {**(config.folder.main_cf if config.folder else {}), **(config.postfix.main_cf or {})}
    return list(dict.fromkeys((m["type"], m["path"]) for m in _TABLE.finditer(expand(override or "", params))))


def _policy_text(path: Path) -> str:
    """The policy table's text, each line checked for the form Postfix reads (postmap(1), TLS_README)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            ScenarioIssue(str(path), None, "--policy", f"cannot read the policy table: {exc}")
        ) from None
    issues = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#") or line[0].isspace():
            continue
        if len(line.split()) < 2:
            message = (
                f"{line.strip()!r} is not `destination level [attribute=value …]`. Hint: e.g. `example.com secure`"
            )
            issues.append(ScenarioIssue(str(path), number, "--policy", message))
    if issues:
        raise ScenarioError(issues)
    return text if text.endswith("\n") or not text else text + "\n"
