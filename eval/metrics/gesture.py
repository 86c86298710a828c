"""Gesture metrics on 2-D keypoints: beat alignment (BAS/BC), FGD, and the helpers Diversity shares.

Every metric here works on (T, 134, 3) stored-layout keypoints (``mmgt.schema``) of a video, extracted by
one pinned pose estimator from both the generated and the reference videos; the runner loads them from
``keypoints.npy`` next to each video. Algorithms and the variants they reproduce are in
``../shared/docs/metrics-reference.md`` §5; every function names the definition it implements and every
adapter writes it into :meth:`protocol`.

Coordinates. Motion features use keypoints in model space (``x, y`` in [-1, 1]; ``mmgt.schema``). Points
under the confidence threshold are filled by linear interpolation over time from the frames where the joint
is visible (held at the ends); a joint never visible in a clip stays at 0 and contributes no motion. With
fully visible keypoints this is the references' computation exactly.

Beat alignment (§5.4), general form averaged over **audio** beats (directional)::

    BAS = 1/|B_a| * sum_{a in B_a} exp(-min_{m in B_m} (a - m)^2 / (2 sigma^2))

* Audio beats: librosa 0.10.2 ``onset.onset_detect(y, sr=16000)`` re-implemented in numpy (log-power mel
  spectrogram, n_fft 2048, hop 512, 128 Slaney mel bands, spectral flux averaged over bands, the
  ``center`` shift, min-max normalisation, librosa's greedy peak picker with its default constants). It
  returns the same frames as librosa 0.10.2.post1 on speech (checked on toy and sample speech; the unit tests
  hold the frames librosa gave). At 16 kHz librosa's ``pre_max`` = floor(0.03 * 16000 / 512) = 0 and
  ``wait`` = 0, so adjacent frames are often both onsets: that is the reference behaviour, kept.
* Motion beats, one detector per reference (:data:`BAS_PRESETS`): ``bailando`` (Bailando/UnifiedGesture:
  minima of the Gaussian-smoothed mean joint speed), ``ha2g`` (HA2G BC: minima of the arm joint-angle change),
  ``diffted`` (DiffTED BC: minima of the mean absolute second difference), ``emage`` (EMAGE BC: per-joint
  speed minima above a threshold, averaged over joints).
* Times are in seconds on both sides: a motion beat at index ``t`` is at ``t / fps`` (UnifiedGesture's
  script compares onset frames at 31.25 fps with motion frames at the data rate; that unit mismatch is not
  reproduced).

Diversity (§5.3) lives in :mod:`mmgt_eval.metrics.diversity` (definitions, default ``bailando``) and the
kinetic features in :mod:`mmgt_eval.metrics.kinetic`; their public names stay importable from here
(:data:`_MOVED`, resolved lazily by the module ``__getattr__``).

FGD (§5.2): Fréchet distance (:mod:`mmgt_eval.frechet`) between encoder latents of reference and generated
keypoint windows, from a pose autoencoder the project trains on dataset keypoints
(:func:`train_pose_autoencoder`, :func:`save_pose_autoencoder`, :func:`load_pose_autoencoder`). No public
encoder exists for 2-D DWPose keypoints, so FGD values compare only between runs that use the same
checkpoint; its sha256 is part of :meth:`FGDMetric.protocol`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchmetrics
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema
from torch import Tensor, nn

from mmgt import schema as S
from mmgt.digest import sha256_file
from mmgt.dsp import mel_filterbank
from mmgt.untrusted import load_npy
from mmgt_eval.frechet import frechet_distance, gaussian_stats, stats_from_sums
from mmgt_eval.metrics.base import MetricInputError, VideoSample, VideoSkipped, weights_record

__all__ = [
    "BAS_PRESETS",
    "JOINT_SETS",
    "BASMetric",
    "BeatAlignConfig",
    "BeatAlignScore",
    "ClipBeatAlignment",
    "FGDMetric",
    "FrechetGestureDistance",
    "PoseAutoencoder",
    "PoseAutoencoderError",
    "beat_align_score",
    "beat_alignment_clip",
    "encode_windows",
    "frechet_gesture_distance",
    "joint_indices",
    "load_keypoint_files",
    "load_pose_autoencoder",
    "motion_beats",
    "onset_detect",
    "onset_strength",
    "peak_pick",
    "pose_windows",
    "pose_xy",
    "reconstruction_loss",
    "save_pose_autoencoder",
    "train_pose_autoencoder",
]

# =========================================================================== keypoints
_UPPER_BODY = tuple(
    S.BODY_INDEX[n] for n in S.BODY_NAMES if "hip" not in n and "knee" not in n and "ankle" not in n
)
JOINT_SETS: dict[str, tuple[int, ...]] = {
    "upper_body": _UPPER_BODY,  # nose, neck, shoulders, elbows, wrists, eyes, ears (12)
    "arms": tuple(S.BODY_INDEX[n] for n in S.BODY_NAMES[1:8]),  # neck, shoulders, elbows, wrists (7)
    "upper_body_hands": _UPPER_BODY + tuple(S.LEFT_HAND) + tuple(S.RIGHT_HAND),  # 54
    "all": tuple(range(S.NUM_KEYPOINTS)),
}
"""Named joint sets (indices into the 134 layout) that motion features average over."""


def joint_indices(joints: str | Sequence[int]) -> tuple[int, ...]:
    """Indices of a named joint set (:data:`JOINT_SETS`) or an explicit index list."""
    if isinstance(joints, str):
        if joints not in JOINT_SETS:
            raise ValueError(f"unknown joint set {joints!r}; known: {', '.join(JOINT_SETS)}")
        return JOINT_SETS[joints]
    idx = tuple(int(i) for i in joints)
    if not idx or min(idx) < 0 or max(idx) >= S.NUM_KEYPOINTS:
        raise ValueError(f"joint indices must be non-empty and in [0, {S.NUM_KEYPOINTS}), got {idx}")
    return idx


def _check_keypoints(keypoints: Any, source: str) -> np.ndarray:
    kps = np.asarray(keypoints, dtype=np.float64)
    S.validate_keypoints(kps, source=source)
    if kps.ndim != 3:
        raise S.KeypointLayoutError(f"{source}: expected keypoints (T, 134, 3), got shape {kps.shape}")
    return kps


def pose_xy(
    keypoints: Any, joints: str | Sequence[int] = "upper_body", source: str = "keypoints"
) -> np.ndarray:
    """Model-space positions (T, J, 2) float64 of ``joints``, gaps filled over time.

    Points with confidence below ``mmgt.schema.VISIBILITY_THRESHOLD`` are linearly interpolated from the
    frames where that joint is visible (held constant before the first / after the last); a joint never
    visible is 0 throughout (no motion).
    """
    kps = _check_keypoints(keypoints, source)[:, list(joint_indices(joints))]
    xy = kps[..., :2] * 2.0 - 1.0
    vis = kps[..., 2] >= S.VISIBILITY_THRESHOLD
    t = np.arange(kps.shape[0], dtype=np.float64)
    for j in range(xy.shape[1]):
        v = vis[:, j]
        if v.all():
            continue
        if not v.any():
            xy[:, j] = 0.0
            continue
        for c in range(2):
            xy[:, j, c] = np.interp(t, t[v], xy[v, j, c])
    return xy


# =========================================================================== audio onsets (librosa 0.10.2)
ONSET_N_FFT = 2048
ONSET_HOP = 512
ONSET_N_MELS = 128


def onset_strength(
    audio: np.ndarray, sr: int = S.SAMPLE_RATE, n_fft: int = ONSET_N_FFT, hop_length: int = ONSET_HOP
) -> np.ndarray:
    """Spectral-flux onset envelope (n_frames,) float32, as librosa 0.10.2 ``onset.onset_strength(y, sr)``.

    Centred STFT (zero padding n_fft/2, periodic Hann), power mel spectrogram (128 Slaney bands, fmax sr/2),
    ``power_to_db`` (ref 1, amin 1e-10, top_db 80), max(0, first difference) averaged over bands, shifted by
    ``1 + n_fft // (2 hop)`` frames and trimmed to the spectrogram length. float32 like librosa.
    """
    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    if y.size == 0 or not np.isfinite(y).all():
        raise MetricInputError("audio must be a non-empty finite 1-D signal")
    pad = n_fft // 2
    yp = np.pad(y, pad)
    n_frames = 1 + (yp.shape[0] - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        yp, (n_frames, n_fft), (yp.strides[0] * hop_length, yp.strides[0]), writeable=False
    )
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann, float64
    spec = np.fft.rfft(frames * window, axis=-1).astype(np.complex64)
    power = np.abs(spec) ** 2  # (n_frames, F) float32
    mel = np.einsum(
        "tf,mf->mt", power, mel_filterbank(ONSET_N_MELS, n_fft, sr, dtype=np.float32), optimize=True
    )
    db = 10.0 * np.log10(np.maximum(np.float32(1e-10), mel))
    db = np.maximum(db, db.max() - np.float32(80.0))
    env = np.mean(np.maximum(0.0, db[:, 1:] - db[:, :-1]), axis=0)
    env = np.pad(env, (1 + n_fft // (2 * hop_length), 0))
    return env[: db.shape[1]]


def peak_pick(
    x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float, wait: int
) -> np.ndarray:
    """librosa 0.10.2 ``util.peak_pick`` (greedy): indices n with x[n] == max(x[n-pre_max : n+post_max]),
    x[n] >= mean(x[n-pre_avg : n+post_avg]) + delta, and more than ``wait`` samples after the last peak."""
    x = np.asarray(x)
    n_x = x.shape[0]
    if n_x == 0:
        return np.zeros(0, dtype=np.int64)
    delta = float(np.float32(delta))  # librosa's numba kernel takes delta as float32
    peaks: list[int] = []
    first = x[0] >= np.max(x[: min(post_max, n_x)]) and x[0] >= np.mean(x[: min(post_avg, n_x)]) + delta
    n = 1
    if first:
        peaks.append(0)
        n = wait + 1
    while n < n_x:
        if x[n] != np.max(x[max(0, n - pre_max) : min(n + post_max, n_x)]):
            n += 1
            continue
        if not x[n] >= np.mean(x[max(0, n - pre_avg) : min(n + post_avg, n_x)]) + delta:
            n += 1
            continue
        peaks.append(n)
        n += wait + 1
    return np.asarray(peaks, dtype=np.int64)


def onset_detect(
    audio: np.ndarray, sr: int = S.SAMPLE_RATE, hop_length: int = ONSET_HOP, units: str = "time"
) -> np.ndarray:
    """Audio onsets as librosa 0.10.2 ``onset.onset_detect(y=audio, sr=sr, units=units)`` with its defaults.

    The envelope (:func:`onset_strength`) is min-max normalised, then :func:`peak_pick` with librosa's
    constants: pre_max = 0.03 sr // hop, post_max = 1, pre_avg = 0.10 sr // hop, post_avg = pre_avg + 1,
    wait = pre_max, delta = 0.07. Returns frame indices (``units="frames"``, int64) or seconds (float64,
    frame * hop / sr). A flat envelope (silence) gives no onsets.
    """
    env = onset_strength(audio, sr=sr, hop_length=hop_length)
    env = env - env.min()
    env = env / (env.max() + np.finfo(env.dtype).tiny)
    if not env.any() or not np.isfinite(env).all():
        frames = np.zeros(0, dtype=np.int64)
    else:
        frames = peak_pick(
            env,
            pre_max=math.ceil(0.03 * sr // hop_length),
            post_max=math.ceil(0.00 * sr // hop_length + 1),
            pre_avg=math.ceil(0.10 * sr // hop_length),
            post_avg=math.ceil(0.10 * sr // hop_length + 1),
            delta=0.07,
            wait=math.ceil(0.03 * sr // hop_length),
        )
    if units == "frames":
        return frames
    if units == "time":
        return frames.astype(np.float64) * hop_length / sr
    raise ValueError(f"units must be 'frames' or 'time', got {units!r}")


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


class BeatAlignScore(torchmetrics.Metric):
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


def _as_2d(features: Any, what: str, min_rows: int = 2, dtype: Any = np.float64) -> np.ndarray:
    """``features`` as an (N >= min_rows, d) ``dtype`` array, else a :class:`MetricInputError`."""
    f = np.asarray(features, dtype=dtype)
    if f.ndim != 2 or f.shape[0] < min_rows:
        raise MetricInputError(f"{what}: need a (N >= {min_rows}, d) feature matrix, got shape {f.shape}")
    return f


# =========================================================================== pose autoencoder (FGD)
AE_FORMAT = "mmgt-pose-autoencoder/1"


class PoseAutoencoderError(RuntimeError):
    """A pose-autoencoder checkpoint is missing, corrupt or does not match its config."""


def pose_windows(
    keypoints: Any,
    window: int,
    stride: int | None = None,
    joints: str | Sequence[int] = "upper_body_hands",
    source: str = "keypoints",
) -> np.ndarray:
    """Windows (N, window, 2 J) float32 of model-space x, y (``mmgt.schema.to_model_space``; invisible = 0).

    Windows start at 0, stride, 2 stride, ... (``stride`` defaults to ``window``: non-overlapping); the
    remainder shorter than a window is dropped. A clip shorter than ``window`` gives (0, window, 2 J).
    """
    kps = _check_keypoints(keypoints, source)
    xy = S.to_model_space(kps)[:, list(joint_indices(joints)), :2].reshape(kps.shape[0], -1)
    stride = stride or window
    starts = range(0, kps.shape[0] - window + 1, stride)
    if len(starts) == 0:
        return np.zeros((0, window, xy.shape[1]), dtype=np.float32)
    return np.stack([xy[s : s + window] for s in starts]).astype(np.float32)


def load_keypoint_files(root: str | os.PathLike, pattern: str = "**/keypoints.npy") -> list[np.ndarray]:
    """All keypoint arrays (T, 134, 3) matching ``pattern`` under ``root`` (sorted by path)."""
    paths = sorted(Path(root).glob(pattern))
    if not paths:
        raise FileNotFoundError(f"{root}: no files match {pattern!r}")
    out = []
    for p in paths:
        kps = load_npy(p, "keypoints (T, 134, 3)")
        S.validate_keypoints(kps, source=str(p))
        out.append(kps.astype(np.float32))
    return out


class PoseAutoencoder(nn.Module):
    """Conv1d autoencoder over keypoint windows (B, T, D) -> latent (B, latent_dim) -> (B, T, D).

    Encoder: conv3 -> 2 strided conv4 (T / 4) -> linear; decoder mirrors it with transposed convolutions.
    Inputs are standardised with per-dimension ``mean`` / ``std`` buffers set from the training windows.
    ``window`` must be divisible by 4. No batch norm (outputs do not depend on batch statistics).
    """

    def __init__(self, in_dim: int, window: int = 32, hidden: int = 64, latent_dim: int = 32) -> None:
        super().__init__()
        if window % 4:
            raise ValueError(f"window must be divisible by 4, got {window}")
        self.config = {"in_dim": in_dim, "window": window, "hidden": hidden, "latent_dim": latent_dim}
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        t4 = window // 4
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 3, padding=1),
            act,
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Flatten(),
            nn.Linear(hidden * t4, latent_dim),
        )
        self.decoder_fc = nn.Linear(latent_dim, hidden * t4)
        self.decoder = nn.Sequential(
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Conv1d(hidden, in_dim, 3, padding=1),
        )

    def normalize(self, x: Tensor) -> Tensor:
        """(B, T, D) -> standardised (B, T, D)."""
        return (x - self.mean) / self.std

    def encode(self, x: Tensor) -> Tensor:
        """Windows (B, T, D) -> latents (B, latent_dim)."""
        self._check(x)
        return self.encoder(self.normalize(x).transpose(1, 2))

    def decode_normalized(self, z: Tensor) -> Tensor:
        """Latents (B, latent_dim) -> standardised windows (B, T, D)."""
        h = self.decoder_fc(z).view(z.shape[0], self.config["hidden"], self.config["window"] // 4)
        return self.decoder(h).transpose(1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, D) -> (reconstruction (B, T, D) in input units, latent (B, latent_dim))."""
        z = self.encode(x)
        return self.decode_normalized(z) * self.std + self.mean, z

    def _check(self, x: Tensor) -> None:
        want = (self.config["window"], self.config["in_dim"])
        if x.ndim != 3 or tuple(x.shape[1:]) != want:
            raise MetricInputError(
                f"pose autoencoder expects windows (B, {want[0]}, {want[1]}), got {tuple(x.shape)}"
            )


