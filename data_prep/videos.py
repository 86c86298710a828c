"""``mmgt-prep source=videos``: real talking-person videos (or a PATS-style interval list) -> clip store.

Pipeline per source file (config: ``conf/source/videos.yaml``; user guide: ``docs/prep.md``)::

    probe -> stream-decode -> 25 fps (nearest-timestamp frame selection, so variable frame rate works)
          -> crop (center | left_ratio | person) -> resize S x S (cv2.INTER_AREA)
          -> mediapipe holistic -> (T, 134, 3) keypoints -> short gaps interpolated
          -> clips (whole file | interval list rows | fixed windows) -> ClipStoreWriter
             (video.mp4 S x S 25 fps, audio.wav 16 kHz mono, keypoints.npy, features/<name>.npy, meta.json)

Modules (this one is the driver, :func:`prepare_videos`, and re-exports the public names of the others)
    * :mod:`mmgt_prep.videos_config`: :class:`VideoPrepConfig`, the settings;
    * :mod:`mmgt_prep.videos_discover`: sources and clips (inputs, clip ids, clip spans, shards);
    * :mod:`mmgt_prep.videos_crop`: the 25 fps time base, crops and resizing;
    * :mod:`mmgt_prep.videos_encode`: :class:`ClipEncoder`, the per-clip encoder thread;
    * :mod:`mmgt_prep.videos_worker`: :class:`Worker`, one source's detection and clip writing;
    * :mod:`mmgt_prep.videos_pool`: the ``workers=N`` process pool.

Splits
    ``split=auto`` (default): every source video (``split_by=video``) or speaker (``split_by=speaker``)
    gets one split from ``split_fractions``, deterministically (:mod:`mmgt_prep.splits`); a CSV ``split``
    value wins for its row; ``split=<name>`` gives every other clip that split.

Scale: ``workers=N`` spawns N processes (one mediapipe graph, one ClipStoreWriter each); a source is one
task; ``shard=i num_shards=n`` keeps a stable subset of the sources. Sources are claimed one at a time,
so concurrent preps on one store split the sources instead of repeating them.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from mmgt.clipstore import MANIFEST, STATUS_OK, TMP_DIR, read_manifest
from mmgt_prep.splits import AUTO, PRIORITY, plan_splits, resplit_rows
from mmgt_prep.videos_config import CROP_MODES, VideoPrepConfig
from mmgt_prep.videos_crop import (
    PERSON_CONFIDENCE,
    CropBox,
    crop_resize,
    fixed_crop,
    person_crop,
    resample_frames,
)
from mmgt_prep.videos_discover import (
    CSV_COLUMNS,
    GENERATOR,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Segment,
    SourceTask,
    discover,
    discover_csv,
    discover_folder,
    expand_windows,
    safe_name,
    shard_of,
    source_id,
)
from mmgt_prep.videos_encode import BACKGROUND_NICE, ENCODER_QUEUE, ClipEncoder, lower_thread_priority
from mmgt_prep.videos_pool import _run_pool
from mmgt_prep.videos_worker import ELSEWHERE, Worker, missing_fraction, plan_runs, rms_db

log = logging.getLogger("mmgt_prep.videos")


def _clean_stale_scratch(root: Path) -> None:
    """Remove scratch folders of dead processes of this host (left by a killed run)."""
    host = socket.gethostname()
    for d in (root / TMP_DIR).glob(f"scratch-{host}-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def _plan_tasks(cfg: VideoPrepConfig) -> list[SourceTask]:
    """This shard's sources with their clips (splits resolved, fixed windows cut)."""
    everything = discover(cfg)
    assign_auto_splits(cfg, everything)  # over every shard's sources (before windows): shards agree
    tasks = [t for t in everything if shard_of(t.rel, cfg.num_shards) == cfg.shard]
    if cfg.window is not None:
        for t in tasks:
            if t.segments and t.segments[0].kind == "file" and t.segments[0].error is None:
                expand_windows(t, cfg)
    return tasks


