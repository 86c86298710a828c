"""Signal helpers every package shares: the librosa mel filterbank and per-video-frame audio energy.

* :func:`mel_filterbank` - librosa ``filters.mel`` (Slaney scale and area normalisation), in float64 or, as
  librosa computes it, float32 (bit-equal to librosa 0.10.2 there; the BAS onset port relies on that).
* :func:`frame_mean_square` / :func:`frame_rms` - the mean square / RMS of the samples of each video frame
  (frame ``t`` covers samples ``[round(t h), round((t + 1) h))``, ``h = 16000 / fps``; zero padded).
"""

from __future__ import annotations

import math

import numpy as np

from mmgt.schema import FPS, SAMPLE_RATE

_F_SP, _MIN_LOG_HZ = 200.0 / 3, 1000.0
_MIN_LOG_MEL, _LOGSTEP = _MIN_LOG_HZ / _F_SP, math.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_filterbank(
    n_mels: int,
    n_fft: int,
    sample_rate: float = SAMPLE_RATE,
    f_min: float = 0.0,
    f_max: float | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular Slaney-scale filters with Slaney area normalisation.

    librosa ``filters.mel`` with its defaults (``htk=False, norm="slaney"``) and its order of operations:
    the triangles in float64, stored as ``dtype``, then scaled in place by the float64 normalisation.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(dtype)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights


def frame_mean_square(audio: np.ndarray, n_frames: int | None = None, fps: float = FPS) -> np.ndarray:
    """Mean square (T,) float64 of each video frame's samples of mono 16 kHz audio (N,).

    ``T = ceil(N / h)`` (``h = 16000 / fps``) or ``n_frames``; samples past the end count as zeros.
    """
    a = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop = SAMPLE_RATE / fps
    t = int(np.ceil(len(a) / hop)) if n_frames is None else int(n_frames)
    if t <= 0:
        return np.zeros(0)
    edges = np.round(np.arange(t + 1) * hop).astype(np.int64)
    a = np.pad(a, (0, max(0, int(edges[-1]) - len(a))))[: edges[-1]]
    return np.add.reduceat(a * a, edges[:-1]) / np.diff(edges)


def frame_rms(audio: np.ndarray, n_frames: int | None = None, fps: float = FPS) -> np.ndarray:
    """RMS (T,) float64 of each video frame's samples (:func:`frame_mean_square`)."""
    return np.sqrt(frame_mean_square(audio, n_frames, fps))


__all__ = ["frame_mean_square", "frame_rms", "hz_to_mel", "mel_filterbank", "mel_to_hz"]
