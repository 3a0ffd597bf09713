"""The fault catalogue's examples in docs/scenario-format.md: every full example builds the world of each of its
cases and fills in its derived values (the integration tests then run them on real Postfix); every snippet is YAML
whose keys the schema accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from harness.derived import substitute_settings
from harness.model import CertSpec, DnsNode, ServerSpec
from harness.postfix import settings_for
from harness.scenario import scenario_from_dict
from harness.world import build_case_world, build_world

FORMAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "scenario-format.md"
TEXT = FORMAT_DOC.read_text(encoding="utf-8")
CATALOGUE = TEXT[TEXT.index("## Fault catalogue (mxharness additions)") :]
EXAMPLES = re.findall(r"^```yaml\n(.*?)^```", CATALOGUE, re.MULTILINE | re.DOTALL)
SNIPPETS = re.findall(r"^```yaml-snippet\n(.*?)^```", CATALOGUE, re.MULTILINE | re.DOTALL)


def test_the_catalogue_has_examples_and_snippets() -> None:
    assert len(EXAMPLES) >= 8 and SNIPPETS


@pytest.mark.parametrize("text", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_every_example_builds_the_world_of_each_case(text: str) -> None:
    scenario = scenario_from_dict(YAML(typ="safe").load(text), source="format example")
    shared = build_world(scenario)
    for case in scenario.cases:
        world = build_case_world(scenario, case, shared=shared)
        settings = substitute_settings(settings_for(scenario.postfix, case.postfix), world.pki)
        assert "{{" not in json.dumps([settings.main_cf, settings.maps])
        spec = json.loads(world.peer_files()["/world/world.json"])
        assert spec["servers"] or not scenario.servers
        for path in {s[k] for s in spec["servers"] for k in ("cert_chain", "key") if s[k]}:
            assert f"/world/{path}" in world.peer_files()


def test_every_example_expects_something_of_each_message() -> None:
    for text in EXAMPLES:
        for case in YAML(typ="safe").load(text)["cases"]:
            assert all(message.get("expect") for message in case["send"]), case["name"]


@pytest.mark.parametrize("text", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_every_snippet_fits_the_schema(text: str) -> None:
    data: dict[str, Any] = YAML(typ="safe").load(text)
    checked = 0
    for name, cert in data.get("pki", {}).get("certs", {}).items():
        assert CertSpec.model_validate(cert), name
        checked += 1
    for server in data.get("servers", {}).values():
        ServerSpec.model_validate(server)
        checked += 1
    for node in data.get("dns", {}).values():
        DnsNode.model_validate(node)
        checked += 1
    assert checked