class _Tally:
    """The run summary (see :func:`prepare_videos`), the failures and the progress bar.

    Fed by the workers' events (``("frames", pid, n)``, ``("clip", pid, row)``).
    """

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.summary: dict[str, Any] = {"ok": 0, "failed": 0, "skipped": 0, "elsewhere": 0, "silent_audio": 0}
        self.summary["frames"] = 0
        self.failures: list[dict[str, str]] = []
        self.bar: Any = None

    def fail(self, clip_id: str, error: str) -> None:
        self.summary["failed"] += 1
        self.failures.append({"id": clip_id, "error": error})

    def handle(self, event: tuple[Any, ...]) -> None:
        kind, summary = event[0], self.summary
        if kind == "frames":
            summary["frames"] += event[2]
            return
        if kind != "clip":
            return
        clip = event[2]
        self.bar.update(1)
        if clip["status"] == ELSEWHERE:
            summary["elsewhere"] += 1
            return
        if clip["status"] == STATUS_OK:
            summary["ok"] += 1
        else:
            self.fail(clip["id"], clip["error"])
        if clip.get("silent_audio"):
            summary["silent_audio"] += 1
            log.warning("%s: silent audio (flagged extra.silent_audio)", clip["id"])
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix(fps=f"{summary['frames'] / elapsed:.1f}", failed=summary["failed"])


def _settle_known(cfg: VideoPrepConfig, tasks: list[SourceTask], writer: Any, tally: _Tally) -> None:
    """Mark the clips already done (skipped) and record the clips discovery already failed."""
    for t in tasks:
        for seg in t.segments:
            seg.done = writer.is_done(seg.clip_id)
            if seg.done:
                tally.summary["skipped"] += 1
            elif seg.error is not None:
                writer.record_failure(seg.record(t.rel, cfg.size), seg.error)
                tally.fail(seg.clip_id, seg.error)


def _run_in_process(cfg: VideoPrepConfig, order: list[SourceTask], handle: Any) -> None:
    """``workers=1``: one :class:`Worker` in this process, its events handled after every source."""
    inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def drain() -> None:
        while not inbox.empty():
            handle(inbox.get())

    worker = Worker(cfg, inbox.put)
    try:
        for task in order:
            worker.process(task)
            drain()
    finally:
        worker.close()
        drain()


