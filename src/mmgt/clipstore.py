"""The clip store: the on-disk dataset format written by ``mmgt-prep`` and read by every DataModule.

Layout (file names are defined here and nowhere else)::

    <root>/manifest.jsonl                      one JSON row per clip attempt (last row per id wins)
    <root>/clips/<speaker>/<id>/video.mp4      25 fps, S x S, no audio
                               /audio.wav      16 kHz mono
                               /keypoints.npy  (T, 134, 3) float32, see :mod:`mmgt.schema`
                               /meta.json      the clip's manifest row (written inside the atomic rename)
                           /pose.mp4       keypoint-only clips (imported poses): rendered pose, no video.mp4
                               /features/<encoder>.npy   cached audio features at 25 fps

The writer (:mod:`mmgt_prep.store`) builds each clip in a temporary folder and renames it into
place, so a clip folder either exists complete or not at all. This module only reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.schema import validate_keypoints
from mmgt.untrusted import check_name, inside, load_npy

MANIFEST = "manifest.jsonl"
CLIPS_DIR = "clips"
VIDEO_FILE = "video.mp4"
AUDIO_FILE = "audio.wav"
KEYPOINTS_FILE = "keypoints.npy"
META_FILE = "meta.json"
POSE_VIDEO_FILE = "pose.mp4"
"""Rendered pose video of keypoint-only clips (imported poses without the source video)."""
FEATURES_DIR = "features"
TMP_DIR = ".tmp"
PREPARE_LOCK = ".prepare.lock"
"""flock'ed by :func:`ensure_store` while one process creates the store."""
PREPARING = ".preparing"
"""Present while :func:`ensure_store` creates the store (left by a killed run: the next call resumes)."""

log = logging.getLogger(__name__)

STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass
class ClipRecord:
    """One manifest row. ``start``/``end`` are seconds in the source; ``size`` is the square side."""

    id: str
    speaker: str
    split: str = "train"
    source: str = ""
    start: float = 0.0
    end: float = 0.0
    n_frames: int = 0
    fps: float = 25.0
    size: int = 0
    status: str = STATUS_OK
    error: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The record as one manifest line (sorted keys)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ClipRecord:
        """A record from a manifest row; keys it does not know are kept in ``extra``."""
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        extra = {k: v for k, v in row.items() if k not in cls.__dataclass_fields__}
        rec = cls(**known)
        rec.extra.update(extra)
        return rec


def clip_relpath(speaker: str, clip_id: str, source: str = "clip") -> Path:
    """Path of a clip folder relative to the store root.

    ``speaker`` and ``clip_id`` must be safe names (:func:`mmgt.untrusted.check_name`, an UntrustedFileError
    naming ``source`` otherwise).
    """
    return Path(CLIPS_DIR) / check_name(speaker, "speaker", source) / check_name(clip_id, "id", source)


