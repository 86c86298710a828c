"""Frame-level reconstruction metrics of generated vs reference videos: PSNR, SSIM, LPIPS.

Protocol (every adapter writes it into :meth:`protocol`; metrics-reference.md §6-§7):

* Frames are RGB in [0, 1] (uint8 / 255); ``data_range = 1.0`` is always passed (torchmetrics infers it per
  batch when it is None, which is a pitfall).
* Scores are computed **per frame**, averaged over the frames of a video, then over videos (each video has
  the same weight whatever its length; JunyaoHu/common_metrics_on_video_quality's video protocol).
* PSNR: torchmetrics ``peak_signal_noise_ratio(dim=(1, 2, 3), reduction='none')`` in float64, i.e.
  10 log10(1 / MSE) per frame (not the pooled MSE of ``dim=None``). Identical frames give +inf in
  torchmetrics; by default a frame's PSNR is capped at ``max_db = 100`` dB (JunyaoHu's convention: MSE
  < 1e-10 -> 100 at L = 1); ``max_db=None`` keeps inf.
* SSIM: torchmetrics ``structural_similarity_index_measure`` with its defaults (Gaussian window 11, sigma
  1.5, k1 0.01, k2 0.03, reflect padding, mean over all pixels and channels including the padded border
  since torchmetrics 1.5), float32.
* LPIPS: the ``lpips`` package's model (v0.1, ``net`` alex | vgg | squeeze) with its shipped linear layers
  and the torchvision ImageNet backbone loaded from a **local** torchvision state-dict file
  (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``; nothing is downloaded); inputs [0, 1] ->
  [-1, 1] (``normalize=True``), one value per frame.
* Pairs must have equal frame counts and sizes: a mismatch raises :class:`MetricInputError` naming both
  videos, unless ``frame_policy="truncate"`` (score the first min(T) frames) or
  ``size_policy="resize_generated"`` (bilinear, antialiased resize of the generated frames to the
  reference size) is configured; both are declared in the protocol.
* Grayscale (T, H, W) / (T, H, W, 1) frames are replicated to RGB and RGBA drops its alpha channel
  (as PIL ``convert('RGB')``) in :func:`to_rgb`; the runner's ``VideoSample`` already refuses them.
* Videos stay uint8 in memory; frames are converted to float in chunks of ``batch_size``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    weights_record,
)

__all__ = [
    "LPIPS_BACKBONE_FILES",
    "LPIPSAdapter",
    "LPIPSWeightsError",
    "PSNRAdapter",
    "SSIMAdapter",
    "LPIPSMetric",
    "PSNRMetric",
    "SSIMMetric",
    "build_lpips",
    "load_lpips_backbone",
    "lpips_frames",
    "match_videos",
    "psnr_frames",
    "ssim_frames",
    "as_float",
    "to_rgb",
]

DATA_RANGE = 1.0

LPIPS_BACKBONE_FILES: dict[str, tuple[str, str]] = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": (
        "squeezenet1_1-b8a52dc0.pth",
        "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
    ),
}
"""torchvision ImageNet backbone file (name, URL) of each LPIPS trunk."""


# =========================================================================== frames
def to_rgb(frames: Any, name: str = "video") -> Tensor:
    """Frames -> (T, 3, H, W): uint8 stays uint8 (converted per chunk later), float must be in [0, 1].

    Accepts (T, H, W, C) with C in {1, 3, 4} or (T, H, W) grayscale. Grayscale is replicated to 3 channels;
    RGBA drops alpha (not composited).
    """
    x = frames if isinstance(frames, Tensor) else torch.from_numpy(np.ascontiguousarray(frames))
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise MetricInputError(f"{name}: frames must be (T, H, W[, 1|3|4]), got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise MetricInputError(f"{name}: no frames")
    if x.shape[-1] == 1:
        x = x.expand(*x.shape[:-1], 3)
    elif x.shape[-1] == 4:
        x = x[..., :3]
    if x.is_floating_point():
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise MetricInputError(f"{name}: float frames must be in [0, 1]")
    elif x.dtype != torch.uint8:
        raise MetricInputError(f"{name}: frames must be uint8 or float in [0, 1], got {x.dtype}")
    return x.permute(0, 3, 1, 2)


def as_float(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(…, 3, H, W) uint8 -> ``dtype`` / 255 (the division in ``dtype``); float -> ``dtype``."""
    return x.to(dtype) / 255.0 if x.dtype == torch.uint8 else x.to(dtype)


