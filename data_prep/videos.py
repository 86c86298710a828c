"""``mmgt-prep source=videos``: real talking-person videos (or a PATS-style interval list) -> clip store.

Pipeline per source file (config: ``conf/source/videos.yaml``; user guide: ``docs/prep.md``)::

    probe -> stream-decode -> 25 fps (nearest-timestamp frame selection, so variable frame rate works)
          -> crop (center | left_ratio | person) -> resize S x S (cv2.INTER_AREA)
          -> mediapipe holistic -> (T, 134, 3) keypoints -> short gaps interpolated
          -> clips (whole file | interval list rows | fixed windows) -> ClipStoreWriter
             (video.mp4 S x S 25 fps, audio.wav 16 kHz mono, keypoints.npy, features/<name>.npy, meta.json)

Inputs
    ``input=DIR``: every video (``VIDEO_SUFFIXES``) and image (``IMAGE_SUFFIXES``, a 1-frame source)
    below DIR, recursively, sorted by relative path. Speaker = first folder level below DIR (files
    directly in DIR: DIR's own name). ``input=list.csv``: columns ``path,start,end,speaker,split``
    (only ``path`` is required; empty start/end = whole file); paths are relative to ``input_root``
    (default: the CSV's folder) and rows pointing outside that root (``..``, absolute paths elsewhere)
    are rejected with a failed row; symbolic links placed inside the root are followed.

Splits
    ``split=auto`` (default): every source video (``split_by=video``) or speaker (``split_by=speaker``)
    gets one split from ``split_fractions``, deterministically (:mod:`mmgt_prep.splits`); a CSV ``split``
    value wins for its row; ``split=<name>`` gives every other clip that split.

Clip ids
    ``<relative path, made filename-safe>-<8 hex of sha1(relative path)>``, plus ``_i<k>`` for the
    k-th interval-list row of that file or ``_w<k>`` for the k-th fixed window. Deterministic.

Time base
    Output frame ``k`` shows the source frame whose timestamp is nearest to ``k / 25`` s (ties: the
    earlier frame); a source with last frame at ``t`` lasting ``1/fps`` gives ``round((t + 1/fps) x 25)``
    frames. A clip spans output frames ``[round(start x 25), round(end x 25))`` and its audio exactly
    the same span (``n_frames x 640`` samples, zero-padded where the track is shorter); ``start``/``end``
    in the manifest are these frame-exact times.

Keypoints are detected on the cropped S x S frames. mediapipe tracks along each *run* of frames
(clips whose frame ranges overlap form one run; the tracker is reset at every run start), so a clip's
keypoints depend only on the frames of its run: reruns, shards and worker counts give identical
files. When some clips of a run are already done, the run is re-detected and only the missing clips
are written. Crops are per source (``person``: from keypoints detected on ``person_samples`` frames
spread over the source's clips), so overlapping clips share frames.

Scale: ``workers=N`` spawns N processes (one mediapipe graph, one ClipStoreWriter each; a worker that
dies gets WorkerCrash rows for its unfinished clips); a source is one task. In every worker the
frames of a clip are H.264-encoded while they are detected (one encoder thread per open clip) and a
writer thread finishes a clip (audio, features, checksums, manifest) while the next one is detected;
both run at a lower CPU priority (``BACKGROUND_NICE``) so that they use the cycles mediapipe leaves
idle instead of slowing it down.
``shard=i num_shards=n`` keeps the sources with ``sha1(relative path) mod n == i``: stable
when files are added, no coordination needed between SLURM array tasks writing one store.

Memory: frames are streamed and cropped/resized as they are decoded and encoded as they are
detected (at most ``ENCODER_QUEUE`` S x S frames wait per open clip; the partial video lives in a
scratch folder under ``<out>/.tmp/``); the whole audio track of a source is read at 16 kHz (~2 MB per
minute).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import logging
import math
import multiprocessing
import os
import queue
import re
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.clipstore import (
    AUDIO_FILE,
    FEATURES_DIR,
    KEYPOINTS_FILE,
    MANIFEST,
    STATUS_OK,
    TMP_DIR,
    VIDEO_FILE,
    ClipRecord,
    read_manifest,
)
from mmgt.io import X264_PRESETS, MediaError
from mmgt.schema import BODY, FACE, FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, VISIBILITY_THRESHOLD
from mmgt_prep.splits import AUTO, DEFAULT_FRACTIONS, PRIORITY, SplitPolicy, plan_splits, resplit_rows

log = logging.getLogger("mmgt_prep.videos")

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
CROP_MODES = ("center", "left_ratio", "person")
CSV_COLUMNS = ("path", "start", "end", "speaker", "split")
PERSON_CONFIDENCE = 0.5
"""Keypoints at or above this confidence place the ``person`` crop."""
GENERATOR = "mmgt_prep.videos v1"
ENCODER_QUEUE = 16
"""Frames that may wait for a clip's encoder thread (bounded RAM: 16 x 0.79 MB at 512 x 512)."""
BACKGROUND_NICE = 10
"""Niceness added to the encoder and writer threads (Linux: per thread, inherited by libx264's)."""
ELSEWHERE = "elsewhere"
"""Event status of a clip that another prep on the same store makes (its source is claimed there)."""


