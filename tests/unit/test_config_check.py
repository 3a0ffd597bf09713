"""Tests of harness.config_check: Postfix's own objections to a case's configuration (an unknown parameter name
from ``postconf``'s "unused parameter" warning, a value rejected by a ``fatal:`` line) become scenario issues with
file, line, key path, Postfix's words and a "did you mean". The Docker side (postconf in the image) is exercised by
the integration tests; here the translation into messages is pinned."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config_check import fatal_issues, unused_parameter_issues
from harness.model import Scenario
from harness.postfix import UnusedParameter
from harness.scenario import load_scenario

SCENARIO = """\
name: s
dns:
  example.net: {MX: 10 mx.example.net}
  mx.example.net: {A: auto}
servers:
  mx.example.net: {}
postfix:
  main.cf: {smtp_tls_security_level: bogus}
cases:
  - name: typo
    postfix: {main.cf: {smtp_tls_securty_level: may}}
    send: [{to: a@example.net}]
  - name: master-option
    postfix:
      master.cf: |
        smtp unix - - n - - smtp -o smtp_tls_chiphers=high
    send: [{to: a@example.net}]
"""

KNOWN = ["smtp_tls_security_level", "smtp_tls_ciphers", "smtp_tls_loglevel"]


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    return load_scenario(path)


def test_an_unknown_parameter_of_a_case_names_file_line_key_and_the_close_name(scenario: Scenario) -> None:
    unused = [UnusedParameter("/etc/postfix/main.cf", "smtp_tls_securty_level", "may")]
    issues = [str(i) for i in unused_parameter_issues(scenario, 0, unused, KNOWN)]
    assert len(issues) == 1
    assert issues[0].endswith(
        's.yaml:11: cases[0].postfix["main.cf"].smtp_tls_securty_level: Postfix does not know the parameter '
        "'smtp_tls_securty_level' (main.cf: unused parameter) (did you mean 'smtp_tls_security_level'?)"
    )


def test_an_unknown_parameter_without_a_close_name_points_to_postconf(scenario: Scenario) -> None:
    unused = [UnusedParameter("/etc/postfix/main.cf", "smtp_tls_securty_level", "may")]
    issues = [str(i) for i in unused_parameter_issues(scenario, 0, unused, ["myhostname"])]
    assert issues[0].endswith(
        "Postfix does not know the parameter 'smtp_tls_securty_level' (main.cf: unused parameter). "
        "Hint: `postconf -d` lists every parameter"
    )


def test_an_unknown_parameter_in_a_master_cf_option_points_to_the_cases_master_cf(scenario: Scenario) -> None:
    unused = [UnusedParameter("/etc/postfix/master.cf", "smtp_tls_chiphers", "high")]
    issues = [str(i) for i in unused_parameter_issues(scenario, 1, unused, KNOWN)]
    assert len(issues) == 1
    assert ': cases[1].postfix["master.cf"]: ' in issues[0]
    assert issues[0].endswith(
        "Postfix does not know the parameter 'smtp_tls_chiphers' (master.cf: unused parameter) "
        "(did you mean 'smtp_tls_ciphers'?)"
    )


def test_a_rejected_value_is_reported_at_its_parameter_in_postfixs_own_words(scenario: Scenario) -> None:
    fatal = ['Nov 30 12:00:00 mail postfix/smtp[123]: fatal: Invalid TLS level "bogus"']
    issues = [str(i) for i in fatal_issues(scenario, 0, fatal, {"smtp_tls_security_level": "bogus"})]
    assert len(issues) == 1
    assert issues[0].endswith(
        's.yaml:8: postfix["main.cf"].smtp_tls_security_level: '
        'Postfix rejected this configuration: Invalid TLS level "bogus"'
    )


def test_a_fatal_line_naming_the_parameter_is_placed_at_that_parameter(scenario: Scenario) -> None:
    fatal = ["postfix/smtp[9]: fatal: bad numerical configuration: smtp_tls_security_level = abc"]
    main_cf = {"smtp_tls_security_level": "abc", "smtp_tls_securty_level": "may"}
    issues = [str(i) for i in fatal_issues(scenario, 0, fatal, main_cf)]
    assert issues[0].endswith(
        'postfix["main.cf"].smtp_tls_security_level: '
        "Postfix rejected this configuration: bad numerical configuration: smtp_tls_security_level = abc"
    )
