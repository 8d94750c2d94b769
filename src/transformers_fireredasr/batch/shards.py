"""Who does what: this process's rank and world size, and a share of the items balanced by audio length.

Rank and world size come from `--shard I/N` (array jobs), else the launcher: `torchrun` and `accelerate launch`
(read through accelerate's `PartialState`, with `cpu=True` on CPU, without which every CPU process believes it is
alone), or SLURM's `srun` (`SLURM_PROCID` / `SLURM_NTASKS`). Every rank computes the same assignment from the same
item list, so ranks never talk while transcribing and a dead rank blocks nobody.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .inputs import Item


@dataclass(frozen=True)
class Shard:
    rank: int
    world_size: int
    local_rank: int = 0


def parse_shard(text: str) -> Shard:
    """`"I/N"` as a Shard; ValueError unless 0 <= I < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}")
    rank, world = int(match[1]), int(match[2])
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"--shard {text}: the rank I must be in 0..N-1 (and N >= 1)")
    return Shard(rank, world)


def launcher_shard(device: str = "cpu") -> Shard:
    """The rank the launcher gave this process (torchrun, accelerate launch, srun), or 0 of 1 without one."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        try:
            from accelerate import PartialState
        except ImportError:  # without accelerate, the variables torchrun and accelerate launch set
            return Shard(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
        state = PartialState(cpu=not device.startswith("cuda"))
        return Shard(state.process_index, state.num_processes, state.local_process_index)
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return Shard(
            int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"]), int(os.environ.get("SLURM_LOCALID", 0))
        )
    return Shard(0, 1)


def current_shard(shard: str | None, device: str = "cpu") -> Shard:
    """`--shard I/N` when given (a launcher with more than one process as well is refused), else the launcher's."""
    if shard is None:
        return launcher_shard(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--shard I/N and a multi-process launcher (WORLD_SIZE > 1) both assign work: use one")
    return parse_shard(shard)


def assign(items: Sequence[Item], world_size: int) -> list[int]:
    """The rank of each item: longest first, each to the rank with the least audio so far (ties: lowest rank,
    then input order), so that no rank gets all the long files as a contiguous split would."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    order = sorted(range(len(items)), key=lambda i: (-items[i].duration, i))
    loads = [(0.0, rank) for rank in range(world_size)]
    ranks = [0] * len(items)
    for index in order:
        load, rank = heapq.heappop(loads)
        ranks[index] = rank
        heapq.heappush(loads, (load + items[index].duration, rank))
    return ranks


def share(items: Sequence[Item], shard: Shard) -> list[Item]:
    """This shard's items, in input order."""
    ranks = assign(items, shard.world_size)
    return [item for item, rank in zip(items, ranks, strict=True) if rank == shard.rank]


__all__ = ["Shard", "assign", "current_shard", "launcher_shard", "parse_shard", "share"]