# =========================================================================== configuration
@dataclass(frozen=True)
class VideoPrepConfig:
    """Plain-value settings of a ``source=videos`` run: the keys of ``conf/source/videos.yaml`` (+ ``out``,
    ``retry_failed``, ``progress`` of ``conf/prep.yaml``), with the same defaults."""

    input: str
    out: str
    input_root: str | None = None
    split: str = AUTO
    split_fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    split_by: str = "video"
    split_seed: int = 0
    resplit: bool = False
    size: int = 512
    crop: str = "center"
    left_ratios: dict[str, float | str] = field(default_factory=dict)
    person_samples: int = 5
    person_scale: float = 1.2
    max_gap: int = 5
    max_missing_fraction: float = 0.5
    require_audio: bool = True
    silence_threshold_db: float = -60.0
    video_preset: str = "veryfast"
    window: float | None = None
    stride: float | None = None
    max_seconds: float | None = None
    features: tuple[str, ...] = ("baseline",)
    workers: int = 1
    shard: int = 0
    num_shards: int = 1
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    retry_failed: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop={self.crop!r}: expected one of {', '.join(CROP_MODES)}")
        if self.size < 2:
            raise ValueError(f"size={self.size}: must be at least 2 pixels")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: must be >= 1")
        if self.video_preset not in X264_PRESETS:
            raise ValueError(f"video_preset={self.video_preset!r}: expected one of {', '.join(X264_PRESETS)}")
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard={self.shard} num_shards={self.num_shards}: need 0 <= shard < num_shards")
        if self.window is not None and self.window <= 0:
            raise ValueError(f"window={self.window}: must be positive seconds (or null)")
        if self.stride is not None and (self.window is None or self.stride <= 0):
            raise ValueError(f"stride={self.stride}: needs window= and must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds={self.max_seconds}: must be positive (or null)")
        if not 0.0 <= self.max_missing_fraction <= 1.0:
            raise ValueError(f"max_missing_fraction={self.max_missing_fraction}: must be in [0, 1]")
        for speaker, ratio in self.left_ratios.items():
            if ratio != "right" and not (isinstance(ratio, (int, float)) and 0.0 <= ratio < 1.0):
                raise ValueError(f"left_ratios.{speaker}={ratio!r}: expected a fraction in [0, 1) or 'right'")
        _ = self.split_policy  # validates the split keys

    @property
    def split_policy(self) -> SplitPolicy:
        return SplitPolicy(self.split, self.split_fractions, self.split_by, self.split_seed, self.resplit)

    @classmethod
    def from_cfg(cls, cfg: Any) -> VideoPrepConfig:
        """From the composed Hydra config (``conf/prep.yaml`` + ``conf/source/videos.yaml``): every field
        present in ``cfg`` is taken, converted to the field's type (a test checks that each key of
        ``conf/source/videos.yaml`` arrives)."""
        from omegaconf import OmegaConf

        if OmegaConf.select(cfg, "input") in (None, ""):
            raise ValueError(
                "input= is required: a folder of videos/images or an interval list .csv, e.g. "
                "`mmgt-prep source=videos input=DIR out=DIR`"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = OmegaConf.select(cfg, f.name, default=_ABSENT)
            if value is _ABSENT:
                continue
            plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            values[f.name] = _convert(f.name, str(f.type), plain)
        return cls(**values)


_ABSENT = object()


def _convert(name: str, annotation: str, value: Any) -> Any:
    """A config value as the plain type of a :class:`VideoPrepConfig` field (annotation as a string)."""
    if value is None:
        if "None" in annotation:
            return None
        raise ValueError(f"{name}=null: a value is required")
    kind = annotation.split("[", 1)[0].split("|", 1)[0].strip()
    if kind == "tuple":
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value))
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"{name}={value!r}: expected a mapping, e.g. {name}={{a: 1}}")
        return dict(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: expected true or false")
        return value
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected {'an' if kind == 'int' else 'a'} {kind}") from None


# =========================================================================== sources and clips
@dataclass
class Segment:
    """One clip to make from a source: frames ``[k0, k1)`` of the source's 25 fps timeline."""

    clip_id: str
    speaker: str
    split: str
    k0: int = 0
    k1: int | None = None
    """Exclusive end frame; None = to the end of the source."""
    kind: str = "file"  # file | interval | window
    index: int | None = None
    done: bool = False
    error: str | None = None
    """Set when the clip cannot even be started (e.g. a path outside the input root)."""

    def record(self, source: str, size: int, extra: dict[str, Any] | None = None) -> ClipRecord:
        k1 = self.k0 if self.k1 is None else self.k1
        info: dict[str, Any] = {"generator": GENERATOR, "segment": self.kind}
        if self.index is not None:
            info["index"] = self.index
        return ClipRecord(
            id=self.clip_id,
            speaker=self.speaker,
            split=self.split,
            source=source,
            start=self.k0 / FPS,
            end=k1 / FPS,
            n_frames=max(k1 - self.k0, 0),
            fps=float(FPS),
            size=size,
            extra={**info, **(extra or {})},
        )


@dataclass
class SourceTask:
    """One source file and the clips to cut from it (the unit of work of a worker)."""

    path: str
    """Absolute path."""
    rel: str
    """Path relative to the input root (POSIX), the ``source`` of every manifest row."""
    kind: str  # video | image
    segments: list[Segment]

    @property
    def pending(self) -> list[Segment]:
        return [s for s in self.segments if not s.done and s.error is None]


_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_name(text: str, max_len: int = 80) -> str:
    """A filename-safe version of ``text`` (letters, digits, ``_``, ``-``); never empty."""
    return _SAFE.sub("_", text).strip("_")[:max_len] or "x"


def source_id(rel: str) -> str:
    """Deterministic, filename-safe clip id of a source path relative to the input root."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:8]
    return f"{safe_name(stem.replace('/', '__'))}-{digest}"


def shard_of(rel: str, num_shards: int) -> int:
    """Shard of a source: ``sha1(relative path) mod num_shards`` (stable, independent of other files)."""
    return int(hashlib.sha1(rel.encode("utf-8")).hexdigest(), 16) % num_shards


def _speaker_from_rel(rel: str, root: Path) -> str:
    parts = Path(rel).parts
    return safe_name(parts[0] if len(parts) > 1 else root.resolve().name)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return None


def _frame_at(seconds: float) -> int:
    """Index of the 25 fps frame starting nearest to ``seconds`` (halves round up)."""
    return int(math.floor(seconds * FPS + 0.5 + 1e-9))


def _cap(cfg: VideoPrepConfig) -> int | None:
    return None if cfg.max_seconds is None else _frame_at(cfg.max_seconds)


def discover_folder(root: Path, cfg: VideoPrepConfig) -> list[SourceTask]:
    """Every video/image below ``root`` (recursive, sorted by relative path), one whole-file clip each."""
    tasks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _kind(p) is not None):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # hidden files and folders (e.g. a store's .tmp written inside the input)
        seg = Segment(source_id(rel), _speaker_from_rel(rel, root), cfg.split, 0, _cap(cfg))
        tasks.append(SourceTask(os.path.abspath(path), rel, _kind(path) or "video", [seg]))
    return tasks


def _parse_time(value: str | None, column: str, csv_path: Path, lineno: int) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        t = float(value)
    except ValueError:
        raise ValueError(f"{csv_path}:{lineno}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(t) or t < 0:
        raise ValueError(f"{csv_path}:{lineno}: column {column!r} must be >= 0 seconds, got {value!r}")
    return t


def discover_csv(csv_path: Path, cfg: VideoPrepConfig) -> list[SourceTask]:
    """Sources of an interval list (``path,start,end,speaker,split``); bad rows become failed clips.

    Raises ValueError naming the file when it has no ``path`` column.
    """
    root = Path(cfg.input_root) if cfg.input_root else csv_path.parent
    root_resolved = Path(os.path.abspath(root))
    if not root_resolved.is_dir():
        raise ValueError(f"input_root={root}: not a folder")
    by_rel: dict[str, SourceTask] = {}
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "path" not in [c.strip() for c in reader.fieldnames]:
            raise ValueError(
                f"{csv_path}: an interval list needs a header with at least a 'path' column "
                f"(columns: {','.join(CSV_COLUMNS)}), got {reader.fieldnames}"
            )
        for lineno, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not row.get("path"):
                continue
            given = row["path"]
            # lexical check (``..`` and absolute paths); symlinks placed inside the root are followed
            resolved = Path(os.path.normpath(root_resolved / given))
            inside = resolved.is_relative_to(root_resolved)
            rel = resolved.relative_to(root_resolved).as_posix() if inside else given
            task = by_rel.get(rel)
            if task is None:
                kind = _kind(resolved) or "video"
                task = by_rel[rel] = SourceTask(str(resolved), rel, kind, [])
            index = len(task.segments)
            speaker = safe_name(row["speaker"]) if row.get("speaker") else _speaker_from_rel(rel, root)
            if not inside:
                speaker = safe_name(row["speaker"]) if row.get("speaker") else "rejected"
            seg = Segment(
                f"{source_id(rel)}_i{index:03d}",
                speaker,
                row.get("split") or cfg.split,
                kind="interval",
                index=index,
            )
            task.segments.append(seg)
            if not inside:
                seg.error = (
                    f"RejectedPath: {csv_path}:{lineno}: path {given!r} resolves to {resolved}, outside the "
                    f"input root {root_resolved}"
                )
                continue
            try:
                start = _parse_time(row.get("start"), "start", csv_path, lineno) or 0.0
                end = _parse_time(row.get("end"), "end", csv_path, lineno)
            except ValueError as e:
                seg.error = f"ValueError: {e}"
                continue
            seg.k0 = _frame_at(start)
            seg.k1 = None if end is None else _frame_at(end)
            cap = _cap(cfg)
            if cap is not None:
                seg.k1 = cap if seg.k1 is None else min(seg.k1, cap)
            if seg.k1 is not None and seg.k1 <= seg.k0:
                seg.error = f"ValueError: {csv_path}:{lineno}: empty interval {start:.3f}-{end} s" + (
                    f" (max_seconds={cfg.max_seconds})" if cap is not None else ""
                )
    return sorted(by_rel.values(), key=lambda t: t.rel)


def expand_windows(task: SourceTask, cfg: VideoPrepConfig) -> None:
    """Replace a whole-file task's segment by fixed windows (``window``/``stride`` s); probes the file.

    A trailing part shorter than a window is dropped; a source shorter than one window (or one that
    cannot be probed) keeps a single failed segment carrying the reason.
    """
    from mmgt.io import probe_video

    base = task.segments[0]
    n_win = max(_frame_at(cfg.window or 0.0), 1)
    step = max(_frame_at(cfg.stride if cfg.stride is not None else cfg.window or 0.0), 1)
    try:
        n_total = 1 if task.kind == "image" else _frame_at(probe_video(task.path).duration)
    except MediaError as e:
        base.error = f"MediaError: {e}"
        return
    cap = _cap(cfg)
    if cap is not None:
        n_total = min(n_total, cap)
    if n_total < n_win:
        base.error = (
            f"TooShort: {task.path}: {n_total / FPS:.2f} s is shorter than one window ({n_win / FPS:.2f} s)"
        )
        return
    task.segments = [
        Segment(f"{base.clip_id}_w{i:04d}", base.speaker, base.split, k0, k0 + n_win, "window", i)
        for i, k0 in enumerate(range(0, n_total - n_win + 1, step))
    ]


def discover(cfg: VideoPrepConfig) -> list[SourceTask]:
    """All sources of ``cfg.input`` (every shard), before windows are expanded."""
    src = Path(cfg.input).expanduser()
    if src.is_dir():
        return discover_folder(src, cfg)
    if src.is_file() and src.suffix.lower() == ".csv":
        return discover_csv(src, cfg)
    if not src.exists():
        raise FileNotFoundError(f"input={src}: no such file or folder")
    raise ValueError(f"input={src}: expected a folder of videos/images or an interval list .csv")


# =========================================================================== frames
def resample_frames(
    frames: Iterator[tuple[float, np.ndarray]], src_fps: float, fps: int = FPS
) -> Iterator[tuple[int, np.ndarray]]:
    """(seconds, frame) in presentation order -> (k, frame) with frame k = the one nearest to ``k / fps``.

    Ties go to the earlier frame. After the last source frame (at ``t``, lasting ``1 / src_fps``) the
    output stops at ``round((t + 1/src_fps) x fps)`` frames (at least one).
    """
    k = 0
    prev: tuple[float, np.ndarray] | None = None
    for t, img in frames:
        while k / fps <= t:
            tk = k / fps
            use_prev = prev is not None and tk - prev[0] <= t - tk
            yield k, (prev[1] if use_prev and prev is not None else img)
            k += 1
        prev = (t, img)
    if prev is None:
        return
    n_total = max(int(round((prev[0] + 1.0 / src_fps) * fps)), 1)
    while k < n_total:
        yield k, prev[1]
        k += 1


@dataclass(frozen=True)
class CropBox:
    """A square crop ``[y0:y0+side, x0:x0+side]`` of a source frame, in pixels."""

    x0: int
    y0: int
    side: int

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.side]


def _fit_square(cx: float, cy: float, side: float, width: int, height: int) -> CropBox:
    side_i = int(min(max(round(side), 2), width, height))
    x0 = int(min(max(round(cx - side_i / 2), 0), width - side_i))
    y0 = int(min(max(round(cy - side_i / 2), 0), height - side_i))
    return CropBox(x0, y0, side_i)


def fixed_crop(mode: str, width: int, height: int, ratio: float | str | None = None) -> CropBox:
    """``center``: the centred square of side min(W, H). ``left_ratio``: left edge at ``ratio x W``
    (``"right"``: right-aligned), vertically centred; without a ratio it falls back to ``center``."""
    side = min(width, height)
    if mode == "left_ratio" and ratio is not None:
        x0 = width - side if ratio == "right" else min(int(round(float(ratio) * width)), width - side)
        return CropBox(x0, (height - side) // 2, side)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def person_crop(keypoints: list[np.ndarray], width: int, height: int, scale: float) -> CropBox | None:
    """Square around every keypoint (conf >= PERSON_CONFIDENCE) of frames (134, 3) in full-frame
    coordinates, side = ``scale`` x the box's larger side; None when no keypoint qualifies."""
    pts = [k[k[:, 2] >= PERSON_CONFIDENCE, :2] for k in keypoints]
    pts = [p for p in pts if len(p)]
    if not pts:
        return None
    xy = np.concatenate(pts) * np.array([width, height], dtype=np.float64)
    (x_lo, y_lo), (x_hi, y_hi) = xy.min(0), xy.max(0)
    side = scale * max(x_hi - x_lo, y_hi - y_lo, 1.0)
    return _fit_square((x_lo + x_hi) / 2, (y_lo + y_hi) / 2, side, width, height)


def crop_resize(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: the box, area-resized (cv2.INTER_AREA)."""
    import cv2

    crop = frame[box.y0 : box.y0 + box.side, box.x0 : box.x0 + box.side]
    if crop.shape[0] == size and crop.shape[1] == size:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> None:
    """Raise the calling thread's niceness by ``increment`` (capped at 19), so it runs on idle cycles.

    Linux keeps the nice value per thread and threads started from this one (libx264's) inherit it.
    Elsewhere ``setpriority`` would change the whole process, so this is a no-op there.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not permitted: run at the normal priority
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))


_ABORT = object()


class ClipEncoder:
    """Encodes one clip's (S, S, 3) frames into ``path`` while the next frames are detected.

    A background thread at a lower priority (:func:`lower_thread_priority`) owns a
    :class:`mmgt.io.VideoWriter`; :meth:`add` queues a frame and blocks while ``ENCODER_QUEUE``
    frames wait (bounded RAM). :meth:`finish` waits until the file is complete and returns its path;
    :meth:`abort` drops it. An encoder error is raised by the next :meth:`add` or :meth:`finish`.
    """

    def __init__(self, path: Path, preset: str) -> None:
        from mmgt.io import VideoWriter

        self.path, self.n = path, 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ENCODER_QUEUE)
        self._error: BaseException | None = None
        self._aborted = False
        writer = VideoWriter(path, fps=FPS, preset=preset, threads=1)  # N workers: no N x cores threads
        self._thread = threading.Thread(target=self._run, args=(writer,), name="clip-encoder", daemon=True)
        self._thread.start()

    def _run(self, writer: Any) -> None:
        lower_thread_priority()
        item: Any = False
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    if writer.n:
                        writer.close()
                    return
                if item is _ABORT:
                    break
                if not self._aborted:
                    writer.write(item)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that adds or finishes
            self._error = e
            while item is not None and item is not _ABORT:  # keep consuming: add() never blocks forever
                item = self._queue.get()
        writer.abort()

    def _raise(self) -> None:
        if self._error is not None:
            raise MediaError(f"{self.path}: encoding failed: {self._error}") from self._error

    def add(self, frame: np.ndarray) -> None:
        """Queue one (S, S, 3) uint8 frame (not copied: do not modify it afterwards)."""
        self._raise()
        self._queue.put(frame)
        self.n += 1

    def finish(self) -> Path:
        """Wait for the encoder; the complete video is at the returned path."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
        if not self.path.is_file():
            raise MediaError(f"{self.path}: encoding produced no file ({self.n} frames)")
        return self.path

    def abort(self) -> None:
        """Stop encoding (queued frames are skipped) and delete the file (also a finished one the
        caller has not moved away)."""
        if self._thread.is_alive():
            self._aborted = True
            self._queue.put(_ABORT)
            self._thread.join()
        self.path.unlink(missing_ok=True)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8) if path.stat().st_size else np.zeros(0, np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise MediaError(f"{path}: cannot decode the image (empty, corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# =========================================================================== worker
def rms_db(audio: np.ndarray) -> float:
    """RMS level of (N,) float audio in dBFS (-200 for digital silence)."""
    if audio.size == 0:
        return -200.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return max(20.0 * math.log10(rms), -200.0) if rms > 0 else -200.0


def missing_fraction(kps: np.ndarray) -> float:
    """Fraction of frames of (T, 134, 3) keypoints with no body or face point at >= VISIBILITY_THRESHOLD."""
    idx = list(BODY) + list(FACE)
    present = (kps[:, idx, 2] >= VISIBILITY_THRESHOLD).any(axis=1)
    return float(1.0 - present.mean()) if len(present) else 1.0


@dataclass
class _Active:
    """A pending clip while its run is decoded."""

    seg: Segment
    encoder: ClipEncoder | None
    keypoints: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Run:
    """Segments with overlapping frame ranges, detected with one continuous mediapipe track."""

    k0: int
    k1: int | None
    segments: list[Segment]


def plan_runs(segments: list[Segment]) -> list[_Run]:
    """Group segments (sorted by start) into runs of overlapping frame ranges; drop runs with nothing
    left to write. Segments that merely touch start separate runs."""
    runs: list[_Run] = []
    for seg in sorted((s for s in segments if s.error is None), key=lambda s: (s.k0, s.clip_id)):
        last = runs[-1] if runs else None
        if last is not None and (last.k1 is None or seg.k0 < last.k1):
            last.segments.append(seg)
            last.k1 = None if last.k1 is None or seg.k1 is None else max(last.k1, seg.k1)
        else:
            runs.append(_Run(seg.k0, seg.k1, [seg]))
    return [r for r in runs if any(not s.done for s in r.segments)]


class Worker:
    """Per-process state: one mediapipe graph, the audio extractors, a ClipStoreWriter and a writer thread.

    :meth:`process` decodes and detects in the calling thread; each open clip's frames go to its
    :class:`ClipEncoder` as they are detected, and each finished clip (encoder flush, audio, features,
    checksums, rename) goes to one background thread, so a clip is written while the next one is
    detected (at most one write in flight). Progress goes to ``emit`` as events
    ``("clip", pid, {id, status, error, n_frames, silent_audio})`` and ``("frames", pid, n)``, possibly
    from the writer thread. Call :meth:`flush` to wait for the last write.
    """

    def __init__(self, cfg: VideoPrepConfig, emit: Callable[[tuple[Any, ...]], None]) -> None:
        import cv2

        from mmgt.pose_detect import HolisticDetector
        from mmgt_prep.store import ClipStoreWriter

        cv2.setNumThreads(1)
        self.cfg = cfg
        self.emit = emit
        self.pid = os.getpid()
        self.detector = HolisticDetector(
            static_image_mode=False,
            model_complexity=cfg.model_complexity,
            refine_face_landmarks=True,
            min_detection_confidence=cfg.min_detection_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
        )
        self.extractors: list[Any] = []
        if cfg.features:
            from mmgt.audio import build_extractor

            self.extractors = [build_extractor(spec) for spec in cfg.features]
        self.writer = ClipStoreWriter(cfg.out, retry_failed=cfg.retry_failed)
        self.scratch = Path(cfg.out) / TMP_DIR / f"scratch-{socket.gethostname()}-{self.pid}"
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="clip-writer", initializer=lower_thread_priority
        )
        self._pending: Future[None] | None = None
        self._written: set[str] = set()

    def flush(self) -> None:
        """Wait until the clip being written (if any) is in the store."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        self.flush()
        self._executor.shutdown(wait=True)
        self.detector.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # ------------------------------------------------------------------ one source
    def process(self, task: SourceTask) -> None:
        """Make every pending clip of ``task``; every failure becomes a manifest row (and an event)."""
        self.frames_detected = 0
        self._written = set()
        try:
            with self.writer.claim(source_id(task.rel)) as mine:
                if mine:  # the manifest was re-read: clips another prep finished since discovery are done
                    for seg in task.pending:
                        seg.done = self.writer.is_done(seg.clip_id)
                        if seg.done:
                            self._elsewhere(seg)
                else:  # another prep is making this source: its clips are left to it
                    for seg in task.pending:
                        self._elsewhere(seg)
                    return
                self._process(task)
        except Exception as e:  # noqa: BLE001 - the whole source failed: a row per unwritten clip
            reason = f"{type(e).__name__}: {e}"
            tb = traceback.format_exc(limit=4)
            for seg in task.pending:
                if seg.clip_id not in self._written:
                    self._fail(task, seg, reason, tb)
        finally:
            self.emit(("frames", self.pid, self.frames_detected))

    def _elsewhere(self, seg: Segment) -> None:
        """``seg`` is (being) made by another process on the store: reported, not made here."""
        self._written.add(seg.clip_id)
        self.emit(("clip", self.pid, {"id": seg.clip_id, "status": ELSEWHERE, "error": None, "n_frames": 0}))

    def _fail(self, task: SourceTask, seg: Segment, reason: str, tb: str | None = None) -> None:
        record = seg.record(task.rel, self.cfg.size, {"traceback": tb} if tb else None)
        self.writer.record_failure(record, reason)
        self._written.add(seg.clip_id)
        result = {"id": seg.clip_id, "status": "failed", "error": reason, "n_frames": 0}
        self.emit(("clip", self.pid, result))

    def _submit_write(self, job: Callable[[], None]) -> None:
        self.flush()  # bounded: one clip written while the next is detected
        self._pending = self._executor.submit(job)

    def _process(self, task: SourceTask) -> None:
        from mmgt.io import iter_video_frames, probe_video, read_audio

        cfg = self.cfg
        path = Path(task.path)
        if task.kind == "image":
            image = _read_image(path)
            height, width = image.shape[:2]
            src_fps, duration, has_audio = float(FPS), 1.0 / FPS, False
            extra: dict[str, Any] = {"image": True, "source_size": [width, height]}

            def frames() -> Iterator[tuple[float, np.ndarray]]:
                yield 0.0, image

        else:
            info = probe_video(path)
            width, height, src_fps, duration, has_audio = (
                info.width,
                info.height,
                info.fps,
                info.duration,
                info.has_audio,
            )
            if not has_audio and cfg.require_audio:
                raise MediaError(f"{path}: no audio stream (set require_audio=false to accept silent clips)")
            extra = {"source_fps": round(src_fps, 4), "source_size": [width, height]}
            if info.variable_frame_rate:
                extra["variable_frame_rate"] = True

            def frames() -> Iterator[tuple[float, np.ndarray]]:
                return iter_video_frames(path)

        speaker = task.segments[0].speaker
        box = self._crop_box(task, frames, width, height, src_fps, duration, speaker)
        extra["crop"] = {"mode": cfg.crop, "box": box.as_list()}
        audio = read_audio(path) if has_audio else None
        if task.kind == "video" and audio is None:
            extra["audio"] = "none"
        runs = plan_runs(task.segments)
        if not runs:
            return
        self._decode_runs(task, runs, frames, src_fps, duration, box, audio, extra)

    def _crop_box(
        self,
        task: SourceTask,
        frames: Any,
        width: int,
        height: int,
        src_fps: float,
        duration: float,
        speaker: str,
    ) -> CropBox:
        cfg = self.cfg
        if cfg.crop != "person":
            return fixed_crop(cfg.crop, width, height, cfg.left_ratios.get(speaker))
        # sample frames spread over all the source's clips (done ones too: the crop must not depend on
        # what a previous run finished)
        segs = [s for s in task.segments if s.error is None]
        end = max(_frame_at(duration), 1)
        lo = min(s.k0 for s in segs)
        hi = max(end if s.k1 is None else min(s.k1, end) for s in segs)
        hi = max(hi, lo + 1)
        picks = np.linspace(lo, hi - 1, max(cfg.person_samples, 1)).round().astype(int)
        wanted = sorted(set(picks.tolist()))
        keypoints = []
        gen = frames()
        try:
            for k, img in resample_frames(gen, src_fps):
                if k > wanted[-1]:
                    break
                if k in wanted:
                    self.detector.reset()
                    keypoints.append(self.detector(img))
                    self.frames_detected += 1
        finally:
            if hasattr(gen, "close"):
                gen.close()
        box = person_crop(keypoints, width, height, cfg.person_scale)
        return box if box is not None else fixed_crop("center", width, height)

    def _decode_runs(
        self,
        task: SourceTask,
        runs: list[_Run],
        frames: Any,
        src_fps: float,
        duration: float,
        box: CropBox,
        audio: np.ndarray | None,
        extra: dict[str, Any],
    ) -> None:
        cfg = self.cfg
        size = cfg.size
        ends = [r.k1 for r in runs]
        last_needed = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        run_i = 0
        active: list[_Active] = []
        k_end = 0  # frames of the timeline seen
        stopped_early = False
        last_t = 0.0
        gen = frames()

        def timed() -> Iterator[tuple[float, np.ndarray]]:
            nonlocal last_t
            for t, img in gen:
                last_t = t
                yield t, img

        try:
            for k, img in resample_frames(timed(), src_fps):
                k_end = k + 1
                # finish clips that end before k
                for a in [a for a in active if a.seg.k1 is not None and a.seg.k1 <= k]:
                    active.remove(a)
                    self._finish(task, a, audio, extra)
                if last_needed is not None and k >= last_needed:
                    stopped_early = True
                    k_end = k
                    break
                while run_i < len(runs) and runs[run_i].k1 is not None and k >= runs[run_i].k1:  # type: ignore[operator]
                    run_i += 1
                if run_i >= len(runs) or k < runs[run_i].k0:
                    continue
                run = runs[run_i]
                if k == run.k0:
                    self.detector.reset()
                    for seg in run.segments:
                        if not seg.done:
                            encoder = ClipEncoder(self.scratch / f"{seg.clip_id}.mp4", cfg.video_preset)
                            active.append(_Active(seg, encoder))
                frame = crop_resize(img, box, size)
                kp = self.detector(frame)
                self.frames_detected += 1
                for a in active:
                    if a.seg.k0 <= k and (a.seg.k1 is None or k < a.seg.k1):
                        assert a.encoder is not None
                        a.encoder.add(frame)
                        a.keypoints.append(kp)
        except BaseException:
            for a in active:
                if a.encoder is not None:
                    a.encoder.abort()
            raise
        finally:
            gen.close()
        if not stopped_early and task.kind == "video":
            decoded = last_t + 1.0 / src_fps
            if duration > 0.5 and decoded < 0.9 * duration - 0.2:
                for a in active:
                    if a.encoder is not None:
                        a.encoder.abort()
                raise MediaError(
                    f"{task.path}: truncated or corrupt: frames decode up to {decoded:.2f} s of the "
                    f"{duration:.2f} s the container declares"
                )
        for a in active:  # clips running to the end of the source (or past it)
            self._finish(task, a, audio, extra)
        for seg in task.pending:  # clips starting after the end of the video
            if seg.clip_id not in self._written:
                self._fail(
                    task,
                    seg,
                    f"OutOfRange: {task.path}: clip starts at {seg.k0 / FPS:.2f} s, after the end of the "
                    f"video ({k_end / FPS:.2f} s)",
                )

    def _finish(
        self,
        task: SourceTask,
        a: _Active,
        audio: np.ndarray | None,
        extra: dict[str, Any],
    ) -> None:
        """Write one clip from its buffered frames and keypoints (checks first; failures recorded)."""
        from mmgt.io import write_audio
        from mmgt.pose_detect import interpolate_gaps

        cfg, seg = self.cfg, a.seg
        assert a.encoder is not None
        try:
            n = a.encoder.n
            clip_extra = dict(extra)
            if n == 0:
                raise _ClipError(f"OutOfRange: {task.path}: no frames at {seg.k0 / FPS:.2f} s")
            if seg.k1 is not None and seg.k0 + n < seg.k1:
                if seg.kind == "window":
                    raise _ClipError(
                        f"OutOfRange: {task.path}: the video ends at {(seg.k0 + n) / FPS:.2f} s, before the "
                        f"clip end {seg.k1 / FPS:.2f} s"
                    )
                if seg.kind == "interval":  # an interval past the end of the video: cut there
                    clip_extra["clamped_end"] = True
            span = Segment(seg.clip_id, seg.speaker, seg.split, seg.k0, seg.k0 + n, seg.kind, seg.index)
            raw = np.stack(a.keypoints).astype(np.float32)
            missing = missing_fraction(raw)
            clip_extra["missing_fraction"] = round(missing, 4)
            if audio is not None:
                lo, hi = seg.k0 * SAMPLES_PER_FRAME, (seg.k0 + n) * SAMPLES_PER_FRAME
                clip_audio = audio[lo:hi]
                if clip_audio.shape[0] < hi - lo:
                    pad = hi - lo - clip_audio.shape[0]
                    if pad > SAMPLES_PER_FRAME:
                        clip_extra["audio_padded_s"] = round(pad / SAMPLE_RATE, 3)
                    clip_audio = np.pad(clip_audio, (0, pad))
                level = rms_db(clip_audio)
                clip_extra["audio_rms_db"] = round(level, 2)
                clip_extra["silent_audio"] = bool(level < cfg.silence_threshold_db)
            else:
                clip_audio = np.zeros(n * SAMPLES_PER_FRAME, dtype=np.float32)
                if task.kind == "video":
                    clip_extra["silent_audio"] = True
            rec = span.record(task.rel, cfg.size, clip_extra)
            if missing > cfg.max_missing_fraction:
                from mmgt.pose_detect import NoPersonError

                raise _ClipError(
                    f"{NoPersonError.__name__}: {task.path} [{rec.start:.2f}-{rec.end:.2f} s]: no person "
                    f"detected in {missing:.0%} of {n} frames "
                    f"(max_missing_fraction={cfg.max_missing_fraction})"
                )
            keypoints = interpolate_gaps(raw, cfg.max_gap)
            encoder = a.encoder

            def write(tmp: Path) -> None:
                os.replace(encoder.finish(), tmp / VIDEO_FILE)
                write_audio(tmp / AUDIO_FILE, clip_audio, sample_rate=SAMPLE_RATE)
                np.save(tmp / KEYPOINTS_FILE, keypoints)
                if self.extractors:
                    (tmp / FEATURES_DIR).mkdir()
                for ext in self.extractors:
                    feats = np.asarray(ext(clip_audio, n_frames=n), dtype=np.float32)
                    np.save(tmp / FEATURES_DIR / f"{ext.name}.npy", feats)

            silent = bool(clip_extra.get("silent_audio")) and task.kind == "video"
            a.encoder = None  # owned by the write job from here

            def job() -> None:
                try:
                    done = self.writer.write_clip(rec, write)
                    ok = done.status == STATUS_OK
                    result = {"id": seg.clip_id, "status": done.status, "error": done.error}
                    result.update(n_frames=n if ok else 0, silent_audio=ok and silent)
                except Exception as e:  # noqa: BLE001 - e.g. the manifest is not writable
                    log.exception("%s: writing the clip failed", seg.clip_id)
                    result = {"id": seg.clip_id, "status": "failed", "error": f"{type(e).__name__}: {e}"}
                    result["n_frames"] = 0
                finally:
                    encoder.abort()  # no-op when finished; deletes the file when writing failed
                self.emit(("clip", self.pid, result))

            self._written.add(seg.clip_id)
            self._submit_write(job)
        except _ClipError as e:
            self._fail(task, seg, str(e))
        finally:
            if a.encoder is not None:
                a.encoder.abort()


