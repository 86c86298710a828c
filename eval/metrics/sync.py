"""Sync-C / Sync-D (LSE-C / LSE-D): SyncNet confidence and min distance per video, averaged over videos.

Per video (metrics-reference.md §4): resample to 25 fps (nearest frame in time) -> face tracks
(:mod:`mmgt_eval.face`) -> for the longest track (``aggregation="longest"``, our recommendation) or every
track (``"mean"``: mean over the video's tracks) crop the face, cut the audio to the track span
(``[start / 25, stop / 25)``) and score it with :func:`mmgt_eval.syncnet.score_crops`. The reported values
are the means over scored videos; videos without audio, without a valid face track or too short for one
SyncNet window are declared skips counted in the result (``sync_skipped_*``), never NaN.

Three layers: :func:`score_video` (functional, any embedder), :class:`SyncMetric` (torchmetrics states that
sync across ranks) and :class:`SyncAdapter` (the runner's :class:`~mmgt_eval.metrics.base.MetricAdapter`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torchmetrics
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from mmgt_eval.face import FaceDetector, FaceTrackConfig, crop_track, face_tracks, make_detector
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
    validate_frames,
    weights_record,
)
from mmgt_eval.syncnet import (
    DEFAULT_VSHIFT,
    MFCC_PER_FRAME,
    NUM_MFCC,
    PDIST_EPS,
    SYNCNET_FPS,
    SYNCNET_SAMPLE_RATE,
    SYNCNET_SAMPLES_PER_FRAME,
    WINDOW_FRAMES,
    SyncEmbedder,
    load_syncnet,
    num_windows,
    score_crops,
)

SkipReason = Literal["no_audio", "no_face", "too_short"]
SKIP_REASONS: tuple[str, ...] = ("no_audio", "no_face", "too_short")
FPS_TOLERANCE: float = 1e-3


# --------------------------------------------------------------------------- functional
def resample_indices(n_frames: int, fps: float, target_fps: float = SYNCNET_FPS) -> np.ndarray:
    """Source frame of each output frame at ``target_fps``: the nearest in time (ties to the earlier one).

    ``n_frames`` at ``fps`` span ``n_frames / fps`` seconds -> ``round(n_frames * target_fps / fps)`` frames;
    output frame j (time j / target_fps) takes source frame ``floor(j * fps / target_fps + 0.5)``.
    """
    if fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive, got {fps} -> {target_fps}")
    n_out = int(round(n_frames * target_fps / fps))
    idx = np.floor(np.arange(n_out) * (fps / target_fps) + 0.5 - 1e-9).astype(np.int64)
    return np.clip(idx, 0, max(0, n_frames - 1))


@dataclass
class VideoSyncResult:
    """Outcome for one video. ``status`` is ``"ok"`` or a skip reason; scores are None unless ok."""

    status: str
    sync_c: float | None = None
    sync_d: float | None = None
    offset: int | None = None
    n_windows: int = 0
    n_frames: int = 0
    """Frames after resampling to 25 fps."""
    detection_rate: float = 0.0
    track_coverage: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    """Per scored track: start, stop, sync_c, sync_d, offset, n_windows."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True when the video was scored."""
        return self.status == "ok"


