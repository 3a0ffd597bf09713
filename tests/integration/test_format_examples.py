"""Every example in the format reference and the README runs unchanged on real Postfix and meets its own
expectations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.runner import Runner
from harness.scenario import scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "scenario-format.md", ROOT / "README.md"]
YAML_EXAMPLES = [(doc.name, block) for doc in DOCS for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)]
ALL_PYTHON = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
PYTHON_EXAMPLES = [code for code in ALL_PYTHON if not code.startswith("# test_")]
PYTEST_EXAMPLES = [code for code in ALL_PYTHON if code.startswith("# test_")]


def test_the_docs_have_examples() -> None:
    assert {name for name, _ in YAML_EXAMPLES} == {"scenario-format.md", "README.md"}
    assert PYTHON_EXAMPLES and PYTEST_EXAMPLES


@pytest.mark.parametrize(("doc", "text"), YAML_EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(YAML_EXAMPLES)])
def test_yaml_example_runs_and_meets_its_expectations(doc: str, text: str, mxharness_runner: Runner) -> None:
    from ruamel.yaml import YAML

    scenario = scenario_from_dict(YAML(typ="safe").load(text), source=f"{doc} example")
    results = list(mxharness_runner.run([scenario]))
    assert len(results) == len(scenario.cases)
    failed = [
        f"{r.case}: {r.error or [c for rr in r.recipients for c in rr.checks if not c.ok]}"
        for r in results
        if not r.passed
    ]
    assert not failed, failed


@pytest.mark.parametrize("code", PYTHON_EXAMPLES)
def test_python_example_runs(code: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert "secure-defers user@fastmail.fm deferred 4.7.5" in out, out
    assert os.linesep.join(out.splitlines()).count("True") == 4, out


@pytest.mark.parametrize("code", PYTEST_EXAMPLES)
def test_pytest_example_passes_with_the_plugin(code: str, pytester: pytest.Pytester) -> None:
    name = code.splitlines()[0].removeprefix("# ").strip()
    pytester.makepyfile(**{name.removesuffix(".py"): code})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