class _ClipError(Exception):
    """A clip-level rejection; its message is the manifest ``error`` as is."""


def _worker_main(cfg: VideoPrepConfig, tasks: Any, events: Any, parent_pid: int) -> None:
    """A pool process: build one Worker (one mediapipe graph), then process tasks until ``None``.

    Sends ``("take", pid, task index)`` before each task, the Worker's events, and ``("exit", pid)``
    after the last write. Quits on its own when the parent process is gone.
    """
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(cfg, events.put)
    try:
        while True:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return  # orphaned (the parent was killed): stop
                continue
            if item is None:
                break
            index, task = item
            events.put(("take", worker.pid, index))
            worker.process(task)
    finally:
        worker.close()
    events.put(("exit", worker.pid))


def _record_crash(
    cfg: VideoPrepConfig,
    order: list[SourceTask],
    lost: list[str],
    proc: Any,
    handle: Callable[[tuple[Any, ...]], None],
) -> None:
    """Failed rows for the clips a dead worker process had taken and not reported."""
    from mmgt_prep.store import ClipStoreWriter

    log.error("worker %d died (exit code %s) with %d clips unfinished", proc.pid, proc.exitcode, len(lost))
    shutil.rmtree(Path(cfg.out) / TMP_DIR / f"scratch-{socket.gethostname()}-{proc.pid}", ignore_errors=True)
    writer = ClipStoreWriter(cfg.out, retry_failed=cfg.retry_failed)
    by_id = {s.clip_id: (t, s) for t in order for s in t.segments}
    for clip_id in lost:
        task, seg = by_id[clip_id]
        reason = f"WorkerCrash: the worker process died (exit code {proc.exitcode}) while making {task.path}"
        writer.record_failure(seg.record(task.rel, cfg.size), reason)
        handle(("clip", proc.pid, {"id": clip_id, "status": "failed", "error": reason, "n_frames": 0}))


