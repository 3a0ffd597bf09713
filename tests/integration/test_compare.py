"""mxharness compare on real Postfix 3.7: the seed reporter's configuration against the accepted fix, both ways; the
command's exit code and reports; a policy table alone against the world library; a scenario with mail via smtp as
the world. About 45 s on two cores."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.compare import Comparison, compare, folder_configuration, opportunistic_configuration, policy_configuration
from harness.engine import RUN_LABEL, Engine
from harness.runner import Runner
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed" / "etc-postfix"
ACCEPTED_FIX = (
    "fastmail.fm     secure ciphers=high\n",
    "fastmail.fm     secure ciphers=high match=.messagingengine.com\n",
)


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    """Two pods at a time (before and after side by side), reused across the module's comparisons."""
    with Runner(jobs=2, progress=lambda m: None) as r:
        yield r
    _no_containers_left(r.run_id)


def _no_containers_left(run_id: str) -> None:
    engine = Engine()
    try:
        assert engine.client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []
    finally:
        engine.close()


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed folder with the accepted answer's policy entry for fastmail.fm, nothing else changed."""
    folder = tmp_path_factory.mktemp("fixed") / "etc-postfix"
    shutil.copytree(SEED, folder)
    policy = folder / "tls_policy"
    assert ACCEPTED_FIX[0] in policy.read_text()
    policy.write_text(policy.read_text().replace(*ACCEPTED_FIX))
    return folder


def _kinds(c: Comparison) -> dict[str, str]:
    return {ch.domain: ch.kind for ch in c.changes}


def test_the_accepted_fix_verifies_fastmail_and_changes_nothing_else_and_undoing_it_is_a_regression(
    runner: Runner, fixed: Path
) -> None:
    seed, fix = folder_configuration(SEED), folder_configuration(fixed, option="--after")
    better = compare(seed, fix, runner=runner)
    assert _kinds(better) == {"fastmail.fm": "newly verified", "facebook.com": "unchanged", "hearst.com": "unchanged"}
    assert not better.worse and better.notes == ()
    fastmail = better.changes[0]
    assert fastmail.before is not None and fastmail.after is not None
    assert (fastmail.before.status, fastmail.before.dsn, fastmail.before.reason) == (
        "deferred",
        "4.7.5",
        "Server certificate not verified",
    )
    assert (fastmail.after.status, fastmail.after.tls) == ("sent", "Verified")
    assert fastmail.reason is not None and "match nexthop, dot-nexthop → .messagingengine.com" in fastmail.reason
    assert all(ch.after is not None and ch.after.tls == "Verified" for ch in better.changes)
    worse = compare(fix, seed, runner=runner)  # the twin: the same change undone
    assert _kinds(worse) == {"fastmail.fm": "newly deferred", "facebook.com": "unchanged", "hearst.com": "unchanged"}
    assert [ch.domain for ch in worse.worse] == ["fastmail.fm"]
    assert "is among the certificate's" in (worse.changes[0].reason or "")


def test_the_command_exits_1_for_a_regression_and_writes_json_and_junit(
    fixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("harness.runner.new_run_id", lambda: "cmptest1")
    args = ["compare", "--before", str(fixed), "--after", str(SEED), "--json", str(tmp_path / "c.json")]
    result = CliRunner().invoke(main, [*args, "--junit", str(tmp_path / "c.xml")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[lines.index("NEWLY DEFERRED (1)") + 1].split() == [
        "fastmail.fm", "sent", "2.0.0", "tls=Verified", "→", "deferred", "4.7.5", "tls=Untrusted",
    ]  # fmt: skip
    assert "UNCHANGED (2)" in lines and lines[-3].startswith("WORSE for 1 destination(s)")
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["worse"] is True and document["changes"][0]["kind"] == "newly deferred"
    assert document["runs"]["after"]["cases"][0]["recipients"][0]["observed"]["status"] in ("sent", "deferred")
    suite = ET.parse(tmp_path / "c.xml").getroot()
    assert suite.get("failures") == "1" and suite.find("testcase/failure") is not None
    _no_containers_left("cmptest1")


def test_a_policy_table_alone_is_compared_with_opportunistic_tls_for_the_library_domains_it_names(
    runner: Runner, tmp_path: Path
) -> None:
    table = tmp_path / "tls_policy"
    table.write_text("gmail.com secure\noutlook.com secure\nexample.org secure\n")
    result = compare(opportunistic_configuration(), policy_configuration(table), runner=runner)
    assert _kinds(result) == {"gmail.com": "newly deferred", "outlook.com": "newly verified"}
    assert result.notes == (
        "named by a policy table but described by no world of the library: example.org (give a world that "
        "describes them as WORLD)",
    )
    gmail = result.changes[0]
    assert gmail.reason is not None and gmail.reason.startswith('policy table entry (none) → "gmail.com secure"')


def test_a_scenario_as_the_world_compares_its_messages_mail_via_smtp_included(runner: Runner, fixed: Path) -> None:
    world = load_scenario(ROOT / "scenarios" / "seed" / "seed-configuration.yaml")
    result = compare(folder_configuration(SEED), folder_configuration(fixed), [world], runner=runner)
    kinds = {(ch.recipient, ch.via): ch.kind for ch in result.changes}
    assert kinds == {
        ("user@fastmail.fm", "sendmail"): "newly verified",
        ("user@facebook.com", "sendmail"): "unchanged",
        ("user@hearst.com", "sendmail"): "unchanged",
        ("user@facebook.com", "smtp"): "unchanged",  # through the amavis content filter the scenario plays
    }
    smtp = next(ch for ch in result.changes if ch.via == "smtp")
    assert smtp.after is not None and smtp.after.relay == "127.0.0.1[127.0.0.1]:10024"
