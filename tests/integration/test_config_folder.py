"""A user's own configuration folder on real Postfix: Postfix's warnings in the results, --strict, and the
ten-line-scenario story of the README (`mxharness run --postfix-config DIR`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent

from harness.runner import Runner
from harness.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]

_SCENARIO = """\
name: my-destinations
pki:
  cas: {root: {subject: /CN=Example Root}}
  certs: {mx: {issuer: root, san: [mx.example.net]}}
dns:
  example.com: {MX: 10 mx.example.net}
  mx.example.net: {A: auto}
servers:
  mx.example.net: {cert: mx}
cases:
  - name: verify-delivers
    send:
      - to: user@example.com
        expect: {status: sent, tls: Verified}
  - name: secure-defers
    postfix:
      maps: {/etc/postfix/tls_policy: "example.com secure\\n"}
    send:
      - to: user@example.com
        expect: {status: deferred, dsn: 4.7.5, reason: Server certificate not verified}
"""


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "etc-postfix"
    folder.mkdir()
    (folder / "main.cf").write_text(
        dedent("""\
        myhostname = mail.example.org
        compatibility_level = 3.6
        smtp_tls_security_level = may
        smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt
        smtp_tls_policy_maps = hash:$config_directory/tls_policy
        # a typo Postfix only warns about: on the real server it is silently ignored
        smtp_tls_chiphers = high
        smtpd_milters = inet:localhost:8891
        """)
    )
    (folder / "tls_policy").write_text("example.com verify\n")
    return folder


def test_the_folders_own_warnings_are_results_and_strict_fails_on_them(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(_SCENARIO.replace("cases:", "postfix: {config_dir: etc-postfix}\ncases:", 1))
    _folder(tmp_path)
    scenario = load_scenario(tmp_path / "s.yaml")
    with Runner(progress=lambda _: None) as runner:
        lenient = runner.run_case(scenario, scenario.cases[0])
    assert lenient.passed, lenient.error
    assert any("unused parameter: smtp_tls_chiphers=high" in w for w in lenient.postfix_warnings)
    assert "smtpd_milters=inet:localhost:8891 removed: no milter runs in the pod" in lenient.config_changes
    # The trust went where the folder's main.cf looks, not to a file of the harness's choosing.
    assert "smtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt" in lenient.main_cf
    assert "mxharness-trust.pem" not in lenient.main_cf
    with Runner(progress=lambda _: None, strict=True) as runner:
        strict = runner.run_case(scenario, scenario.cases[0])
    assert not strict.passed
    assert strict.error and strict.error.startswith("--strict: Postfix warned")
    assert "smtp_tls_chiphers" in strict.error


def test_postfix_config_option_runs_a_ten_line_scenario_and_lists_the_changes(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(_SCENARIO)
    folder = _folder(tmp_path)
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", "--postfix-config", str(folder)]
    done = subprocess.run(
        [*command, str(tmp_path / "s.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "2 passed, 0 failed" in out
    # One list for both cases: the secure-defers case changes maps on top, not the folder.
    assert "configuration folder changed for the pod (my-destinations/verify-delivers, my-destinations/secure-" in out
    assert "smtpd_milters=inet:localhost:8891 removed: no milter runs in the pod" in out
    assert "unused parameter: smtp_tls_chiphers=high" in out