def match_videos(
    generated: Tensor,
    reference: Tensor,
    generated_name: str = "generated",
    reference_name: str = "reference",
    frame_policy: str = "error",
    size_policy: str = "error",
) -> tuple[Tensor, Tensor]:
    """Apply the declared frame-count / size policies to (T, 3, H, W) videos; a mismatch names both.

    ``resize_generated`` returns the generated video as float32 in [0, 1] (bilinear, antialiased).
    """
    tg, tr = generated.shape[0], reference.shape[0]
    if tg != tr:
        if frame_policy != "truncate":
            raise MetricInputError(
                f"{generated_name} has {tg} frames but {reference_name} has {tr}; frame-level metrics need "
                "equal frame counts (or frame_policy=truncate)"
            )
        generated, reference = generated[: min(tg, tr)], reference[: min(tg, tr)]
    if generated.shape[-2:] != reference.shape[-2:]:
        if size_policy != "resize_generated":
            raise MetricInputError(
                f"{generated_name} is {tuple(generated.shape[-2:])} (H, W) but {reference_name} is "
                f"{tuple(reference.shape[-2:])}; frame-level metrics need equal sizes (or "
                "size_policy=resize_generated)"
            )
        size = tuple(reference.shape[-2:])
        generated = torch.cat(
            [
                F.interpolate(as_float(c), size=size, mode="bilinear", align_corners=False, antialias=True)
                for c in generated.split(16)
            ]
        ).clamp(0.0, 1.0)
    return generated, reference


def _chunks(
    gen: Tensor, ref: Tensor, batch_size: int, dtype: torch.dtype = torch.float32
) -> Iterator[tuple[Tensor, Tensor]]:
    """Aligned float chunks of two (T, 3, H, W) videos (uint8 converted per chunk)."""
    for i in range(0, gen.shape[0], batch_size):
        yield as_float(gen[i : i + batch_size], dtype), as_float(ref[i : i + batch_size], dtype)


# =========================================================================== functional cores
def psnr_frames(
    generated: Tensor, reference: Tensor, max_db: float | None = 100.0, batch_size: int = 32
) -> Tensor:
    """Per-frame PSNR (T,) float64 of (T, 3, H, W) videos (uint8, or float in [0, 1]).

    Torchmetrics, data_range 1, computed in float64.

    Frames whose PSNR exceeds ``max_db`` (identical frames: +inf) are set to ``max_db``; None keeps inf.
    """
    out = []
    for g, r in _chunks(generated, reference, batch_size, torch.float64):
        out.append(peak_signal_noise_ratio(g, r, data_range=DATA_RANGE, dim=(1, 2, 3), reduction="none"))
    vals = torch.cat(out)
    return vals if max_db is None else vals.clamp(max=max_db)


def ssim_frames(
    generated: Tensor,
    reference: Tensor,
    kernel_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    batch_size: int = 32,
) -> Tensor:
    """Per-frame SSIM (T,) of (T, 3, H, W) videos, uint8 or [0, 1] (torchmetrics, Gaussian window, fp32)."""
    out = []
    for g, r in _chunks(generated, reference, batch_size):
        out.append(
            structural_similarity_index_measure(
                g,
                r,
                gaussian_kernel=True,
                sigma=sigma,
                kernel_size=kernel_size,
                reduction="none",
                data_range=DATA_RANGE,
                k1=k1,
                k2=k2,
            )
        )
    return torch.cat(out).double()


class LPIPSWeightsError(RuntimeError):
    """The LPIPS backbone weights are missing or do not fit the network."""


