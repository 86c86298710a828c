"""FVD (Fréchet Video Distance) as a torchmetrics ``Metric``; default protocol: StyleGAN-V's, exactly.

What is compared is set by an :class:`~mmgt_eval.metrics.fvd_protocol.FVDProtocol` variant
(:mod:`mmgt_eval.metrics.fvd_protocol`): ``stylegan_v`` (default; StyleGAN-V's keep rule, clip frames, 2048
cap and detector call) or ``clip_sampling`` (our configurable clips, declared as such). Everything else:

* detector: I3D Kinetics-400, StyleGAN-V's TorchScript ``i3d_torchscript.pt`` (``torch.jit.load``). With the
  internal call (StyleGAN-V) it gets uint8 (N, 3, T, H, W) with ``rescale=True, resize=True,
  return_features=True``; with ``clip_sampling``'s ``detector_call="external"``, uint8 / 255 in float32,
  per-frame bilinear squash-resize to ``resolution`` (``align_corners=False``, no antialias), ``2x - 1`` and
  ``rescale=False, resize=False``;
* features: the 400-d pre-softmax logits, cast to float32, one row per clip, kept with their video's name
  (list states), so that the cap can take the first videos in sorted name order whatever the sharding;
* statistics: float64 sums at compute time; covariance ÷N (StyleGAN-V) or the protocol's ``covariance_ddof``;
* distance: :func:`mmgt_eval.frechet.frechet_distance` (float64; with fewer clips than dimensions it follows
  the reference's ``sqrtm`` path). On CUDA, cuDNN TF32 is disabled while the detector runs.

Only the StyleGAN-V TorchScript detector is implemented; VideoGPT/DisCo's ``i3d_pretrained_400.pt``
(``InceptionI3d`` state dict) is not.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn
from torchmetrics.utilities import dim_zero_cat

from mmgt_eval.frechet import frechet_of_sides, stats_from_sums
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
    validate_rgb_tensor,
    weights_record,
)
from mmgt_eval.metrics.fvd_protocol import (  # noqa: F401 - re-exported: the protocol API lives there
    DEFAULT_FVD_PROTOCOL,
    FVD_PROTOCOLS,
    I3D_VARIANTS,
    SAMPLING_STRATEGIES,
    ClipSamplingProtocol,
    FVDProtocol,
    StyleGANVProtocol,
    clip_frame_indices,
)

I3D_TORCHSCRIPT_FILE = "i3d_torchscript.pt"
I3D_TORCHSCRIPT_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"


def load_i3d_torchscript(weights_path: str | os.PathLike) -> torch.jit.ScriptModule:
    """StyleGAN-V's ``i3d_torchscript.pt`` (or any TorchScript with its call signature), in eval mode."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"I3D weights not found at {path}. Get {I3D_TORCHSCRIPT_FILE} from {I3D_TORCHSCRIPT_URL} "
            "(`mmgt-weights fetch i3d_torchscript`) and point the weights registry or weights_path at it."
        )
    try:
        with (
            warnings.catch_warnings()
        ):  # torch 2.14 marks torch.jit as deprecated; the file format is TorchScript
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
            detector = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise MetricInputError(f"{path}: not a TorchScript I3D detector ({err})") from err
    return detector.eval()


def preprocess_clips(clips: Tensor, resolution: int = 224) -> Tensor:
    """(N, T, 3, H, W) uint8 or float [0, 1] -> (N, 3, T, R, R) float32 in [-1, 1] (bilinear squash)."""
    n, t, c, h, w = clips.shape
    x = clips.float().div(255) if clips.dtype == torch.uint8 else clips.float()
    x = x.reshape(n * t, c, h, w)
    if (h, w) != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    return x.reshape(n, t, c, resolution, resolution).permute(0, 2, 1, 3, 4).contiguous()


def _as_video(video: Tensor, name: str) -> Tensor:
    validate_rgb_tensor(video, f"{name}: video", "(T, 3, H, W)")
    return video


