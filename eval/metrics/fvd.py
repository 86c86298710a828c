"""FVD (Fréchet Video Distance) with the StyleGAN-V protocol as default, as a torchmetrics ``Metric``.

Protocol (metrics-reference.md §3.2, StyleGAN-V ``fvd2048_16f``; every setting is a field of
:class:`FVDProtocol` and written into results):

* detector: I3D Kinetics-400, StyleGAN-V's TorchScript ``i3d_torchscript.pt`` (``torch.jit.load``), called
  ``detector(x, rescale=False, resize=False, return_features=True)`` on (N, 3, T, 224, 224) float in [-1, 1]
  (``detector_call="external"``, as JunyaoHu/common_metrics_on_video_quality's ``styleganv`` path does).
  Preprocessing: uint8 / 255 in float32, per-frame bilinear squash-resize to 224x224
  (``align_corners=False``, no antialias; equal to a trilinear resize that keeps T), then ``2x - 1``.
  ``detector_call="internal"`` instead hands uint8 (N, 3, T, H, W) to the TorchScript with
  ``rescale=True, resize=True`` exactly as StyleGAN-V's own metric does (the resize then happens inside the
  file, whose code we cannot inspect here);
* features: the 400-d pre-softmax logits;
* clips: one clip per video of 16 consecutive frames; reference clips start at a random offset, generated
  clips at frame 0; videos shorter than a clip are skipped (counted) or rejected (``short_videos="error"``);
  random offsets come from ``numpy.random.default_rng([seed, crc32(video name)])``, so they do not depend on
  the order of the videos or on how they are sharded across ranks;
* statistics: float64 streaming sums; covariance ÷N (``covariance_ddof=0``, StyleGAN-V's ``get_mean_cov``);
* distance: :func:`mmgt_eval.frechet.frechet_distance` (float64). On CUDA, cuDNN TF32 is disabled while the
  detector runs.

Only the StyleGAN-V TorchScript detector is implemented; VideoGPT/DisCo's ``i3d_pretrained_400.pt``
(``InceptionI3d`` state dict) is not.
"""

from __future__ import annotations

import contextlib
import os
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from mmgt_eval.frechet import frechet_distance, stats_from_sums
from mmgt_eval.metrics.base import MetricInputError, VideoSample, VideoSkipped, weights_record

I3D_TORCHSCRIPT_FILE = "i3d_torchscript.pt"
I3D_TORCHSCRIPT_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1"
SAMPLING_STRATEGIES = ("start", "random", "non_overlapping")
I3D_VARIANTS = ("stylegan-v-torchscript",)


@dataclass(frozen=True)
class FVDProtocol:
    """Every setting that changes an FVD value; defaults are StyleGAN-V's ``fvd2048_16f``.

    Attributes:
        n_frames: frames per clip.
        frame_stride: step between the frames of a clip (StyleGAN-V ``fvd2048_128f_subsample8f``: 8).
        resolution: side of the square the frames are squash-resized to.
        reference_sampling / generated_sampling: where clips start: ``"start"`` (frame 0, one clip),
            ``"random"`` (``clips_per_video`` distinct random offsets), ``"non_overlapping"`` (consecutive
            clips from frame 0, at most ``clips_per_video``; 0 = all).
        clips_per_video: see above (ignored by ``"start"``).
        seed: seeds the random offsets (per video name).
        covariance_ddof: 0 for ÷N (StyleGAN-V), 1 for ÷(N−1) (TF-GAN, JunyaoHu).
        i3d: detector variant (only ``"stylegan-v-torchscript"``).
        detector_call: ``"external"`` (we resize and scale to [-1, 1]) or ``"internal"`` (uint8 into the
            TorchScript with ``rescale=True, resize=True``).
        short_videos: ``"skip"`` (counted in the result) or ``"error"``.
    """

    n_frames: int = 16
    frame_stride: int = 1
    resolution: int = 224
    reference_sampling: str = "random"
    generated_sampling: str = "start"
    clips_per_video: int = 1
    seed: int = 0
    covariance_ddof: int = 0
    i3d: str = "stylegan-v-torchscript"
    detector_call: str = "external"
    short_videos: str = "skip"

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.frame_stride < 1 or self.resolution < 1:
            raise ValueError(f"n_frames, frame_stride and resolution must be >= 1: {self}")
        for field in ("reference_sampling", "generated_sampling"):
            if getattr(self, field) not in SAMPLING_STRATEGIES:
                raise ValueError(
                    f"{field} must be one of {SAMPLING_STRATEGIES}, got {getattr(self, field)!r}"
                )
        if self.clips_per_video < 0:
            raise ValueError(f"clips_per_video must be >= 0, got {self.clips_per_video}")
        if self.covariance_ddof not in (0, 1):
            raise ValueError(f"covariance_ddof must be 0 or 1, got {self.covariance_ddof}")
        if self.i3d not in I3D_VARIANTS:
            raise ValueError(f"i3d must be one of {I3D_VARIANTS}, got {self.i3d!r}")
        if self.detector_call not in ("external", "internal"):
            raise ValueError(f"detector_call must be 'external' or 'internal', got {self.detector_call!r}")
        if self.short_videos not in ("skip", "error"):
            raise ValueError(f"short_videos must be 'skip' or 'error', got {self.short_videos!r}")

    @property
    def clip_span(self) -> int:
        """Frames of the source video one clip covers."""
        return (self.n_frames - 1) * self.frame_stride + 1

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_any(cls, protocol: FVDProtocol | Mapping | None) -> FVDProtocol:
        """Accept a protocol, a mapping of its fields (e.g. a Hydra node) or None (defaults)."""
        if protocol is None:
            return cls()
        if isinstance(protocol, cls):
            return protocol
        return cls(**{str(k): v for k, v in protocol.items()})