def prepare_videos(cfg: VideoPrepConfig) -> dict[str, Any]:
    """Build/resume the clip store ``cfg.out`` from ``cfg.input``; returns the run summary.

    Sources are claimed one at a time (:meth:`~mmgt_prep.store.ClipStoreWriter.claim`), so concurrent preps
    on one store split the sources instead of repeating them.

    Summary: ``ok``/``failed``/``skipped`` clip counts of this run, ``elsewhere`` (clips another prep made
    or is making), ``silent_audio`` (ok clips flagged
    silent), ``frames`` (25 fps frames through mediapipe), ``frames_per_s``, ``seconds`` (wall),
    ``sources`` (tasks run), ``shard``, ``workers``, ``out`` and the first ``failures`` (id, error).
    """
    from tqdm.auto import tqdm

    from mmgt_prep.store import ClipStoreWriter

    t0 = time.perf_counter()
    out = Path(cfg.out)
    tasks = _plan_tasks(cfg)
    cfg.extractors()  # fail fast (in this process) on a bad extractor node or a missing model folder
    writer = ClipStoreWriter(out, retry_failed=cfg.retry_failed)
    _clean_stale_scratch(out)
    tally = _Tally(t0)
    summary = tally.summary
    summary["resplit"] = resplit_store(cfg, tasks, writer) if cfg.split_policy.resplit else 0
    _settle_known(cfg, tasks, writer, tally)
    if cfg.features:
        finished = [seg for t in tasks for seg in t.segments if seg.done]
        summary["features_added"] = backfill_features(out, finished, cfg)
    n_prefailed = summary["failed"]
    todo = [t for t in tasks if t.pending]
    n_clips = sum(len(t.pending) for t in todo)
    log.info(
        "%d sources in shard %d/%d: %d clips to make, %d done before",
        len(tasks),
        cfg.shard,
        cfg.num_shards,
        n_clips,
        summary["skipped"],
    )
    tally.bar = tqdm(total=n_clips, desc="videos", unit="clip", disable=not cfg.progress, dynamic_ncols=True)
    # biggest files first: better load balance at the end of the run
    order = sorted(todo, key=lambda t: (-_file_size(t.path), t.rel))
    if order:
        (_run_in_process if cfg.workers == 1 else _run_pool)(cfg, order, tally.handle)
    unfinished = n_clips - (summary["ok"] + summary["failed"] + summary["elsewhere"] - n_prefailed)
    if unfinished:
        log.error("%d clips were not processed (worker processes died?); rerun to make them", unfinished)
        summary["unfinished"] = unfinished
    tally.bar.close()
    seconds = time.perf_counter() - t0
    summary.update(
        frames_per_s=round(summary["frames"] / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        sources=len(todo),
        shard=f"{cfg.shard}/{cfg.num_shards}",
        workers=cfg.workers,
        out=str(out),
        failures=tally.failures[:50],
    )
    log.info(
        "videos: ok %d, failed %d, skipped %d, silent-audio warnings %d; %d frames in %.1f s (%.1f frames/s)",
        summary["ok"],
        summary["failed"],
        summary["skipped"],
        summary["silent_audio"],
        summary["frames"],
        seconds,
        summary["frames_per_s"],
    )
    return summary


def assign_auto_splits(cfg: VideoPrepConfig, tasks: list[SourceTask]) -> None:
    """Resolve the ``auto`` splits of the segments of ``tasks`` (:mod:`mmgt_prep.splits`).

    Planned over the groups with something to make (a source that exists, a segment without a discovery
    error); groups with ok clips in the store ``cfg.out`` keep their split unless ``resplit``.
    """
    policy = cfg.split_policy
    if not policy.auto:
        return
    manifest = Path(cfg.out) / MANIFEST
    records = read_manifest(cfg.out) if manifest.is_file() else {}

    def group(task: SourceTask, seg: Segment) -> str:
        return policy.group_of(task.rel, seg.speaker)

    pending = [(t, seg) for t in tasks for seg in t.segments if seg.split == AUTO]
    eligible = {group(t, seg) for t, seg in pending if seg.error is None and os.path.exists(t.path)}
    plan = plan_splits(policy, eligible, records, lambda r: policy.group_of(r.source, r.speaker))
    for t, seg in pending:
        seg.split = plan.get(group(t, seg), PRIORITY[0])  # a group with nothing to make: failed rows only


def resplit_store(cfg: VideoPrepConfig, tasks: list[SourceTask], writer: Any) -> int:
    """``resplit=true``: give the ok clips of ``tasks`` already in the store their planned split.

    Returns the number of clips moved.
    """
    planned = {seg.clip_id: seg.split for t in tasks for seg in t.segments}
    moved = resplit_rows(writer, list(writer.records.values()), lambda r: planned.get(r.id))
    log.info("resplit: %d clips moved to their planned split", moved)
    return moved


def backfill_features(root: Path, segments: list[Segment], cfg: VideoPrepConfig) -> int:
    """Add missing ``features/<name>.npy`` of the configured extractors to finished ok clips.

    For a rerun with a longer ``features`` list; returns the number of files written.
    """
    from mmgt.audio import load_or_compute_features
    from mmgt.clipstore import ClipStore

    store = ClipStore(root)
    clips = [
        store.clip(s.clip_id)
        for s in segments
        if s.clip_id in store.records and store.records[s.clip_id].status == STATUS_OK
    ]
    added = 0
    extractors = None
    for clip in clips:
        if extractors is None:
            extractors = cfg.extractors()
        for ext in extractors:
            if not clip.feature_path(ext.name).is_file():
                load_or_compute_features(clip, ext, cache=True)
                added += 1
    return added


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


__all__ = [
    "BACKGROUND_NICE",
    "CROP_MODES",
    "CSV_COLUMNS",
    "ELSEWHERE",
    "ENCODER_QUEUE",
    "GENERATOR",
    "IMAGE_SUFFIXES",
    "PERSON_CONFIDENCE",
    "VIDEO_SUFFIXES",
    "ClipEncoder",
    "CropBox",
    "Segment",
    "SourceTask",
    "VideoPrepConfig",
    "Worker",
    "assign_auto_splits",
    "backfill_features",
    "crop_resize",
    "discover",
    "discover_csv",
    "discover_folder",
    "expand_windows",
    "fixed_crop",
    "lower_thread_priority",
    "missing_fraction",
    "person_crop",
    "plan_runs",
    "prepare_videos",
    "resample_frames",
    "resplit_store",
    "rms_db",
    "safe_name",
    "shard_of",
    "source_id",
]
