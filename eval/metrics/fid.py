"""FID with pytorch-fid semantics (mseitzer/pytorch-fid 0.3.0), as a torchmetrics ``Metric``.

What is pinned (metrics-reference.md §2.1):

* network: pytorch-fid's FID Inception (torchvision ``Inception3(num_classes=1008, aux_logits=False)`` with
  the ``FIDInceptionA/C/E_1/E_2`` blocks), weights ``pt_inception-2015-12-05-6726825d.pth`` loaded from a
  local file exactly as ``pytorch_fid.inception.fid_inception_v3`` loads it (``load_state_dict`` of the
  ``torch.load``-ed dict) — only the download is left out;
* preprocessing: images in [0, 1] (uint8 is divided by 255 in float32, as ``ToTensor`` does), bilinear
  resize to 299x299 (``align_corners=False``, no antialias), then ``2x - 1``;
* features: block 3 (pool3, 2048-d) or blocks 0/1/2 (64/192/768-d) spatially average-pooled;
* statistics: float64 streaming sums Σx, Σxxᵀ, N per side; unbiased covariance (÷(N−1), ``np.cov``);
* distance: :func:`mmgt_eval.frechet.frechet_distance` (symmetric square-root form, float64).

``fast=True`` (default) folds each batch norm into its convolution (computed in float64) and runs in
channels_last memory format: the same function up to float32 round-off (features agree to ~1e-5 relative),
about 2x faster on CPU (``tests/benchmarks/bench_eval.py fid``). ``fast=False`` runs pytorch-fid's
modules unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
import torchvision
from pytorch_fid import inception as pfi
from torch import Tensor, nn

from mmgt_eval.frechet import frechet_distance_from_features, frechet_of_sides, stats_from_sums
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    validate_rgb_tensor,
    weights_record,
)

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = pfi.FID_WEIGHTS_URL
BLOCK_INDEX_BY_DIM: dict[int, int] = dict(pfi.InceptionV3.BLOCK_INDEX_BY_DIM)
"""Feature size -> Inception block whose output is used (64: 0, 192: 1, 768: 2, 2048: 3)."""
INPUT_SIZE = 299


def fid_inception_architecture() -> nn.Module:
    """pytorch-fid's FID Inception with its default (untrained) initialisation and no weights loaded.

    Mirrors ``pytorch_fid.inception.fid_inception_v3`` up to (not including) the weight download.
    """
    inception = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    inception.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    inception.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    inception.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    inception.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    inception.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    inception.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    inception.Mixed_7b = pfi.FIDInceptionE_1(1280)
    inception.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return inception


def load_fid_inception(weights_path: str | os.PathLike) -> nn.Module:
    """The FID Inception with the local ``pt_inception-2015-12-05-6726825d.pth`` state dict loaded.

    Raises:
        FileNotFoundError: the file is missing (message says what to get and where).
        MetricInputError: the file is not a loadable FID Inception state dict.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"FID Inception weights not found at {path}. Get {FID_WEIGHTS_FILE} from {FID_WEIGHTS_URL} "
            "(`mmgt-weights fetch inception_fid`) and point the weights registry or weights_path at it."
        )
    inception = fid_inception_architecture()
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        inception.load_state_dict(state_dict)
    except Exception as err:  # noqa: BLE001 - re-raised with the file named
        raise MetricInputError(f"{path}: not a pytorch-fid FID Inception state dict ({err})") from err
    return inception


def write_random_fid_weights(path: str | os.PathLike, seed: int = 0, n_images: int = 8) -> Path:
    """Write a RANDOM-weight FID Inception state dict in the original format (tests and offline demos only).

    The architecture and key names are those of ``pt_inception-2015-12-05-6726825d.pth``; the weights are
    torch's default initialisation with batch-norm running statistics calibrated on ``n_images`` synthetic
    299x299 images (without calibration every feature is nearly input-independent and FIDs collapse to ~0,
    environment.md §10.9). Scores computed with this file mean nothing beyond testing the pipeline.
    """
    torch.manual_seed(seed)
    net = fid_inception_architecture()
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration pass
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_images, 3, INPUT_SIZE, INPUT_SIZE)
    for s in (4, 16, 64):  # smooth random fields at several scales, plus pixel noise
        coarse = torch.randn(n_images, 3, s, s, generator=g)
        x += F.interpolate(coarse, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    x = torch.sigmoid(x + 0.3 * torch.randn(x.shape, generator=g)) * 2 - 1
    net.train()
    with torch.no_grad():
        net(x)
    for bn in bns:
        bn.momentum = 0.1
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.eval().state_dict(), out)
    return out


def _fold_batchnorm(module: nn.Module) -> None:
    """Fold every ``BasicConv2d``'s eval-mode batch norm into its convolution (in place, float64 maths)."""
    for sub in module.modules():
        if isinstance(sub, torchvision.models.inception.BasicConv2d) and isinstance(sub.bn, nn.BatchNorm2d):
            conv, bn = sub.conv, sub.bn
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            bias = bn.bias.double() - bn.running_mean.double() * scale
            if conv.bias is not None:
                bias = bias + conv.bias.double() * scale
            weight = conv.weight.double() * scale[:, None, None, None]
            conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
            sub.bn = nn.Identity()