def clip_frame_indices(n_video_frames: int, protocol: FVDProtocol, real: bool, key: str) -> np.ndarray:
    """Frame indices of the clips taken from one video: (n_clips, n_frames) int64 (n_clips = 0 if too short).

    Args:
        n_video_frames: length of the video.
        protocol: the FVD protocol.
        real: reference (True) or generated (False) side, which selects the sampling strategy.
        key: video name; with ``protocol.seed`` it seeds random offsets (order- and rank-independent).
    """
    span = protocol.clip_span
    steps = np.arange(protocol.n_frames, dtype=np.int64) * protocol.frame_stride
    if n_video_frames < span:
        return np.zeros((0, protocol.n_frames), dtype=np.int64)
    n_starts = n_video_frames - span + 1
    strategy = protocol.reference_sampling if real else protocol.generated_sampling
    if strategy == "start":
        starts = np.zeros(1, dtype=np.int64)
    elif strategy == "random":
        rng = np.random.default_rng([protocol.seed, zlib.crc32(key.encode("utf-8"))])
        k = min(max(protocol.clips_per_video, 1), n_starts)
        starts = np.sort(rng.choice(n_starts, size=k, replace=False)).astype(np.int64)
    else:  # non_overlapping
        starts = np.arange(0, n_starts, span, dtype=np.int64)
        if protocol.clips_per_video > 0:
            starts = starts[: protocol.clips_per_video]
    return starts[:, None] + steps[None, :]


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
    if not isinstance(video, Tensor):
        raise MetricInputError(f"{name}: video must be a torch.Tensor, got {type(video).__name__}")
    if video.ndim != 4 or video.shape[1] != 3:
        raise MetricInputError(f"{name}: video must be (T, 3, H, W) RGB, got shape {tuple(video.shape)}")
    if video.dtype != torch.uint8:
        if not video.is_floating_point():
            raise MetricInputError(f"{name}: video must be uint8 or float in [0, 1], got {video.dtype}")
        if video.numel() and (video.min() < 0 or video.max() > 1):
            raise MetricInputError(f"{name}: float video must be in [0, 1]")
    return video