def load_lpips_backbone(model: Any, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
    """Load a torchvision ``features.*`` state dict into ``model.net`` of an ``lpips.LPIPS``.

    lpips wraps torchvision's ``features`` modules into ``slice1..sliceN`` and keeps their original indices as
    child names, so ``net.slice{k}.{i}.<param>`` is torchvision's ``features.{i}.<param>``. Every backbone
    parameter must be present with the same shape; the classifier keys of the torchvision file are ignored.
    """
    target = model.net.state_dict()
    mapped: dict[str, Tensor] = {}
    missing, bad = [], []
    for key, value in target.items():
        m = re.fullmatch(r"slice\d+\.(\d+)\.(.+)", key)
        if m is None:
            raise LPIPSWeightsError(f"unexpected LPIPS backbone parameter {key!r}")
        tv_key = f"features.{m.group(1)}.{m.group(2)}"
        if tv_key not in state_dict:
            missing.append(tv_key)
        elif tuple(state_dict[tv_key].shape) != tuple(value.shape):
            bad.append(f"{tv_key} {tuple(state_dict[tv_key].shape)} != {tuple(value.shape)}")
        else:
            mapped[key] = state_dict[tv_key]
    if missing or bad:
        raise LPIPSWeightsError(
            f"{source}: not a torchvision backbone state dict for LPIPS net={model.pnet_type!r}; "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}; wrong shapes {bad[:5]}"
        )
    model.net.load_state_dict(mapped, strict=True)