class FIDInceptionFeatures(nn.Module):
    """Images -> FID Inception features, exactly pytorch-fid's ``InceptionV3`` + ``get_activations``.

    Args:
        inception: a network from :func:`load_fid_inception` (or :func:`fid_inception_architecture`).
        dims: 64, 192, 768 or 2048.
        fast: fold batch norms into convolutions and use channels_last (see module docstring).
    """

    def __init__(self, inception: nn.Module, dims: int = 2048, fast: bool = True) -> None:
        super().__init__()
        if dims not in BLOCK_INDEX_BY_DIM:
            raise ValueError(f"dims must be one of {sorted(BLOCK_INDEX_BY_DIM)}, got {dims}")
        self.dims = dims
        self.fast = fast
        last = BLOCK_INDEX_BY_DIM[dims]
        i = inception
        blocks = [
            [i.Conv2d_1a_3x3, i.Conv2d_2a_3x3, i.Conv2d_2b_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
            [i.Conv2d_3b_1x1, i.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)],
            [i.Mixed_5b, i.Mixed_5c, i.Mixed_5d, i.Mixed_6a, i.Mixed_6b, i.Mixed_6c, i.Mixed_6d, i.Mixed_6e],
            [i.Mixed_7a, i.Mixed_7b, i.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))],
        ]
        self.blocks = nn.Sequential(*[nn.Sequential(*b) for b in blocks[: last + 1]])
        self.eval()
        self.requires_grad_(False)
        if fast:
            _fold_batchnorm(self)
            self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> FIDInceptionFeatures:
        """Always in eval mode: batch-norm statistics are part of the weights."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 in [0, 255] or float in [0, 1] -> (N, dims) float32 features."""
        x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        if self.fast:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.blocks(x)
        if x.shape[2] != 1 or x.shape[3] != 1:
            x = F.adaptive_avg_pool2d(x, output_size=(1, 1))
        return x.flatten(1)


def _check_images(images: Tensor) -> None:
    validate_rgb_tensor(images, "images", "(N, 3, H, W)")


class FIDMetric(RunnerSyncedMetric):
    """Fréchet Inception Distance with pytorch-fid semantics and float64 streaming states.

    States (all ``dist_reduce_fx="sum"``): ``{real,fake}_sum`` (dims,) float64, ``{real,fake}_cov_sum``
    (dims, dims) float64 (Σxxᵀ), ``{real,fake}_n`` int64.

    Args:
        weights_path: local ``pt_inception-2015-12-05-6726825d.pth``.
        dims: feature size (64, 192, 768, 2048); values for different dims are not comparable.
        batch_size: images per Inception forward pass inside :meth:`update`.
        fast: see the module docstring.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        weights_path: str | os.PathLike,
        dims: int = 2048,
        batch_size: int = 32,
        fast: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.weights_path = Path(weights_path)
        self.dims = dims
        self.batch_size = batch_size
        self.inception = FIDInceptionFeatures(load_fid_inception(weights_path), dims=dims, fast=fast)
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(dims, dtype=torch.float64), dist_reduce_fx="sum")
            outer = torch.zeros(dims, dims, dtype=torch.float64)
            self.add_state(f"{side}_cov_sum", outer, dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @torch.inference_mode()
    def features(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) uint8 or float [0, 1] -> (N, dims) float32 features, in batches of ``batch_size``."""
        _check_images(images)
        out = [
            self.inception(images[i : i + self.batch_size].to(self.device))
            for i in range(0, images.shape[0], self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.dims, device=self.device)

    def update(self, images: Tensor | None, real: bool, features: Tensor | None = None) -> None:
        """Add images to the real or generated statistics.

        Args:
            images: (N, 3, H, W) uint8, or float in [0, 1]; None when ``features`` is given.
            real: reference (True) or generated (False) side.
            features: precomputed (N, dims) Inception features instead of images.
        """
        if (images is None) == (features is None):
            raise ValueError("pass exactly one of images and features")
        if features is None:
            features = self.features(images)
        if features.ndim != 2 or features.shape[1] != self.dims:
            raise MetricInputError(f"features must be (N, {self.dims}), got {tuple(features.shape)}")
        side = "real" if real else "fake"
        x = features.to(device=self.device, dtype=torch.float64)
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + x.sum(0))
        setattr(self, f"{side}_cov_sum", getattr(self, f"{side}_cov_sum") + x.T @ x)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + x.shape[0])

    def update_features(self, features: Tensor, real: bool) -> None:
        """Add precomputed (N, dims) features (through :meth:`update`, so torchmetrics' bookkeeping runs)."""
        self.update(None, real, features=features)

    def stats(self, real: bool) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) float64 of one side (unbiased covariance)."""
        side = "real" if real else "fake"
        return stats_from_sums(
            getattr(self, f"{side}_sum"), getattr(self, f"{side}_cov_sum"), getattr(self, f"{side}_n"), ddof=1
        )

    def compute(self) -> Tensor:
        """FID as a float64 scalar tensor; :class:`MetricInputError` with fewer than 2 images per side."""
        n_real, n_fake = int(self.real_n), int(self.fake_n)
        if n_real < 2 or n_fake < 2:
            raise MetricInputError(
                f"FID needs at least 2 real and 2 generated images, got {n_real} real and {n_fake} generated"
            )
        warning = (
            f"FID with {n_real} real / {n_fake} generated images at dims={self.dims}: fewer samples than "
            "feature dimensions gives a singular covariance and a strongly biased value"
        )
        return torch.tensor(
            frechet_of_sides(self.stats, (n_real, n_fake), self.dims, warning), dtype=torch.float64
        )


def fid_from_features(real_features: Tensor | np.ndarray, fake_features: Tensor | np.ndarray) -> float:
    """FID from two (N_i, d) feature sets: unbiased covariances, then :func:`frechet_distance`."""
    return frechet_distance_from_features(real_features, fake_features, ddof=1)


def select_frames(n_frames: int, frame_stride: int = 1, max_frames: int | None = None) -> np.ndarray:
    """Frame indices FID uses from a video: every ``frame_stride``-th, at most ``max_frames``."""
    idx = np.arange(0, n_frames, frame_stride)
    return idx if max_frames is None else idx[:max_frames]


def frames_to_images(frames: np.ndarray, indices: Sequence[int] | np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 frames -> (len(indices), 3, H, W) uint8 tensor (a channels_last view)."""
    return torch.from_numpy(np.ascontiguousarray(frames[np.asarray(indices)])).permute(0, 3, 1, 2)


