"""Evaluation runner: shard the video pairs across ranks, feed the metric adapters, gather, write results.

:func:`evaluate` scores a folder of generated videos (optionally against a folder of reference videos) with
any number of :class:`~mmgt_eval.metrics.base.MetricAdapter` adapters and returns (and on rank 0 writes) a
results dict: values, per-video scores, each metric's protocol, weight checksums, package versions, the git
commit, counts and declared skips. Pairing and decoding: :mod:`mmgt_eval.pairing`; collectives:
:mod:`mmgt_eval.distributed`; provenance and JSON values: :mod:`mmgt_eval.provenance`.

**Adapters** get ``update(generated, reference)`` with the reference whenever the video has one (metrics
with ``needs_reference = False`` may use it, e.g. to normalise); a pair the adapter cannot score at all
(:meth:`~mmgt_eval.metrics.base.MetricAdapter.missing_input`, e.g. no reference video) is an ``unpaired``
skip.

**Distribution.** With ``torch.distributed`` initialised, rank r takes pairs ``r::world`` (sorted by name).
After the loop the per-video scores and skips are gathered; then, for each metric, every rank syncs the
adapter's ``metric_states()`` (``Metric.sync_context``), rank 0 calls ``compute()`` on the synced states and
the results are broadcast (:mod:`mmgt_eval.distributed`). Randomness is seeded per (metric, video) from the
protocol seed and the video name, so results do not depend on the number of ranks.

**Bad input.** A video that cannot be read (or has malformed keypoints) is skipped for every metric; an
adapter raising :class:`~mmgt_eval.metrics.base.VideoSkipped` or
:class:`~mmgt_eval.metrics.base.MetricInputError` (mismatched frame counts or sizes, too short, no audio, ...)
skips that video for that metric. Skips are declared in the results (``skips``, ``metrics.<m>.n_skipped``);
``strict=True`` turns any skip into an error. A metric whose ``compute`` fails (e.g. fewer than 2 videos for a
Fréchet distance) or returns NaN is reported with ``status: failed`` and its error, never a NaN value;
per-video NaN is an error at once. Infinite values (PSNR of identical frames) are written to JSON as the
strings ``"inf"``. Metrics that could not be built (``unavailable``, e.g. missing weights:
:mod:`mmgt_eval.cli`) are reported ``failed`` with their reason next to the others.

**Variants.** Each metric entry names the protocol variant its adapter implements (``variant``, also the
first key of its ``protocol``; ``variants`` at the top lists them all), e.g. ``fvd: stylegan_v``,
``diversity: bailando`` (docs/metrics.md); null for an adapter that declares none.

**Directions.** Each metric entry carries ``higher_is_better`` (the metric's main value) and
``value_higher_is_better`` ({value key: true | false | null}), the direction of every reported value as the
adapter declares it (``value_higher_is_better``; undeclared keys get ``higher_is_better``; null = no
direction, e.g. counts, offsets): Sync reports ``sync_c`` (higher is better) and ``sync_d`` (lower).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmgt.atomic import write_json
from mmgt.io import MediaError
from mmgt_eval.distributed import all_gather, broadcast, rank_world, seed_for, synced_states
from mmgt_eval.metrics.base import (
    EvaluationError,
    MetricAdapter,
    MetricInputError,
    VideoSkipped,
    metric_variant,
    value_directions,
)
from mmgt_eval.pairing import VideoPair, load_sample, pair_videos
from mmgt_eval.provenance import as_float, git_commit, jsonable, package_versions, write_tensorboard

__all__ = ["RESULTS_FORMAT", "RunProtocol", "evaluate"]

log = logging.getLogger("mmgt_eval")

RESULTS_FORMAT = 1
"""Version of the results JSON layout."""


@dataclass(frozen=True)
class RunProtocol:
    """Runner-level protocol settings (the metrics' own settings come from their ``protocol()``)."""

    name: str = "default"
    seed: int = 0
    """Per (metric, video) seeds are ``seed + crc32("<metric>/<video name>")``: independent of sharding."""
    max_frames: int | None = None
    """Decode at most this many frames of each video (None: all)."""
    resize: int | None = None
    """Resize every frame to ``resize x resize`` (cv2 INTER_AREA) before the metrics (None: native size)."""
    extra: dict = field(default_factory=dict)
    """Other settings recorded verbatim in the results."""

    def as_dict(self) -> dict:
        """The fields as a plain dict, with ``extra`` merged in."""
        d = asdict(self)
        extra = d.pop("extra")
        if self.resize:
            d["resize_interpolation"] = "cv2.INTER_AREA"
        return {**d, **extra}


@dataclass
class _Shard:
    """What one rank scored: per-video records, declared skips, and its error (if it failed)."""

    strict: bool
    per_video: dict[str, dict] = field(default_factory=dict)
    skips: list[dict] = field(default_factory=list)

    def skip(self, video: str, metric: str | None, reason: str, kind: str) -> None:
        self.skips.append({"video": video, "metric": metric, "kind": kind, "reason": reason})
        where = f"metric {metric}" if metric else "all metrics"
        msg = f"{video}: skipped for {where}: {reason}"
        if self.strict:
            raise EvaluationError(f"{msg} (strict=true turns skips into errors)")
        log.warning(msg)


def _score_pair(
    shard: _Shard, pair: VideoPair, metrics: Mapping[str, MetricAdapter], protocol: RunProtocol
) -> None:
    """Decode one pair and feed it to every adapter; its record (or its skips) go into ``shard``."""
    record: dict[str, Any] = {"scores": {}}
    try:
        gen, record["generated"] = load_sample(
            pair.name, pair.generated, protocol.max_frames, protocol.resize
        )
        ref = None
        if pair.reference is not None:
            ref, record["reference"] = load_sample(
                pair.name, pair.reference, protocol.max_frames, protocol.resize
            )
    except (MediaError, MetricInputError) as e:
        shard.skip(pair.name, None, str(e), "unreadable")
        return
    shard.per_video[pair.name] = record
    for mname, adapter in metrics.items():
        missing = adapter.missing_input(gen, ref)
        if missing:
            shard.skip(pair.name, mname, missing, "unpaired")
            continue
        seed_for(protocol.seed, mname, pair.name)
        try:
            scores = adapter.update(gen, ref)
        except VideoSkipped as e:
            shard.skip(pair.name, mname, e.reason, "skipped")
            continue
        except MetricInputError as e:
            shard.skip(pair.name, mname, str(e), "input_error")
            continue
        record["scores"][mname] = {
            str(k): as_float(v, f"metric {mname} on video {pair.name}: per-video score {k!r}")
            for k, v in (scores or {}).items()
        }


def _run_local(
    pairs: Sequence[VideoPair],
    metrics: Mapping[str, MetricAdapter],
    protocol: RunProtocol,
    strict: bool,
    show_progress: bool,
) -> _Shard:
    from tqdm.auto import tqdm

    shard = _Shard(strict)
    for pair in tqdm(pairs, desc="mmgt-eval", unit="video", disable=not show_progress):
        _score_pair(shard, pair, metrics, protocol)
    return shard


def _gather_shards(
    local: Sequence[VideoPair],
    metrics: Mapping[str, MetricAdapter],
    protocol: RunProtocol,
    strict: bool,
    show_progress: bool,
) -> tuple[dict[str, dict], list[dict]]:
    """Score this rank's pairs; every rank's records (sorted by name) and skips. A rank's error fails all."""
    rank, world = rank_world()
    shard, error, local_exc = _Shard(strict), None, None
    try:
        shard = _run_local(local, metrics, protocol, strict, show_progress)
    except Exception as e:  # every rank must reach the gather below, or the others wait forever
        if world == 1:
            raise
        error, local_exc = f"rank {rank}: {type(e).__name__}: {e}", e
    gathered = all_gather((shard.per_video, shard.skips, error), world)
    errors = [g[2] for g in gathered if g[2]]
    if errors:
        raise EvaluationError("evaluation failed on " + "; ".join(errors)) from local_exc
    videos: dict[str, dict] = {}
    skips: list[dict] = []
    for pv, sk, _ in gathered:
        videos.update(pv)
        skips.extend(sk)
    return dict(sorted(videos.items())), skips


def _computed(adapter: MetricAdapter, mname: str) -> dict[str, Any]:
    """Rank 0's values of one adapter (on synced states), or its failure."""
    try:
        raw = adapter.compute()
        values = {str(k): as_float(v, f"metric {mname}: value {k!r}") for k, v in raw.items()}
    except Exception as e:
        log.error("metric %s failed: %s: %s", mname, type(e).__name__, e)
        return {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    return {
        "values": values,
        "value_higher_is_better": value_directions(adapter, list(values)),
        "status": "ok",
    }


def _protocol_entry(adapter: MetricAdapter) -> dict[str, Any]:
    """``variant`` and ``protocol`` (led by its variant) of one adapter."""
    try:
        proto = jsonable(adapter.protocol())
    except Exception as e:
        proto = {"error": f"{type(e).__name__}: {e}"}
    variant = metric_variant(adapter, proto)
    return {"protocol": {"variant": variant, **proto}, "variant": variant}


def _metric_entry(
    mname: str, adapter: MetricAdapter, videos: Mapping[str, dict], skips: Sequence[dict], rank: int
) -> dict[str, Any]:
    """One metric's results entry (collective: every rank syncs the adapter's states; rank 0 computes)."""
    n_ok = sum(1 for v in videos.values() if mname in v["scores"])
    entry: dict[str, Any] = {
        "name": adapter.name or mname,
        "higher_is_better": bool(adapter.higher_is_better),
        "needs_reference": bool(adapter.needs_reference),
        "n_videos": n_ok,
        "n_skipped": sum(
            1 for s in skips if s["metric"] in (mname, None) and s["kind"] != "unpaired_reference"
        ),
    }
    if n_ok == 0:
        entry.update(status="failed", error="no video was scored (all skipped: see skips)")
    else:
        with synced_states(adapter.metric_states()):
            if rank == 0:
                entry.update(_computed(adapter, mname))
    if rank == 0:
        entry.update(_protocol_entry(adapter))
    return entry


def _check_states(metrics: Mapping[str, MetricAdapter], device: str | torch.device | None) -> None:
    """Move every adapter's Metrics to ``device``; a Metric that would sync inside ``compute`` is an error."""
    for mname, adapter in metrics.items():
        for m in adapter.metric_states():
            if m.sync_on_compute:
                raise ValueError(
                    f"metric {mname}: {type(m).__name__} is built with sync_on_compute=True; the runner "
                    "syncs metric states itself: build it with sync_on_compute=False (RunnerSyncedMetric)"
                )
            if device is not None:
                m.to(device)


def _conversions(videos: Iterable[dict]) -> dict[str, int]:
    """How many videos each pixel conversion touched (resizes counted by kind)."""
    return dict(
        Counter(
            c.split(" (")[0] if c.startswith("resized") else c
            for v in videos
            for side in ("generated", "reference")
            for c in v.get(side, {}).get("conversions", [])
        )
    )


def evaluate(
    generated_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str] | None,
    metrics: Mapping[str, MetricAdapter],
    *,
    pairing: str | os.PathLike[str] = "name",
    unmatched: str = "error",
    protocol: RunProtocol | None = None,
    results_path: str | os.PathLike[str] | None = None,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    tensorboard_step: int = 0,
    weights: Mapping[str, Mapping] | None = None,
    config: Mapping | None = None,
    strict: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    unavailable: Mapping[str, Mapping] | None = None,
) -> dict:
    """Score the generated videos with every adapter in ``metrics`` ({config name: adapter}).

    Runs on every rank of an initialised process group (or alone); returns the same results dict on every
    rank and writes ``results_path`` (JSON, atomically) and ``tensorboard_dir`` (scalars
    ``eval/<metric>/<key>``) on rank 0. ``weights`` ({registry name: verification dict}) and ``config`` are
    recorded as given. ``unavailable`` ({config name: entry with ``error``}): metrics that could not be
    built (e.g. missing weights), recorded as failed next to the scored ones.
    """
    unavailable = dict(unavailable or {})
    if not metrics and not unavailable:
        raise ValueError("no metrics given")
    protocol = protocol or RunProtocol()
    rank, world = rank_world()
    missing_ref = [n for n, m in metrics.items() if m.needs_reference]
    if reference_dir is None and missing_ref:
        raise EvaluationError(f"metrics {missing_ref} need reference videos: give a reference folder")
    pairs, extra_ref = pair_videos(generated_dir, reference_dir, pairing, unmatched)
    if len(pairs) < world:
        raise EvaluationError(
            f"{len(pairs)} videos cannot be sharded over {world} ranks (need >= 1 per rank)"
        )
    _check_states(metrics, device)
    started = _dt.datetime.now(_dt.UTC)
    local = pairs[rank::world] if metrics else []  # nothing to score: decode nothing
    videos, skips = _gather_shards(local, metrics, protocol, strict, progress and rank == 0)
    skips.extend(
        {
            "video": n,
            "metric": None,
            "kind": "unpaired_reference",
            "reason": "reference video has no generated video",
        }
        for n in extra_ref
    )
    skips.sort(key=lambda s: (s["video"], s["metric"] or ""))
    entries = {m: _metric_entry(m, a, videos, skips, rank) for m, a in metrics.items()}
    for mname, given in unavailable.items():
        entries[mname] = {"name": mname, "n_videos": 0, "n_skipped": 0, **given, "status": "failed"}
    result = None
    if rank == 0:
        result = jsonable(
            {
                "format": RESULTS_FORMAT,
                "created": started.isoformat(timespec="seconds"),
                "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "generated_dir": str(Path(generated_dir).absolute()),
                "reference_dir": str(Path(reference_dir).absolute()) if reference_dir is not None else None,
                "pairing": str(pairing),
                "world_size": world,
                "protocol": protocol.as_dict(),
                "variants": {m: e.get("variant") for m, e in entries.items()},
                "summary": {
                    f"{m}/{k}": v for m, e in entries.items() for k, v in e.get("values", {}).items()
                },
                "failed_metrics": sorted(n for n, e in entries.items() if e["status"] != "ok"),
                "counts": {
                    "n_pairs": len(pairs),
                    "n_videos_loaded": len(videos),
                    "n_skips": len(skips),
                    "skips_by_kind": dict(Counter(s["kind"] for s in skips)),
                    "conversions": _conversions(videos.values()),
                },
                "metrics": entries,
                "per_video": videos,
                "skips": skips,
                "weights": dict(weights or {}),
                "config": dict(config or {}),
                "versions": package_versions(),
                "git": git_commit(),
                "command": sys.argv,
            }
        )
        _write(result, results_path, tensorboard_dir, tensorboard_step)
    result = broadcast(result, world)
    if strict and result["failed_metrics"]:
        raise EvaluationError(
            "metrics failed: "
            + "; ".join(f"{n}: {result['metrics'][n]['error']}" for n in result["failed_metrics"])
        )
    return result


def _write(
    result: dict,
    results_path: str | os.PathLike[str] | None,
    tensorboard_dir: str | os.PathLike[str] | None,
    step: int,
) -> None:
    if results_path is not None:
        write_json(Path(results_path), result, allow_nan=False)
        log.info("results: %s", results_path)
    if tensorboard_dir is not None:
        write_tensorboard(Path(tensorboard_dir), result, step)
