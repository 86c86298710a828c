"""Pretrained speech encoders (wav2vec2 / WavLM / HuBERT from a local ``transformers`` folder).

They give audio features at 25 fps (:class:`~mmgt.audio_extractors.AudioFeatureExtractor`); modes:
:mod:`mmgt.audio`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmgt.audio_extractors import AudioFeatureExtractor
from mmgt.schema import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

__all__ = ["PretrainedSpeechEncoder"]

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
        self._args = {"model_dir": str(self.model_dir), "kind": kind, "device": str(device)}
        self._args.update(
            interpolate=interpolate, chunk_seconds=chunk_seconds, context_seconds=context_seconds
        )
        self._args["layers"] = layers if isinstance(layers, str) else [int(i) for i in layers]
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
        """Linear interpolation (B, C, N') -> (B, C, n_frames) along time.

        Frame t takes native position t * 640 / stride (the CNN frame starting at the video frame's first
        sample), clamped to the last.

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
        """(D,) for ``layers="last"``, else (L, D): L selected layers, D the model's hidden size."""
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