def read_manifest(root: str | Path) -> dict[str, ClipRecord]:
    """All clips of a store, keyed by id; for ids with several rows the last row wins.

    A last line without its newline that is not valid JSON is a row torn by a killed writer: it is
    ignored with a warning (the writer cuts it off before its next append).

    Raises:
        FileNotFoundError: if ``root`` has no manifest.
        ValueError: naming the file and line if a row is not valid JSON, or its ``id`` / ``speaker``
            is not a safe name (no ``..``, no ``/``: a clip folder must stay inside the store).
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no clip-store manifest here (run `mmgt-prep` to create a store)")
    records: dict[str, ClipRecord] = {}
    lines = path.read_bytes().split(b"\n")  # the last item is b"" when the file ends with a newline
    for lineno, raw in enumerate(lines, 1):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line:
            continue
        source = f"{path}:{lineno}"
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise TypeError(f"a row must be a JSON object, got {type(row).__name__}")
            rec = ClipRecord.from_dict(row)
        except (json.JSONDecodeError, TypeError) as e:
            if lineno == len(lines):  # no newline after it: torn by a killed append
                log.warning("%s: ignoring a torn last manifest row (a writer was killed mid-append)", source)
                continue
            raise ValueError(f"{source}: malformed manifest row ({e})") from e
        clip_relpath(rec.speaker, rec.id, source)
        records[rec.id] = rec
    return records


class Clip:
    """Read access to one clip folder; every loader validates what it reads."""

    def __init__(self, root: Path, record: ClipRecord) -> None:
        self.record = record
        self.dir = inside(
            root, clip_relpath(record.speaker, record.id), f"{root / MANIFEST} (clip {record.id})"
        )

    def __repr__(self) -> str:
        return f"Clip({self.record.id!r}, speaker={self.record.speaker!r}, frames={self.record.n_frames})"

    @property
    def video_path(self) -> Path:
        """The clip's ``video.mp4``."""
        return self.dir / VIDEO_FILE

    @property
    def has_video(self) -> bool:
        """False for keypoint-only clips (``extra.has_video = False``, e.g. imported DWPose sequences)."""
        return bool(self.record.extra.get("has_video", True))

    @property
    def audio_path(self) -> Path:
        """The clip's ``audio.wav``."""
        return self.dir / AUDIO_FILE

    @property
    def keypoints_path(self) -> Path:
        """The clip's ``keypoints.npy``."""
        return self.dir / KEYPOINTS_FILE

    def feature_path(self, name: str) -> Path:
        """``features/<name>.npy``; ``name`` (an extractor's name) must be a safe file name."""
        return self.dir / FEATURES_DIR / f"{check_name(name, 'feature name', str(self.dir), extra='+')}.npy"

    def keypoints(self) -> np.ndarray:
        """(T, 134, 3) float32 keypoints; a truncated, non-numeric or NaN file is an error naming it."""
        kps = load_npy(self.keypoints_path, "keypoints (T, 134, 3)")
        validate_keypoints(kps, str(self.keypoints_path))
        return kps.astype(np.float32, copy=False)

    def audio(self) -> np.ndarray:
        """(N,) float32 mono audio at 16 kHz."""
        from mmgt.io import read_audio

        return read_audio(self.audio_path)

    def video(self) -> np.ndarray:
        """(T, H, W, 3) uint8 frames."""
        from mmgt.io import read_video

        return read_video(self.video_path, with_audio=False).frames

    def features(self, name: str) -> np.ndarray | None:
        """Cached audio features ``name`` (T, ...) or None when not cached."""
        path = self.feature_path(name)
        return load_npy(path, f"audio features {name!r}") if path.is_file() else None


class ClipStore:
    """A clip store on disk. ``ClipStore(root).clips(split="train")`` lists the usable clips."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.records = read_manifest(self.root)

    def __len__(self) -> int:
        return len(self.records)

    def clips(self, split: str | None = None, speakers: list[str] | None = None) -> list[Clip]:
        """Clips with status ``ok`` (sorted by id), optionally filtered by split and speaker."""
        out = [
            Clip(self.root, r)
            for r in self.records.values()
            if r.status == STATUS_OK
            and (split is None or r.split == split)
            and (speakers is None or r.speaker in speakers)
        ]
        return sorted(out, key=lambda c: c.record.id)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips())

    def clip(self, clip_id: str) -> Clip:
        """The clip ``clip_id`` (a KeyError naming the store otherwise)."""
        try:
            rec = self.records[clip_id]
        except KeyError:
            raise KeyError(f"{self.root / MANIFEST}: no clip with id {clip_id!r}") from None
        return Clip(self.root, rec)

    def failed(self) -> list[ClipRecord]:
        """The records whose last attempt failed."""
        return [r for r in self.records.values() if r.status == STATUS_FAILED]

    def speakers(self) -> list[str]:
        """The speakers with at least one ok clip, sorted."""
        return sorted({r.speaker for r in self.records.values() if r.status == STATUS_OK})


def ensure_store(root: str | Path, prepare: Callable[[Path], Any] | None) -> None:
    """Create the clip store ``root`` with ``prepare(root)`` unless it exists.

    Safe to call at once from several processes (the jobs of a local sweep, DDP ranks, SLURM array tasks on
    one file system).

    The first caller holds an exclusive ``flock`` on ``<root>/.prepare.lock`` while it prepares; the
    others wait and then find the store complete (a manifest alone is not enough: the first clip's row
    appears long before the last). A ``.preparing`` marker left by a killed run makes the next call
    run ``prepare`` again, which resumes. When ``prepare`` raises before writing anything into a folder
    this call created (e.g. :class:`mmgt_prep.toy.ToyStore` refusing a path), the folder is removed again.
    """
    root = Path(root)
    marker = root / PREPARING
    if prepare is None or ((root / MANIFEST).is_file() and not marker.exists()):
        return
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        with open(root / PREPARE_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if (root / MANIFEST).is_file() and not marker.exists():
                    return  # another process made it while this one waited
                log.info("%s: no complete clip store, creating it", root)
                marker.touch()
                prepare(root)
                marker.unlink()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except BaseException:
        if created:  # a prepare that refused or failed before writing anything leaves no folder behind
            bookkeeping = {PREPARE_LOCK, PREPARING}
            if {p.name for p in root.iterdir()} <= bookkeeping:
                for name in bookkeeping:
                    (root / name).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    root.rmdir()
        raise


PREP_COMMAND = "mmgt-prep source=videos input=<folder of videos> out={root}"
"""How a store is made from one's own videos (shown by the errors below; docs/prep.md)."""


