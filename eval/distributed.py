"""The runner's collectives: process group, sharding-independent seeds, gathers and metric-state sync.

With ``torch.distributed`` initialised, rank r scores pairs ``r::world`` (sorted by name); the per-video
scores and skips are gathered with ``all_gather_object``; each metric's states are synced on every rank via
torchmetrics' public ``Metric.sync_context`` (:func:`synced_states`) while rank 0 computes; the results are
broadcast. Randomness is seeded per (metric, video) (:func:`seed_for`), so results do not depend on the number
of ranks. A single process (no process group) runs the same code with no collective.
"""

from __future__ import annotations

import contextlib
import os
import random
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torchmetrics

__all__ = ["all_gather", "broadcast", "init_distributed", "rank_world", "seed_for", "synced_states"]


def init_distributed(backend: str = "auto") -> tuple[int, int]:
    """(rank, world size); initialises the default process group from the environment when WORLD_SIZE > 1.

    ``backend="auto"`` picks NCCL when CUDA is available, else gloo (CPU). A single process is left alone.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return dist.get_rank(), dist.get_world_size()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather(obj: Any, world: int) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order."""
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, world: int) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def synced_states(states: Sequence[torchmetrics.Metric]) -> Iterator[None]:
    """Every Metric's states gathered from all ranks inside the block; the local states come back after it.

    Call it on every rank with the same Metrics in the same order. The Metrics are built with
    ``sync_on_compute=False`` (:class:`~mmgt_eval.metrics.base.RunnerSyncedMetric`), so a ``compute()`` inside
    the block works on the synced states and runs no collective itself (rank 0 may compute alone).
    """
    with contextlib.ExitStack() as stack:
        for m in states:
            stack.enter_context(m.sync_context())
        yield


def seed_for(seed: int, metric: str, video: str) -> None:
    """Seed ``random``, numpy's legacy generator and torch with ``seed + crc32("<metric>/<video>")``."""
    s = (int(seed) + zlib.crc32(f"{metric}/{video}".encode())) % (2**31)
    random.seed(s)
    np.random.seed(s)  # noqa: NPY002 - adapters may draw from the legacy global generator
    torch.manual_seed(s)