class FIDAdapter(MetricAdapter):
    """Runner adapter: frames of generated videos vs frames of reference videos.

    Args:
        weights_path: resolved local path of the ``inception_fid`` weights.
        dims, batch_size, fast: passed to :class:`FIDMetric`.
        frame_stride: use every k-th frame of each video (1 = every frame, pytorch-fid over dumped frames).
        max_frames_per_video: cap per video after striding (None = no cap).
        device: where the Inception runs (the runner may also move :meth:`metric_states`).
    """

    name = "fid"
    variant = "pytorch_fid"
    """pytorch-fid 0.3.0 semantics (resize, scaling, pool3, np.cov, its Fréchet path with few samples)."""
    higher_is_better = False
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "fid": False,
        "fid_n_real": None,
        "fid_n_generated": None,
    }
    needs_reference = True

    def __init__(
        self,
        weights_path: str | os.PathLike,
        dims: int = 2048,
        batch_size: int = 32,
        frame_stride: int = 1,
        max_frames_per_video: int | None = None,
        fast: bool = True,
        device: str = "cpu",
    ) -> None:
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
        self.frame_stride = frame_stride
        self.max_frames_per_video = max_frames_per_video
        self.metric = FIDMetric(weights_path, dims=dims, batch_size=batch_size, fast=fast).to(device)

    def _add(self, sample: VideoSample, real: bool) -> None:
        idx = select_frames(sample.frames.shape[0], self.frame_stride, self.max_frames_per_video)
        self.metric.update(frames_to_images(sample.frames, idx), real=real)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the selected frames of both videos; FID has no per-video score."""
        self._add(generated, real=False)
        if reference is not None:
            self._add(reference, real=True)
        return {}

    def compute(self) -> dict[str, float]:
        """``{"fid": value, "fid_n_real": frames, "fid_n_generated": frames}``."""
        # the counts first: Metric.compute() restores the local (unsynced) states when it returns
        n_real, n_generated = float(self.metric.real_n), float(self.metric.fake_n)
        return {"fid": float(self.metric.compute()), "fid_n_real": n_real, "fid_n_generated": n_generated}

    def protocol(self) -> dict:
        """Settings written into the results."""
        return {
            "metric": "fid",
            "reference_implementation": "pytorch-fid 0.3.0 (mseitzer/pytorch-fid)",
            "dims": self.metric.dims,
            "frame_stride": self.frame_stride,
            "max_frames_per_video": self.max_frames_per_video,
            "preprocessing": "uint8/255 float32; bilinear resize to 299x299 "
            "(align_corners=False, no antialias); 2x-1",
            "covariance": "unbiased (N-1), float64 streaming sums",
            "frechet": "mmgt_eval.frechet: float64; full rank: nuclear norm of sqrt(S1) sqrt(S2); singular "
            "(fewer frames than dims): trace of scipy sqrtm(S1 S2), pytorch-fid's own path",
            "batchnorm_folded": self.metric.inception.fast,
            "weights": weights_record(self.metric.weights_path),
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The one FID state synced by the runner."""
        return [self.metric]
