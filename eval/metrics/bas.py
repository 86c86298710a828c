"""Beat alignment (BAS / BC) of 2-D keypoints with speech onsets: functional core, ``Metric``, runner adapter.

Algorithms and the variants they reproduce are in ``../shared/docs/metrics-reference.md`` §5.4; every preset
names the definition it implements and :meth:`BASAdapter.protocol` writes it into the results. Keypoints are
handled as in :mod:`mmgt_eval.metrics.keypoints` (model space, gaps interpolated over time).

General form, averaged over **audio** beats (directional)::

    BAS = 1/|B_a| * sum_{a in B_a} exp(-min_{m in B_m} (a - m)^2 / (2 sigma^2))

* Audio beats: speech onsets, librosa 0.10.2 ``onset.onset_detect(y, sr=16000)`` re-implemented in numpy
  (:mod:`mmgt_eval.metrics.onset`).
* Motion beats, one detector per reference (:data:`BAS_PRESETS`): ``bailando`` (Bailando/UnifiedGesture:
  minima of the Gaussian-smoothed mean joint speed), ``ha2g`` (HA2G BC: minima of the arm joint-angle change),
  ``diffted`` (DiffTED BC: minima of the mean absolute second difference), ``emage`` (EMAGE BC: per-joint
  speed minima above a threshold, averaged over joints).
* Times are in seconds on both sides: a motion beat at index ``t`` is at ``t / fps`` (UnifiedGesture's
  script compares onset frames at 31.25 fps with motion frames at the data rate; that unit mismatch is not
  reproduced).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torchmetrics
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema
from torch import Tensor

from mmgt import schema as S
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
)
from mmgt_eval.metrics.keypoints import _check_keypoints, _keypoints_of, joint_indices, pose_xy
from mmgt_eval.metrics.onset import onset_detect

__all__ = [
    "BAS_PRESETS",
    "HA2G_ANGLE_BONES",
    "HA2G_ANGLE_PAIRS",
    "HA2G_CHANGE_ANGLE",
    "MIN_BEAT_FRAMES",
    "BASAdapter",
    "BeatAlignConfig",
    "BeatAlignMetric",
    "ClipBeatAlignment",
    "beat_align_score",
    "beat_alignment_clip",
    "motion_beats",
]


# =========================================================================== motion beats
HA2G_ANGLE_BONES: tuple[tuple[int, int], ...] = ((1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7))
"""HA2G direction vectors 3-8 in OpenPose-18 joints: neck->R shoulder->R elbow->R wrist, same on the left."""
HA2G_ANGLE_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (3, 4), (4, 5))
"""Bone pairs whose angle HA2G tracks (its dir-vec pairs (3,4), (4,5), (6,7), (7,8))."""
HA2G_CHANGE_ANGLE: tuple[float, ...] = (
    0.0034540758933871984,
    0.007043459918349981,
    0.003493624273687601,
    0.007205077446997166,
)
"""HA2G's per-pair mean angle change (fraction of pi per frame) on TED 3-D poses, used as divisors."""


def _speed_minima(xy: np.ndarray, fps: float, smoothing: float, order: int) -> np.ndarray:
    """Bailando ``calc_db``: minima of G(mean_j ||p[t+1,j] - p[t,j]||, smoothing); index t -> t / fps."""
    speed = np.linalg.norm(xy[1:] - xy[:-1], axis=-1).mean(axis=1)
    if smoothing > 0:
        speed = gaussian_filter1d(speed, smoothing)
    return argrelextrema(speed, np.less, order=order)[0].astype(np.float64) / fps


def _margin_minima(curve: np.ndarray, threshold: float) -> np.ndarray:
    """Indices t in [2, T-2] with curve[t] below both neighbours and one neighbour >= curve[t] + threshold."""
    out = []
    for t in range(2, curve.shape[0] - 1):
        c = curve[t]
        if (
            c < curve[t - 1]
            and c < curve[t + 1]
            and (curve[t - 1] - c >= threshold or curve[t + 1] - c >= threshold)
        ):
            out.append(t)
    return np.asarray(out, dtype=np.int64)


