"""Audio features at 25 fps behind one interface: weight-free (log-mel, MFCC, energy, onset) and pretrained
speech encoders (wav2vec2 / WavLM / HuBERT from a local ``transformers`` folder).

Every extractor maps audio (N,) float32 mono 16 kHz to features (T, *feature_shape) float32 with one row per
video frame (25 fps). ``T = n_frames`` when given, else :func:`mmgt.schema.num_frames_for_samples` (N), i.e.
round(N / 640). The audio is first zero-padded / trimmed to exactly ``T * 640`` samples, so video frame ``t``
always sees samples ``[640 t, 640 (t + 1))`` (plus analysis-window context) whether or not ``n_frames`` was
given. Each extractor has a ``name``, stable and unique per settings, used as the cache key
``<clip>/features/<name>.npy`` (:func:`load_or_compute_features`).

Weight-free extractors (numpy/scipy + python_speech_features; no librosa):

=====================  =====================  ===========================================================
name                   shape                  what
=====================  =====================  ===========================================================
``logmel80``           (T, 80)                log(mel power + 1e-6); 25 ms Hann windows, 10 ms hop,
                                              Slaney mel filterbank (librosa defaults), the mel power of
                                              the 4 sub-frames of a video frame averaged before the log
``mfcc13``             (T, 13)                ``python_speech_features.mfcc`` defaults at 100 Hz, mean of
                                              the 4 sub-frames of each video frame (+ deltas: ``-d1/-d2``)
``energy`` / ``rms``   (T, 1)                 log(mean square + 1e-8) / RMS of the frame's 640 samples
``onset``              (T, 1)                 spectral flux of the 10 ms log-mel, half-wave rectified,
                                              averaged over bands, mean over the frame's sub-frames
``a+b+...``            (T, sum of dims)       :class:`ConcatExtractor`; ``"baseline"`` in
                                              :func:`build_extractor` = logmel80+energy+onset+mfcc13 (95-d)
=====================  =====================  ===========================================================

Non-default settings are appended to the name (e.g. ``logmel40-nfft1024``).

Pretrained encoders (:class:`PretrainedSpeechEncoder`, name ``<kind>-<folder name>-<layers>[-hidden]``)
load with ``from_pretrained(model_dir, local_files_only=True)`` only. ``interpolate="features"`` is the
Hallo / MMGT Stage-II way (CNN features linearly interpolated to T frames *before* the transformer, which
then runs at 25 fps); ``"hidden"`` runs the whole model at its native rate (50 Hz) and interpolates the
hidden states. Both give (T, L, D) for ``layers="all"`` (the L transformer layers' outputs,
``hidden_states[1:]`` as in Hallo: (T, 12, 768) for wav2vec2-base), (T, len(layers), D) for a list of
``hidden_states`` indices (0 = transformer input, i = output of layer i) and (T, D) for ``layers="last"``
(``last_hidden_state``, after the final layer norm of stable-layer-norm models; the WavLM SMGA reference).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mmgt.atomic import save_npy
from mmgt.dsp import frame_mean_square, mel_filterbank
from mmgt.schema import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, num_frames_for_samples
from mmgt.untrusted import load_npy

if TYPE_CHECKING:
    from mmgt.clipstore import Clip

log = logging.getLogger(__name__)

__all__ = [
    "AudioFeatureExtractor",
    "ConcatExtractor",
    "EnergyExtractor",
    "LogMelExtractor",
    "MFCCExtractor",
    "OnsetExtractor",
    "PretrainedSpeechEncoder",
    "build_extractor",
    "load_or_compute_features",
]


# =========================================================================== interface
class AudioFeatureExtractor(ABC):
    """Audio (N,) float32 mono 16 kHz -> features (T, *feature_shape) float32 at 25 fps.

    Subclasses implement :meth:`_extract` on audio already padded/trimmed to ``T * 640`` samples.
    """

    name: str
    """Cache key: stable across runs and unique per settings."""

    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """Per-frame feature shape, e.g. (80,) or (12, 768)."""

    @abstractmethod
    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """``audio`` (n_frames * 640,) float32 -> (n_frames, *feature_shape) float32; n_frames >= 1."""

    def __call__(self, audio: np.ndarray, n_frames: int | None = None) -> np.ndarray:
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
        return (self.n_mels,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        power = self.mel(audio).reshape(n_frames, self.mel.sub, self.n_mels).mean(axis=1)
        return np.log(power + self.eps)


class MFCCExtractor(AudioFeatureExtractor):
    """MFCC (T, n_mfcc * (1 + deltas)) with ``python_speech_features.mfcc`` (its defaults: 25 ms rectangular
    windows, 10 ms step, 26 filters, pre-emphasis 0.97, lifter 22, c0 = log frame energy).

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
        self.n_mfcc, self.n_filt, self.n_fft, self.deltas = int(n_mfcc), int(n_filt), int(n_fft), int(deltas)
        suffix = _settings_suffix({"nfilt": n_filt, "nfft": n_fft}, self._DEFAULTS)
        self.name = f"mfcc{self.n_mfcc}" + suffix + (f"-d{deltas}" if deltas else "")

    def feature_shape(self) -> tuple[int, ...]:
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
    """Per-frame energy (T, 1) of the frame's 640 samples: log(mean square + eps) (``log=True``, name
    ``energy``) or the RMS (``log=False``, name ``rms``), from :func:`mmgt.dsp.frame_mean_square`."""

    def __init__(self, log: bool = True, eps: float = 1e-8) -> None:
        self.log, self.eps = bool(log), float(eps)
        self.name = ("energy" if self.log else "rms") + _settings_suffix({"eps": eps}, {"eps": 1e-8})

    def feature_shape(self) -> tuple[int, ...]:
        return (1,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        ms = frame_mean_square(audio, n_frames)[:, None]
        return np.log(ms + self.eps) if self.log else np.sqrt(ms)


class OnsetExtractor(AudioFeatureExtractor):
    """Onset strength (T, 1): spectral flux of the log-mel at the sub-frame rate (10 ms), half-wave
    rectified and averaged over mel bands (librosa ``onset_strength`` style, lag 1), then averaged over the
    sub-frames of each video frame. The first sub-frame has flux 0. Uses :class:`LogMelExtractor`'s
    analysis settings."""

    def __init__(self, n_mels: int = 80, hop_length: int = 160, eps: float = 1e-6) -> None:
        self.logmel = LogMelExtractor(n_mels=n_mels, hop_length=hop_length, eps=eps)
        self.eps = float(eps)
        self.name = "onset" + _settings_suffix(
            {"mels": n_mels, "hop": hop_length, "eps": eps}, {"mels": 80, "hop": 160, "eps": 1e-6}
        )

    def feature_shape(self) -> tuple[int, ...]:
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

    def feature_shape(self) -> tuple[int, ...]:
        return (sum(e.feature_shape()[0] for e in self.extractors),)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        return np.concatenate([e._extract(audio, n_frames) for e in self.extractors], axis=1)


# =========================================================================== pretrained encoders
_MODEL_CLASSES = {"wav2vec2": "Wav2Vec2Model", "wavlm": "WavLMModel", "hubert": "HubertModel"}
_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_PREPROCESSOR_FILE = "preprocessor_config.json"
_DOWNLOAD_HINT = {
    "wav2vec2": "facebook/wav2vec2-base-960h",
    "wavlm": "microsoft/wavlm-large",
    "hubert": "facebook/hubert-base-ls960",
}


class PretrainedSpeechEncoder(AudioFeatureExtractor):
    """Hidden states of a wav2vec2 / WavLM / HuBERT model from a local folder, at 25 fps.

    Args:
        model_dir: a ``save_pretrained`` folder: config.json, model weights (model.safetensors or
            pytorch_model.bin), preprocessor_config.json (a ``Wav2Vec2FeatureExtractor``; optional: without
            it the audio is normalised to zero mean / unit variance when the model uses layer-norm
            convolutions, the fairseq convention, and left as is otherwise).
        kind: model family; must match ``model_type`` in config.json.
        layers: ``"all"`` -> (T, L, D) the L transformer layers (``hidden_states[1:]``, Hallo); ``"last"``
            -> (T, D) ``last_hidden_state``; a list of ``hidden_states`` indices -> (T, len, D).
        device: torch device for the model.
        interpolate: ``"features"``: the CNN feature encoder's output (B, C, N') is linearly interpolated
            to T frames before the feature projection and the transformer, which then runs at 25 fps (Hallo);
            ``"hidden"``: the model runs at its native rate (50 Hz for the standard 320-sample stride) and the
            selected hidden states are interpolated to T frames. Both use :meth:`_to_frames`: for the
            standard CNN this is exactly ``F.interpolate(size=T, align_corners=True)`` as in Hallo and the
            WavLM reference (which additionally duplicates the last 50 Hz frame first, stretching its time
            axis by up to one native frame (20 ms) at the end; we do not).
        chunk_seconds / context_seconds: audio longer than ``chunk_seconds`` is processed in chunks of that
            many frames, each extended by ``context_seconds`` of audio on both sides (dropped from the output)
            to bound memory (self-attention is quadratic in length). The whole audio is normalised once
            before chunking, and a GroupNorm first CNN layer (wav2vec2-base; it normalises over time) uses
            statistics accumulated over the whole audio, so chunks are normalised as in one pass. The rest is
            an approximation, because self-attention is global: on tiny random models chunked features differ
            from one pass by < 0.1 % (relative L2; 3 s chunks, 1.5 s context; 2.5 % with per-chunk group
            norm). Audio up to ``chunk_seconds`` is always processed in one pass. Not part of the cache name.

    The model is loaded lazily on first use (so the extractor pickles cheaply to worker processes); the
    folder and config are checked at construction.
    """

    def __init__(
        self,
        model_dir: str | Path,
        kind: Literal["wav2vec2", "wavlm", "hubert"] = "wav2vec2",
        layers: str | Sequence[int] = "all",
        device: str = "cpu",
        interpolate: Literal["features", "hidden"] = "features",
        chunk_seconds: float = 30.0,
        context_seconds: float = 4.0,
    ) -> None:
        if kind not in _MODEL_CLASSES:
            raise ValueError(f"kind must be one of {sorted(_MODEL_CLASSES)}, got {kind!r}")
        if interpolate not in ("features", "hidden"):
            raise ValueError(f"interpolate must be 'features' or 'hidden', got {interpolate!r}")
        self.model_dir = Path(model_dir).expanduser()
        self.kind, self.device, self.interpolate = kind, str(device), interpolate
        self.config = self._check_folder()
        n_layers = int(self.config["num_hidden_layers"])
        self.hidden_size = int(self.config["hidden_size"])
        if isinstance(layers, str):
            if layers not in ("all", "last"):
                raise ValueError(f"layers must be 'all', 'last' or a list of indices, got {layers!r}")
            self.layers: str | list[int] = layers
            tag = layers
        else:
            idx = [int(i) for i in layers]
            bad = [i for i in idx if not 0 <= i <= n_layers]
            if not idx or bad:
                raise ValueError(
                    f"layers: indices must be in [0, {n_layers}] (0 = transformer input), got {idx}"
                )
            self.layers, tag = idx, "l" + ".".join(map(str, idx))
        self.layer_indices = list(range(1, n_layers + 1)) if self.layers == "all" else self.layers
        self.chunk_frames = max(1, int(round(chunk_seconds * FPS)))
        self.context_frames = max(0, int(round(context_seconds * FPS)))
        kernels, strides = self.config.get("conv_kernel", [400]), self.config.get("conv_stride", [320])
        rf, jump = 1, 1
        for k, s in zip(kernels, strides, strict=False):
            rf, jump = rf + (int(k) - 1) * jump, jump * int(s)
        self.receptive_field = rf
        self.native_per_frame = SAMPLES_PER_FRAME / jump  # CNN frames per video frame (2 for stride 320)
        self.name = f"{kind}-{self.model_dir.name}-{tag}" + ("-hidden" if interpolate == "hidden" else "")
        self._model: Any = None
        self._feature_extractor: Any = None
        self._target_frames = 0
        self._norm_stats: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the loaded model (workers reload it lazily)."""
        return {
            **self.__dict__,
            "_model": None,
            "_feature_extractor": None,
            "_target_frames": 0,
            "_norm_stats": None,
        }

    # ------------------------------------------------------------------ loading
    def _check_folder(self) -> dict[str, Any]:
        d = self.model_dir
        expected = f"config.json, model weights ({' or '.join(_WEIGHT_FILES[:2])}) and {_PREPROCESSOR_FILE}"
        hint = (
            "; download it where there is internet, e.g. `huggingface-cli download "
            f"{_DOWNLOAD_HINT[self.kind]} --local-dir {d}`, and copy it here"
        )
        if not d.is_dir():
            raise FileNotFoundError(
                f"{d}: pretrained {self.kind} folder not found; expected {expected}{hint}"
            )
        missing = [] if (d / "config.json").is_file() else ["config.json"]
        if not any((d / w).is_file() for w in _WEIGHT_FILES):
            missing.append(f"model weights ({' or '.join(_WEIGHT_FILES)})")
        if missing:
            raise FileNotFoundError(
                f"{d}: incomplete pretrained {self.kind} folder, missing {', '.join(missing)}; "
                f"expected {expected}{hint}"
            )
        try:
            config = json.loads((d / "config.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{d / 'config.json'}: not valid JSON ({e})") from e
        model_type = config.get("model_type")
        if model_type != self.kind:
            raise ValueError(f"{d / 'config.json'}: model_type is {model_type!r} but kind={self.kind!r}")
        for key in ("num_hidden_layers", "hidden_size"):
            if key not in config:
                raise ValueError(f"{d / 'config.json'}: missing {key!r}")
        return config

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch  # noqa: F401  (imported here: mmgt.audio stays importable without torch start-up)
        import transformers

        cls = getattr(transformers, _MODEL_CLASSES[self.kind])
        model, info = cls.from_pretrained(self.model_dir, local_files_only=True, output_loading_info=True)
        missing = [k for k in info.get("missing_keys", []) if "masked_spec_embed" not in k]
        if missing:
            raise ValueError(
                f"{self.model_dir}: weights do not fit {cls.__name__} (missing {len(missing)} tensors, e.g. "
                f"{sorted(missing)[:3]}); refusing to run a partly random encoder"
            )
        self._model = model.to(self.device).eval()
        self._model.feature_extractor.register_forward_hook(self._interpolate_hook)
        if self._group_norm() is not None:
            self._group_norm().register_forward_hook(self._group_norm_hook)
        if (self.model_dir / _PREPROCESSOR_FILE).is_file():
            fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(self.model_dir, local_files_only=True)
            if int(fe.sampling_rate) != SAMPLE_RATE:
                raise ValueError(
                    f"{self.model_dir / _PREPROCESSOR_FILE}: sampling_rate {fe.sampling_rate}, "
                    f"expected {SAMPLE_RATE}"
                )
            self._feature_extractor = fe
        else:
            log.warning(
                "%s: no %s; normalising audio %s", self.model_dir, _PREPROCESSOR_FILE,
                "to zero mean / unit variance" if self._fallback_normalize() else "not at all",
            )  # fmt: skip

    def _fallback_normalize(self) -> bool:
        return bool(self.config.get("do_normalize", self.config.get("feat_extract_norm") == "layer"))

    def _interpolate_hook(self, module: Any, inputs: Any, output: Any) -> Any:
        """Forward hook on the CNN feature encoder: (B, C, N') -> (B, C, T) in ``features`` mode."""
        return None if self._target_frames <= 0 else self._to_frames(output, self._target_frames)

    def _to_frames(self, x: Any, n_frames: int) -> Any:
        """Linear interpolation (B, C, N') -> (B, C, n_frames) along time: frame t takes native position
        t * 640 / stride (the CNN frame starting at the video frame's first sample), clamped to the last.

        For the standard CNN (stride 320, receptive field 400) and N = 640 T samples, N' = 2 T - 1 and this is
        exactly ``F.interpolate(x, size=T, mode="linear", align_corners=True)`` (Hallo / the WavLM reference);
        unlike that call it keeps the same time mapping for any CNN and any chunk, so chunks line up.
        """
        import torch

        n_native = x.shape[-1]
        pos = torch.arange(n_frames, device=x.device, dtype=torch.float64) * self.native_per_frame
        pos = pos.clamp(max=n_native - 1)
        i0 = pos.floor().long()
        i1 = (i0 + 1).clamp(max=n_native - 1)
        w = (pos - i0).to(x.dtype)
        return x[..., i0] * (1 - w) + x[..., i1] * w

    def _group_norm(self) -> Any:
        """The GroupNorm of the first CNN layer (wav2vec2-base: ``feat_extract_norm="group"``) or None."""
        import torch

        layer0 = self._model.feature_extractor.conv_layers[0]
        norm = getattr(layer0, "layer_norm", None)
        return norm if isinstance(norm, torch.nn.GroupNorm) else None

    def _global_norm_stats(self, x: np.ndarray) -> Any:
        """Per-group mean and variance of the first CNN layer's conv output over the whole audio x (N,).

        GroupNorm normalises over time, so chunks would each get their own statistics; with these global ones
        (accumulated chunk by chunk over exactly tiling conv outputs) chunked processing normalises like one
        pass. None when the model has no such GroupNorm.
        """
        import torch

        norm = self._group_norm()
        conv = self._model.feature_extractor.conv_layers[0].conv
        k, s = int(conv.kernel_size[0]), int(conv.stride[0])
        n_out = (x.shape[0] - k) // s + 1
        if norm is None or n_out < 1:
            return None
        groups, channels = norm.num_groups, norm.num_channels
        total = torch.zeros(groups, dtype=torch.float64)
        total_sq = torch.zeros(groups, dtype=torch.float64)
        step = max(1, self.chunk_frames * SAMPLES_PER_FRAME // s)  # conv outputs per pass
        with torch.inference_mode():
            for j0 in range(0, n_out, step):
                j1 = min(n_out, j0 + step)
                seg = torch.from_numpy(np.ascontiguousarray(x[j0 * s : (j1 - 1) * s + k]))
                y = conv(seg[None, None].to(self.device)).double().cpu().reshape(groups, -1)
                total += y.sum(dim=1)
                total_sq += (y**2).sum(dim=1)
        count = n_out * (channels // groups)
        mean = total / count
        return mean, (total_sq / count - mean**2).clamp(min=0.0)

    def _group_norm_hook(self, module: Any, inputs: Any, output: Any) -> Any:
        """Forward hook on that GroupNorm: normalise with the global statistics while they are set."""
        if self._norm_stats is None:
            return None
        mean, var = (t.to(device=inputs[0].device) for t in self._norm_stats)
        x = inputs[0]
        b, c, n = x.shape
        xg = x.double().reshape(b, module.num_groups, -1)
        y = ((xg - mean[None, :, None]) * (var[None, :, None] + module.eps).rsqrt()).reshape(b, c, n)
        y = y.to(x.dtype)
        return y * module.weight[None, :, None] + module.bias[None, :, None] if module.affine else y

    # ------------------------------------------------------------------ extraction
    def feature_shape(self) -> tuple[int, ...]:
        if self.layers == "last":
            return (self.hidden_size,)
        return (len(self.layer_indices), self.hidden_size)

    def normalize(self, audio: np.ndarray) -> np.ndarray:
        """The model's input normalisation (its Wav2Vec2FeatureExtractor when present) of the whole audio."""
        self._load()
        if self._feature_extractor is not None:
            values = self._feature_extractor(
                audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
            ).input_values
            return np.asarray(values[0], dtype=np.float32)
        if self._fallback_normalize():
            return ((audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)).astype(np.float32)
        return audio

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        x = self.normalize(audio)
        if n_frames <= self.chunk_frames:
            return self._run(x, n_frames)
        out = np.empty((n_frames, *self.feature_shape()), np.float32)
        self._norm_stats = self._global_norm_stats(x)
        try:
            for f0 in range(0, n_frames, self.chunk_frames):
                f1 = min(f0 + self.chunk_frames, n_frames)
                a, b = max(0, f0 - self.context_frames), min(n_frames, f1 + self.context_frames)
                feats = self._run(x[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME], b - a)
                out[f0:f1] = feats[f0 - a : f1 - a]
        finally:
            self._norm_stats = None
        return out

    def _run(self, x: np.ndarray, n_frames: int) -> np.ndarray:
        """One forward pass over x (n_frames * 640,) -> (n_frames, *feature_shape)."""
        import torch

        if x.shape[0] < self.receptive_field:  # too short for the CNN: zero-pad (features are then resampled)
            x = np.pad(x, (0, self.receptive_field - x.shape[0]))
        inp = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(self.device)
        want_hidden = self.layers != "last"
        self._target_frames = n_frames if self.interpolate == "features" else 0
        try:
            with torch.inference_mode():
                out = self._model(inp, output_hidden_states=want_hidden)
        finally:
            self._target_frames = 0
        if want_hidden:
            feats = torch.stack([out.hidden_states[i][0] for i in self.layer_indices], dim=1)  # (N', K, D)
        else:
            feats = out.last_hidden_state[0]  # (N', D)
        if self.interpolate == "hidden":  # native rate -> n_frames
            flat = feats.reshape(feats.shape[0], -1).T[None].float()  # (1, K*D, N')
            feats = self._to_frames(flat, n_frames)[0].T.reshape(n_frames, *feats.shape[1:])
        return feats.float().cpu().numpy()


# =========================================================================== factory & cache
def build_extractor(spec: str | Mapping[str, Any] | AudioFeatureExtractor) -> AudioFeatureExtractor:
    """An extractor from a short spec.

    Strings: ``"logmel"``, ``"mfcc"``, ``"energy"``, ``"rms"``, ``"onset"``, ``"baseline"`` (logmel80 + energy
    + onset + mfcc13). Dicts: ``{"kind": <one of those or "wav2vec2"/"wavlm"/"hubert"/"concat">, **kwargs}``,
    e.g. ``{"kind": "wav2vec2", "model_dir": "pretrained/wav2vec2-base-960h"}``, ``{"kind": "logmel",
    "n_mels": 40}`` or ``{"kind": "concat", "parts": ["logmel", "energy"]}``. An extractor is returned as is.
    """
    if isinstance(spec, AudioFeatureExtractor):
        return spec
    if isinstance(spec, str):
        kind, kwargs = spec, {}
    elif isinstance(spec, Mapping):  # dict or OmegaConf DictConfig
        if "_target_" in spec:
            raise ValueError(
                "build_extractor: a `_target_` node is for hydra.utils.instantiate, not this factory"
            )
        kwargs = dict(spec)
        kind = kwargs.pop("kind", None)
        if kind is None:
            raise ValueError(f"build_extractor: dict spec needs a 'kind', got {spec}")
    else:
        raise TypeError(f"build_extractor: expected a str or dict spec, got {type(spec).__name__}")
    simple: dict[str, Any] = {
        "logmel": LogMelExtractor,
        "mfcc": MFCCExtractor,
        "energy": EnergyExtractor,
        "onset": OnsetExtractor,
    }
    if kind in simple:
        return simple[kind](**kwargs)
    if kind == "rms":
        return EnergyExtractor(log=False, **kwargs)
    if kind == "baseline":
        return ConcatExtractor(
            [LogMelExtractor(), EnergyExtractor(), OnsetExtractor(), MFCCExtractor()], **kwargs
        )
    if kind == "concat":
        parts = kwargs.pop("parts", None)
        if not parts:
            raise ValueError("build_extractor: 'concat' needs a non-empty 'parts' list")
        return ConcatExtractor([build_extractor(p) for p in parts], **kwargs)
    if kind in _MODEL_CLASSES:
        return PretrainedSpeechEncoder(kind=kind, **kwargs)
    if kind == "mmgt_release_librosa":  # the released MMGT's 35 librosa features (optional extra)
        from mmgt.audio_release import ReleaseLibrosaFeatures

        return ReleaseLibrosaFeatures(**kwargs)
    known = sorted([*simple, "rms", "baseline", "concat", "mmgt_release_librosa", *_MODEL_CLASSES])
    raise ValueError(f"build_extractor: unknown kind {kind!r}; known: {known}")


def load_or_compute_features(clip: Clip, extractor: AudioFeatureExtractor, cache: bool = True) -> np.ndarray:
    """Features (T, *feature_shape) of ``clip``: the cached ``features/<name>.npy`` when it exists and its
    shape matches (T = ``clip.record.n_frames``, or the audio's frame count when the record has none);
    otherwise computed from ``clip.audio()`` and, with ``cache=True``, written atomically
    (:func:`mmgt.atomic.save_npy`; concurrent writers are safe, the last identical file wins)."""
    path = clip.feature_path(extractor.name)
    n_frames = int(clip.record.n_frames)
    audio = None
    if n_frames <= 0:
        audio = clip.audio()
        n_frames = num_frames_for_samples(audio.shape[0])
    expected = (n_frames, *extractor.feature_shape())
    if path.is_file():
        try:
            cached = load_npy(path, f"cached audio features {extractor.name!r}")
        except (ValueError, OSError, EOFError) as e:
            log.warning("%s: unreadable cached features (%s); recomputing", path, e)
        else:
            if cached.shape == expected:
                return cached.astype(np.float32, copy=False)
            log.warning("%s: cached shape %s != expected %s; recomputing", path, cached.shape, expected)
    if audio is None:
        audio = clip.audio()
    feats = extractor(audio, n_frames=n_frames)
    if cache:
        save_npy(path, feats)
    return feats
