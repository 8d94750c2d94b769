"""Shares of a run: rank and world size from --shard or the launcher, and assignment balanced by audio length."""

from __future__ import annotations

import pytest

from transformers_fireredasr.batch import Item, Shard, assign, current_shard, parse_shard, share


def items(durations):
    return [Item(f"f{i}", f"f{i}.wav", d) for i, d in enumerate(durations)]


def test_longest_first_to_the_least_loaded_rank():
    # Sorted longest first, as archives often are: a contiguous split would give rank 0 all of the long files.
    durations = [600, 590, 580, 570, 30, 20, 10, 10, 5, 5, 3, 1]
    ranks = assign(items(durations), 2)
    loads = [sum(d for d, r in zip(durations, ranks, strict=True) if r == rank) for rank in range(2)]
    contiguous = [sum(durations[:6]), sum(durations[6:])]
    assert abs(loads[0] - loads[1]) <= 5 < abs(contiguous[0] - contiguous[1])
    assert ranks[:4] == [0, 1, 1, 0]  # 600 -> 0, 590 -> 1, 580 -> 1 (590 < 600), 570 -> 0


@pytest.mark.parametrize("world", [1, 2, 3, 7, 20])
def test_shares_are_disjoint_and_cover_everything(world):
    listed = items([(i * 37) % 11 + 0.5 for i in range(15)])
    shares = [share(listed, Shard(rank, world)) for rank in range(world)]
    ids = [item.id for part in shares for item in part]
    assert sorted(ids) == sorted(item.id for item in listed) and len(ids) == len(set(ids))
    for part in shares:  # each share keeps the input order
        assert [listed.index(item) for item in part] == sorted(listed.index(item) for item in part)


def test_parse_shard():
    assert parse_shard("1/4") == Shard(1, 4)
    for bad in ("4/4", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_rank_from_the_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    assert current_shard(None) == Shard(0, 1)
    assert current_shard("2/3") == Shard(2, 3)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert current_shard(None) == Shard(3, 4, 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="--shard I/N and a multi-process launcher"):
        current_shard("0/2")
