"""The TLS model beside real Postfix outside the terminal: the ``tls_model`` field of ``--json`` and the pytest
plugin's summary; and never a model of another configuration than the one that ran (``run --postfix-config``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from _report_cases import fastmail_defers

from harness._explain_report import DISAGREEMENT_HEADING, disagreement_lines, model_document
from harness.postfix import render_main_cf, settings_for
from harness.postfix_config import config_for
from harness.results import CaseResult, Observed, RecipientResult
from harness.results_json import results_document, results_from_document
from harness.scenario import load_scenario

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SEED_CONFIGURATION = ROOT / "scenarios" / "seed" / "seed-configuration.yaml"


def _observed_tls(case: CaseResult, tls: str) -> CaseResult:
    (r,) = case.recipients
    assert r.observed is not None
    return replace(case, recipients=(replace(r, observed=replace(r.observed, tls=tls)),))


def test_the_json_document_carries_the_models_prediction_and_the_disagreement() -> None:
    agreeing = fastmail_defers()
    disagreeing = _observed_tls(fastmail_defers(), "Trusted")
    first, second = (c["recipients"][0]["tls_model"] for c in results_document([agreeing, disagreeing])["cases"])
    assert first == {
        "release": "3.7.11",
        "certain": True,
        "status": "deferred",
        "dsn": "4.7.5",
        "tls": "Untrusted",
        "reason": "Server certificate not verified",
        "caveats": [],
        "disagreements": [],
    }
    assert second["disagreements"] == [{"key": "tls", "model": "Untrusted", "postfix": "Trusted"}]
    # Derived, so not read back; a document of an earlier release, without it, reads back the same.
    document = results_document([disagreeing])
    again = results_from_document(document)
    del document["cases"][0]["recipients"][0]["tls_model"]
    assert results_from_document(document) == again == [disagreeing]


def test_no_model_when_the_scenario_cannot_be_read_again_or_nothing_was_observed() -> None:
    gone = replace(fastmail_defers(), source_file="/nonexistent/fastmail.yaml")
    assert model_document(gone, gone.recipients[0]) is None
    case = fastmail_defers()
    silent = replace(case.recipients[0], observed=None)
    document = model_document(case, silent)
    assert document is not None and document["disagreements"] == []


def _seed_configuration_result(tls: str = "Untrusted") -> CaseResult:
    """The as-reported case of the seed configuration as a run reports it, fastmail.fm observed with ``tls``."""
    scenario = load_scenario(SEED_CONFIGURATION)
    case = scenario.cases[0]
    served = {("66.111.4.74", 25), ("127.0.0.1", 10024)}
    settings = settings_for(scenario.postfix, case.postfix, config=config_for(scenario, case), served=served)
    observed = Observed("deferred", "4.7.5", "Server certificate not verified", "none", None, None, None, tls, "Q")
    recipient = RecipientResult(scenario.name, case.name, "user@fastmail.fm", case.send[2].expect, observed, ())
    return CaseResult(
        scenario=scenario.name,
        case=case.name,
        source_file=str(SEED_CONFIGURATION),
        recipients=(recipient,),
        release="3.7.11",
        main_cf=render_main_cf(settings, version=(3, 7, 11)),
    )


def test_a_configuration_folder_run_is_compared_with_the_model_of_that_folder() -> None:
    result = _seed_configuration_result(tls="Trusted")
    document = model_document(result, result.recipients[0])
    assert document is not None and document["certain"]
    assert document["disagreements"] == [{"key": "tls", "model": "Untrusted", "postfix": "Trusted"}]


def test_no_model_of_another_configuration_than_the_one_that_ran() -> None:
    """``run --postfix-config DIR`` changes the scenario in memory only: the file read again names another
    configuration (or none), so the model says nothing rather than something wrong."""
    disagreeing = _observed_tls(fastmail_defers(), "Trusted")
    foreign = replace(disagreeing, main_cf="# main.cf written by mxharness: the configuration folder's, …\na = b\n")
    assert model_document(foreign, foreign.recipients[0]) is None
    assert disagreement_lines([foreign]) == []
    other_folder = _seed_configuration_result(tls="Trusted")
    other_folder = replace(other_folder, main_cf=other_folder.main_cf + "smtp_tls_policy_maps_extra = x\n")
    assert model_document(other_folder, other_folder.recipients[0]) is None
    harness_main_cf = replace(_seed_configuration_result(), main_cf="# main.cf written by mxharness: harness …\n")
    assert model_document(harness_main_cf, harness_main_cf.recipients[0]) is None


STUB_RUNNER = '''
import harness.pytest_plugin as plugin
from harness.model import Expect
from harness.results import CaseResult, Observed, RecipientResult


class Runner:
    """Stands in for real Postfix: every recipient deferred 4.7.5 with the TLS level the conftest says."""

    def run_case(self, scenario, case, world=None):
        observed = Observed("deferred", "4.7.5", "Server certificate not verified", "none", None, None, None,
                            "{tls}", "Q")
        r = RecipientResult(scenario.name, case.name, case.send[0].to, Expect(), observed, (), "3.7.11")
        return CaseResult(scenario.name, case.name, scenario.source_file, (r,), release="3.7.11")


plugin.session_runner = lambda config: Runner()
plugin.ScenarioFile.world = lambda self, scenario: None
'''


@pytest.mark.parametrize(("tls", "listed"), [("Trusted", True), ("Untrusted", False)])
def test_the_pytest_summary_lists_disagreements_of_passing_items(
    pytester: pytest.Pytester, tls: str, listed: bool
) -> None:
    pytester.copy_example(str(ROOT / "scenarios/seed/fastmail.yaml"))
    pytester.makeconftest(STUB_RUNNER.replace("{tls}", tls))
    result = pytester.runpytest_subprocess("-k", "secure-defers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert (DISAGREEMENT_HEADING in out) == listed
    if listed:
        result.stdout.fnmatch_lines(
            ["*TLS model*", "*secure-defers to=<user@fastmail.fm>: tls: model Untrusted, Postfix Trusted*"]
        )
