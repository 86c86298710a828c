"""Evaluation runner: pair videos, shard them across ranks, feed the metric adapters, gather, write results.

:func:`evaluate` scores a folder of generated videos (optionally against a folder of reference videos) with
any number of :class:`~mmgt_eval.metrics.base.VideoMetric` adapters and returns (and on rank 0 writes) a
results dict: values, per-video scores, each metric's protocol, weight checksums, package versions, the git
commit, counts and declared skips.

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

**Adapters** get ``update(generated, reference)`` with the reference whenever the video has one (metrics
with ``needs_reference = False`` may use it, e.g. to normalise); a metric with ``needs_reference = True`` is
skipped for videos without a reference.

**Distribution.** With ``torch.distributed`` initialised, rank r takes pairs ``r::world`` (sorted by name).
After the loop the per-video scores and skips are gathered with ``all_gather_object``; then, for each metric,
every rank syncs the adapter's ``metric_states()`` (``Metric.sync``), rank 0 calls ``compute()`` with those
synced states (the states' own sync-on-compute is switched off for that call, so ``compute`` runs no
collective) and the results are broadcast. Randomness is seeded per (metric, video) from the protocol seed
and the video name, so results do not depend on the number of ranks.

**Bad input.** A video that cannot be read (or has malformed keypoints) is skipped for every metric; an
adapter raising :class:`~mmgt_eval.metrics.base.VideoSkipped` or
:class:`~mmgt_eval.metrics.base.MetricInputError` (mismatched frame counts or sizes, too short, no audio, ...)
skips that video for that metric. Skips are declared in the results (``skips``, ``metrics.<m>.n_skipped``);
``strict=True`` turns any skip into an error. Grayscale, palette and alpha videos are decoded to RGB and the
conversion is declared per video. A metric whose ``compute`` fails (e.g. fewer than 2 videos for a Fréchet
distance) or returns NaN is reported with ``status: failed`` and its error, never a NaN value; per-video NaN
is an error at once. Infinite values (PSNR of identical frames) are written to JSON as the strings ``"inf"``.
Metrics that could not be built (``unavailable``, e.g. missing weights: :mod:`mmgt_eval.cli`) are reported
``failed`` with their reason next to the others.

**Variants.** Each metric entry names the protocol variant its adapter implements (``variant``, also the
first key of its ``protocol``; ``variants`` at the top lists them all), e.g. ``fvd: stylegan_v``,
``diversity: bailando`` (docs/metrics.md); null for an adapter that declares none.

**Directions.** Each metric entry carries ``higher_is_better`` (the metric's main value) and
``value_higher_is_better`` ({value key: true | false | null}), the direction of every reported value as the
adapter declares it (``value_higher_is_better`` class attribute; undeclared keys get ``higher_is_better``;
null = no direction, e.g. counts, offsets): Sync reports ``sync_c`` (higher is better) and ``sync_d`` (lower).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import importlib.metadata
import json
import logging
import math
import os
import platform
import random
import subprocess
import sys
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.distributed as dist

from mmgt.atomic import write_json
from mmgt.io import MediaError, read_audio, read_video
from mmgt.schema import KEYPOINT_DIMS, NUM_KEYPOINTS, SAMPLE_RATE
from mmgt.untrusted import load_npy
from mmgt_eval.metrics.base import (
    MetricInputError,
    VideoSample,
    VideoSkipped,
    metric_variant,
    value_directions,
)

__all__ = [
    "RESULTS_FORMAT",
    "VIDEO_SUFFIXES",
    "EvaluationError",
    "PairingError",
    "RunProtocol",
    "VideoEntry",
    "VideoPair",
    "discover_videos",
    "evaluate",
    "init_distributed",
    "load_sample",
    "pair_videos",
]

log = logging.getLogger("mmgt_eval")

RESULTS_FORMAT = 1
"""Version of the results JSON layout."""
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
_VERSION_PACKAGES = (
    "mmgt",
    "torch",
    "torchvision",
    "torchmetrics",
    "numpy",
    "scipy",
    "av",
    "lpips",
    "pytorch-fid",
    "mediapipe",
    "opencv-python",
    "python_speech_features",
)


class EvaluationError(RuntimeError):
    """The evaluation cannot produce trustworthy results (bad input under ``strict``, NaN, a rank failed)."""


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
    name: str
    generated: VideoEntry
    reference: VideoEntry | None


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
        d = asdict(self)
        extra = d.pop("extra")
        if self.resize:
            d["resize_interpolation"] = "cv2.INTER_AREA"
        return {**d, **extra}


# --------------------------------------------------------------------------- discovery and pairing
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
        manifest = Path(pairing)
        gen, ref, missing = {}, {}, []
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
    extra_ref = sorted(set(ref) - set(gen))
    no_ref = sorted(set(gen) - set(ref)) if ref_root is not None else []
    if (extra_ref or no_ref) and unmatched == "error":
        parts = []
        if no_ref:
            parts.append(
                f"{len(no_ref)} generated videos have no reference in {ref_root}: {_listing(no_ref)}"
            )
        if extra_ref:
            parts.append(f"{len(extra_ref)} reference videos have no generated video: {_listing(extra_ref)}")
        raise PairingError(
            "unmatched videos (pairing by "
            + ("file name" if str(pairing) == "name" else f"manifest {pairing}")
            + "):\n  "
            + "\n  ".join(parts)
            + "\n(rename them, use a pairing manifest, or set unmatched=skip)"
        )
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


# --------------------------------------------------------------------------- distributed helpers
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


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(obj: Any, world: int) -> list[Any]:
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _broadcast(obj: Any, world: int) -> Any:
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def _synced_states(states: Sequence[Any], world: int) -> Iterator[None]:
    """Sync each Metric's states across ranks (every rank, same order); compute() inside syncs nothing."""
    synced = []
    try:
        for m in states:
            if world > 1:
                m.sync(should_sync=True, distributed_available=lambda: True)
            synced.append((m, m._to_sync))
            m._to_sync = False  # already synced: Metric.compute must not sync again
            m._computed = None
        yield
    finally:
        for m, to_sync in synced:
            m._to_sync = to_sync
            m._computed = None
            if m._is_synced:
                m.unsync()