def open_store(root: str | Path | None) -> ClipStore:
    """The clip store at ``root``, with at least one ok clip.

    Raises:
        ValueError: ``root`` is not set (None or empty), or the store has no ok clip (the message names
            the first failures and how to retry them).
        FileNotFoundError: ``root`` holds no store; the message shows the ``mmgt-prep`` command making one.
    """
    if root is None or str(root) == "":
        raise ValueError(
            "data.root is not set: give the clip store to read, data.root=<store>. Make a store from a "
            f"folder of videos with `{PREP_COMMAND.format(root='<store>')}` (docs/prep.md)"
        )
    root = Path(root)
    if not (root / MANIFEST).is_file():
        what = "no such folder" if not root.exists() else f"no {MANIFEST} in it"
        raise FileNotFoundError(
            f"{root}: no clip store here ({what}). Make one from a folder of videos: "
            f"`{PREP_COMMAND.format(root=root)}` (docs/prep.md), or the toy speakers: "
            f"`mmgt-prep source=toy out={root}`"
        )
    store = ClipStore(root)
    if not store.clips():
        failed = store.failed()
        first = "; ".join(f"{r.id}: {r.error}" for r in failed[:3])
        raise ValueError(
            f"{root}: the clip store has no ok clips ({len(failed)} failed{': ' + first if first else ''}). "
            f"Fix the inputs and rerun `mmgt-prep ... out={root} retry_failed=true`"
        )
    return store


def split_clips(
    store: ClipStore, split: str, speakers: list[str] | None = None, fallback: str | None = None
) -> list[Clip]:
    """The ok clips of ``split`` (those of ``fallback`` when ``split`` has none).

    None at all is a ValueError that lists the store's splits and says how to fix it.
    """
    clips = store.clips(split=split, speakers=speakers)
    if not clips and fallback is not None:
        clips = store.clips(split=fallback, speakers=speakers)
    if clips:
        return clips
    counts: dict[str, int] = {}
    for clip in store.clips(speakers=speakers):
        counts[clip.record.split] = counts.get(clip.record.split, 0) + 1
    where = f" of speakers {speakers}" if speakers else ""
    tried = f"{split!r}" + (f" (nor in {fallback!r}, its fallback)" if fallback else "")
    have = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    raise ValueError(
        f"{store.root}: no ok clips{where} in split {tried}; ok clips per split: {have}. Fix: split the "
        f"store by source video, `{PREP_COMMAND.format(root=store.root)} resplit=true` (split_fractions="
        "{train: 0.8, val: 0.1, test: 0.1}: every split gets a video when there are 3 or more; "
        "docs/prep.md#splits), or validate on a split the store has: data.val_split=<split>"
    )


def store_size(root: str | Path | None) -> int:
    """The frame side S of the clips of the store at ``root`` (its manifest rows' ``size``).

    What the Stage II experiments train at unless ``data.size`` is given. Mixed sizes are a ValueError.
    """
    store = open_store(root)
    sizes = sorted({c.record.size for c in store.clips() if c.has_video and c.record.size})
    if len(sizes) != 1:
        raise ValueError(
            f"{store.root}: the clips have {'no video' if not sizes else f'several sizes {sizes}'}; "
            "give the training size explicitly, data.size=<S> (frames are resized to it on load)"
        )
    return sizes[0]
