"""The two ways users run scenarios — the `mxharness` command and pytest — on real Postfix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCENARIO = """\
name: cli-check
pki:
  cas: {root: {subject: /CN=Lab Root, key: ec256}}
  certs: {mx: {issuer: root, san: [mx.example.net], key: ec256}}
dns:
  example.net: {MX: 10 mx.example.net}
  mx.example.net: {A: auto}
servers:
  mx.example.net: {cert: mx}
postfix:
  main.cf: {smtp_tls_security_level: verify}
cases:
  - name: verified
    send:
      - to: a@example.net
        expect: {status: sent, tls: Verified}
"""
WRONG = SCENARIO.replace("expect: {status: sent, tls: Verified}", "expect: {status: deferred, dsn: 4.7.5}")


def mxharness(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from harness.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_run_exits_0_when_every_expectation_holds(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(SCENARIO)
    done = mxharness("run", str(tmp_path / "ok.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
    assert "sent 2.0.0 tls=Verified" in done.stdout
    assert "relay=mx.example.net[192.0.2.10]:25" in done.stdout


def test_run_exits_1_and_explains_when_an_expectation_fails(tmp_path: Path) -> None:
    (tmp_path / "wrong.yaml").write_text(WRONG)
    done = mxharness("run", str(tmp_path / "wrong.yaml"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 passed, 1 failed" in done.stdout
    assert "FAIL status: expected 'deferred', observed 'sent'" in done.stdout
    assert "Verified TLS connection established to mx.example.net[192.0.2.10]:25" in done.stdout


def test_pytest_collects_cases_and_reports_failures_in_postfix_terms(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", good=SCENARIO, bad=WRONG.replace("cli-check", "cli-check-wrong"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*bad.yaml::verified FAILED*",
            "*good.yaml::verified PASSED*",
            "*FAIL status: expected 'deferred', observed 'sent'*",
            "*Verified TLS connection established to mx.example.net*",
        ]
    )
