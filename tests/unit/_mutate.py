"""Mutating a scenario for property tests: the loader must raise nothing but ScenarioError, whatever it gets."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st


def paths(node: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a plain-data tree, the root included."""
    out = [loc]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*loc, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*loc, index))
    return out


def mutate(data: st.DataObject, base: Any, values: st.SearchStrategy[Any]) -> Any:
    """A copy of ``base`` with 1 to 3 places replaced by drawn ``values`` or deleted."""
    scenario = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths(scenario)))
        new_value = data.draw(values)
        if not path:
            scenario = new_value
            continue
        parent = scenario
        for part in path[:-1]:
            parent = parent[part]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = new_value
    return scenario