def _seed_for(seed: int, metric: str, video: str) -> None:
    s = (int(seed) + zlib.crc32(f"{metric}/{video}".encode())) % (2**31)
    random.seed(s)
    np.random.seed(s)  # noqa: NPY002 - adapters may draw from the legacy global generator
    torch.manual_seed(s)


# --------------------------------------------------------------------------- values and provenance
def _as_float(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise EvaluationError(f"{what}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        x = float(value)
    except (TypeError, ValueError) as e:
        raise EvaluationError(f"{what}: expected a number, got {value!r}") from e
    if math.isnan(x):
        raise EvaluationError(f"{what} is NaN")
    return x


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        raise EvaluationError("NaN in results")
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    return x


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages that change metric values."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in _VERSION_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    return out


def git_commit() -> dict[str, Any] | None:
    """Commit (and whether tracked files differ from it) of the checkout mmgt_eval runs from, if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def _write_tensorboard(log_dir: Path, result: dict, step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for metric, entry in result["metrics"].items():
            for key, value in entry.get("values", {}).items():
                if isinstance(value, float) and math.isfinite(value):
                    writer.add_scalar(f"eval/{metric}/{key}", value, global_step=step)
            writer.add_scalar(f"eval_counts/{metric}/n_videos", entry["n_videos"], global_step=step)
            writer.add_scalar(f"eval_counts/{metric}/n_skipped", entry["n_skipped"], global_step=step)
        text = json.dumps(_jsonable({"protocol": result["protocol"], "counts": result["counts"]}), indent=2)
        writer.add_text("eval/protocol", f"```\n{text}\n```", global_step=step)
    finally:
        writer.close()


# --------------------------------------------------------------------------- the runner
def _run_local(
    pairs: Sequence[VideoPair],
    metrics: Mapping[str, Any],
    protocol: RunProtocol,
    strict: bool,
    show_progress: bool,
) -> tuple[dict, list[dict]]:
    from tqdm.auto import tqdm

    per_video: dict[str, dict] = {}
    skips: list[dict] = []

    def skip(video: str, metric: str | None, reason: str, kind: str) -> None:
        skips.append({"video": video, "metric": metric, "kind": kind, "reason": reason})
        where = f"metric {metric}" if metric else "all metrics"
        msg = f"{video}: skipped for {where}: {reason}"
        if strict:
            raise EvaluationError(f"{msg} (strict=true turns skips into errors)")
        log.warning(msg)

    for pair in tqdm(pairs, desc="mmgt-eval", unit="video", disable=not show_progress):
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
            skip(pair.name, None, str(e), "unreadable")
            continue
        per_video[pair.name] = record
        for mname, adapter in metrics.items():
            needs = bool(getattr(adapter, "needs_reference", False))
            if needs and ref is None:
                skip(pair.name, mname, "no reference video", "unpaired")
                continue
            _seed_for(protocol.seed, mname, pair.name)
            try:
                scores = adapter.update(gen, ref)
            except VideoSkipped as e:
                skip(pair.name, mname, e.reason, "skipped")
                continue
            except MetricInputError as e:
                skip(pair.name, mname, str(e), "input_error")
                continue
            record["scores"][mname] = {
                str(k): _as_float(v, f"metric {mname} on video {pair.name}: per-video score {k!r}")
                for k, v in (scores or {}).items()
            }
    return per_video, skips


def evaluate(
    generated_dir: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str] | None,
    metrics: Mapping[str, Any],
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
    rank, world = _rank_world()
    missing_ref = [n for n, m in metrics.items() if getattr(m, "needs_reference", False)]
    if reference_dir is None and missing_ref:
        raise EvaluationError(f"metrics {missing_ref} need reference videos: give a reference folder")
    pairs, extra_ref = pair_videos(generated_dir, reference_dir, pairing, unmatched)
    if len(pairs) < world:
        raise EvaluationError(
            f"{len(pairs)} videos cannot be sharded over {world} ranks (need >= 1 per rank)"
        )
    if device is not None:
        for adapter in metrics.values():
            for m in adapter.metric_states():
                m.to(device)
    started = _dt.datetime.now(_dt.UTC)
    local = pairs[rank::world] if metrics else []  # nothing to score: decode nothing
    error: str | None = None
    local_exc: Exception | None = None
    per_video, skips = {}, []
    try:
        per_video, skips = _run_local(local, metrics, protocol, strict, progress and rank == 0)
    except Exception as e:  # every rank must reach the gather below, or the others wait forever
        error = f"rank {rank}: {type(e).__name__}: {e}"
        if world == 1:
            raise
        local_exc = e
    gathered = _all_gather((per_video, skips, error), world)
    errors = [g[2] for g in gathered if g[2]]
    if errors:
        msg = "evaluation failed on " + "; ".join(errors)
        if error:
            raise EvaluationError(msg) from local_exc
        raise EvaluationError(msg)
    all_videos: dict[str, dict] = {}
    all_skips: list[dict] = []
    for pv, sk, _ in gathered:
        all_videos.update(pv)
        all_skips.extend(sk)
    all_videos = dict(sorted(all_videos.items()))
    all_skips.extend(
        {
            "video": n,
            "metric": None,
            "kind": "unpaired_reference",
            "reason": "reference video has no generated video",
        }
        for n in extra_ref
    )
    all_skips.sort(key=lambda s: (s["video"], s["metric"] or ""))

    metric_results: dict[str, dict] = {}
    for mname, adapter in metrics.items():
        n_ok = sum(1 for v in all_videos.values() if mname in v["scores"])
        n_skip = sum(
            1 for s in all_skips if s["metric"] in (mname, None) and s["kind"] != "unpaired_reference"
        )
        entry: dict[str, Any] = {
            "name": getattr(adapter, "name", mname),
            "higher_is_better": bool(getattr(adapter, "higher_is_better", False)),
            "needs_reference": bool(getattr(adapter, "needs_reference", False)),
            "n_videos": n_ok,
            "n_skipped": n_skip,
        }
        if n_ok == 0:
            entry.update(status="failed", error="no video was scored (all skipped: see skips)")
        else:
            with _synced_states(adapter.metric_states(), world):
                if rank == 0:
                    try:
                        raw = adapter.compute()
                        entry["values"] = {
                            str(k): _as_float(v, f"metric {mname}: value {k!r}") for k, v in raw.items()
                        }
                        entry["value_higher_is_better"] = value_directions(adapter, list(entry["values"]))
                        entry["status"] = "ok"
                    except Exception as e:
                        log.error("metric %s failed: %s: %s", mname, type(e).__name__, e)
                        entry.update(status="failed", error=f"{type(e).__name__}: {e}")
        if rank == 0:
            try:
                entry["protocol"] = _jsonable(adapter.protocol())
            except Exception as e:
                entry["protocol"] = {"error": f"{type(e).__name__}: {e}"}
            entry["variant"] = metric_variant(adapter, entry["protocol"])
            entry["protocol"] = {"variant": entry["variant"], **entry["protocol"]}
        metric_results[mname] = entry
    for mname, given in unavailable.items():
        metric_results[mname] = {"name": mname, "n_videos": 0, "n_skipped": 0, **given, "status": "failed"}

    result: dict[str, Any] | None = None
    if rank == 0:
        conversions: dict[str, int] = {}
        for v in all_videos.values():
            for side in ("generated", "reference"):
                for c in v.get(side, {}).get("conversions", []):
                    key = c.split(" (")[0] if c.startswith("resized") else c
                    conversions[key] = conversions.get(key, 0) + 1
        failed = sorted(n for n, e in metric_results.items() if e["status"] != "ok")
        result = {
            "format": RESULTS_FORMAT,
            "created": started.isoformat(timespec="seconds"),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "generated_dir": str(Path(generated_dir).absolute()),
            "reference_dir": str(Path(reference_dir).absolute()) if reference_dir is not None else None,
            "pairing": str(pairing),
            "world_size": world,
            "protocol": protocol.as_dict(),
            "variants": {m: e.get("variant") for m, e in metric_results.items()},
            "summary": {
                f"{m}/{k}": v for m, e in metric_results.items() for k, v in e.get("values", {}).items()
            },
            "failed_metrics": failed,
            "counts": {
                "n_pairs": len(pairs),
                "n_videos_loaded": len(all_videos),
                "n_skips": len(all_skips),
                "skips_by_kind": _count(s["kind"] for s in all_skips),
                "conversions": conversions,
            },
            "metrics": metric_results,
            "per_video": all_videos,
            "skips": all_skips,
            "weights": dict(weights or {}),
            "config": dict(config or {}),
            "versions": package_versions(),
            "git": git_commit(),
            "command": sys.argv,
        }
        result = _jsonable(result)
        if results_path is not None:
            write_json(Path(results_path), result, allow_nan=False)
            log.info("results: %s", results_path)
        if tensorboard_dir is not None:
            _write_tensorboard(Path(tensorboard_dir), result, tensorboard_step)
    result = _broadcast(result, world)
    if strict and result["failed_metrics"]:
        raise EvaluationError(
            "metrics failed: "
            + "; ".join(f"{n}: {result['metrics'][n]['error']}" for n in result["failed_metrics"])
        )
    return result


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in items:
        out[k] = out.get(k, 0) + 1
    return out
