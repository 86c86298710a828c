"""Sources and clips of ``mmgt-prep source=videos``: what to make, found before anything is decoded.

Inputs
    ``input=DIR``: every video (``VIDEO_SUFFIXES``) and image (``IMAGE_SUFFIXES``, a 1-frame source)
    below DIR, recursively, sorted by relative path. Speaker = first folder level below DIR (files
    directly in DIR: DIR's own name). ``input=list.csv``: columns ``path,start,end,speaker,split``
    (only ``path`` is required; empty start/end = whole file); paths are relative to ``input_root``
    (default: the CSV's folder) and rows pointing outside that root (``..``, absolute paths elsewhere)
    are rejected with a failed row; symbolic links placed inside the root are followed.

Clip ids
    ``<relative path, made filename-safe>-<8 hex of sha1(relative path)>``, plus ``_i<k>`` for the
    k-th interval-list row of that file or ``_w<k>`` for the k-th fixed window. Deterministic.

Clip spans
    A clip spans output frames ``[round(start x 25), round(end x 25))`` of the source's 25 fps timeline;
    ``start``/``end`` in the manifest are these frame-exact times.

Shards
    ``shard=i num_shards=n`` keeps the sources with ``sha1(relative path) mod n == i`` (:func:`shard_of`):
    stable when files are added, no coordination needed between SLURM array tasks writing one store.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmgt.clipstore import ClipRecord
from mmgt.io import MediaError
from mmgt.schema import FPS
from mmgt_prep.videos_config import VideoPrepConfig

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
CSV_COLUMNS = ("path", "start", "end", "speaker", "split")
GENERATOR = "mmgt_prep.videos v1"


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
        """The manifest row of this clip cut from ``source`` at ``size`` pixels (``extra`` merged in)."""
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
        """The segments still to make (not done, no discovery error)."""
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


def _set_span(seg: Segment, row: dict[str, str], csv_path: Path, lineno: int, cfg: VideoPrepConfig) -> None:
    """The frames ``[k0, k1)`` of an interval-list row (capped by ``max_seconds``), or its error."""
    try:
        start = _parse_time(row.get("start"), "start", csv_path, lineno) or 0.0
        end = _parse_time(row.get("end"), "end", csv_path, lineno)
    except ValueError as e:
        seg.error = f"ValueError: {e}"
        return
    seg.k0 = _frame_at(start)
    seg.k1 = None if end is None else _frame_at(end)
    cap = _cap(cfg)
    if cap is not None:
        seg.k1 = cap if seg.k1 is None else min(seg.k1, cap)
    if seg.k1 is not None and seg.k1 <= seg.k0:
        seg.error = f"ValueError: {csv_path}:{lineno}: empty interval {start:.3f}-{end} s" + (
            f" (max_seconds={cfg.max_seconds})" if cap is not None else ""
        )


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
            _set_span(seg, row, csv_path, lineno, cfg)
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


__all__ = [
    "CSV_COLUMNS",
    "GENERATOR",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Segment",
    "SourceTask",
    "discover",
    "discover_csv",
    "discover_folder",
    "expand_windows",
    "safe_name",
    "shard_of",
    "source_id",
]