def _encode_names(names: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Names -> (concatenated UTF-8 bytes uint8, lengths int64): a tensor form list states can gather."""
    raw = [n.encode("utf-8") for n in names]
    data = torch.frombuffer(bytearray(b"".join(raw)), dtype=torch.uint8) if any(raw) else torch.zeros(0)
    return data.to(torch.uint8).clone(), torch.tensor([len(r) for r in raw], dtype=torch.long)


def _decode_names(data: Tensor, lengths: Tensor) -> list[str]:
    raw = bytes(data.cpu().to(torch.uint8).numpy().tobytes())
    ends = np.cumsum(lengths.cpu().numpy())
    return [raw[e - n : e].decode("utf-8") for e, n in zip(ends, lengths.cpu().numpy(), strict=True)]


class FVDMetric(RunnerSyncedMetric):
    """Fréchet Video Distance of I3D features under an :class:`FVDProtocol`.

    States per side (``real`` / ``fake``): ``{side}_features`` (list, ``cat``) float32 (N, D) clip features,
    ``{side}_name_bytes`` / ``{side}_name_lengths`` (list, ``cat``) the clip's video name, and
    ``{side}_skipped`` (sum, int64) videos too short for the protocol. UTF-8 byte order equals Python's
    string order, so :meth:`selected_videos` sorts exactly as StyleGAN-V's ``sorted()`` of folder names.

    Args:
        weights_path: local ``i3d_torchscript.pt``.
        protocol: an :class:`FVDProtocol`, a mapping of its fields (``variant`` selects the class;
            default ``stylegan_v``) or None (StyleGAN-V ``fvd2048_16f``).
        feature_dim: detector feature size (400 Kinetics logits).
        batch_size: clips per detector call.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        weights_path: str | os.PathLike,
        protocol: FVDProtocol | Mapping | None = None,
        feature_dim: int = 400,
        batch_size: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.protocol = FVDProtocol.from_any(protocol)
        self.weights_path = Path(weights_path)
        self.feature_dim = feature_dim
        self.batch_size = batch_size
        self.detector = load_i3d_torchscript(weights_path)
        self._n_seen = {True: 0, False: 0}
        for side in ("real", "fake"):
            self.add_state(f"{side}_features", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_name_bytes", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_name_lengths", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def reset(self) -> None:
        """Reset the states and the per-side clip counters."""
        super().reset()
        self._n_seen = {True: 0, False: 0}

    def _tf32_off(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)
        return contextlib.nullcontext()

    def _detector_input(self, batch: Tensor) -> tuple[Tensor, bool]:
        """(N, T, 3, H, W) clips -> the detector's input and whether it rescales and resizes itself."""
        if self.protocol.internal_detector_call:  # StyleGAN-V: uint8 (N, 3, T, H, W), nothing done here
            if batch.dtype != torch.uint8:
                batch = (batch * 255).round().to(torch.uint8)
            return batch.permute(0, 2, 1, 3, 4).contiguous(), True
        return preprocess_clips(batch, self.protocol.resolution), False

    @torch.inference_mode()
    def clip_features(self, clips: Tensor) -> Tensor:
        """(N, T, 3, H, W) uint8 or float [0, 1] clips -> (N, D) float32 detector features."""
        out = []
        for i in range(0, clips.shape[0], self.batch_size):
            x, internal = self._detector_input(clips[i : i + self.batch_size].to(self.device))
            with self._tf32_off():
                feats = self.detector(x, rescale=internal, resize=internal, return_features=True)
            if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
                raise MetricInputError(
                    f"{self.weights_path.name} returned features of shape {tuple(feats.shape)}, expected "
                    f"(N, {self.feature_dim}); feature_dim must match the detector (external calls need "
                    "inputs of the I3D's 224 x 224)"
                )
            out.append(feats.float())
        return torch.cat(out) if out else torch.zeros(0, self.feature_dim, device=self.device)

    def update(
        self,
        videos: Tensor | Sequence[Tensor] | None,
        real: bool,
        names: Sequence[str] | None = None,
        features: Tensor | None = None,
    ) -> None:
        """Sample clips from videos and add their features to one side.

        Args:
            videos: (N, T, 3, H, W) tensor or a sequence of (T_i, 3, H, W) tensors; uint8 or float in [0, 1].
                None when ``features`` is given.
            real: reference (True) or generated (False) side.
            names: one name per video (per feature row with ``features``): keys random offsets and the
                cap's sorted order; default ``"video<i>"`` counted per side on this process.
            features: precomputed (N, D) clip features instead of videos.
        """
        if (videos is None) == (features is None):
            raise ValueError("pass exactly one of videos and features")
        side = "real" if real else "fake"
        n = len(videos) if features is None else features.shape[0]
        if names is None:
            names = [f"video{self._n_seen[real] + i}" for i in range(n)]
        if len(names) != n:
            raise ValueError(
                f"got {n} {'videos' if features is None else 'feature rows'} but {len(names)} names"
            )
        self._n_seen[real] += n
        if features is None:
            features, names = self._video_features(list(videos), real, names)
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise MetricInputError(f"features must be (N, {self.feature_dim}), got {tuple(features.shape)}")
        data, lengths = _encode_names(names)
        getattr(self, f"{side}_features").append(features.to(device=self.device, dtype=torch.float32))
        getattr(self, f"{side}_name_bytes").append(data.to(self.device))
        getattr(self, f"{side}_name_lengths").append(lengths.to(self.device))

    def _video_features(
        self, videos: list[Tensor], real: bool, names: Sequence[str]
    ) -> tuple[Tensor, list[str]]:
        """Clip features of videos (and the video name of each clip); short videos are counted here."""
        side = "real" if real else "fake"
        clips, clip_names = [], []
        for video, name in zip(videos, names, strict=True):
            video = _as_video(video, name)
            idx = self.protocol.clip_frame_indices(video.shape[0], real, name)
            if idx.shape[0] == 0:
                if self.protocol.short_is_error():
                    raise MetricInputError(
                        f"{name}: {video.shape[0]} frames, shorter than the "
                        f"{self.protocol.min_video_frames(real)} the FVD protocol needs (set "
                        "short_videos='skip' to skip and count such videos)"
                    )
                setattr(self, f"{side}_skipped", getattr(self, f"{side}_skipped") + 1)
                continue
            clips.extend(video[torch.from_numpy(row)] for row in idx)
            clip_names.extend([name] * idx.shape[0])
        if not clips:
            return torch.zeros(0, self.feature_dim, device=self.device), []
        if len({tuple(c.shape) for c in clips}) > 1:  # different sizes: one detector call per clip
            return torch.cat([self.clip_features(c[None]) for c in clips]), clip_names
        return self.clip_features(torch.stack(clips)), clip_names

    def update_features(self, features: Tensor, real: bool, names: Sequence[str] | None = None) -> None:
        """Add precomputed (N, D) clip features (via :meth:`update`, so torchmetrics' bookkeeping runs)."""
        self.update(None, real, names=names, features=features)

    def _side(self, real: bool) -> tuple[Tensor, list[str]]:
        side = "real" if real else "fake"
        feats = getattr(self, f"{side}_features")
        if isinstance(feats, list) and not feats:
            return torch.zeros(0, self.feature_dim, dtype=torch.float32), []
        names = _decode_names(
            dim_zero_cat(getattr(self, f"{side}_name_bytes")),
            dim_zero_cat(getattr(self, f"{side}_name_lengths")),
        )
        return dim_zero_cat(feats), names

    def selected_videos(self, real: bool) -> tuple[list[str], int]:
        """(videos used: sorted names, at most ``protocol.max_videos``; number left out by the cap)."""
        videos = sorted(set(self._side(real)[1]))
        cap = self.protocol.max_videos
        return (videos, 0) if cap is None or len(videos) <= cap else (videos[:cap], len(videos) - cap)

    def clip_rows(self, real: bool) -> Tensor:
        """(N, D) float64 features of the clips of :meth:`selected_videos`, in sorted name order."""
        feats, names = self._side(real)
        keep = set(self.selected_videos(real)[0])
        order = sorted((n, i) for i, n in enumerate(names) if n in keep)
        return feats[[i for _, i in order]].double().cpu()

    def stats(self, real: bool) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) float64 of one side's selected clips with the protocol's covariance normalisation."""
        x = self.clip_rows(real)
        return stats_from_sums(x.sum(0), x.T @ x, x.shape[0], ddof=self.protocol.covariance_ddof)

    def compute(self) -> Tensor:
        """FVD as a float64 scalar.

        Raises :class:`MetricInputError` with fewer than 2 clips per side, or (StyleGAN-V) when a generated
        video was too short.
        """
        n_short_gen = int(self.fake_skipped)
        if n_short_gen and self.protocol.short_generated_fails():
            raise MetricInputError(
                f"FVD ({self.protocol.variant}): {n_short_gen} generated video(s) shorter than "
                f"{self.protocol.min_video_frames(False)} frames; StyleGAN-V's run fails on such videos "
                "(dataset.py:400). Drop or lengthen them, or use protocol.variant=clip_sampling to skip them"
            )
        n_real, n_fake = self.clip_rows(True).shape[0], self.clip_rows(False).shape[0]
        if n_real < 2 or n_fake < 2:
            raise MetricInputError(
                f"FVD needs at least 2 reference and 2 generated clips, got {n_real} reference and {n_fake} "
                f"generated ({int(self.real_skipped)} / {n_short_gen} videos skipped as too short)"
            )
        warning = (
            f"FVD with {n_real} reference / {n_fake} generated clips and {self.feature_dim}-d features: "
            "fewer clips than dimensions gives a singular covariance and a strongly biased value"
        )
        value = frechet_of_sides(self.stats, (n_real, n_fake), self.feature_dim, warning)
        return torch.tensor(value, dtype=torch.float64)


def video_to_tensor(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 frames -> (T, 3, H, W) uint8 tensor view."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


class FVDAdapter(MetricAdapter):
    """Runner adapter: clips of generated videos vs clips of reference videos.

    Args:
        weights_path: resolved local path of the ``i3d_torchscript`` weights.
        protocol: an :class:`FVDProtocol` or a mapping of its fields (``variant``: ``stylegan_v``, the
            default, or ``clip_sampling``); None = StyleGAN-V ``fvd2048_16f``.
        feature_dim, batch_size: passed to :class:`FVDMetric`.
        device: where the detector runs (the runner may also move :meth:`metric_states`).
    """

    name = "fvd"
    higher_is_better = False
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "fvd": False,
        "fvd_n_real_clips": None,
        "fvd_n_generated_clips": None,
        "fvd_skipped_real": None,
        "fvd_skipped_generated": None,
        "fvd_capped_real": None,
        "fvd_capped_generated": None,
    }
    needs_reference = True

    def __init__(
        self,
        weights_path: str | os.PathLike,
        protocol: FVDProtocol | Mapping | None = None,
        feature_dim: int = 400,
        batch_size: int = 8,
        device: str = "cpu",
    ) -> None:
        self.metric = FVDMetric(
            weights_path, protocol=protocol, feature_dim=feature_dim, batch_size=batch_size
        )
        self.metric.to(device)

    @property
    def variant(self) -> str:
        """The protocol variant's name."""
        return self.metric.protocol.variant

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the clips of both videos; raises :class:`VideoSkipped` if either is too short.

        Each side is independent (as in StyleGAN-V): a too-short reference is dropped while the generated
        video's clip is still used, and vice versa (under ``stylegan_v`` a too-short generated video then
        makes :meth:`compute` fail).
        """
        proto = self.metric.protocol
        short = []
        for sample, real in ((reference, True), (generated, False)):
            if sample is None:
                continue
            self.metric.update([video_to_tensor(sample.frames)], real=real, names=[sample.name])
            need = proto.min_video_frames(real)
            if sample.frames.shape[0] < need:
                side = "reference" if real else "generated"
                what = (
                    " (StyleGAN-V fails on it: fvd will fail)"
                    if not real and proto.short_generated_fails()
                    else ""
                )
                short.append(f"{side} video has {sample.frames.shape[0]} frames, fewer than {need}{what}")
        if short:
            raise VideoSkipped(generated.name, "fvd: " + "; ".join(short))
        return {}

    def compute(self) -> dict[str, float]:
        """``fvd``, clip counts, videos skipped as too short and videos left out by the cap, per side."""
        m = self.metric
        counts = {  # read before FVD.compute(), which may unsync states the runner synced
            "fvd_n_real_clips": float(m.clip_rows(True).shape[0]),
            "fvd_n_generated_clips": float(m.clip_rows(False).shape[0]),
            "fvd_skipped_real": float(m.real_skipped),
            "fvd_skipped_generated": float(m.fake_skipped),
            "fvd_capped_real": float(m.selected_videos(True)[1]),
            "fvd_capped_generated": float(m.selected_videos(False)[1]),
        }
        return {"fvd": float(m.compute()), **counts}

    def protocol(self) -> dict:
        """The protocol variant and its rules, the detector call, the Fréchet path, the detector checksum."""
        internal = self.metric.protocol.internal_detector_call
        return {
            "metric": "fvd",
            "default_variant": DEFAULT_FVD_PROTOCOL,
            **self.metric.protocol.as_dict(),
            "feature_dim": self.metric.feature_dim,
            "features": "detector features cast to float32, statistics in float64",
            "frechet": "mmgt_eval.frechet: float64; full rank: nuclear norm of sqrt(S1) sqrt(S2); singular "
            "(fewer clips than dims): trace of scipy sqrtm(S1 S2) as pytorch-fid / StyleGAN-V",
            "preprocessing": (
                "uint8 (N,3,T,H,W) at the stored size into detector(x, rescale=True, resize=True, "
                "return_features=True)"
                if internal
                else "uint8/255 float32; per-frame bilinear squash-resize to resolution "
                "(align_corners=False, no antialias); 2x-1; "
                "detector(x, rescale=False, resize=False, return_features=True)"
            ),
            "weights": weights_record(self.metric.weights_path),
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The one FVD state synced by the runner."""
        return [self.metric]


