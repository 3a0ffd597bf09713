"""Drafted scenarios run on real Postfix (3.7.11): the seed report reproduced with no hand editing; the Postfix 3.x
journald excerpt, the posttls-finger output and a log of classic failures reproduced; and a negative control (the
policy fix makes the same draft deliver, so the drafted deferral is Postfix's decision and not the world's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from harness.draft import draft_scenario
from harness.results import CaseResult
from harness.runner import Runner
from harness.scenario import load_scenario

DATA = Path(__file__).parent.parent / "data"
DRAFT = Path(__file__).parent.parent / "unit" / "data" / "draft"
SEED_ARGS = [
    str(DATA / "seed-smtp-tls.log"),
    "--policy",
    str(DRAFT / "seed-tls_policy"),
    "--main-cf",
    str(DRAFT / "seed-main.cf"),
]


def mxharness(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _run(runner: Runner, *paths: Path) -> list[CaseResult]:
    return list(runner.run([load_scenario(path) for path in paths]))


def test_seed_report_draft_then_run_reproduces_the_deferral(tmp_path: Path) -> None:
    scenario = tmp_path / "seed.yaml"
    drafted = mxharness("draft", *SEED_ARGS, "-o", str(scenario))
    assert drafted.returncode == 0, drafted.stderr
    data = YAML(typ="safe").load(scenario.read_text())
    (cert,) = data["pki"]["certs"].values()
    assert len(cert["san"]) == 6 and "DigiCert" in data["pki"]["cas"][cert["issuer"]]["subject"]
    done = mxharness("run", str(scenario))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
    assert "deferred 4.7.5 tls=Untrusted" in done.stdout
    assert "(Server certificate not verified)" in done.stdout


def test_journald_and_posttls_finger_drafts_reproduce(tmp_path: Path, mxharness_runner: Runner) -> None:
    paths = []
    for source, name in (("journald-short-iso.log", "drafted-journald"), ("finger-secure.txt", "drafted-finger")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(draft_scenario([DRAFT / source], name=name).text)
        paths.append(path)
    journald, finger = _run(mxharness_runner, *paths)
    observed = [
        (r.recipient, r.observed and (r.observed.status, r.observed.tls, r.observed.relay_host))
        for r in journald.recipients
    ]
    assert observed == [
        ("user@acme-widgets.com", ("deferred", "Untrusted", "mx2.mailprotect.net")),
        ("user2@acme-widgets.com", ("deferred", "Untrusted", "mx2.mailprotect.net")),
        ("user3@partner-logistics.de", ("sent", "Verified", "mx.partner-logistics.de")),
    ]
    assert journald.passed, [c for r in journald.recipients for c in r.checks if not c.ok]
    (predicted,) = finger.recipients
    assert predicted.observed is not None and predicted.observed.dsn == "4.7.5"
    assert finger.passed


def test_failures_of_every_kind_reproduce(tmp_path: Path, mxharness_runner: Runner) -> None:
    """A refused connection, NXDOMAIN, SERVFAIL, a server's 550 at RCPT, an untrusted issuer, no STARTTLS."""
    path = tmp_path / "failures.yaml"
    path.write_text(draft_scenario([DRAFT / "classic-failures.log"]).text)
    (result,) = _run(mxharness_runner, path)
    assert [(r.observed and (r.observed.status, r.observed.dsn)) for r in result.recipients] == [
        ("deferred", "4.4.1"),
        ("bounced", "5.4.4"),
        ("bounced", "5.1.1"),
        ("deferred", "4.4.3"),
        ("deferred", "4.7.5"),
        ("deferred", "4.7.4"),
    ]
    assert result.passed, [c for r in result.recipients for c in r.checks if not c.ok]


def test_negative_control_the_policy_fix_delivers(tmp_path: Path, mxharness_runner: Runner) -> None:
    policy = tmp_path / "tls_policy"
    policy.write_text("fastmail.fm secure ciphers=high match=.messagingengine.com\n")
    scenario = tmp_path / "fixed.yaml"
    draft = draft_scenario([DATA / "seed-smtp-tls.log"], policy=policy, main_cf=DRAFT / "seed-main.cf")
    scenario.write_text(draft.text)
    (result,) = _run(mxharness_runner, scenario)
    (recipient,) = result.recipients
    assert not result.passed  # the draft expects the logged deferral …
    assert recipient.observed is not None
    assert (recipient.observed.status, recipient.observed.tls) == ("sent", "Verified")  # … which the fix removes
