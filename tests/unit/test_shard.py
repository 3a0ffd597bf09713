"""`--shard K/N` splits a suite deterministically: every case in exactly one shard, the same on every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import _shard, main

ONE_CASE = (Path(__file__).resolve().parents[1] / "data" / "one-case-scenario.txt").read_text()
NAMES = [f"scenario-{i}/case-{j}" for i in range(20) for j in range(5)]


def test_the_shards_partition_the_cases() -> None:
    shards = [{n for n in NAMES if _shard(f"{k}/4")(n)} for k in range(1, 5)]
    assert sum(len(s) for s in shards) == len(NAMES)
    assert set().union(*shards) == set(NAMES)
    assert all(shards), "every shard gets cases"


def test_a_shard_is_the_same_on_every_run() -> None:
    assert [n for n in NAMES if _shard("2/3")(n)] == [n for n in NAMES if _shard("2/3")(n)]


@pytest.mark.parametrize("bad", ["0/2", "3/2", "a/b", "2", "1/0"])
def test_a_malformed_shard_exits_2(bad: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        _shard(bad)
    assert exit_.value.code == 2


def test_an_empty_slice_is_nothing_to_run_not_an_input_error(tmp_path: Path) -> None:
    # Hash-based slices of a small suite can be empty; the CI job of that slice has not failed.
    (tmp_path / "s.yaml").write_text(ONE_CASE)
    name = "one-case/only"
    empty = next(f"{k}/7" for k in range(1, 8) if not _shard(f"{k}/7")(name))
    result = CliRunner().invoke(main, ["run", "--shard", empty, str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    assert f"--shard {empty}: none of the 1 selected case(s) falls in this slice" in result.output


def test_no_case_without_a_shard_or_pattern_says_so(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(ONE_CASE)
    result = CliRunner().invoke(main, ["run", "-k", "nothing-like-it", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert "no case to run: no case matches -k 'nothing-like-it'" in result.output
