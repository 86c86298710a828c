"""torchmetrics-style checks of mmgt_eval metric adapters: sharded updates equal one pass over all videos.

* :func:`assert_batched_equals_one_shot`: the pairs fed in batches to fresh adapters, whose Metric states are
  then synced through torchmetrics' own ``Metric.sync`` with an in-process gather (the path the runner takes
  across ranks), give the values of one adapter fed every pair.
* :func:`run_sharded` / :func:`spawn_gloo`: the same with real ranks (``torch.distributed`` gloo on CPU,
  spawned processes), through the runner's :func:`mmgt_eval.distributed.synced_states`.

Pairs are built in memory (:func:`make_pairs`: tiny frames, audio and keypoints), so no video is decoded.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchmetrics

from mmgt.schema import FPS, SAMPLE_RATE
from mmgt_eval.distributed import seed_for, synced_states
from mmgt_eval.metrics.base import MetricAdapter, VideoSample
from tests.helpers.poses import make_pose

Pair = tuple[VideoSample, VideoSample]
Factory = Callable[[], MetricAdapter]


def make_pairs(n: int = 4, t: int = 12, size: int = 32, seed: int = 0) -> list[Pair]:
    """``n`` (generated, reference) pairs: (t, size, size, 3) uint8 frames, t / 25 s of audio, keypoints."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        base = rng.integers(40, 200, size=(1, size // 8, size // 8, 3)).repeat(8, 1).repeat(8, 2)
        ref = np.clip(base + np.arange(t)[:, None, None, None] * 3, 0, 255).astype(np.uint8)
        gen = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
        n_audio = int(t / FPS * SAMPLE_RATE)
        audio = (0.3 * np.sin(np.arange(n_audio) * (0.05 + 0.01 * i)) * rng.uniform(0, 1, n_audio)).astype(
            np.float32
        )
        sides = []
        for k, frames in enumerate((gen, ref)):
            kps = make_pose(t, seed=seed * 100 + 2 * i + k, motion=0.03)
            sides.append(VideoSample(f"v{i}", frames, float(FPS), audio, keypoints=kps))
        pairs.append((sides[0], sides[1]))
    return pairs


def feed(adapter: MetricAdapter, pairs: Sequence[Pair], name: str) -> None:
    """Update ``adapter`` with each pair, seeded per (metric, video) as the runner does."""
    for gen, ref in pairs:
        seed_for(0, name, gen.name)
        adapter.update(gen, ref)


def _values(adapter: MetricAdapter) -> dict[str, float]:
    return {k: float(v) for k, v in adapter.compute().items()}


def one_shot(make: Factory, pairs: Sequence[Pair], name: str) -> dict[str, float]:
    """Values of one adapter fed every pair."""
    adapter = make()
    feed(adapter, pairs, name)
    return _values(adapter)


def _sync_in_process(shards: Sequence[torchmetrics.Metric]) -> None:
    """Sync ``shards[0]`` with the states of every shard through ``Metric.sync`` (an in-process gather)."""
    recorded: list[list[torch.Tensor]] = []
    for m in shards:  # what each "rank" hands to the gather, in torchmetrics' own order
        calls: list[torch.Tensor] = []
        m.sync(
            dist_sync_fn=lambda x, group=None, calls=calls: calls.append(x) or [x],
            distributed_available=lambda: True,
        )
        m.unsync()
        recorded.append(calls)
    counter = iter(range(len(recorded[0])))

    def gather(x: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
        k = next(counter)
        return [calls[k] for calls in recorded]

    shards[0].sync(dist_sync_fn=gather, distributed_available=lambda: True)


def assert_batched_equals_one_shot(make: Factory, pairs: Sequence[Pair], name: str, batches: int = 2) -> None:
    """Pairs fed in ``batches`` shards, states synced, equal one adapter fed every pair (rel 1e-6)."""
    expected = one_shot(make, pairs, name)
    adapters = [make() for _ in range(batches)]
    for b, adapter in enumerate(adapters):
        feed(adapter, pairs[b::batches], name)
    states = [a.metric_states() for a in adapters]
    for i in range(len(states[0])):
        _sync_in_process([s[i] for s in states])
    got = _values(adapters[0])  # (the adapters are dropped: their synced states need no unsync)
    assert got.keys() == expected.keys(), name
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-6, abs=1e-9), f"{name}/{k}"


def run_sharded(factories: Mapping[str, Factory], pairs: Sequence[Pair], rank: int, world: int) -> dict:
    """Feed pairs ``rank::world``, sync each adapter's states; rank 0's values ({} on other ranks)."""
    out: dict[str, dict[str, float]] = {}
    for name, make in factories.items():
        adapter = make()
        feed(adapter, pairs[rank::world], name)
        with synced_states(adapter.metric_states()):
            if rank == 0:
                out[name] = _values(adapter)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, build: Callable[[], tuple[dict, list]], out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        factories, pairs = build()
        values = run_sharded(factories, pairs, rank, world)
        if rank == 0:
            Path(out).write_text(json.dumps(values))
    finally:
        dist.destroy_process_group()


def spawn_gloo(build: Callable[[], tuple[dict, list]], out: Path, world: int = 2) -> dict:
    """Rank 0's values of :func:`run_sharded` over ``world`` spawned gloo processes; ``build`` (picklable,
    module level) returns ``({name: factory}, pairs)`` in each process."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port(), build, str(out)), nprocs=world, join=True)
    return json.loads(out.read_text())