class FVD(torchmetrics.Metric):
    """Fréchet Video Distance of I3D features, float64 streaming states synced by sum.

    States (all ``dist_reduce_fx="sum"``): ``{real,fake}_sum`` (D,) and ``{real,fake}_cov_sum`` (D, D)
    float64, ``{real,fake}_n`` (clips) and ``{real,fake}_skipped`` (videos shorter than a clip) int64.

    Args:
        weights_path: local ``i3d_torchscript.pt``.
        protocol: :class:`FVDProtocol` (or a mapping of its fields; None = StyleGAN-V defaults).
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
            self.add_state(f"{side}_sum", torch.zeros(feature_dim, dtype=torch.float64), dist_reduce_fx="sum")
            outer = torch.zeros(feature_dim, feature_dim, dtype=torch.float64)
            self.add_state(f"{side}_cov_sum", outer, dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
            self.add_state(f"{side}_skipped", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def reset(self) -> None:
        super().reset()
        self._n_seen = {True: 0, False: 0}

    def _tf32_off(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def clip_features(self, clips: Tensor) -> Tensor:
        """(N, T, 3, H, W) uint8 or float [0, 1] clips -> (N, D) float32 detector features."""
        out = []
        for i in range(0, clips.shape[0], self.batch_size):
            batch = clips[i : i + self.batch_size].to(self.device)
            with self._tf32_off():
                if self.protocol.detector_call == "external":
                    x = preprocess_clips(batch, self.protocol.resolution)
                    feats = self.detector(x, rescale=False, resize=False, return_features=True)
                else:
                    if batch.dtype != torch.uint8:
                        batch = (batch * 255).round().to(torch.uint8)
                    x = batch.permute(0, 2, 1, 3, 4).contiguous()
                    feats = self.detector(x, rescale=True, resize=True, return_features=True)
            if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
                raise MetricInputError(
                    f"{self.weights_path.name} returned features of shape {tuple(feats.shape)}, expected "
                    f"(N, {self.feature_dim}); the I3D needs {self.protocol.resolution}x"
                    f"{self.protocol.resolution} inputs and feature_dim must match the detector"
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
            names: one name per video, keying its random clip offsets; default ``"video<i>"`` with ``i``
                counted per side on this process (then offsets depend on the order of updates).
            features: precomputed (N, D) clip features instead of videos.
        """
        if (videos is None) == (features is None):
            raise ValueError("pass exactly one of videos and features")
        side = "real" if real else "fake"
        if features is None:
            features = self._video_features(list(videos), real, names)
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise MetricInputError(f"features must be (N, {self.feature_dim}), got {tuple(features.shape)}")
        x = features.to(device=self.device, dtype=torch.float64)
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + x.sum(0))
        setattr(self, f"{side}_cov_sum", getattr(self, f"{side}_cov_sum") + x.T @ x)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + x.shape[0])

    def _video_features(self, videos: list[Tensor], real: bool, names: Sequence[str] | None) -> Tensor:
        """Clip features of videos; short videos are counted (or rejected) here."""
        if names is None:
            names = [f"video{self._n_seen[real] + i}" for i in range(len(videos))]
        if len(names) != len(videos):
            raise ValueError(f"got {len(videos)} videos but {len(names)} names")
        self._n_seen[real] += len(videos)
        side = "real" if real else "fake"
        clips = []
        for video, name in zip(videos, names, strict=True):
            video = _as_video(video, name)
            idx = clip_frame_indices(video.shape[0], self.protocol, real, name)
            if idx.shape[0] == 0:
                if self.protocol.short_videos == "error":
                    raise MetricInputError(
                        f"{name}: {video.shape[0]} frames, shorter than the {self.protocol.clip_span}-frame "
                        "FVD clip (set short_videos='skip' to skip and count such videos)"
                    )
                setattr(self, f"{side}_skipped", getattr(self, f"{side}_skipped") + 1)
                continue
            clips.extend(video[torch.from_numpy(row)] for row in idx)
        if not clips:
            return torch.zeros(0, self.feature_dim, device=self.device)
        if len({tuple(c.shape) for c in clips}) > 1:  # different sizes: one detector call per clip
            return torch.cat([self.clip_features(c[None]) for c in clips])
        return self.clip_features(torch.stack(clips))

    def update_features(self, features: Tensor, real: bool) -> None:
        """Add precomputed (N, D) clip features (via :meth:`update`, so torchmetrics' bookkeeping runs)."""
        self.update(None, real, features=features)

    def stats(self, real: bool) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) float64 of one side with the protocol's covariance normalisation."""
        side = "real" if real else "fake"
        return stats_from_sums(
            getattr(self, f"{side}_sum"),
            getattr(self, f"{side}_cov_sum"),
            getattr(self, f"{side}_n"),
            ddof=self.protocol.covariance_ddof,
        )

    def compute(self) -> Tensor:
        """FVD as a float64 scalar; :class:`MetricInputError` with fewer than 2 clips per side."""
        n_real, n_fake = int(self.real_n), int(self.fake_n)
        if n_real < 2 or n_fake < 2:
            raise MetricInputError(
                f"FVD needs at least 2 reference and 2 generated clips, got {n_real} reference and {n_fake} "
                f"generated ({int(self.real_skipped)} / {int(self.fake_skipped)} videos skipped as shorter "
                f"than {self.protocol.clip_span} frames)"
            )
        if min(n_real, n_fake) <= self.feature_dim:
            warnings.warn(
                f"FVD with {n_real} reference / {n_fake} generated clips and {self.feature_dim}-d features: "
                "fewer clips than dimensions gives a singular covariance and a strongly biased value",
                stacklevel=2,
            )
        mu1, s1 = self.stats(real=True)
        mu2, s2 = self.stats(real=False)
        return torch.tensor(frechet_distance(mu1, s1, mu2, s2), dtype=torch.float64)


