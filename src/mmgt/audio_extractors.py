"""The audio feature extractor interface and the weight-free extractors, at 25 fps.

The weight-free extractors are log-mel, MFCC, energy, onset and their concatenation; the table of names and
shapes is in :mod:`mmgt.audio`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgt.dsp import frame_mean_square, mel_filterbank
from mmgt.factory import to_node
from mmgt.schema import SAMPLE_RATE, SAMPLES_PER_FRAME, num_frames_for_samples

__all__ = [
    "AudioFeatureExtractor",
    "ConcatExtractor",
    "EnergyExtractor",
    "LogMelExtractor",
    "MFCCExtractor",
    "OnsetExtractor",
]


# =========================================================================== interface
class AudioFeatureExtractor(ABC):
    """Audio (N,) float32 mono 16 kHz -> features (T, *feature_shape) float32 at 25 fps.

    Subclasses implement :meth:`_extract` on audio already padded/trimmed to ``T * 640`` samples.
    """

    name: str
    """Cache key: stable across runs and unique per settings."""
    _args: dict[str, Any]
    """The constructor's arguments as plain values (what :meth:`node` records); set by ``__init__``."""

    def node(self) -> dict[str, Any]:
        """The resolved ``_target_`` node of this extractor, what exports and metadata store.

        :func:`mmgt.audio.extractor_from_node` rebuilds it.
        """
        args = getattr(self, "_args", None)
        if args is None:
            raise TypeError(f"{type(self).__name__}.__init__ sets no _args: the extractor cannot be stored")
        return to_node(type(self), **args)

    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """Per-frame feature shape, e.g. (80,) or (12, 768)."""

    @abstractmethod
    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """``audio`` (n_frames * 640,) float32 -> (n_frames, *feature_shape) float32; n_frames >= 1."""

    def __call__(self, audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
        """Audio (N,) -> features (T, *feature_shape) float32; T = ``n_frames``, else round(N / 640)."""
        x = _frame_aligned(audio, n_frames)
        t = x.shape[0] // SAMPLES_PER_FRAME
        if t == 0:
            return np.zeros((0, *self.feature_shape()), np.float32)
        out = np.asarray(self._extract(x, t), dtype=np.float32)
        expected = (t, *self.feature_shape())
        if out.shape != expected:  # a bug in an extractor, not bad input
            raise AssertionError(f"{self.name}: produced {out.shape}, expected {expected}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, shape={self.feature_shape()})"


def _frame_aligned(audio: np.ndarray, n_frames: int | None) -> np.ndarray:
    """Validate (N,) audio and zero-pad / trim it to exactly T * 640 samples (float32)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"audio must be (N,) mono float32 at {SAMPLE_RATE} Hz, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("audio contains NaN or inf")
    t = num_frames_for_samples(x.shape[0]) if n_frames is None else int(n_frames)
    if t < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    n = t * SAMPLES_PER_FRAME
    return x[:n] if x.shape[0] >= n else np.pad(x, (0, n - x.shape[0]))


def _settings_suffix(values: dict[str, Any], defaults: dict[str, Any]) -> str:
    """'-key<value>' for every setting that differs from its default (keeps names unique per settings)."""
    parts = []
    for key, value in values.items():
        if value != defaults[key]:
            v = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"-{key}{v}")
    return "".join(parts)


# =========================================================================== spectral helpers
class _MelSpectrogram:
    """Mel power (K, n_mels) of sub-frames with hop ``hop_length`` (dividing 640), K = T * 640 / hop.

    Sub-frame k is a ``win_length`` Hann window (zero-padded to ``n_fft``) centred on sample
    ``hop * k + hop / 2``; the 640 / hop sub-frames of video frame t are thus centred, on average, on the
    frame's centre 640 t + 320. Zero padding outside the signal. Computed in blocks to bound memory.
    """

    BLOCK = 4096  # sub-frames per FFT block (~41 s at a 10 ms hop)

    def __init__(
        self, n_mels: int, n_fft: int, win_length: int, hop_length: int, f_min: float, f_max: float | None
    ) -> None:
        if SAMPLES_PER_FRAME % hop_length or hop_length % 2:
            raise ValueError(f"hop_length must be even and divide {SAMPLES_PER_FRAME}, got {hop_length}")
        if not 0 < win_length <= n_fft:
            raise ValueError(f"need 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")
        self.n_fft, self.hop = n_fft, hop_length
        self.sub = SAMPLES_PER_FRAME // hop_length
        window = np.zeros(n_fft)
        start = (n_fft - win_length) // 2
        window[start : start + win_length] = np.hanning(win_length + 1)[:-1]  # periodic Hann
        self.window = window
        self.fb = mel_filterbank(n_mels, n_fft, SAMPLE_RATE, f_min, f_max).T  # (F, n_mels)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        k = x.shape[0] // self.hop
        pad = self.n_fft // 2
        padded = np.pad(x.astype(np.float64), (pad, pad))
        view = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)
        # centre c_k = hop*k + hop/2 in x -> window start c_k - n_fft/2 in x = c_k in padded coordinates
        starts = self.hop * np.arange(k) + self.hop // 2
        out = np.empty((k, self.fb.shape[1]))
        for b in range(0, k, self.BLOCK):
            frames = view[starts[b : b + self.BLOCK]] * self.window
            power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
            out[b : b + self.BLOCK] = power @ self.fb
        return out


# =========================================================================== weight-free extractors
class LogMelExtractor(AudioFeatureExtractor):
    """Log-mel spectrogram (T, n_mels): log(mean mel power of the frame's sub-frames + eps).

    Analysis: ``win_length``-sample Hann windows (25 ms), ``hop_length`` hop (10 ms: 4 sub-frames per video
    frame; ``hop_length=640`` gives one window per frame, centred on the frame), ``n_fft`` FFT, Slaney mel
    filterbank between ``f_min`` and ``f_max`` (default 8 kHz). Power is |rfft|^2 (librosa scaling).
    """

    _DEFAULTS = {"nfft": 512, "win": 400, "hop": 160, "fmin": 0.0, "fmax": None, "eps": 1e-6}

    def __init__(
        self,
        n_mels: int = 80,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        f_min: float = 0.0,
        f_max: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        self._args = {"n_mels": n_mels, "n_fft": n_fft, "win_length": win_length, "hop_length": hop_length}
        self._args.update(f_min=f_min, f_max=f_max, eps=eps)
        self.n_mels, self.eps = int(n_mels), float(eps)
        self.mel = _MelSpectrogram(self.n_mels, n_fft, win_length, hop_length, f_min, f_max)
        values = {
            "nfft": n_fft,
            "win": win_length,
            "hop": hop_length,
            "fmin": f_min,
            "fmax": f_max,
            "eps": eps,
        }
        self.name = f"logmel{self.n_mels}" + _settings_suffix(values, self._DEFAULTS)

    def feature_shape(self) -> tuple[int, ...]:
        """(n_mels,)."""
        return (self.n_mels,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        power = self.mel(audio).reshape(n_frames, self.mel.sub, self.n_mels).mean(axis=1)
        return np.log(power + self.eps)


class MFCCExtractor(AudioFeatureExtractor):
    """MFCC (T, n_mfcc * (1 + deltas)) with ``python_speech_features.mfcc`` at its defaults.

    Its defaults: 25 ms rectangular windows, 10 ms step, 26 filters, pre-emphasis 0.97, lifter 22, c0 = log
    frame energy.

    Resampling to 25 fps: the frame-aligned audio is zero-padded by 120 samples in front, so that psf computes
    exactly 4 T frames and the 4 frames 4t..4t+3 averaged for video frame t are centred, on average, on the
    frame's centre (640 t + 320). Deltas (``python_speech_features.delta``, N=2) are computed at 100 Hz and
    averaged the same way.
    """

    _WINLEN, _WINSTEP = 400, 160  # psf defaults at 16 kHz: 25 ms, 10 ms
    _FRONT_PAD = (_WINLEN - _WINSTEP) // 2  # 120
    _DEFAULTS = {"nfilt": 26, "nfft": 512}

    def __init__(self, n_mfcc: int = 13, n_filt: int = 26, n_fft: int = 512, deltas: int = 0) -> None:
        if deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {deltas}")
        self._args = {"n_mfcc": n_mfcc, "n_filt": n_filt, "n_fft": n_fft, "deltas": deltas}
        self.n_mfcc, self.n_filt, self.n_fft, self.deltas = int(n_mfcc), int(n_filt), int(n_fft), int(deltas)
        suffix = _settings_suffix({"nfilt": n_filt, "nfft": n_fft}, self._DEFAULTS)
        self.name = f"mfcc{self.n_mfcc}" + suffix + (f"-d{deltas}" if deltas else "")

    def feature_shape(self) -> tuple[int, ...]:
        """(n_mfcc * (1 + deltas),)."""
        return (self.n_mfcc * (1 + self.deltas),)

    def mfcc_100hz(self, audio: np.ndarray) -> np.ndarray:
        """(4 T, n_mfcc * (1 + deltas)) psf features of frame-aligned audio (T * 640,), front-padded."""
        import python_speech_features as psf

        x = np.concatenate([np.zeros(self._FRONT_PAD, np.float64), audio.astype(np.float64)])
        feats = [psf.mfcc(x, SAMPLE_RATE, numcep=self.n_mfcc, nfilt=self.n_filt, nfft=self.n_fft)]
        for _ in range(self.deltas):
            feats.append(psf.delta(feats[-1], 2))
        return np.concatenate(feats, axis=1)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        sub = SAMPLES_PER_FRAME // self._WINSTEP
        f = self.mfcc_100hz(audio)
        if f.shape[0] != sub * n_frames:  # psf framing changed?
            raise AssertionError(
                f"python_speech_features gave {f.shape[0]} frames, expected {sub * n_frames}"
            )
        return f.reshape(n_frames, sub, -1).mean(axis=1)


class EnergyExtractor(AudioFeatureExtractor):
    """Per-frame energy (T, 1) of the frame's 640 samples, from :func:`mmgt.dsp.frame_mean_square`.

    Either log(mean square + eps) (``log=True``, name ``energy``) or the RMS (``log=False``, name ``rms``).
    """

    def __init__(self, log: bool = True, eps: float = 1e-8) -> None:
        self._args = {"log": log, "eps": eps}
        self.log, self.eps = bool(log), float(eps)
        self.name = ("energy" if self.log else "rms") + _settings_suffix({"eps": eps}, {"eps": 1e-8})

    def feature_shape(self) -> tuple[int, ...]:
        """(1,)."""
        return (1,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        ms = frame_mean_square(audio, n_frames)[:, None]
        return np.log(ms + self.eps) if self.log else np.sqrt(ms)


class OnsetExtractor(AudioFeatureExtractor):
    """Onset strength (T, 1): spectral flux of the log-mel at the sub-frame rate (10 ms), per video frame.

    The flux is half-wave rectified and averaged over mel bands (librosa ``onset_strength`` style, lag 1),
    then averaged over the sub-frames of each video frame. The first sub-frame has flux 0. Uses
    :class:`LogMelExtractor`'s analysis settings.
    """

    def __init__(self, n_mels: int = 80, hop_length: int = 160, eps: float = 1e-6) -> None:
        self._args = {"n_mels": n_mels, "hop_length": hop_length, "eps": eps}
        self.logmel = LogMelExtractor(n_mels=n_mels, hop_length=hop_length, eps=eps)
        self.eps = float(eps)
        self.name = "onset" + _settings_suffix(
            {"mels": n_mels, "hop": hop_length, "eps": eps}, {"mels": 80, "hop": 160, "eps": 1e-6}
        )

    def feature_shape(self) -> tuple[int, ...]:
        """(1,)."""
        return (1,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        lm = np.log(self.logmel.mel(audio) + self.eps)  # (K, M)
        flux = np.zeros(lm.shape[0])
        flux[1:] = np.maximum(lm[1:] - lm[:-1], 0.0).mean(axis=1)
        return flux.reshape(n_frames, -1).mean(axis=1, keepdims=True)


class ConcatExtractor(AudioFeatureExtractor):
    """Concatenation of extractors with 1-D features along the feature axis; name = parts joined by '+'."""

    def __init__(self, extractors: Sequence[AudioFeatureExtractor], name: str | None = None) -> None:
        self.extractors = list(extractors)
        if not self.extractors:
            raise ValueError("ConcatExtractor needs at least one extractor")
        for e in self.extractors:
            if not isinstance(e, AudioFeatureExtractor) or len(e.feature_shape()) != 1:
                raise ValueError(f"ConcatExtractor parts must be extractors with (D,) features, got {e!r}")
        self.name = name or "+".join(e.name for e in self.extractors)
        self._args = {"extractors": [e.node() for e in self.extractors]}
        if name is not None:
            self._args["name"] = name

    def feature_shape(self) -> tuple[int, ...]:
        """(sum of the parts' dims,)."""
        return (sum(e.feature_shape()[0] for e in self.extractors),)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        return np.concatenate([e._extract(audio, n_frames) for e in self.extractors], axis=1)