class _StandInI3D(nn.Module):
    """A tiny 3D CNN with the StyleGAN-V I3D TorchScript call signature (NOT I3D; see write_stand_in_i3d)."""

    def __init__(self, feature_dim: int, resize_to: int = 224) -> None:
        super().__init__()
        self.resize_to = resize_to
        self.features = nn.Sequential(
            nn.Conv3d(3, 8, kernel_size=(3, 8, 8), stride=(1, 8, 8), padding=(1, 0, 0)),
            nn.BatchNorm3d(8),
            nn.ReLU(),
            nn.Conv3d(8, 16, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm3d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
        )
        self.logits = nn.Linear(16, feature_dim)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        if rescale:
            x = x.float() / 255.0 * 2.0 - 1.0
        if resize:
            x = F.interpolate(
                x, size=(x.shape[2], self.resize_to, self.resize_to), mode="trilinear", align_corners=False
            )
        logits = self.logits(self.features(x).flatten(1))
        if return_features:
            return logits
        return torch.softmax(logits, dim=1)


def write_stand_in_i3d(
    path: str | os.PathLike, feature_dim: int = 400, seed: int = 0, resize_to: int = 224
) -> Path:
    """Write a tiny random TorchScript detector with I3D's call signature (tests and offline demos only).

    It is not I3D: it exercises the real loading path (``torch.jit.load``) and call convention
    (``forward(x, rescale, resize, return_features)`` on (N, 3, T, 224, 224)); ``resize=True`` resizes
    trilinearly to ``resize_to`` (224 like I3D; smaller keeps tests fast). Batch norms are calibrated on
    synthetic clips so that its features depend on the input. Scores computed with it mean nothing.
    """
    torch.manual_seed(seed)
    net = _StandInI3D(feature_dim, resize_to)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm3d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(8, 3, 4, 8, 8, generator=g)
    x = F.interpolate(coarse, size=(16, 224, 224), mode="trilinear", align_corners=False)
    x = torch.tanh(x + 0.3 * torch.randn(x.shape, generator=g))
    net.train()
    with torch.no_grad():
        net(x)
    for bn in bns:
        bn.momentum = 0.1
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*")
        torch.jit.script(net.eval()).save(str(out))
    return out
