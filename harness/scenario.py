"""Scenario loader: YAML file → validated, frozen :class:`~harness.model.Scenario`.

Errors name the file, the line and the key path, say what was expected and what was found, and give a
"did you mean" where a name is close: ``scenarios/x.yaml:14: servers.mx1.cert: no certificate named 'mx' in
pki.certs (did you mean 'mx1'?)``. All problems of a file are collected and raised together as one
:class:`~harness.errors.ScenarioError`.

YAML is read with ruamel.yaml (YAML 1.2, which keeps line numbers); the shape is checked by the pydantic models
in :mod:`harness.model`; the cross-references between sections by :mod:`harness.references`.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.scalarstring import LiteralScalarString

from harness.derived import template_problems
from harness.errors import ScenarioError, ScenarioIssue
from harness.model import Scenario
from harness.postfix_config import config_folder_problems
from harness.references import Unchecked, check_references, policy_level_warnings, valid_parts

__all__ = [
    "load_scenario",
    "load_scenarios",
    "looks_like_scenario",
    "scenario_files",
    "scenario_from_dict",
    "scenario_issue",
    "warning_text",
]

Path_ = tuple[str | int, ...]


_SCENARIO_KEY = re.compile(r"^(cases|case|dns|servers|pki|postfix)\s*:", re.MULTILINE)
_NAME_KEY = re.compile(r"^name\s*:", re.MULTILINE)


def looks_like_scenario(path: Path) -> bool:
    """Whether a YAML file is meant as a scenario: a top-level ``name:`` and one of the scenario sections (also
    a misspelt ``case:``, so that the loader can say what is wrong instead of the file being passed over)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(_NAME_KEY.search(text) and _SCENARIO_KEY.search(text))


def scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into scenario files.

    A file given by name is always taken. In a folder (searched recursively, sorted), the ``*.yaml``/``*.yml``
    files that :func:`looks_like_scenario` are taken; hidden folders (``.github``) are passed over.

    Raises:
        ScenarioError: a path does not exist, or a folder holds no scenario file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and looks_like_scenario(p)
            )
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


def load_scenarios(paths: Iterable[str | Path], *, warnings: list[ScenarioIssue] | None = None) -> list[Scenario]:
    """Load every scenario under ``paths`` (files or folders); scenario names must be unique in the run.

    Args:
        paths: files or folders.
        warnings: when given, what is suspicious but valid is appended to it (also when an error is raised), e.g. a
            policy table entry with an unknown security level (:func:`warning_text` formats one).

    Raises:
        ScenarioError: with every issue of every file, so one call reports all mistakes.
    """
    issues: list[ScenarioIssue] = []
    scenarios: list[Scenario] = []
    seen: dict[str, str] = {}
    for path in scenario_files(paths):
        try:
            scenario = load_scenario(path, warnings=warnings)
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


def load_scenario(path: str | Path, *, warnings: list[ScenarioIssue] | None = None) -> Scenario:
    """Load one scenario file.

    Args:
        path: the YAML file.
        warnings: as for :func:`load_scenarios`.

    Returns:
        The validated scenario; its ``source_file`` is ``path`` as given.

    Raises:
        ScenarioError: unreadable file, malformed YAML, or any schema or reference problem (all of them).
    """
    name = str(path)
    try:
        stat = os.stat(path)
        key: tuple[str, int, int] | None = (name, stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if warnings is None and key in _READ:
        return _READ[key]  # as read before (a scenario is frozen); a caller collecting warnings reads again
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
    scenario = _validate(tree, name, first_line=1, warnings=warnings)
    if key is not None and not _READS_OTHER_FILES.search(text):
        _READ[key] = scenario
    return scenario


#: Scenarios read so far, by (path as given, mtime in ns, size): the report's TLS model (harness._explain_report)
#: reads a run's files again at the end, and a file that has not changed need not be parsed twice. A file that
#: names other files (``include``, ``destinations``, a configuration folder) is always read again: those may have
#: changed while it did not.
_READ: dict[tuple[str, int, int], Scenario] = {}
_READS_OTHER_FILES = re.compile(r"^\s*(?:include|destinations|config_dir)\s*:", re.MULTILINE)


def warning_text(issue: ScenarioIssue) -> str:
    """A warning of the loader as the command line prints it: ``file:line: WARNING: key: message``."""
    where = f"{issue.file}:{issue.line}" if issue.line else issue.file
    return f"{where}: WARNING: {issue.key}: {issue.message}" if issue.key else f"{where}: WARNING: {issue.message}"


def scenario_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", warnings: list[ScenarioIssue] | None = None
) -> Scenario:
    """Build a scenario from plain data (what the YAML would have parsed to), with the same checks (and
    ``warnings``, as for :func:`load_scenarios`) as a file.

    Raises:
        ScenarioError: as :func:`load_scenario`, without line numbers.
    """
    return _validate(data, source, first_line=None, warnings=warnings)


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