def score_video(
    net: SyncEmbedder,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None,
    face: FaceTrackConfig | None = None,
    *,
    detector: FaceDetector | None = None,
    vshift: int = DEFAULT_VSHIFT,
    aggregation: Literal["longest", "mean"] = "longest",
    batch_size: int = 20,
    device: str | torch.device = "cpu",
) -> VideoSyncResult:
    """Sync-C/D of one video: (T, H, W, 3) uint8 RGB at ``fps`` and (N,) 16 kHz audio aligned at frame 0."""
    face = face or FaceTrackConfig()
    if aggregation not in ("longest", "mean"):
        raise ValueError(f"aggregation must be 'longest' or 'mean', got {aggregation!r}")
    if audio is None or len(audio) == 0:
        return VideoSyncResult("no_audio", detail="no audio track")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (N,) at 16 kHz, got shape {audio.shape}")
    if abs(fps - SYNCNET_FPS) > FPS_TOLERANCE:
        frames = frames[resample_indices(len(frames), fps)]
    result = face_tracks(frames, face, detector)
    base = {
        "n_frames": len(frames),
        "detection_rate": result.detection_rate,
        "track_coverage": result.track_coverage,
    }
    if not result.tracks:
        return VideoSyncResult(
            "no_face",
            detail=f"no face track (faces detected in {result.detection_rate:.0%} of {len(frames)} frames; "
            f"min_track={face.min_track}, min_face_size={face.min_face_size})",
            **base,
        )
    tracks = sorted(result.tracks, key=len, reverse=True)  # stable: the earliest of equal length first
    if aggregation == "longest":
        tracks = tracks[:1]
    scored: list[dict[str, Any]] = []
    for track in tracks:
        segment = audio[track.start * SYNCNET_SAMPLES_PER_FRAME : track.stop * SYNCNET_SAMPLES_PER_FRAME]
        if num_windows(len(track), len(segment)) <= 0:
            continue
        crops = crop_track(frames, track, face)
        s = score_crops(net, crops, segment, vshift=vshift, batch_size=batch_size, device=device)
        scored.append(
            {
                "start": track.start,
                "stop": track.stop,
                "sync_c": s["conf"],
                "sync_d": s["min_dist"],
                "offset": s["offset"],
                "n_windows": s["n_windows"],
            }
        )
    if not scored:
        return VideoSyncResult(
            "too_short",
            detail=f"face tracks {[(t.start, t.stop) for t in tracks]} with {len(audio)} audio samples "
            f"give no {WINDOW_FRAMES}-frame window",
            **base,
        )
    return VideoSyncResult(
        "ok",
        sync_c=float(np.mean([s["sync_c"] for s in scored])),
        sync_d=float(np.mean([s["sync_d"] for s in scored])),
        offset=int(scored[0]["offset"]),
        n_windows=int(sum(s["n_windows"] for s in scored)),
        tracks=scored,
        **base,
    )


