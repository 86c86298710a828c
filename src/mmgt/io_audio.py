"""Audio files: read, write 16-bit PCM, resample (see :mod:`mmgt.io`).

Any audio (or a video's audio track) is read as (N,) float32 mono at a rate, or as it is.
"""

from __future__ import annotations

import os
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from mmgt.atomic import temp_sibling
from mmgt.io_common import PathLike, _check_file, _declared_duration, _fail, _open_input, _wrap_errors
from mmgt.schema import SAMPLE_RATE

__all__ = ["read_audio", "read_audio_native", "resample_audio", "write_audio"]

_SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif"})
"""Suffixes read with soundfile first (PyAV is the fallback, e.g. for MP3 data named .wav)."""
_MAX_CODEC_PADDING = 8192
"""Most surplus decoded samples (at the stream rate) trimmed to the declared stream duration."""


def _to_float(x: np.ndarray) -> np.ndarray:
    """Samples of any PCM dtype as float32 in [-1, 1]."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.integer):
        return (x / float(2 ** (8 * x.dtype.itemsize - 1))).astype(np.float32)
    return x.astype(np.float32, copy=False)


class _AudioAccumulator:
    """Collects decoded audio frames as mono float32 at the stream's (first frame's) rate."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.rate: int | None = None
        self.n_samples = 0

    def add(self, frame: Any) -> None:
        x = frame.to_ndarray()
        n_ch = len(frame.layout.channels)
        # planar: (C, n); packed: (1, n * C) interleaved
        x = x.reshape(n_ch, -1) if frame.format.is_planar else x.reshape(-1, n_ch).T
        mono = _to_float(x).mean(axis=0, dtype=np.float32)
        if self.rate is None:
            self.rate = int(frame.sample_rate)
        elif frame.sample_rate != self.rate:  # rate change mid-stream (rare): convert to the first rate
            mono = resample_audio(mono, int(frame.sample_rate), self.rate)
        self.chunks.append(mono)
        self.n_samples += mono.shape[0]

    @property
    def seconds(self) -> float:
        return self.n_samples / self.rate if self.rate else 0.0

    def finish(self, stream: Any, target_sr: int) -> np.ndarray:
        """(N,) float32 at ``target_sr``, codec padding beyond the declared stream duration trimmed."""
        if self.rate is None:
            return np.zeros(0, dtype=np.float32)
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
        declared = _declared_duration(stream)
        if declared is not None:
            n_declared = int(round(declared * self.rate))
            if 0 < audio.shape[0] - n_declared <= _MAX_CODEC_PADDING:
                audio = audio[:n_declared]
        return resample_audio(audio, self.rate, target_sr)


def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (exact rational ratio); float32 out.

    (..., N) -> (..., ceil(N * target_sr / orig_sr)).
    """
    audio = np.asarray(audio, dtype=np.float32)
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio
    g = gcd(orig_sr, target_sr)
    return resample_poly(audio, target_sr // g, orig_sr // g, axis=-1).astype(np.float32, copy=False)


def _read_audio_av(p: Path, sample_rate: int) -> np.ndarray:
    container = _open_input(p)
    with container:
        if not container.streams.audio:
            raise _fail(p, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        acc = _AudioAccumulator()
        with _wrap_errors(p, "decoding audio failed (file truncated or corrupt?)"):
            for frame in container.decode(stream):
                acc.add(frame)
        if acc.rate is None:
            raise _fail(p, "no decodable audio")
        return acc.finish(stream, sample_rate)


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio (or the audio track of a video) as (N,) float32 mono at ``sample_rate``.

    wav/flac/ogg/aiff are read with soundfile, everything else (mp3, m4a, mp4, ...) with PyAV; soundfile
    failures fall back to PyAV. Channels are averaged; resampling uses :func:`resample_audio`.
    """
    p = _check_file(path)
    if p.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except sf.SoundFileError:
            pass  # e.g. MP3 data in a .wav name: let FFmpeg try
        else:
            return resample_audio(data.mean(axis=1, dtype=np.float32), int(sr), sample_rate)
    return _read_audio_av(p, sample_rate)


def read_audio_native(path: PathLike) -> tuple[np.ndarray, int]:
    """Read audio (or a video's audio track) as it is: ((N, C) float32, sample rate).

    No resampling, no downmix (what generated videos carry, so that 44.1 kHz stereo speech stays 44.1 kHz
    stereo).
    """
    p = _check_file(path)
    if p.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except sf.SoundFileError:
            pass
        else:
            return data, int(sr)
    with _open_input(p) as container:
        if not container.streams.audio:
            raise _fail(p, "no audio stream")
        stream = container.streams.audio[0]
        chunks, rate = [], None
        with _wrap_errors(p, "decoding audio failed (file truncated or corrupt?)"):
            for frame in container.decode(stream):
                x = frame.to_ndarray()
                n_ch = len(frame.layout.channels)
                x = x.reshape(n_ch, -1) if frame.format.is_planar else x.reshape(-1, n_ch).T
                rate = rate or int(frame.sample_rate)
                x = _to_float(x)
                if frame.sample_rate != rate:
                    x = resample_audio(x, int(frame.sample_rate), rate)
                chunks.append(x)
        if rate is None:
            raise _fail(p, "no decodable audio")
        audio = np.concatenate(chunks, axis=1).T
        declared = _declared_duration(stream)
        if declared is not None and 0 < audio.shape[0] - int(round(declared * rate)) <= _MAX_CODEC_PADDING:
            audio = audio[: int(round(declared * rate))]
        return np.ascontiguousarray(audio, dtype=np.float32), rate


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (N,) mono (or (N, C)) float audio, clipped to [-1, 1], as 16-bit PCM; atomic. Returns the path.

    The container follows the suffix: .flac writes FLAC, anything else WAV.
    """
    p = Path(path)
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if data.ndim not in (1, 2):
        raise ValueError(f"audio must be (N,) or (N, C), got shape {data.shape}")
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = "FLAC" if p.suffix.lower() == ".flac" else "WAV"
    tmp = temp_sibling(p)
    try:
        with _wrap_errors(p, "writing audio failed"):
            sf.write(str(tmp), data, int(sample_rate), subtype="PCM_16", format=fmt)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
