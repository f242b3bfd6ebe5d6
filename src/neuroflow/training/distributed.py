"""Data-parallel training under `torchrun`: process group, rank helpers, row shards.

`torchrun` (or `python -m torch.distributed.run`) starts one process per device and sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `from_env()` turns those into a
process group (NCCL when every rank has a GPU, gloo on CPU). A single process without them
gets `None` and the engine runs exactly as before. Imports torch only, like the engine.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

# How long a collective waits for a slow or dead peer before the whole job fails.
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in an initialised process group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Rank 0 alone tracks, checkpoints and writes outputs."""
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """The device this rank trains on: its own GPU under NCCL, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        if requested not in ("auto", "cpu"):
            raise RuntimeError(f"train.device={requested!r} needs NCCL; this group uses gloo")
        return torch.device("cpu")

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """DDP around `model`; it broadcasts rank 0's weights and all-reduces every gradient."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, output_device=device.index)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over every rank (a new tensor; the input is left alone)."""
        total = value.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def check_agree(self, what: str, value: int, device: torch.device) -> None:
        """Fail on every rank if ranks disagree on `value` (e.g. the epoch they resume from)."""
        t = torch.tensor([value, -value], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if int(t[0]) != -int(t[1]):
            raise RuntimeError(
                f"ranks disagree on {what} ({-int(t[1])}..{int(t[0])}); "
                "every rank must see the same checkpoint directory"
            )

    def barrier(self) -> None:
        dist.barrier()


def world_from_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) outside torchrun."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def from_env(requested_device: str = "auto") -> DistributedContext | None:
    """Join the process group torchrun describes; None for a plain single process.

    NCCL when CUDA is available and not refused by `train.device=cpu`; gloo otherwise.
    """
    rank, world, local_rank = world_from_env()
    if world <= 1:
        return None
    use_cuda = requested_device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)  # before NCCL init: one GPU per rank
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    ctx = DistributedContext(rank, world, local_rank, backend)
    log.info("rank %d/%d (local %d) joined the %s process group", rank, world, local_rank, backend)
    return ctx


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard_rows(n: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous block of `n` rows; every rank gets the same count.

    Equal counts keep DDP's collectives in step (each rank takes the same number of
    optimizer steps); the at most `world_size - 1` leftover rows are dropped.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    per_rank = n // world_size
    if per_rank == 0:
        raise ValueError(f"{n} training rows cannot be split over {world_size} ranks")
    return slice(rank * per_rank, (rank + 1) * per_rank)


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Each rank's batch, so the global batch (and so the gradient scale) matches 1 process."""
    return max(1, batch_size // world_size)
