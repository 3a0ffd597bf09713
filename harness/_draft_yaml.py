"""Writing a drafted scenario as YAML with comments (ruamel.yaml, round-trip types). Private: part of
:mod:`harness.draft`.

Layout: block style for sections, flow style for small leaves (a DNS owner's records, a certificate's SANs, an
``expect``), literal blocks for map contents; the header comment says where the draft came from and what was
guessed; a comment above each message quotes the logged status line it reproduces.
"""

from __future__ import annotations

__all__ = ["render_yaml"]

import io
import textwrap
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

_WIDTH = 118
_FLOW_LIMIT = 90  # a mapping written longer than this is written in block style
_FLOW_KEYS = frozenset({"san", "MX", "A", "AAAA", "expect", "trust", "ports", "implicit_tls", "fault"})


def render_yaml(data: dict[str, Any], *, header: list[str], send_comments: list[str | None]) -> str:
    """The scenario ``data`` as YAML text.

    Args:
        data: the scenario as plain dicts and lists, in key order.
        header: paragraphs of the comment at the top (each wrapped to the line width; ``- `` items keep their
            hanging indent).
        send_comments: a comment for each message of ``cases[0].send`` (None for none).
    """
    root = _commented(data, ())
    root.yaml_set_start_comment("\n".join([*_wrapped(header), ""]))
    send = root["cases"][0]["send"]
    for index, comment in enumerate(send_comments):
        if comment:
            send.yaml_set_comment_before_after_key(index, before="\n".join(_wrap(comment, "")), indent=6)
    yaml = YAML()
    yaml.width = _WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue()


def _commented(value: Any, path: tuple[str, ...]) -> Any:
    key = path[-1] if path else ""
    if isinstance(value, dict):
        node = CommentedMap((k, _commented(v, (*path, str(k)))) for k, v in value.items())
        small = len(str(value)) <= _FLOW_LIMIT
        if (key in _FLOW_KEYS and small) or (len(path) == 2 and path[0] == "dns" and "fault" not in value):
            node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_commented(v, (*path, str(i))) for i, v in enumerate(value))
        if key in _FLOW_KEYS:
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _wrapped(paragraphs: list[str]) -> list[str]:
    lines: list[str] = []
    for paragraph in paragraphs:
        if paragraph.startswith("- "):
            lines += _wrap(paragraph[2:], "  - ", "    ")
        elif paragraph:
            lines += _wrap(paragraph, "")
        else:
            lines.append("")
    return lines


def _wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        width=_WIDTH - 2,
        initial_indent=first,
        subsequent_indent=first if rest is None else rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first]
