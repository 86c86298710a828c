"""Audio onsets: librosa 0.10.2 ``onset.onset_detect(y, sr=16000)`` re-implemented in numpy (functional core).

Log-power mel spectrogram (n_fft 2048, hop 512, 128 Slaney mel bands), spectral flux averaged over bands, the
``center`` shift, min-max normalisation and librosa's greedy peak picker with its default constants. It
returns the same frames as librosa 0.10.2.post1 on speech (checked on toy and sample speech; the unit tests
hold the frames librosa gave). At 16 kHz librosa's ``pre_max`` = floor(0.03 * 16000 / 512) = 0 and ``wait``
= 0, so adjacent frames are often both onsets: that is the reference behaviour, kept. The audio beats of
beat alignment (:mod:`mmgt_eval.metrics.bas`).
"""

from __future__ import annotations

import math

import numpy as np

from mmgt import schema as S
from mmgt.dsp import mel_filterbank
from mmgt_eval.metrics.base import MetricInputError

__all__ = ["ONSET_HOP", "ONSET_N_FFT", "ONSET_N_MELS", "onset_detect", "onset_strength", "peak_pick"]

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
    """Librosa 0.10.2 ``util.peak_pick`` (greedy): the indices of the peaks of ``x``.

    Peaks are the indices n with x[n] == max(x[n-pre_max : n+post_max]),
    x[n] >= mean(x[n-pre_avg : n+post_avg]) + delta, and more than ``wait`` samples after the last peak.
    """
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
