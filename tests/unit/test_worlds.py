"""Worlds shared between scenarios: the library of scenarios/worlds/, ``include`` and ``destinations``, and their
errors (file, line, key)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import ScenarioError
from harness.scenario import load_scenario, scenario_files, scenario_from_dict
from harness.worlds import destinations_of, find_world, library_folder, library_worlds

ROOT = Path(__file__).resolve().parents[2]
WORLDS = ROOT / "scenarios" / "worlds"

_PARTNER = """\
name: world-partner
destinations:
  partner.example:
    source: "the partner's admin, by mail"
    date: 2026-11-30
pki:
  cas: {partner-root: {subject: /CN=Partner Root, key: ec256}}
  certs: {partner-mx: {issuer: partner-root, san: [mx.partner.example], key: ec256}}
dns:
  partner.example: {MX: 10 mx.partner.example}
  mx.partner.example: {A: auto}
servers:
  mx.partner.example: {cert: partner-mx}
cases: [{name: c, send: [{to: a@partner.example}]}]
"""

_USER = "name: user\ninclude: {}\ncases: [{{name: c, send: [{{to: a@partner.example}}]}}]\n"


def _write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def _issues(exc: pytest.ExceptionInfo[ScenarioError]) -> list[str]:
    return [str(issue) for issue in exc.value.issues]


def _case(to: str) -> list[dict[str, object]]:
    return [{"name": "c", "send": [{"to": to}]}]


def test_every_library_world_cites_a_source_and_a_date_for_each_destination() -> None:
    worlds = library_worlds()
    names = {Path(w.source_file).stem for w in worlds}
    assert names >= {"fastmail", "facebook", "proofpoint", "google", "microsoft", "posteo", "canit"}
    for world in worlds:
        assert world.name == f"world-{Path(world.source_file).stem}" and world.description
        for d in destinations_of(world):
            assert d.source and re.match(r"^(\d{4}(-\d{2}(-\d{2})?)?|undated)$", d.date)
            assert d.recipient == f"postmaster@{d.domain}" and d.world == world.name
            sent_to = {m.to for case in world.cases for m in case.send}
            assert d.recipient in sent_to, f"{world.name}: its cases check what it claims of {d.domain}"
    domains = [d.domain for w in worlds for d in destinations_of(w)]
    assert len(domains) == len(set(domains))
    assert {"fastmail.fm", "facebook.com", "hearst.com"} <= set(domains)  # the seed report's policy table


def test_world_files_are_scenarios_run_checked_and_collected_like_any_other() -> None:
    assert {p.name for p in scenario_files([WORLDS])} == {p.name for p in WORLDS.glob("*.yaml")}
    result = CliRunner().invoke(main, ["check", "scenarios"])
    assert result.exit_code == 0, result.output


def test_a_scenario_includes_a_library_world_by_name() -> None:
    scenario = scenario_from_dict({"name": "uses-fastmail", "include": "fastmail", "cases": _case("a@fastmail.fm")})
    assert scenario.include == ["fastmail"]
    assert scenario.dns["fastmail.fm"].MX == ["10 in1-smtp.messagingengine.com", "20 in2-smtp.messagingengine.com"]
    assert set(scenario.servers) == {"in1-smtp.messagingengine.com", "in2-smtp.messagingengine.com"}
    assert scenario.pki.certs["messagingengine"].issuer == "digicert-sha2-ha"
    assert scenario.postfix.main_cf is None and not scenario.destinations  # neither postfix nor destinations


def test_without_include_the_same_scenario_does_not_load() -> None:  # negative control of the one above
    with pytest.raises(ScenarioError, match=re.escape("no certificate named 'messagingengine' in pki.certs")):
        scenario_from_dict(
            {
                "name": "uses-fastmail",
                "servers": {"in1-smtp.messagingengine.com": {"cert": "messagingengine"}},
                "cases": _case("a@fastmail.fm"),
            }
        )


def test_a_scenario_entry_replaces_the_included_entry_of_the_same_name_as_a_whole() -> None:
    cert = {"issuer": "digicert-sha2-ha", "san": ["x.example"], "not_after": "-1d"}
    scenario = scenario_from_dict(
        {
            "name": "fastmail-expired",
            "include": ["fastmail"],
            "pki": {"certs": {"messagingengine": cert}},
            "dns": {"FastMail.FM.": {"MX": "10 in2-smtp.messagingengine.com"}},
            "cases": _case("a@fastmail.fm"),
        }
    )
    assert scenario.pki.certs["messagingengine"].san == ["x.example"]
    assert scenario.pki.certs["messagingengine"].subject is None  # the world's subject is not merged in
    assert [name for name in scenario.dns if name.lower().rstrip(".") == "fastmail.fm"] == ["FastMail.FM."]


def test_two_worlds_may_share_an_identical_entry_but_not_a_different_one(tmp_path: Path) -> None:
    both = scenario_from_dict({"name": "two", "include": ["fastmail", "facebook"], "cases": _case("a@fastmail.fm")})
    assert "digicert-ev-root" in both.pki.cas and "facebook" in both.pki.certs  # both worlds' DigiCert CAs: equal
    other = _PARTNER.replace("partner-root: {subject: /CN=Partner Root", "digicert-ev-root: {subject: /CN=Other")
    _write(tmp_path, "other.yaml", other.replace("issuer: partner-root", "issuer: digicert-ev-root"))
    text = "name: clash\ninclude:\n  - fastmail\n  - other.yaml\ncases: [{name: c, send: [{to: a@partner.example}]}]\n"
    scenario = _write(tmp_path, "s.yaml", text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(scenario)
    clash = "world-partner and world-fastmail both define cas entry 'digicert-ev-root', differently"
    assert any(i.startswith(f"{scenario}:4: include[1]: {clash}") for i in _issues(exc)), _issues(exc)


def test_a_world_file_by_path_is_relative_to_the_including_scenario(tmp_path: Path) -> None:
    (tmp_path / "worlds").mkdir()
    _write(tmp_path / "worlds", "partner.yaml", _PARTNER)
    scenario = load_scenario(_write(tmp_path, "s.yaml", _USER.format("worlds/partner.yaml")))
    assert "mx.partner.example" in scenario.servers


def test_includes_may_nest_but_not_go_round(tmp_path: Path) -> None:
    _write(tmp_path, "partner.yaml", _PARTNER)
    _write(tmp_path, "middle.yaml", _USER.format("[partner.yaml]").replace("name: user", "name: middle"))
    assert "mx.partner.example" in load_scenario(_write(tmp_path, "s.yaml", _USER.format("[middle.yaml]"))).servers
    _write(tmp_path, "partner.yaml", _PARTNER.replace("name: world-partner", "name: world-partner\ninclude: s.yaml"))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(tmp_path / "s.yaml")
    assert any(
        i.startswith(f"{tmp_path / 'partner.yaml'}:2: include[0]: 's.yaml' is being loaded already: an include cycle")
        for i in _issues(exc)
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("fastmial", r"include\[0\]: no world 'fastmial' in the library .* \(did you mean 'fastmail'\?\)"),
        ("nowhere/partner.yaml", r"include\[0\]: no file 'nowhere/partner.yaml' \(relative to .*/\)"),
        ("{a: b}", r"include\[0\]: expected a world name or a .yaml path, found \{'a': 'b'\}"),
    ],
)
def test_an_include_that_names_no_world_is_an_error_at_its_line(tmp_path: Path, entry: str, message: str) -> None:
    scenario = _write(tmp_path, "s.yaml", _USER.format(f"[{entry}]"))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(scenario)
    assert any(re.match(f"{re.escape(str(scenario))}:2: {message}", i) for i in _issues(exc)), _issues(exc)


_AT = 'destinations["partner.example"]'


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("destinations:", "destinatons:"), ":2: destinatons: unknown key 'destinatons' (did you mean 'destinations'"),
        (('    source: "the partner\'s admin, by mail"\n', ""), f":3: {_AT}.source: this key is required"),
        (("date: 2026-11-30", "date: last week"), f":5: {_AT}.date: 'last week' does not have the required form"),
        (("partner.example: {MX", "partner.test: {MX"), f":3: {_AT}: no dns entry for partner.example"),
        (("issuer: partner-root, san", "issuer: partner-rot, san"), ":8: pki.certs.partner-mx.issuer: no CA named"),
    ],
)
def test_a_broken_world_is_reported_with_its_own_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], where: str
) -> None:
    world = _write(tmp_path, "partner.yaml", _PARTNER.replace(*change))
    with pytest.raises(ScenarioError) as exc:
        load_scenario(world)
    assert any(i.startswith(f"{world}{where}") for i in _issues(exc)), _issues(exc)
    scenario = _write(tmp_path, "s.yaml", _USER.format("[partner.yaml]"))
    with pytest.raises(ScenarioError) as through:  # the same problem, when a scenario includes the world
        load_scenario(scenario)
    assert any(i.startswith(f"{world}{where}") for i in _issues(through)), _issues(through)


def test_the_library_folder_can_be_another_one_and_two_worlds_may_not_describe_one_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "partner.yaml", _PARTNER)
    monkeypatch.setenv("MXHARNESS_WORLDS", str(tmp_path))
    assert library_folder() == tmp_path
    assert find_world("partner") == tmp_path / "partner.yaml" and find_world("fastmail") is None
    assert [w.name for w in library_worlds()] == ["world-partner"]
    _write(tmp_path, "copy.yaml", _PARTNER.replace("name: world-partner", "name: world-copy"))
    with pytest.raises(ScenarioError, match=re.escape("partner.example is also a destination of world-copy")):
        library_worlds()