def video_to_tensor(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 frames -> (T, 3, H, W) uint8 tensor view."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


class FVDAdapter:
    """Runner adapter: clips of generated videos vs clips of reference videos.

    Args:
        weights_path: resolved local path of the ``i3d_torchscript`` weights.
        protocol: :class:`FVDProtocol` fields (mapping) or a protocol; None = StyleGAN-V defaults.
        feature_dim, batch_size: passed to :class:`FVD`.
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
        self.metric = FVD(weights_path, protocol=protocol, feature_dim=feature_dim, batch_size=batch_size)
        self.metric.to(device)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the clips of both videos; raises :class:`VideoSkipped` if either is shorter than a clip."""
        span = self.metric.protocol.clip_span
        short = []
        for sample, real in ((reference, True), (generated, False)):
            if sample is None:
                continue
            self.metric.update([video_to_tensor(sample.frames)], real=real, names=[sample.name])
            if sample.frames.shape[0] < span:
                side = "reference" if real else "generated"
                short.append(
                    f"{side} video has {sample.frames.shape[0]} frames, fewer than the {span}-frame clip"
                )
        if short:
            raise VideoSkipped(generated.name, "fvd: " + "; ".join(short))
        return {}

    def compute(self) -> dict[str, float]:
        """``fvd``, ``fvd_n_{real,generated}_clips``, ``fvd_skipped_{real,generated}`` (videos)."""
        m = self.metric
        return {
            "fvd": float(m.compute()),
            "fvd_n_real_clips": float(m.real_n),
            "fvd_n_generated_clips": float(m.fake_n),
            "fvd_skipped_real": float(m.real_skipped),
            "fvd_skipped_generated": float(m.fake_skipped),
        }

    def protocol(self) -> dict:
        """Protocol fields plus the detector file's checksum."""
        return {
            "metric": "fvd",
            "reference_implementation": "StyleGAN-V fvd2048_16f (universome/stylegan-v)",
            **self.metric.protocol.as_dict(),
            "feature_dim": self.metric.feature_dim,
            "frechet": "float64; Tr sqrt(S1 S2) = nuclear norm of sqrt(S1) sqrt(S2) (eigh square roots)",
            "preprocessing": (
                "uint8/255 float32; per-frame bilinear squash-resize to resolution (align_corners=False, "
                "no antialias); 2x-1; detector(x, rescale=False, resize=False, return_features=True)"
                if self.metric.protocol.detector_call == "external"
                else "uint8 (N,3,T,H,W) into detector(x, rescale=True, resize=True, return_features=True)"
            ),
            "weights": weights_record(self.metric.weights_path),
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.metric]


class _StandInI3D(nn.Module):
    """A tiny 3D CNN with the StyleGAN-V I3D TorchScript call signature (NOT I3D; see write_stand_in_i3d)."""

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
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
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        logits = self.logits(self.features(x).flatten(1))
        if return_features:
            return logits
        return torch.softmax(logits, dim=1)


def write_stand_in_i3d(path: str | os.PathLike, feature_dim: int = 400, seed: int = 0) -> Path:
    """Write a tiny random TorchScript detector with I3D's call signature (tests and offline demos only).

    It is not I3D: it exercises the real loading path (``torch.jit.load``) and call convention
    (``forward(x, rescale, resize, return_features)`` on (N, 3, T, 224, 224)). Batch norms are calibrated on
    synthetic clips so that its features depend on the input. Scores computed with it mean nothing.
    """
    torch.manual_seed(seed)
    net = _StandInI3D(feature_dim)
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
