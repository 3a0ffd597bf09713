"""`--shard K/N` splits a suite deterministically: every case in exactly one shard, the same on every run."""

from __future__ import annotations

import pytest

from harness.cli import _shard

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
