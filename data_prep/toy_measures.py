"""Measures of the toy speakers' constructed audio -> motion relation.

What tiny models are checked to have learned: :func:`toy_envelope`, :func:`stress_frames`,
:func:`hand_speed_peaks`, :func:`beat_alignment`, :func:`lip_envelope_r`.
"""

from __future__ import annotations

import numpy as np

from mmgt.dsp import frame_rms
from mmgt.schema import BODY_INDEX, FPS, lip_opening


def toy_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-frame RMS envelope (T,) float32 at 25 fps of audio (N,) at 16 kHz; T = ceil(N / 640).

    Computed by :func:`mmgt.dsp.frame_rms`.
    """
    return frame_rms(audio).astype(np.float32)


def stress_frames(events: dict) -> np.ndarray:
    """Frame indices (sorted int64) of the stressed syllables' envelope peaks: round(peak * 25)."""
    fps = events.get("fps", FPS)
    return np.array(
        sorted(int(round(s["peak"] * fps)) for s in events["syllables"] if s["stressed"]), dtype=np.int64
    )


def hand_speed_peaks(
    keypoints: np.ndarray, rel_threshold: float = 0.5, min_distance: int = 3, min_speed: float = 1e-3
) -> np.ndarray:
    """Frame indices of hand-speed peaks of keypoints (T, 134, 3).

    Speed per frame = max over the two wrists (body 4, 7) of the central-difference (np.gradient)
    displacement in frame units per frame (0 where a wrist has confidence 0). Peaks are strict local
    maxima (> previous, >= next) of at least ``rel_threshold`` x the clip's maximum speed and
    ``min_speed``; of peaks closer than ``min_distance`` frames only the faster is kept. Sorted int64.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    wrists = kps[:, [BODY_INDEX["right_wrist"], BODY_INDEX["left_wrist"]]]  # (T, 2, 3)
    speed = np.linalg.norm(np.gradient(wrists[..., :2], axis=0), axis=-1) * (wrists[..., 2] > 0)
    s = speed.max(axis=1)
    thr = max(rel_threshold * float(s.max()), min_speed)
    cand = [t for t in range(1, len(s) - 1) if s[t] > s[t - 1] and s[t] >= s[t + 1] and s[t] >= thr]
    kept: list[int] = []
    for t in sorted(cand, key=lambda i: -s[i]):
        if all(abs(t - k) >= min_distance for k in kept):
            kept.append(t)
    return np.array(sorted(kept), dtype=np.int64)


def beat_alignment(keypoints: np.ndarray, events: dict, tolerance: int = 2) -> float:
    """Share of :func:`hand_speed_peaks` within ``tolerance`` frames of a :func:`stress_frames` frame."""
    peaks, stresses = hand_speed_peaks(keypoints), stress_frames(events)
    if len(peaks) == 0:
        return 0.0
    if len(stresses) == 0:
        return 0.0
    dist = np.abs(peaks[:, None] - stresses[None, :]).min(axis=1)
    return float(np.mean(dist <= tolerance))


def lip_envelope_r(keypoints: np.ndarray, audio: np.ndarray) -> float:
    """Pearson r between the lip opening of keypoints (T, 134, 3) and :func:`toy_envelope` of audio."""
    lips = np.asarray(lip_opening(np.asarray(keypoints, dtype=np.float64)))
    env = toy_envelope(audio).astype(np.float64)
    n = min(len(lips), len(env))
    return float(np.corrcoef(lips[:n], env[:n])[0, 1])


__all__ = ["beat_alignment", "hand_speed_peaks", "lip_envelope_r", "stress_frames", "toy_envelope"]