def _run_pool(
    cfg: VideoPrepConfig, order: list[SourceTask], handle: Callable[[tuple[Any, ...]], None]
) -> None:
    """Run ``order`` on ``cfg.workers`` spawned processes; events go to ``handle`` in this process.

    A worker that dies (e.g. a crash inside a native library) is detected: the clips it had taken and
    not reported get failed rows naming the exit code, and the other workers carry on.
    """
    ctx = multiprocessing.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    for item in enumerate(order):
        tasks.put(item)
    n = min(cfg.workers, len(order))
    for _ in range(n):
        tasks.put(None)
    procs = [
        ctx.Process(target=_worker_main, args=(cfg, tasks, events, os.getpid()), daemon=True)
        for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    taken: dict[int, set[str]] = {}  # pid -> clips taken and not reported yet
    exited: set[int] = set()

    def dispatch(event: tuple[Any, ...]) -> None:
        kind, pid = event[0], event[1]
        if kind == "take":
            taken.setdefault(pid, set()).update(s.clip_id for s in order[event[2]].pending)
        elif kind == "clip":
            taken.get(pid, set()).discard(event[2]["id"])
        elif kind == "exit":
            exited.add(pid)
        handle(event)

    try:
        while len(exited) < n:
            try:
                dispatch(events.get(timeout=0.5))
                continue
            except queue.Empty:
                pass
            for proc in procs:
                if proc.pid in exited or proc.exitcode is None:
                    continue
                while True:  # its last events may still be in the pipe
                    try:
                        dispatch(events.get(timeout=0.2))
                    except queue.Empty:
                        break
                if proc.pid in exited:
                    continue
                exited.add(proc.pid)
                _record_crash(cfg, order, sorted(taken.pop(proc.pid, set())), proc, handle)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


# =========================================================================== driver
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
    everything = discover(cfg)
    assign_auto_splits(cfg, everything)  # over every shard's sources (before windows): shards agree
    tasks = [t for t in everything if shard_of(t.rel, cfg.num_shards) == cfg.shard]
    if cfg.window is not None:
        for t in tasks:
            if t.segments and t.segments[0].kind == "file" and t.segments[0].error is None:
                expand_windows(t, cfg)
    if cfg.features:  # fail fast (in this process) on a bad extractor spec or a missing model folder
        from mmgt.audio import build_extractor

        for spec in cfg.features:
            build_extractor(spec)
    writer = ClipStoreWriter(out, retry_failed=cfg.retry_failed)
    _clean_stale_scratch(out)
    summary: dict[str, Any] = {"ok": 0, "failed": 0, "skipped": 0, "elsewhere": 0, "silent_audio": 0}
    summary["frames"] = 0
    summary["resplit"] = resplit_store(cfg, tasks, writer) if cfg.split_policy.resplit else 0
    failures: list[dict[str, str]] = []
    for t in tasks:
        for seg in t.segments:
            seg.done = writer.is_done(seg.clip_id)
            if seg.done:
                summary["skipped"] += 1
            elif seg.error is not None:
                writer.record_failure(seg.record(t.rel, cfg.size), seg.error)
                summary["failed"] += 1
                failures.append({"id": seg.clip_id, "error": seg.error})
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
    bar = tqdm(total=n_clips, desc="videos", unit="clip", disable=not cfg.progress, dynamic_ncols=True)

    def handle(event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "frames":
            summary["frames"] += event[2]
        elif kind == "clip":
            clip = event[2]
            bar.update(1)
            if clip["status"] == ELSEWHERE:
                summary["elsewhere"] += 1
                return
            summary["ok" if clip["status"] == STATUS_OK else "failed"] += 1
            if clip["status"] != STATUS_OK:
                failures.append({"id": clip["id"], "error": clip["error"]})
            if clip.get("silent_audio"):
                summary["silent_audio"] += 1
                log.warning("%s: silent audio (flagged extra.silent_audio)", clip["id"])
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(fps=f"{summary['frames'] / elapsed:.1f}", failed=summary["failed"])

    # biggest files first: better load balance at the end of the run
    order = sorted(todo, key=lambda t: (-_file_size(t.path), t.rel))
    if order and cfg.workers == 1:
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
    elif order:
        _run_pool(cfg, order, handle)
    unfinished = n_clips - (summary["ok"] + summary["failed"] + summary["elsewhere"] - n_prefailed)
    if unfinished:
        log.error("%d clips were not processed (worker processes died?); rerun to make them", unfinished)
        summary["unfinished"] = unfinished
    bar.close()
    seconds = time.perf_counter() - t0
    summary.update(
        frames_per_s=round(summary["frames"] / seconds, 2) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        sources=len(todo),
        shard=f"{cfg.shard}/{cfg.num_shards}",
        workers=cfg.workers,
        out=str(out),
        failures=failures[:50],
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
    """Resolve the ``auto`` splits of the segments of ``tasks`` (:mod:`mmgt_prep.splits`): planned over the
    groups with something to make (a source that exists, a segment without a discovery error); groups
    with ok clips in the store ``cfg.out`` keep their split unless ``resplit``."""
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
    """``resplit=true``: give the ok clips of ``tasks`` already in the store their planned split; returns
    the number of clips moved."""
    planned = {seg.clip_id: seg.split for t in tasks for seg in t.segments}
    moved = resplit_rows(writer, list(writer.records.values()), lambda r: planned.get(r.id))
    log.info("resplit: %d clips moved to their planned split", moved)
    return moved


def backfill_features(root: Path, segments: list[Segment], cfg: VideoPrepConfig) -> int:
    """Add missing ``features/<name>.npy`` of the configured extractors to finished ok clips (a rerun
    with a longer ``features`` list); returns the number of files written."""
    from mmgt.audio import build_extractor, load_or_compute_features
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
            extractors = [build_extractor(spec) for spec in cfg.features]
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


def run(cfg: Any) -> dict[str, Any]:
    """``mmgt-prep source=videos`` runner: ``conf/source/videos.yaml`` keys -> :func:`prepare_videos`."""
    return prepare_videos(VideoPrepConfig.from_cfg(cfg))


__all__ = [
    "ClipEncoder",
    "CropBox",
    "Segment",
    "SourceTask",
    "VideoPrepConfig",
    "Worker",
    "crop_resize",
    "discover",
    "expand_windows",
    "fixed_crop",
    "lower_thread_priority",
    "missing_fraction",
    "person_crop",
    "plan_runs",
    "prepare_videos",
    "resample_frames",
    "run",
    "shard_of",
    "source_id",
]
