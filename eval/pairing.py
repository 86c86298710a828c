"""Discovery, pairing and loading of the videos mmgt-eval scores (:func:`pair_videos`, :func:`load_sample`).

**Discovery and pairing.** Every video file under a folder (``.mp4 .mov .mkv .avi .webm .m4v``, searched
recursively; hidden files and folders ignored) gets a *name*: its path relative to the folder without the
suffix (``a.mp4`` -> ``a``, ``spk/a.mp4`` -> ``spk/a``). A file called ``video.<ext>`` names its folder
instead (clip-store layout ``<speaker>/<id>/video.mp4`` -> ``<speaker>/<id>``). Generated and reference
videos are paired by name; names present on one side only are an error listing them (``unmatched="skip"``
instead evaluates unpaired generated videos with the metrics that need no reference and declares the rest
as skips).
``pairing=<manifest.csv|.jsonl>`` pairs explicitly: columns/keys ``generated`` (required), ``reference`` and
``name`` (optional); relative paths are relative to the generated / reference folder.

**Companion files.** For ``dir/<stem>.<ext>``: keypoints ``dir/<stem>.npy`` or ``dir/<stem>/keypoints.npy``
((T, 134, 3) stored layout); audio from the video's own track, else ``dir/<stem>.wav``. For
``dir/video.<ext>``: ``dir/keypoints.npy`` and ``dir/audio.wav``. Audio is resampled to 16 kHz mono.
Grayscale, palette and alpha videos are decoded to RGB and the conversion is declared per video.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from mmgt.io import read_audio, read_video
from mmgt.schema import KEYPOINT_DIMS, NUM_KEYPOINTS, SAMPLE_RATE
from mmgt.untrusted import load_npy
from mmgt_eval.metrics.base import EvaluationError, MetricInputError, VideoSample

__all__ = [
    "VIDEO_SUFFIXES",
    "PairingError",
    "VideoEntry",
    "VideoPair",
    "discover_videos",
    "load_sample",
    "pair_videos",
]

log = logging.getLogger("mmgt_eval")

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class PairingError(EvaluationError):
    """Generated and reference videos do not pair up (the message lists the unmatched names)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video file and its companion files."""

    path: Path
    keypoints: Path | None = None
    audio: Path | None = None
    """Companion audio file, used when the video has no audio track."""


@dataclass(frozen=True)
class VideoPair:
    """One generated video and its reference (None when unpaired), matched by name."""

    name: str
    generated: VideoEntry
    reference: VideoEntry | None


def _companions(path: Path) -> VideoEntry:
    if path.stem == "video":
        kp, audio = path.parent / "keypoints.npy", path.parent / "audio.wav"
        kps = [kp]
    else:
        kps = [path.with_suffix(".npy"), path.parent / path.stem / "keypoints.npy"]
        audio = path.with_suffix(".wav")
    return VideoEntry(
        path=path,
        keypoints=next((k for k in kps if k.is_file()), None),
        audio=audio if audio.is_file() else None,
    )


def _video_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    if rel.stem == "video" and len(rel.parts) > 1:
        return rel.parent.as_posix()
    return rel.with_suffix("").as_posix()


def discover_videos(folder: str | os.PathLike[str]) -> dict[str, VideoEntry]:
    """``{name: VideoEntry}`` of every video under ``folder`` (see the module docstring for names)."""
    root = Path(folder).absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: video folder not found")
    found: dict[str, VideoEntry] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        if not p.is_file():
            continue
        name = _video_name(p, root)
        if name in found:
            raise PairingError(f"{root}: two videos have the name {name!r}: {found[name].path} and {p}")
        found[name] = _companions(p)
    if not found:
        raise PairingError(f"{root}: no videos found (looked for {' '.join(VIDEO_SUFFIXES)}, recursively)")
    return found


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def _read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise PairingError(f"{path}: pairing manifest not found")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise PairingError(f"{path}:{i}: not JSON: {e}") from e
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        raise PairingError(f"{path}: pairing manifest must be .csv or .jsonl")
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("generated"):
            raise PairingError(f"{path}: row {i} has no 'generated' entry")
    if not rows:
        raise PairingError(f"{path}: pairing manifest is empty")
    return rows


def _from_manifest(
    manifest: Path, gen_root: Path, ref_root: Path | None
) -> tuple[dict[str, VideoEntry], dict[str, VideoEntry]]:
    """({name: generated entry}, {name: reference entry}) of a pairing manifest (missing files: an error)."""
    gen: dict[str, VideoEntry] = {}
    ref: dict[str, VideoEntry] = {}
    missing: list[str] = []
    for row in _read_manifest(manifest):
        g = gen_root / row["generated"]
        name = row.get("name") or Path(row["generated"]).with_suffix("").as_posix()
        if name in gen:
            raise PairingError(f"{manifest}: name {name!r} appears twice")
        if not g.is_file():
            missing.append(str(g))
        gen[name] = _companions(g)
        if row.get("reference"):
            if ref_root is None:
                raise PairingError(f"{manifest}: has reference entries but no reference folder was given")
            r = ref_root / row["reference"]
            if not r.is_file():
                missing.append(str(r))
            ref[name] = _companions(r)
    if missing:
        raise PairingError(f"{manifest}: {len(missing)} listed files do not exist: {_listing(missing)}")
    return gen, ref


def _unmatched_error(
    no_ref: list[str], extra_ref: list[str], ref_root: Path | None, pairing: str
) -> PairingError:
    parts = []
    if no_ref:
        parts.append(f"{len(no_ref)} generated videos have no reference in {ref_root}: {_listing(no_ref)}")
    if extra_ref:
        parts.append(f"{len(extra_ref)} reference videos have no generated video: {_listing(extra_ref)}")
    how = "file name" if pairing == "name" else f"manifest {pairing}"
    return PairingError(
        f"unmatched videos (pairing by {how}):\n  "
        + "\n  ".join(parts)
        + "\n(rename them, use a pairing manifest, or set unmatched=skip)"
    )


def pair_videos(
    generated_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str] | None = None,
    pairing: str | os.PathLike[str] = "name",
    unmatched: str = "error",
) -> tuple[list[VideoPair], list[str]]:
    """Pairs sorted by name, and the names of reference videos no generated video pairs with.

    ``unmatched="error"`` raises :class:`PairingError` listing the names on either side that have no
    partner; ``"skip"`` keeps unpaired generated videos (reference None) and returns the unpaired
    reference names.
    """
    if unmatched not in ("error", "skip"):
        raise ValueError(f"unmatched must be 'error' or 'skip', got {unmatched!r}")
    gen_root = Path(generated_dir).absolute()
    ref_root = Path(reference_dir).absolute() if reference_dir is not None else None
    if str(pairing) == "name":
        gen = discover_videos(gen_root)
        ref = discover_videos(ref_root) if ref_root is not None else {}
    else:
        gen, ref = _from_manifest(Path(pairing), gen_root, ref_root)
    extra_ref = sorted(set(ref) - set(gen))
    no_ref = sorted(set(gen) - set(ref)) if ref_root is not None else []
    if (extra_ref or no_ref) and unmatched == "error":
        raise _unmatched_error(no_ref, extra_ref, ref_root, str(pairing))
    pairs = [VideoPair(name, gen[name], ref.get(name)) for name in sorted(gen)]
    return pairs, extra_ref


# --------------------------------------------------------------------------- loading
def _pixel_conversion(path: Path) -> str | None:
    """How decoding to RGB changes this video's pixels (grayscale, palette, alpha), or None."""
    try:
        with av.open(str(path)) as container:
            fmt_name = container.streams.video[0].codec_context.pix_fmt
    except (av.error.FFmpegError, IndexError, OSError):
        return None  # read_video reports unreadable files
    if not fmt_name:
        return None
    fmt = av.VideoFormat(fmt_name)
    if fmt.has_palette:
        return f"palette video ({fmt_name}) decoded to RGB"
    n = len(fmt.components)
    if n == 1:
        return f"grayscale video ({fmt_name}) converted to RGB (channel replicated)"
    if n == 2:
        return f"grayscale+alpha video ({fmt_name}) converted to RGB (channel replicated, alpha dropped)"
    if n == 4:
        return f"video with alpha ({fmt_name}) converted to RGB (alpha dropped, not composited)"
    return None


