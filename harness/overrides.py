"""Worlds that change between cases: a case's ``servers``, ``dns`` and ``pki.certs`` merged over the scenario's.

Merging is entry by entry: an entry of the case replaces the scenario's entry of the same name — DNS owners
compared case-insensitively without the trailing dot, server hosts likewise (``[ ]`` optional around an address),
certificates by their exact name — and the case's new entries come after the scenario's. Nothing is merged inside
an entry: a case that changes one key of a server writes the whole server entry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import TypeVar

from harness.model import Case, Pki, Scenario

__all__ = ["host_key", "merge_entries", "merged_world", "owner_key"]

_V = TypeVar("_V")


def owner_key(name: str) -> str:
    """A DNS owner name as the zone compares it: lower case, no trailing dot (the root stays ``.``)."""
    return name.lower().rstrip(".") or "."


def host_key(host: str) -> str:
    """A server host as the world compares it: an address in canonical form (``[ ]`` dropped), else its owner key."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return owner_key(host)


def merge_entries(
    base: Mapping[str, _V], override: Mapping[str, _V] | None, key: Callable[[str], str] = str
) -> dict[str, _V]:
    """``base`` with each entry of ``override`` replacing the entry whose ``key`` is the same (in its place, under
    the override's spelling), and the other entries of ``override`` added at the end."""
    if not override:
        return dict(base)
    replacing = {key(name): (name, value) for name, value in override.items()}
    merged: dict[str, _V] = {}
    for name, value in base.items():
        if key(name) in replacing:
            new_name, new_value = replacing.pop(key(name))
            merged[new_name] = new_value
        else:
            merged[name] = value
    merged.update(dict(replacing.values()))
    return merged


def merged_world(scenario: Scenario, case: Case) -> Scenario:
    """The scenario as ``case`` sees it: its ``pki.certs``, ``dns`` and ``servers`` merged over the scenario's.

    Returns ``scenario`` itself when the case changes nothing of the world. The result keeps the scenario's
    name, postfix and cases; it is meant for building and checking the case's world, not for loading.
    """
    if not case.changes_world:
        return scenario
    certs = merge_entries(scenario.pki.certs, case.pki.certs if case.pki else None)
    merged = scenario.model_copy(
        update={
            "pki": Pki.model_construct(cas=scenario.pki.cas, certs=certs),
            "dns": merge_entries(scenario.dns, case.dns, owner_key),
            "servers": merge_entries(scenario.servers, case.servers, host_key),
        }
    )
    merged._source_file = scenario._source_file
    return merged