def _ae_loss(model: PoseAutoencoder, x: Tensor, velocity_weight: float) -> Tensor:
    """L1 reconstruction + ``velocity_weight`` x L1 of frame differences, in standardised units (HA2G)."""
    target = model.normalize(x)
    recon = model.decode_normalized(model.encode(x))
    loss = (recon - target).abs().mean()
    if velocity_weight:
        loss = (
            loss
            + velocity_weight
            * ((recon[:, 1:] - recon[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()
        )
    return loss


@torch.no_grad()
def reconstruction_loss(model: PoseAutoencoder, windows: Any, velocity_weight: float = 1.0) -> float:
    """The training loss of ``model`` on ``windows`` (N, T, D) (standardised L1 + velocity L1)."""
    model.eval()
    return float(_ae_loss(model, torch.as_tensor(np.asarray(windows), dtype=torch.float32), velocity_weight))


def train_pose_autoencoder(
    windows: Any,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    hidden: int = 64,
    latent_dim: int = 32,
    velocity_weight: float = 1.0,
    seed: int = 0,
    max_seconds: float | None = None,
    joints: str | Sequence[int] = "upper_body_hands",
    fps: float = S.FPS,
) -> tuple[PoseAutoencoder, dict[str, Any]]:
    """Train a :class:`PoseAutoencoder` on windows (N, T, D) from :func:`pose_windows` (plain torch, CPU).

    Adam, shuffled mini-batches, loss :func:`reconstruction_loss`. ``mean`` / ``std`` buffers come from the
    training windows (std of a constant dimension is set to 1). ``joints`` and ``fps`` are recorded in the
    model config (they must match how the windows were made). Stops early after ``max_seconds``. Returns the
    model (eval mode) and a history ``{"loss": [per-epoch mean], "initial_loss", "final_loss", ...}``.
    """
    x = torch.as_tensor(np.asarray(windows), dtype=torch.float32)
    if x.ndim != 3 or x.shape[0] < 2:
        raise MetricInputError(f"need at least 2 training windows (N, T, D), got shape {tuple(x.shape)}")
    torch.manual_seed(seed)
    model = PoseAutoencoder(x.shape[2], x.shape[1], hidden, latent_dim)
    model.config.update({"joints": list(joint_indices(joints)), "fps": float(fps)})
    flat = x.reshape(-1, x.shape[2])
    std = flat.std(dim=0)
    model.mean.copy_(flat.mean(dim=0))
    model.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    initial = reconstruction_loss(model, x, velocity_weight)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    start = time.monotonic()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        total, count = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            batch = x[perm[i : i + batch_size]]
            loss = _ae_loss(model, batch, velocity_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * batch.shape[0]
            count += batch.shape[0]
        history.append(total / count)
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
    model.eval()
    final = reconstruction_loss(model, x, velocity_weight)
    info = {
        "loss": history,
        "initial_loss": initial,
        "final_loss": final,
        "epochs": len(history),
        "n_windows": int(x.shape[0]),
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "velocity_weight": velocity_weight,
        "seconds": time.monotonic() - start,
    }
    return model, info


def save_pose_autoencoder(
    model: PoseAutoencoder, path: str | os.PathLike, training: dict[str, Any] | None = None
) -> Path:
    """Write ``path`` (torch state dict, e.g. ``fgd_autoencoder.pt``) and ``path.with_suffix('.json')``.

    The JSON holds the format tag, the architecture and keypoint config (``in_dim``, ``window``, ``hidden``,
    ``latent_dim``, ``joints``, ``fps``, coordinate space), the state file's name and sha256, and an optional
    training summary. Returns the state-dict path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    meta = {
        "format": AE_FORMAT,
        **model.config,
        "coordinates": "model space x, y in [-1, 1] (mmgt.schema.to_model_space), invisible points = 0",
        "state_file": path.name,
        "sha256": sha256_file(path),
        "training": {k: v for k, v in (training or {}).items() if k != "loss"},
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_pose_autoencoder(path: str | os.PathLike) -> tuple[PoseAutoencoder, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_pose_autoencoder` (give the ``.pt`` or the ``.json``).

    Checks the sidecar JSON exists, the format tag, and the state file's sha256; raises
    :class:`PoseAutoencoderError` naming the file otherwise. Returns (model in eval mode, config dict).
    """
    p = Path(path)
    pt, meta_path = (p.with_suffix(".pt"), p) if p.suffix == ".json" else (p, p.with_suffix(".json"))
    if not pt.is_file():
        raise PoseAutoencoderError(
            f"{pt}: FGD pose-autoencoder checkpoint not found; train one on your dataset's keypoints "
            "(mmgt_eval.metrics.gesture.train_pose_autoencoder + save_pose_autoencoder) and pass its path"
        )
    if not meta_path.is_file():
        raise PoseAutoencoderError(f"{meta_path}: config JSON of pose autoencoder {pt.name} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise PoseAutoencoderError(f"{meta_path}: not valid JSON ({err})") from err
    if meta.get("format") != AE_FORMAT:
        raise PoseAutoencoderError(f"{meta_path}: format {meta.get('format')!r}, expected {AE_FORMAT!r}")
    digest = sha256_file(pt)
    if digest != meta.get("sha256"):
        raise PoseAutoencoderError(
            f"{pt}: sha256 {digest} differs from {meta.get('sha256')} recorded in {meta_path.name}"
        )
    model = PoseAutoencoder(meta["in_dim"], meta["window"], meta["hidden"], meta["latent_dim"])
    model.config.update({"joints": meta["joints"], "fps": meta["fps"]})
    try:
        model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    except (RuntimeError, KeyError) as err:
        raise PoseAutoencoderError(f"{pt}: state dict does not match its config ({err})") from err
    model.eval()
    return model, meta


@torch.no_grad()
def encode_windows(model: PoseAutoencoder, windows: Any, batch_size: int = 256) -> np.ndarray:
    """Encoder latents (N, latent_dim) float64 of windows (N, T, D)."""
    model.eval()
    x = torch.as_tensor(np.asarray(windows), dtype=torch.float32)
    dev = next(model.parameters()).device
    out = [
        model.encode(x[i : i + batch_size].to(dev)).double().cpu() for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config["latent_dim"]))


def frechet_gesture_distance(generated_features: Any, reference_features: Any) -> float:
    """FGD = Fréchet distance of the Gaussian statistics (``mmgt_eval.frechet``) of two latent sets (N, d)."""
    g = _as_2d(generated_features, "FGD generated features")
    r = _as_2d(reference_features, "FGD reference features")
    return float(frechet_distance(*gaussian_stats(g), *gaussian_stats(r)))


class FrechetGestureDistance(torchmetrics.Metric):
    """FGD as float64 sums (sum x, sum x x^T, n) per side over encoder latents of keypoint windows.

    ``update(windows (B, T, D), real)`` encodes with the frozen :class:`PoseAutoencoder`; ``compute()``
    forms means and unbiased covariances (/(n-1), like ``np.cov``; ``mmgt_eval.frechet.stats_from_sums``)
    and calls ``mmgt_eval.frechet.frechet_distance``. Needs >= 2 windows per side.
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self, model: PoseAutoencoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        d = model.config["latent_dim"]
        for side in ("gen", "ref"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_cov_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def train(self, mode: bool = True) -> FrechetGestureDistance:
        """The encoder stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def update(self, windows: Any, real: bool) -> None:
        """Add windows (B, T, D) of one side."""
        z = torch.as_tensor(encode_windows(self.model, windows), dtype=torch.float64)
        side = "ref" if real else "gen"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + z.sum(0).to(self.device))
        setattr(self, f"{side}_cov_sum", getattr(self, f"{side}_cov_sum") + (z.T @ z).to(self.device))
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + z.shape[0])

    def _stats(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            what = "reference" if side == "ref" else "generated"
            raise MetricInputError(f"FGD needs at least 2 {what} windows, got {n}")
        return stats_from_sums(getattr(self, f"{side}_sum"), getattr(self, f"{side}_cov_sum"), n)

    def compute(self) -> Tensor:
        """FGD (float64 scalar)."""
        return torch.tensor(
            float(frechet_distance(*self._stats("gen"), *self._stats("ref"))), dtype=torch.float64
        )


# =========================================================================== runner adapters
def _keypoints_of(sample: VideoSample, metric: str) -> np.ndarray:
    if sample.keypoints is None:
        raise VideoSkipped(sample.name, sample.missing_keypoints(metric))
    return _check_keypoints(sample.keypoints, f"{sample.name} keypoints")


class BASMetric:
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
        self.generated = BeatAlignScore(self.config)
        self.reference = BeatAlignScore(self.config)

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


class FGDMetric:
    """Runner adapter: FGD between generated and reference keypoint windows in a trained autoencoder's space.

    ``weights_path``: checkpoint of :func:`save_pose_autoencoder` (its JSON sidecar next to it). Windows of
    the autoencoder's length, ``stride`` frames apart (default: non-overlapping); a video shorter than one
    window, or a pair without keypoints on either side, raises :class:`VideoSkipped`.
    """

    name = "fgd"
    higher_is_better = False
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "fgd": False,
        "fgd_windows_generated": None,
        "fgd_windows_reference": None,
    }
    needs_reference = True
    variant = "project_autoencoder"
    """FGD on the project's own pose autoencoder (no public 2-D encoder): compare only with equal weights."""

    def __init__(
        self, weights_path: str | os.PathLike | None = None, stride: int | None = None, device: str = "cpu"
    ) -> None:
        if weights_path is None:
            raise PoseAutoencoderError(
                "FGD needs weights_path= a pose-autoencoder checkpoint trained on your dataset's keypoints "
                "(train_pose_autoencoder + save_pose_autoencoder; registry name fgd_autoencoder)"
            )
        self.weights_path = Path(weights_path)
        self.model, self.meta = load_pose_autoencoder(self.weights_path)
        self.model.to(device)
        self.window = int(self.meta["window"])
        self.stride = stride or self.window
        self.state = FrechetGestureDistance(self.model)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the windows of both videos (both or neither)."""
        if reference is None:
            raise VideoSkipped(generated.name, "fgd: no reference video")
        wins = []
        for s in (generated, reference):
            w = pose_windows(_keypoints_of(s, "fgd"), self.window, self.stride, self.meta["joints"], s.name)
            if w.shape[0] == 0:
                raise VideoSkipped(s.name, f"fgd: shorter than one {self.window}-frame window")
            wins.append(w)
        self.state.update(wins[0], real=False)
        self.state.update(wins[1], real=True)
        return {}

    def compute(self) -> dict[str, float]:
        """``fgd`` with the window counts."""
        counts = {
            "fgd_windows_generated": int(self.state.gen_n),
            "fgd_windows_reference": int(self.state.ref_n),
        }
        return {"fgd": float(self.state.compute()), **counts}  # counts first: compute() may unsync

    def protocol(self) -> dict:
        """Encoder config and checksum, windows, statistics convention."""
        return {
            "metric": "fgd",
            "variant": self.variant,
            "definition": "Fréchet distance (mmgt_eval.frechet) of pose-autoencoder latents of reference vs "
            "generated keypoint windows (Yoon et al. 2020; HA2G/DiffTED convention: np.cov /(n-1))",
            "window": self.window,
            "stride": self.stride,
            "autoencoder": {k: v for k, v in self.meta.items() if k != "training"},
            "weights": weights_record(self.weights_path),
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The float64 sum states."""
        return [self.state]


# =========================================================================== moved names
_MOVED: dict[str, str] = {
    **{
        n: "mmgt_eval.metrics.diversity_sets"
        for n in (
            "KineticDiversity",
            "LatentL1Diversity",
            "PairwiseL2Diversity",
            "WithinClipL1Diversity",
            "diversity_kinetic_l2",
            "diversity_latent_l1",
            "diversity_pairwise_l2",
            "diversity_within_l1",
        )
    },
    "DIVERSITY_DEFINITIONS": "mmgt_eval.metrics.diversity",
    "DiversityMetric": "mmgt_eval.metrics.diversity",
    "kinetic_features": "mmgt_eval.metrics.kinetic",
}
"""Public names that moved to their own modules, still importable from this one."""


def __getattr__(name: str) -> Any:
    """Lazy re-export of :data:`_MOVED` (those modules import this one, so not at import time)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