# --------------------------------------------------------------------------- metric
class SyncMetric(RunnerSyncedMetric):
    """Mean Sync-C / Sync-D over videos, plus per-video values and skip counts.

    ``update(sync_c, sync_d, offset)`` adds scored videos (scalars or (B,) tensors);
    ``update(skipped="no_face" | "no_audio" | "too_short")`` counts a skipped video. ``compute()`` returns
    ``sync_c`` / ``sync_d`` (means over scored videos, absent when none was scored: never NaN),
    ``sync_offset_abs_mean``, ``sync_n_scored`` and ``sync_skipped_<reason>``. Sums are float64.
    """

    is_differentiable = False
    higher_is_better = True  # Sync-C; Sync-D is lower-is-better
    full_state_update = False

    sync_c_sum: Tensor
    sync_d_sum: Tensor
    offset_abs_sum: Tensor
    n_scored: Tensor
    skipped_no_audio: Tensor
    skipped_no_face: Tensor
    skipped_too_short: Tensor
    sync_c_values: list[Tensor]
    sync_d_values: list[Tensor]
    offset_values: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("sync_c_sum", "sync_d_sum", "offset_abs_sum"):
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("n_scored", *(f"skipped_{r}" for r in SKIP_REASONS)):
            self.add_state(name, torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        for name in ("sync_c_values", "sync_d_values", "offset_values"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(
        self,
        sync_c: Tensor | float | None = None,
        sync_d: Tensor | float | None = None,
        offset: Tensor | int | None = None,
        skipped: str | None = None,
    ) -> None:
        """Add one video's Sync-C, Sync-D and offset, or count it under ``skipped``."""
        if skipped is not None:
            if skipped not in SKIP_REASONS:
                raise ValueError(f"skipped must be one of {SKIP_REASONS}, got {skipped!r}")
            state = getattr(self, f"skipped_{skipped}")
            setattr(self, f"skipped_{skipped}", state + 1)
            return
        if sync_c is None or sync_d is None or offset is None:
            raise ValueError("update needs sync_c, sync_d and offset (or skipped=<reason>)")
        c = torch.as_tensor(sync_c, dtype=torch.float64, device=self.device).reshape(-1)
        d = torch.as_tensor(sync_d, dtype=torch.float64, device=self.device).reshape(-1)
        o = torch.as_tensor(offset, dtype=torch.int64, device=self.device).reshape(-1)
        if not (len(c) == len(d) == len(o)):
            raise ValueError(f"sync_c, sync_d, offset sizes differ: {len(c)}, {len(d)}, {len(o)}")
        if not (torch.isfinite(c).all() and torch.isfinite(d).all()):
            raise ValueError("non-finite Sync-C / Sync-D value")
        self.sync_c_sum += c.sum()
        self.sync_d_sum += d.sum()
        self.offset_abs_sum += o.abs().sum().double()
        self.n_scored += len(c)
        self.sync_c_values.append(c)
        self.sync_d_values.append(d)
        self.offset_values.append(o)

    def compute(self) -> dict[str, Tensor]:
        """Mean Sync-C, Sync-D and |offset| over scored videos (when any), plus scored/skipped counts."""
        out: dict[str, Tensor] = {"sync_n_scored": self.n_scored.clone()}
        for r in SKIP_REASONS:
            out[f"sync_skipped_{r}"] = getattr(self, f"skipped_{r}").clone()
        n = int(self.n_scored)
        if n > 0:
            out["sync_c"] = self.sync_c_sum / n
            out["sync_d"] = self.sync_d_sum / n
            out["sync_offset_abs_mean"] = self.offset_abs_sum / n
        return out

    def per_video(self) -> dict[str, np.ndarray]:
        """Scored videos' values in update order (after a sync: concatenated across ranks)."""

        def cat(x: list[Tensor] | Tensor, dtype: torch.dtype) -> np.ndarray:
            if isinstance(x, list) and not x:
                return np.zeros(0)
            return dim_zero_cat(x).to(dtype).cpu().numpy()

        return {
            "sync_c": cat(self.sync_c_values, torch.float64),
            "sync_d": cat(self.sync_d_values, torch.float64),
            "sync_offset": cat(self.offset_values, torch.int64),
        }


# --------------------------------------------------------------------------- runner adapter
def _resolve_registry(name: str) -> Path:
    from mmgt_eval.weights import resolve

    return resolve(name)


class SyncAdapter(MetricAdapter):
    """Sync-C/D for the runner: ``update(generated)`` -> ``{"sync_c", "sync_d", "sync_offset"}``.

    Args:
        weights_path: ``syncnet_v2.model`` (original format); None: looked up in the weights registry
            (``syncnet_v2``), a clear error when absent.
        face: face-track settings (:class:`~mmgt_eval.face.FaceTrackConfig` fields); for ``detector: s3fd``
            without ``s3fd_weights`` the registry entry ``s3fd`` is used.
        vshift: offsets searched (+-frames).
        aggregation: ``longest`` (score the longest face track) or ``mean`` (mean over the video's tracks).
        batch_size: windows per SyncNet forward pass.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda:0``, ...
        net: an already built embedder with ``forward_lip`` / ``forward_aud`` (tests inject oracles here);
            replaces ``weights_path``.

    Videos not at 25 fps are resampled (nearest frame) first. Skips (no audio, no face track, too short)
    update the counts, then raise :class:`~mmgt_eval.metrics.base.VideoSkipped`.
    """

    name = "sync"
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "sync_c": True,
        "sync_d": False,
        "sync_offset_abs_mean": None,
        "sync_n_scored": None,
        **{f"sync_skipped_{r}": None for r in SKIP_REASONS},
    }
    needs_reference = False

    def __init__(
        self,
        weights_path: str | Path | None = None,
        *,
        face: FaceTrackConfig | dict[str, Any] | None = None,
        vshift: int = DEFAULT_VSHIFT,
        aggregation: Literal["longest", "mean"] = "longest",
        batch_size: int = 20,
        device: str = "auto",
        net: SyncEmbedder | None = None,
    ) -> None:
        if aggregation not in ("longest", "mean"):
            raise ValueError(f"aggregation must be 'longest' or 'mean', got {aggregation!r}")
        if vshift < 1:
            raise ValueError(f"vshift must be >= 1, got {vshift}")
        self.face = FaceTrackConfig.from_any(face)
        if self.face.detector == "s3fd" and not self.face.s3fd_weights:
            self.face = FaceTrackConfig.from_any(
                {**self.face.to_dict(), "s3fd_weights": str(_resolve_registry("s3fd"))}
            )
        self.vshift = int(vshift)
        self.aggregation = aggregation
        self.batch_size = int(batch_size)
        if device == "auto":
            device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.weights_path: Path | None = None
        if net is None:
            self.weights_path = (
                Path(weights_path) if weights_path is not None else _resolve_registry("syncnet_v2")
            )
            net = load_syncnet(self.weights_path, self.device)
        self.net = net
        self.metric = SyncMetric()
        self._detector: FaceDetector | None = None

    @property
    def variant(self) -> str:
        """``syncnet_python`` with S3FD face tracks (the reference), else ``syncnet_python+<detector>``."""
        return "syncnet_python" if self.face.detector == "s3fd" else f"syncnet_python+{self.face.detector}"

    def _get_detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = make_detector(self.face, self.device)
        return self._detector

    def score(self, sample: VideoSample) -> VideoSyncResult:
        """The full per-video result (track spans, detection rate, ...) without touching the metric states."""
        validate_frames(sample.frames, sample.name)
        if sample.audio is not None and np.asarray(sample.audio).ndim != 1:
            raise MetricInputError(
                f"{sample.name}: audio must be mono (N,), got shape {np.shape(sample.audio)}"
            )
        if not sample.fps or sample.fps <= 0:
            raise MetricInputError(f"{sample.name}: invalid frame rate {sample.fps}")
        return score_video(
            self.net,
            sample.frames,
            float(sample.fps),
            sample.audio,
            self.face,
            detector=self._get_detector(),
            vshift=self.vshift,
            aggregation=self.aggregation,
            batch_size=self.batch_size,
            device=self.device,
        )

    def update(self, generated: VideoSample, reference: VideoSample | None = None) -> dict[str, float]:
        """Score the generated video; record it, or count the skip and raise VideoSkipped."""
        r = self.score(generated)
        if not r.ok:
            self.metric.update(skipped=r.status)
            raise VideoSkipped(generated.name, f"{r.status}: {r.detail}")
        self.metric.update(r.sync_c, r.sync_d, r.offset)
        return {"sync_c": float(r.sync_c), "sync_d": float(r.sync_d), "sync_offset": float(r.offset)}

    def compute(self) -> dict[str, float]:
        """The SyncMetric results as floats."""
        return {k: float(v) for k, v in self.metric.compute().items()}

    def protocol(self) -> dict:
        """The Sync-C/Sync-D definition, SyncNet weights and face/offset settings."""
        return {
            "metric": "sync",
            "definition": "Sync-C = median_j - min_j, Sync-D = min_j of the window-averaged SyncNet "
            "distances over offsets j in [-vshift, vshift] (joonson/syncnet_python "
            "SyncNetInstance.evaluate); mean over scored videos",
            "fps": SYNCNET_FPS,
            "fps_resampling": "nearest frame in time",
            "sample_rate": SYNCNET_SAMPLE_RATE,
            "audio": "float [-1, 1] -> int16 (x 32768, rounded) -> python_speech_features.mfcc defaults",
            "mfcc": {"numcep": NUM_MFCC, "winlen": 0.025, "winstep": 0.01, "per_video_frame": MFCC_PER_FRAME},
            "window_frames": WINDOW_FRAMES,
            "vshift": self.vshift,
            "pdist_eps": PDIST_EPS,
            "video_input": "RGB crops -> BGR float 0-255 (no JPEG round trip)",
            "aggregation": self.aggregation,
            "face": self.face.to_dict(),
            "weights": weights_record(self.weights_path) if self.weights_path is not None else "injected",
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The one SyncMetric state synced by the runner."""
        return [self.metric]

    def close(self) -> None:
        """Close the face detector, if one was built."""
        if self._detector is not None and hasattr(self._detector, "close"):
            self._detector.close()
        self._detector = None


__all__ = ["SyncAdapter", "SyncMetric", "VideoSyncResult", "resample_indices", "score_video"]