def build_lpips(
    net: str = "alex",
    weights_path: str | os.PathLike | None = None,
    random_backbone: bool = False,
    device: str | torch.device = "cpu",
) -> Any:
    """An ``lpips.LPIPS(net, version='0.1')`` with its shipped linear layers and a local backbone file.

    ``weights_path``: torchvision state dict of the backbone (:data:`LPIPS_BACKBONE_FILES`), loaded with
    :func:`load_lpips_backbone`; nothing is downloaded. ``random_backbone=True`` keeps lpips' random trunk
    (tests only: values are then not LPIPS). Eval mode, no gradients.
    """
    import lpips  # local: lpips imports torchvision models at import time

    if net not in LPIPS_BACKBONE_FILES:
        raise ValueError(f"unknown LPIPS net {net!r}; known: {', '.join(LPIPS_BACKBONE_FILES)}")
    if weights_path is None and not random_backbone:
        fname, url = LPIPS_BACKBONE_FILES[net]
        raise LPIPSWeightsError(
            f"LPIPS net={net!r} needs its torchvision ImageNet backbone: download {fname} from {url} and "
            "pass weights_path= (registry name lpips_alexnet / lpips_vgg16); nothing is downloaded here"
        )
    model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            fname, url = LPIPS_BACKBONE_FILES[net]
            raise LPIPSWeightsError(f"{path}: LPIPS backbone file not found (expected {fname} from {url})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad weight file
            raise LPIPSWeightsError(f"{path}: cannot read a torch state dict ({err})") from err
        if not isinstance(state, dict):
            raise LPIPSWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
        load_lpips_backbone(model, state, source=str(path))
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def lpips_frames(model: Any, generated: Tensor, reference: Tensor, batch_size: int = 16) -> Tensor:
    """Per-frame LPIPS (T,) of (T, 3, H, W) videos, uint8 or [0, 1] (``normalize=True``: -> [-1, 1])."""
    dev = next(model.parameters()).device
    out = []
    for g, r in _chunks(generated, reference, batch_size):
        out.append(model(g.to(dev), r.to(dev), normalize=True).reshape(-1).double().cpu())
    return torch.cat(out)


# =========================================================================== torchmetrics Metrics
class _VideoMeanMetric(RunnerSyncedMetric):
    """Mean over videos of the per-video mean over frames (float64 sums, synced across ranks).

    ``update(generated, reference)`` takes two videos (T, H, W, 3) uint8 (or anything :func:`to_rgb`
    accepts) and keeps the per-frame scores of the last video in ``last_frames``.
    """

    is_differentiable = False
    full_state_update = False
    score_sum: Tensor
    num_videos: Tensor
    frame_sum: Tensor
    num_frames: Tensor

    def __init__(self, frame_policy: str = "error", size_policy: str = "error", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if frame_policy not in ("error", "truncate"):
            raise ValueError(f"frame_policy must be 'error' or 'truncate', got {frame_policy!r}")
        if size_policy not in ("error", "resize_generated"):
            raise ValueError(f"size_policy must be 'error' or 'resize_generated', got {size_policy!r}")
        self.frame_policy, self.size_policy = frame_policy, size_policy
        self.last_frames: Tensor | None = None
        self.add_state("score_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_videos", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("frame_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_frames", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def _frames(self, generated: Tensor, reference: Tensor) -> Tensor:
        raise NotImplementedError

    def update(
        self,
        generated: Any,
        reference: Any,
        generated_name: str = "generated",
        reference_name: str = "reference",
    ) -> None:
        """Score one video pair."""
        g, r = match_videos(
            to_rgb(generated, generated_name),
            to_rgb(reference, reference_name),
            generated_name,
            reference_name,
            self.frame_policy,
            self.size_policy,
        )
        vals = self._frames(g, r).double()
        self.last_frames = vals
        self.score_sum += vals.mean().to(self.device)
        self.num_videos += 1
        self.frame_sum += vals.sum().to(self.device)
        self.num_frames += vals.numel()

    def compute(self) -> Tensor:
        """Mean over videos of per-video means."""
        if int(self.num_videos) == 0:
            raise MetricInputError(f"{type(self).__name__}: no video pair was scored")
        return self.score_sum / self.num_videos


class PSNRMetric(_VideoMeanMetric):
    """PSNR (:func:`psnr_frames`) averaged per frame, then per video."""

    higher_is_better = True

    def __init__(self, max_db: float | None = 100.0, batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_db, self.batch_size = max_db, batch_size

    def _frames(self, generated: Tensor, reference: Tensor) -> Tensor:
        return psnr_frames(generated, reference, self.max_db, self.batch_size)


class SSIMMetric(_VideoMeanMetric):
    """SSIM (:func:`ssim_frames`) averaged per frame, then per video."""

    higher_is_better = True

    def __init__(
        self,
        kernel_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        batch_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kernel_size, self.sigma, self.k1, self.k2, self.batch_size = (
            kernel_size,
            sigma,
            k1,
            k2,
            batch_size,
        )

    def _frames(self, generated: Tensor, reference: Tensor) -> Tensor:
        return ssim_frames(
            generated, reference, self.kernel_size, self.sigma, self.k1, self.k2, self.batch_size
        )


class LPIPSMetric(_VideoMeanMetric):
    """LPIPS (:func:`lpips_frames`) averaged per frame, then per video; ``model`` from :func:`build_lpips`."""

    higher_is_better = False

    def __init__(self, model: Any, batch_size: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.batch_size = batch_size

    def _frames(self, generated: Tensor, reference: Tensor) -> Tensor:
        return lpips_frames(self.model, generated, reference, self.batch_size)


# =========================================================================== runner adapters
_CONVERSION = "uint8 RGB / 255 -> [0, 1]; grayscale replicated, RGBA alpha dropped (VideoSample refuses both)"
_AVERAGING = "per frame, mean over the frames of a video, then mean over videos"


class _FrameMetricAdapter(MetricAdapter):
    name = ""
    higher_is_better = True
    needs_reference = True
    state: _VideoMeanMetric

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Score the pair; returns ``{name: per-video mean}``."""
        if reference is None:
            raise MetricInputError(f"{generated.name}: {self.name} needs the reference video")
        self.state.update(
            generated.frames, reference.frames, f"generated {generated.name}", f"reference {reference.name}"
        )
        assert self.state.last_frames is not None
        return {self.name: float(self.state.last_frames.mean())}

    def compute(self) -> dict[str, float]:
        """Mean over videos, with the video and frame counts."""
        # counts are read before Metric.compute(), which may unsync states the runner synced
        counts = {
            f"{self.name}_videos": int(self.state.num_videos),
            f"{self.name}_frames": int(self.state.num_frames),
        }
        return {self.name: float(self.state.compute()), **counts}

    def _protocol(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "data_range": DATA_RANGE,
            "input": _CONVERSION,
            "averaging": _AVERAGING,
            "frame_policy": self.state.frame_policy,
            "size_policy": self.state.size_policy,
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The sum states."""
        return [self.state]


class PSNRAdapter(_FrameMetricAdapter):
    """Runner adapter for PSNR (see the module docstring for the protocol)."""

    name = "psnr"
    variant = "torchmetrics"
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "psnr": True,
        "psnr_videos": None,
        "psnr_frames": None,
    }

    def __init__(
        self,
        max_db: float | None = 100.0,
        frame_policy: str = "error",
        size_policy: str = "error",
        batch_size: int = 32,
    ) -> None:
        self.state = PSNRMetric(
            max_db=max_db, batch_size=batch_size, frame_policy=frame_policy, size_policy=size_policy
        )

    def protocol(self) -> dict:
        """PSNR settings."""
        return {
            **self._protocol(),
            "definition": "torchmetrics peak_signal_noise_ratio(data_range=1, dim=(1,2,3)) per frame "
            "in float64",
            "max_db": self.state.max_db,
        }


class SSIMAdapter(_FrameMetricAdapter):
    """Runner adapter for SSIM (see the module docstring for the protocol)."""

    name = "ssim"
    variant = "torchmetrics"
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "ssim": True,
        "ssim_videos": None,
        "ssim_frames": None,
    }

    def __init__(
        self,
        kernel_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        frame_policy: str = "error",
        size_policy: str = "error",
        batch_size: int = 32,
    ) -> None:
        self.state = SSIMMetric(
            kernel_size, sigma, k1, k2, batch_size, frame_policy=frame_policy, size_policy=size_policy
        )

    def protocol(self) -> dict:
        """SSIM settings."""
        s = self.state
        return {
            **self._protocol(),
            "definition": "torchmetrics structural_similarity_index_measure per frame (Gaussian window, "
            "reflect padding, mean over pixels and channels incl. the padded border), float32",
            "kernel_size": s.kernel_size,
            "sigma": s.sigma,
            "k1": s.k1,
            "k2": s.k2,
        }


class LPIPSAdapter(_FrameMetricAdapter):
    """Runner adapter for LPIPS: ``weights_path`` = torchvision backbone file of ``net``."""

    name = "lpips"
    higher_is_better = False
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "lpips": False,
        "lpips_videos": None,
        "lpips_frames": None,
    }

    def __init__(
        self,
        net: str = "alex",
        weights_path: str | os.PathLike | None = None,
        frame_policy: str = "error",
        size_policy: str = "error",
        batch_size: int = 16,
        device: str = "cpu",
        random_backbone: bool = False,
    ) -> None:
        self.net = net
        self.weights_path = None if weights_path is None else Path(weights_path)
        self.random_backbone = random_backbone
        model = build_lpips(net, weights_path, random_backbone=random_backbone, device=device)
        self.state = LPIPSMetric(model, batch_size, frame_policy=frame_policy, size_policy=size_policy)

    @property
    def variant(self) -> str:
        """``lpips_v0.1_<net>`` (the lpips package model)."""
        return f"lpips_v0.1_{self.net}"

    def protocol(self) -> dict:
        """LPIPS settings and the backbone checksum."""
        from importlib.metadata import version

        return {
            **self._protocol(),
            "definition": f"lpips {version('lpips')} LPIPS(net={self.net!r}, version='0.1') per frame, "
            "inputs [0,1] -> [-1,1] (normalize=True), linear layers shipped with lpips",
            "net": self.net,
            "backbone": "random (test only; not LPIPS)"
            if self.weights_path is None
            else weights_record(self.weights_path),
        }