def _angle_change_minima(
    xy_body: np.ndarray, fps: float, threshold: float, change_angle: Sequence[float]
) -> np.ndarray:
    """HA2G BC motion beats from OpenPose-18 body positions (T, 18, 2)."""
    bones = np.stack([xy_body[:, b] - xy_body[:, a] for a, b in HA2G_ANGLE_BONES], axis=1)  # (T, 6, 2)
    bones = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
    diff = np.zeros(xy_body.shape[0])
    for k, (i, j) in enumerate(HA2G_ANGLE_PAIRS):
        angle = np.arccos(np.clip((bones[:, i] * bones[:, j]).sum(-1), -1.0, 1.0)) / np.pi
        diff[1:] += np.abs(angle[1:] - angle[:-1]) / change_angle[k] / len(HA2G_ANGLE_PAIRS)
    return _margin_minima(diff, threshold).astype(np.float64) / fps


def _accel_minima(xy: np.ndarray, fps: float, threshold: float) -> np.ndarray:
    """DiffTED BC motion beats: minima of mean_d |second difference| (zero-padded like DiffTED)."""
    x = xy.reshape(xy.shape[0], -1)
    vel = np.concatenate([np.zeros((1, x.shape[1])), x[1:] - x[:-1]])
    acc = np.concatenate([np.zeros((1, x.shape[1])), vel[1:] - vel[:-1]])
    return _margin_minima(np.abs(acc).mean(axis=1), threshold).astype(np.float64) / fps


def _per_joint_speed_minima(
    xy: np.ndarray, fps: float, order: int, threshold: float, mean_speed: np.ndarray | None
) -> list[np.ndarray]:
    """EMAGE BC motion beats per joint: minima (``order``) of speed / mean speed, kept where > threshold.

    Speed by central differences (forward at the first frame, backward at the last) in units per second.
    ``mean_speed`` (J,) is EMAGE's dataset mean speed; None uses each joint's mean speed over the clip.
    """
    dt = 1.0 / fps
    vel = np.concatenate(
        [(xy[1:2] - xy[:1]) / dt, (xy[2:] - xy[:-2]) / (2 * dt), (xy[-1:] - xy[-2:-1]) / dt], axis=0
    )
    speed = np.linalg.norm(vel, axis=-1)  # (T, J)
    norm = speed.mean(axis=0) if mean_speed is None else np.asarray(mean_speed, dtype=np.float64)
    speed = speed / np.maximum(norm, 1e-12)
    beats = []
    for j in range(speed.shape[1]):
        idx = argrelextrema(speed[:, j], np.less, order=order)[0]
        beats.append(idx[speed[idx, j] > threshold].astype(np.float64) / fps)
    return beats


