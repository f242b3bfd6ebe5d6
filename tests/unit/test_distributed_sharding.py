"""Row shards and per-rank batches for data-parallel training."""

from __future__ import annotations

import pytest

from neuroflow.training.distributed import from_env, per_rank_batch, shard_rows


def test_shards_are_disjoint_equal_and_cover_all_but_the_remainder() -> None:
    n, world = 455, 4
    shards = [range(n)[shard_rows(n, r, world)] for r in range(world)]
    assert {len(s) for s in shards} == {n // world}
    rows = [i for s in shards for i in s]
    assert len(rows) == len(set(rows)) == n - n % world


def test_shard_refuses_impossible_splits() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        shard_rows(10, 2, 2)
    with pytest.raises(ValueError, match="3 training rows"):
        shard_rows(3, 0, 4)


def test_global_batch_is_kept() -> None:
    assert per_rank_batch(32, 2) * 2 == 32
    assert per_rank_batch(3, 8) == 1


def test_single_process_has_no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert from_env("cpu") is None