def _validate(tree: Any, file: str, *, first_line: int | None, warnings: list[ScenarioIssue] | None = None) -> Scenario:
    if not isinstance(tree, Mapping):
        found = "an empty file" if tree is None else _kind(tree)
        message = f"a scenario is a mapping of keys, found {found}"
        raise ScenarioError(ScenarioIssue(file, first_line, "", message))
    data = _plain(tree)
    issues: list[ScenarioIssue] = []
    world_problems: list[tuple[Path_, str]] = []
    if data.get("include") or data.get("destinations"):  # harness.worlds: other scenarios' worlds, destinations
        from harness.worlds import apply_worlds  # (harness.worlds loads the included files with this module)

        data, world_problems, world_issues = apply_worlds(data, file)
        issues += world_issues
    try:
        scenario = Scenario.model_validate(data)
        unchecked = Unchecked()
    except ValidationError as exc:
        issues += [_issue_from_pydantic(err, tree, file) for err in exc.errors()]
        scenario, unchecked = valid_parts(data)  # so that one run reports reference problems too
    problems = [*check_references(scenario, unchecked), *config_folder_problems(scenario, file), *world_problems]
    issues += [ScenarioIssue(file, _line_of(tree, loc), _dotted(loc), msg) for loc, msg in problems]
    for loc, line, msg in template_problems(scenario, unchecked):
        issues.append(ScenarioIssue(file, _line_in_text(tree, loc, line), _dotted(loc), msg))
    if warnings is not None:  # suspicious but valid: a scenario may reproduce what Postfix does with it
        for loc, line, msg in policy_level_warnings(scenario):
            warnings.append(ScenarioIssue(file, _line_in_text(tree, loc, line), _dotted(loc), msg))
    if issues:
        raise ScenarioError(sorted(issues, key=lambda issue: (issue.file != file, issue.line or 0)))
    scenario._source_file = file
    if isinstance(tree, CommentedMap) and "name" in tree:
        scenario._name_line = tree.lc.key("name")[0] + 1
    scenario._key_lines = dict(_key_lines(tree))
    return scenario


def scenario_issue(scenario: Scenario, loc: tuple[str | int, ...], message: str) -> ScenarioIssue:
    """An issue about key path ``loc`` of a loaded scenario, found after loading (e.g. by Postfix itself), with
    the file and the line of the deepest part of ``loc`` the file has."""
    line = None
    for end in range(len(loc), 0, -1):
        line = scenario._key_lines.get(loc[:end])
        if line is not None:
            break
    return ScenarioIssue(scenario.source_file, line, _dotted(loc), message)


def _key_lines(node: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """Every key path of the YAML tree with its 1-based line."""
    if isinstance(node, CommentedMap):
        for key, value in node.items():
            yield (*loc, key), node.lc.key(key)[0] + 1
            yield from _key_lines(value, (*loc, key))
    elif isinstance(node, CommentedSeq):
        for index, value in enumerate(node):
            yield (*loc, index), node.lc.item(index)[0] + 1
            yield from _key_lines(value, (*loc, index))


def _kind(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"the value {value!r}"


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


#: pydantic's type errors, in the words of a YAML file's author.
_EXPECTED_TYPES = {
    "string_type": "text (a string; quote it in YAML if it looks like a number or yes/no)",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping (`key: value` lines or `{key: value}`)",
    "list_type": "a list (`- item` lines or `[a, b]`)",
}


def _issue_from_pydantic(err: Any, tree: Any, file: str) -> ScenarioIssue:
    loc: Path_ = tuple(_yaml_key(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown key {key!r}{hint}. Allowed here: {', '.join(sorted(allowed))}"
        if len(loc) == 4 and loc[0] == "cases" and loc[2:] == ("pki", "cas"):
            msg += ". Hint: CAs are shared by every case; define them in the scenario's pki.cas"
    elif kind == "missing":
        msg = "this key is required"
    elif kind == "literal_error":
        msg = f"{err['msg'].replace('Input should be', 'expected')}, found {err['input']!r}"
        choices = [a.strip("'") for a in re.findall(r"'[^']*'", err["msg"])]
        same_but_case = {a.lower(): a for a in choices}.get(str(err["input"]).lower())
        near = same_but_case or next(iter(difflib.get_close_matches(str(err["input"]), choices, n=1)), None)
        msg += f" (did you mean {near!r}?)" if near else ""
    elif kind == "string_pattern_mismatch":
        msg = f"{err['input']!r} does not have the required form {err['ctx']['pattern']!r}"
        if loc and loc[-1] == "name":
            msg += ". Hint: lower-case letters, digits and '-', e.g. `secure-defers`"
        elif loc and loc[-1] in ("to", "from"):
            msg = f"{err['input']!r} is not a mail address. Hint: write `user@example.com`"
    elif kind == "string_too_long":
        msg = f"{err['input'][:40]!r}… is longer than {err['ctx']['max_length']} characters"
        msg += " (it becomes part of a DNS label in the Message-ID). Hint: a short slug such as `secure-defers`"
    elif kind == "value_error":
        msg = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
    elif kind in _EXPECTED_TYPES:
        msg = f"expected {_EXPECTED_TYPES[kind]}, found {err.get('input')!r}"
    elif kind == "too_short":
        least = err.get("ctx", {}).get("min_length", 1)
        msg = f"expected at least {least} entr{'y' if least == 1 else 'ies'}, found none"
        if loc == ("cases",):
            msg += ". Hint: add a case, e.g. `- name: secure-delivers` with `send: [{to: …, expect: {status: sent}}]`"
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


def _line_in_text(tree: Any, loc: Path_, index: int) -> int | None:
    """The line of line ``index`` (0-based) of the text value at ``loc``: exact for a literal block (``|``), whose
    lines start below its key; the key's line otherwise."""
    line = _line_of(tree, loc)
    node = tree
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return line
    if isinstance(node, LiteralScalarString) and line is not None:
        return line + 1 + index
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