def beat_align_score(audio_beats: Sequence[float], motion_beats: Sequence[float], sigma: float) -> float:
    """BAS = mean over audio beats a of exp(-min_m (a - m)^2 / (2 sigma^2)), in (0, 1].

    Directional: averaged over ``audio_beats`` (all references do so); swapping the arguments changes the
    value. Units are those of the inputs and ``sigma`` (seconds here). No motion beats gives 0 (EMAGE's
    convention; callers decide whether to count such clips). Raises ``ValueError`` without audio beats.
    """
    a = np.asarray(audio_beats, dtype=np.float64).reshape(-1)
    m = np.asarray(motion_beats, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError("beat_align_score needs at least one audio beat")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if m.size == 0:
        return 0.0
    d2 = ((a[:, None] - m[None, :]) ** 2).min(axis=1)
    return float(np.exp(-d2 / (2.0 * sigma**2)).mean())


@dataclass(frozen=True)
class BeatAlignConfig:
    """One beat-alignment definition. ``sigma`` is in seconds, or in frames when ``sigma_unit="frames"``."""

    name: str
    reference: str
    motion_beats: str  # speed_minima | angle_change | accel_minima | per_joint_speed_minima
    sigma: float
    sigma_unit: str = "seconds"
    joints: str | tuple[int, ...] = "upper_body"
    smoothing: float = 0.0  # speed_minima: Gaussian sigma in frames
    order: int = 1  # speed_minima / per_joint_speed_minima: argrelextrema order
    threshold: float = 0.0  # angle_change / accel_minima: neighbour margin; per_joint: minimum speed
    change_angle: tuple[float, ...] = HA2G_CHANGE_ANGLE
    no_motion_beats: str = "zero"  # zero: the clip scores 0 | skip: the clip is not counted
    weighting: str = "clip"  # clip: plain mean | onsets: weighted by audio-beat count | frames: by length
    notes: str = ""  # where this 2-D, whole-clip version departs from the reference

    def sigma_seconds(self, fps: float) -> float:
        """``sigma`` in seconds at ``fps``."""
        return self.sigma / fps if self.sigma_unit == "frames" else self.sigma


BAS_PRESETS: dict[str, BeatAlignConfig] = {
    "bailando": BeatAlignConfig(
        name="bailando",
        reference="lisiyao21/Bailando utils/beat_align_score.py (BA, calc_db); YoungSeng/UnifiedGesture "
        "genea_numerical_evaluations/beat.py",
        motion_beats="speed_minima",
        sigma=3.0,
        sigma_unit="frames",
        smoothing=5.0,
        order=1,
        no_motion_beats="zero",
        weighting="clip",
        notes="audio beats are speech onsets (Bailando: AIST++ music beats); sigma 3 frames at the data fps; "
        "a clip without motion beats scores 0 (Bailando fails on it); 2-D model-space joints",
    ),
    "ha2g": BeatAlignConfig(
        name="ha2g",
        reference="alvinliu0/HA2G scripts/train.py evaluate_testset(sigma=0.1, thres=0.03)",
        motion_beats="angle_change",
        sigma=0.1,
        joints="arms",
        threshold=0.03,
        no_motion_beats="skip",
        weighting="onsets",
        notes="2-D OpenPose arm bones instead of HA2G's 3-D direction vectors, HA2G's TED change_angle "
        "divisors kept; whole clip (t in [2, T-2]) instead of 34-frame windows at 15 fps; the released HA2G "
        "code has this evaluation switched off (beat_consistency_score = False)",
    ),
    "diffted": BeatAlignConfig(
        name="diffted",
        reference="Ditzley/DiffTED scripts/test_tpsm.py (sigma 0.1, thres 1e-4)",
        motion_beats="accel_minima",
        sigma=0.1,
        threshold=1e-4,
        no_motion_beats="skip",
        weighting="clip",
        notes="model-space 2-D keypoints instead of TPS keypoints; whole clip (t in [2, T-2]) instead of "
        "34-frame windows",
    ),
    "emage": BeatAlignConfig(
        name="emage",
        reference="PantoMatrix EMAGE emage_evaltools metric.py class BC (sigma 0.3, order 7, threshold 0.1)",
        motion_beats="per_joint_speed_minima",
        sigma=0.3,
        order=7,
        threshold=0.1,
        no_motion_beats="zero",
        weighting="frames",
        notes="speed normalised by each joint's mean speed over the clip (EMAGE: the dataset file "
        "mean_vel_smplxflame_30.npy); 2-D keypoints instead of 13 SMPL-X upper-body joints",
    ),
}
"""Named beat-alignment definitions (metrics-reference.md §5.4). ``bailando`` is the default."""


def motion_beats(
    keypoints: Any, fps: float, config: BeatAlignConfig, mean_speed: np.ndarray | None = None
) -> np.ndarray | list[np.ndarray]:
    """Motion-beat times in seconds of keypoints (T, 134, 3) under ``config`` (a list per joint for EMAGE)."""
    if config.motion_beats == "angle_change":
        return _angle_change_minima(
            pose_xy(keypoints, tuple(S.BODY)), fps, config.threshold, config.change_angle
        )
    xy = pose_xy(keypoints, config.joints)
    if config.motion_beats == "speed_minima":
        return _speed_minima(xy, fps, config.smoothing, config.order)
    if config.motion_beats == "accel_minima":
        return _accel_minima(xy, fps, config.threshold)
    if config.motion_beats == "per_joint_speed_minima":
        return _per_joint_speed_minima(xy, fps, config.order, config.threshold, mean_speed)
    raise ValueError(f"unknown motion-beat detector {config.motion_beats!r}")


@dataclass
class ClipBeatAlignment:
    """Beat alignment of one clip: ``score`` is None when the clip is skipped (``skip_reason`` says why)."""

    score: float | None
    weight: float
    n_audio_beats: int
    n_motion_beats: int
    skip_reason: str | None = None


MIN_BEAT_FRAMES = 5


def beat_alignment_clip(
    keypoints: Any,
    audio: np.ndarray,
    fps: float,
    config: BeatAlignConfig = BAS_PRESETS["bailando"],
    sr: int = S.SAMPLE_RATE,
    mean_speed: np.ndarray | None = None,
) -> ClipBeatAlignment:
    """BAS of one clip: audio onsets (:func:`onset_detect`) vs motion beats (:func:`motion_beats`).

    Skips (score None) a clip shorter than 5 frames, without audio onsets, or without motion beats when
    ``config.no_motion_beats == "skip"``. The weight follows ``config.weighting``.
    """
    kps = _check_keypoints(keypoints, "keypoints")
    n_frames = kps.shape[0]
    if n_frames < MIN_BEAT_FRAMES:
        return ClipBeatAlignment(None, 0.0, 0, 0, f"only {n_frames} keypoint frames (< {MIN_BEAT_FRAMES})")
    a_beats = onset_detect(audio, sr=sr)
    if a_beats.size == 0:
        return ClipBeatAlignment(None, 0.0, 0, 0, "no audio onsets")
    m_beats = motion_beats(kps, fps, config, mean_speed)
    sigma = config.sigma_seconds(fps)
    if isinstance(m_beats, list):  # per joint (EMAGE): a joint without beats scores 0
        n_motion = int(sum(b.size for b in m_beats))
        score = float(np.mean([beat_align_score(a_beats, b, sigma) for b in m_beats]))
    else:
        n_motion = int(m_beats.size)
        score = beat_align_score(a_beats, m_beats, sigma)
    if n_motion == 0 and config.no_motion_beats == "skip":
        return ClipBeatAlignment(None, 0.0, int(a_beats.size), 0, "no motion beats")
    weight = {"clip": 1.0, "onsets": float(a_beats.size), "frames": float(n_frames)}[config.weighting]
    return ClipBeatAlignment(score, weight, int(a_beats.size), n_motion)


class BeatAlignMetric(RunnerSyncedMetric):
    """Weighted mean of per-clip beat alignment (:func:`beat_alignment_clip`) over clips.

    ``update(keypoints (T, 134, 3), audio (N,) 16 kHz, fps)`` scores one clip and keeps the result in
    ``last``; ``compute()`` returns sum(weight * score) / sum(weight) over the scored clips. States are
    float64 / int64 sums (synced across ranks).
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    score_sum: Tensor
    weight_sum: Tensor
    num_scored: Tensor
    num_skipped: Tensor

    def __init__(self, config: BeatAlignConfig = BAS_PRESETS["bailando"], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.last: ClipBeatAlignment | None = None
        self.add_state("score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_scored", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("num_skipped", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, keypoints: Any, audio: np.ndarray, fps: float) -> None:
        """Score one clip."""
        res = beat_alignment_clip(keypoints, audio, fps, self.config)
        self.last = res
        if res.score is None:
            self.num_skipped += 1
            return
        self.score_sum += res.weight * res.score
        self.weight_sum += res.weight
        self.num_scored += 1

    def compute(self) -> Tensor:
        """Weighted mean score; raises when no clip was scored."""
        if int(self.num_scored) == 0:
            raise MetricInputError(f"beat alignment: no clip was scored ({int(self.num_skipped)} skipped)")
        return self.score_sum / self.weight_sum


# =========================================================================== runner adapter
class BASAdapter(MetricAdapter):
    """Runner adapter: beat alignment of generated videos (and of the references, reported separately).

    Audio: the generated video's track, else the reference's (``audio_source``). Keypoints: the samples'
    ``keypoints``; a video without keypoints or audio, or skipped by the definition (no onsets, no motion
    beats with ``no_motion_beats="skip"``, < 5 frames), raises :class:`VideoSkipped` (counted, never NaN).
    """

    name = "bas"
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "bas": True,
        "bas_clips": None,
        "bas_skipped": None,
        "bas_reference": None,  # the reference set's BAS: context, not a score of the generated videos
        "bas_reference_clips": None,
    }
    needs_reference = False

    def __init__(
        self,
        preset: str = "bailando",
        sigma: float | None = None,
        sigma_unit: str | None = None,
        joints: str | Sequence[int] | None = None,
        smoothing: float | None = None,
        order: int | None = None,
        threshold: float | None = None,
        no_motion_beats: str | None = None,
        weighting: str | None = None,
        audio_source: str = "generated_or_reference",
        score_reference: bool = True,
    ) -> None:
        if preset not in BAS_PRESETS:
            raise ValueError(f"unknown BAS preset {preset!r}; known: {', '.join(BAS_PRESETS)}")
        overrides = {
            k: v
            for k, v in {
                "sigma": sigma,
                "sigma_unit": sigma_unit,
                "joints": joints if joints is None or isinstance(joints, str) else tuple(joints),
                "smoothing": smoothing,
                "order": order,
                "threshold": threshold,
                "no_motion_beats": no_motion_beats,
                "weighting": weighting,
            }.items()
            if v is not None
        }
        self.config = replace(BAS_PRESETS[preset], **overrides)
        if self.config.no_motion_beats not in ("zero", "skip"):
            raise ValueError(f"no_motion_beats must be 'zero' or 'skip', got {self.config.no_motion_beats!r}")
        if self.config.weighting not in ("clip", "onsets", "frames"):
            raise ValueError(f"weighting must be clip|onsets|frames, got {self.config.weighting!r}")
        if audio_source not in ("generated", "reference", "generated_or_reference"):
            raise ValueError(
                f"audio_source must be generated|reference|generated_or_reference, got {audio_source!r}"
            )
        self.audio_source = audio_source
        self.score_reference = score_reference
        self.generated = BeatAlignMetric(self.config)
        self.reference = BeatAlignMetric(self.config)

    @property
    def variant(self) -> str:
        """The preset's name (with ``+overrides`` when settings were changed from the preset)."""
        return self.config.name + ("" if self.config == BAS_PRESETS[self.config.name] else "+overrides")

    def _audio(self, generated: VideoSample, reference: VideoSample | None) -> np.ndarray:
        order = {
            "generated": [generated],
            "reference": [reference],
            "generated_or_reference": [generated, reference],
        }[self.audio_source]
        for s in order:
            if s is not None and s.audio is not None:
                return s.audio
        raise VideoSkipped(generated.name, f"bas: no audio track ({self.audio_source})")

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Score the generated video (and the reference when it has keypoints); per-video scores."""
        audio = self._audio(generated, reference)
        out: dict[str, float] = {}
        if self.score_reference and reference is not None and reference.keypoints is not None:
            self.reference.update(_keypoints_of(reference, "bas"), audio, reference.fps)
            if self.reference.last is not None and self.reference.last.score is not None:
                out["bas_reference"] = self.reference.last.score
        self.generated.update(_keypoints_of(generated, "bas"), audio, generated.fps)
        res = self.generated.last
        assert res is not None
        if res.score is None:
            raise VideoSkipped(generated.name, f"bas ({self.config.name}): {res.skip_reason}")
        out["bas"] = res.score
        return out

    def compute(self) -> dict[str, float]:
        """``bas`` (and ``bas_reference``) weighted means, with clip counts."""
        # counts are read before Metric.compute(), which may unsync states the runner synced
        out = {"bas_clips": int(self.generated.num_scored), "bas_skipped": int(self.generated.num_skipped)}
        n_ref = int(self.reference.num_scored)
        out["bas"] = float(self.generated.compute())
        if n_ref > 0:
            out["bas_reference"] = float(self.reference.compute())
            out["bas_reference_clips"] = n_ref
        return out

    def protocol(self) -> dict:
        """The definition (preset and every parameter), onset detector and units."""
        cfg = asdict(self.config)
        cfg["joints"] = (
            list(joint_indices(self.config.joints))
            if self.config.motion_beats != "angle_change"
            else "arms (HA2G angle pairs)"
        )
        return {
            "metric": "bas",
            "variant": self.variant,
            "definition": f"beat alignment, preset {self.config.name} ({self.config.reference})",
            "formula": "mean over audio onsets a of exp(-min_m (a - m)^2 / (2 sigma^2)); times in seconds",
            "direction": "averaged over audio beats (audio -> nearest motion beat)",
            "audio_beats": "librosa 0.10.2 onset_detect(y, sr=16000, units='time') re-implemented in numpy "
            "(n_fft 2048, hop 512, 128 mel, delta 0.07)",
            "audio_source": self.audio_source,
            "coordinates": "model space x, y; invisible points interpolated over time",
            "config": cfg,
            "score_reference": self.score_reference,
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """Generated and reference accumulators."""
        return [self.generated, self.reference]