def _load_keypoints(path: Path, n_frames: int, max_frames: int | None) -> np.ndarray:
    try:
        kp = load_npy(path, "keypoints (T, 134, 3)")
    except (OSError, ValueError) as e:
        raise MetricInputError(f"cannot read keypoints: {e}") from e
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, KEYPOINT_DIMS):
        raise MetricInputError(
            f"{path}: keypoints must be (T, {NUM_KEYPOINTS}, {KEYPOINT_DIMS}), got shape {kp.shape}"
        )
    if not np.isfinite(kp).all():
        raise MetricInputError(f"{path}: keypoints contain NaN or inf")
    if max_frames is not None:
        kp = kp[:max_frames]
    return np.ascontiguousarray(kp, dtype=np.float32)


def load_sample(
    name: str, entry: VideoEntry, max_frames: int | None = None, resize: int | None = None
) -> tuple[VideoSample, dict]:
    """Decode one video (+ 16 kHz audio, + keypoints) into a VideoSample and an info dict for the results."""
    conversions = []
    conv = _pixel_conversion(entry.path)
    if conv:
        conversions.append(conv)
    data = read_video(entry.path, with_audio=True, sample_rate=SAMPLE_RATE, max_frames=max_frames)
    frames = data.frames
    audio, audio_source = data.audio, "track" if data.audio is not None and data.audio.size else None
    if audio_source is None:
        audio = None
        if entry.audio is not None:
            audio = read_audio(entry.audio, sample_rate=SAMPLE_RATE)
            if max_frames is not None and frames.shape[0] >= max_frames:
                audio = audio[: int(round(frames.shape[0] / data.fps * SAMPLE_RATE))]
            audio_source = str(entry.audio)
    keypoints, keypoints_error = None, None
    if entry.keypoints is not None:
        try:  # invalid keypoints skip only the keypoint metrics (VideoSample.keypoints_error says why)
            keypoints = _load_keypoints(entry.keypoints, frames.shape[0], max_frames)
        except MetricInputError as e:
            keypoints_error = str(e)
            log.warning("%s: %s; keypoint metrics skip this video", name, e)
    if resize and frames.shape[1:3] != (resize, resize):
        import cv2

        conversions.append(
            f"resized {frames.shape[2]}x{frames.shape[1]} -> {resize}x{resize} (cv2.INTER_AREA)"
        )
        frames = np.stack([cv2.resize(f, (resize, resize), interpolation=cv2.INTER_AREA) for f in frames])
    info = {
        "path": str(entry.path),
        "n_frames": int(frames.shape[0]),
        "size": [int(frames.shape[1]), int(frames.shape[2])],
        "fps": float(data.fps),
        "audio": audio_source,
        "keypoints": str(entry.keypoints) if entry.keypoints is not None else None,
        "conversions": conversions,
    }
    if keypoints_error:
        info["keypoints_error"] = keypoints_error
    sample = VideoSample(
        name=name,
        frames=frames,
        fps=float(data.fps),
        audio=audio,
        keypoints=keypoints,
        keypoints_error=keypoints_error,
    )
    return sample, info
