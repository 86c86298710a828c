"""Motion masks from keypoints: soft per-region box masks for the MM-HAA audio modules.

Each mask region (``MASK_REGION_KEYPOINTS`` in :mod:`mmgt.schema`) is a union of axis-aligned boxes,
one per keypoint group (e.g. ``face_hands`` = face box | left-hand box | right-hand box). ``background``
is derived as ``1 - face_hands`` after blurring. Pipeline, all vectorised torch on any device:

1. :func:`region_boxes` - tight box of the visible points of each group, temporally smoothed over
   valid frames, expanded about its centre (``expand_ratio``), enlarged to ``min_size``, clipped to
   the frame.
2. :func:`rasterize_boxes` - exact pixel-area coverage of each box (anti-aliased; interior pixels are
   1, pixels cut by the box edge get the covered fraction).
3. :func:`motion_masks` - union (max) of the boxes of each region, separable Gaussian blur, per-frame
   max-normalisation, background complement.
4. :func:`resize_masks` - area downsampling to each latent resolution.

Shapes: keypoints ``(..., T, 134, 3)`` in the stored layout (x, y in [0, 1], confidence); masks
``(..., T, R, H, W)`` float in [0, 1] with ``R`` following ``MaskConfig.regions``. Sizes given as
an int are square; tuples are ``(height, width)``.

Differences from the reference implementation (``DWposeDetector_movment_mask``): boxes are
expanded (the reference ignored its ``face_expand_ratio``), have a minimum size, are smoothed over
time, and the blur is defined in frame-relative units, so masks rasterised directly at a latent
resolution match masks rasterised at full size and then downsampled.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgt.schema import (
    KEYPOINT_DIMS,
    MASK_REGION_KEYPOINTS,
    MASK_REGIONS,
    NUM_KEYPOINTS,
    VISIBILITY_THRESHOLD,
    KeypointLayoutError,
)

BACKGROUND: str = "background"
"""Derived region: ``1 - face_hands`` (after blur and normalisation)."""
KNOWN_REGIONS: tuple[str, ...] = (*MASK_REGION_KEYPOINTS, BACKGROUND)

Size = int | tuple[int, int]


@dataclass(frozen=True)
class MaskConfig:
    """Parameters of the motion-mask generator (all lengths are fractions of the frame side)."""

    regions: tuple[str, ...] = MASK_REGIONS
    """Output channels, any of ``face_hands``, ``face``, ``lips``, ``hands``, ``background``."""
    expand_ratio: float = 1.2
    """Box width and height are scaled by this factor about the box centre."""
    min_size: float = 0.05
    """Minimum box width (height) as a fraction of the frame width (height)."""
    smooth_frames: int = 5
    """Centred moving-average window over box coordinates (odd; 1 = off; edges replicate-padded)."""
    blur_sigma: float = 0.02
    """Gaussian sigma as a fraction of the mask height (vertical) and width (horizontal); 0 = off."""
    normalize: bool = True
    """Per-frame max-normalisation after the blur, so that every non-empty mask peaks at 1."""
    conf_threshold: float = VISIBILITY_THRESHOLD
    """Keypoints with confidence >= this value are visible."""

    def __post_init__(self) -> None:
        regions = (self.regions,) if isinstance(self.regions, str) else tuple(str(r) for r in self.regions)
        object.__setattr__(self, "regions", regions)
        unknown = [r for r in regions if r not in KNOWN_REGIONS]
        if unknown or not regions:
            raise ValueError(
                f"unknown or empty mask regions {unknown or regions}; choose from {KNOWN_REGIONS}"
            )
        if self.expand_ratio <= 0:
            raise ValueError(f"expand_ratio must be > 0, got {self.expand_ratio}")
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if self.smooth_frames < 1 or self.smooth_frames % 2 == 0:
            raise ValueError(f"smooth_frames must be odd and >= 1, got {self.smooth_frames}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")


_DEFAULT_CONFIG = MaskConfig()


# --------------------------------------------------------------------------- helpers
def _as_keypoints(kps: Any, name: str = "kps", min_ndim: int = 3) -> Tensor:
    """Tensor view of ``kps`` (numpy or torch) as floating point, checking the (..., 134, 3) layout."""
    kps = torch.as_tensor(kps)
    if kps.ndim < min_ndim or tuple(kps.shape[-2:]) != (NUM_KEYPOINTS, KEYPOINT_DIMS):
        expected = "(..., T, 134, 3)" if min_ndim >= 3 else "(..., 134, 3)"
        raise KeypointLayoutError(f"{name}: expected keypoints of shape {expected}, got {tuple(kps.shape)}")
    if kps.dtype not in (torch.float32, torch.float64):
        kps = kps.float()
    return kps


def _hw(size: Size | Sequence[int]) -> tuple[int, int]:
    """``int`` -> (size, size); ``(h, w)`` -> (h, w)."""
    if isinstance(size, numbers.Integral):
        h = w = int(size)
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"mask size must be positive, got {size}")
    return h, w


def _smooth_time(boxes: Tensor, valid: Tensor, window: int) -> Tensor:
    """Centred moving average of ``boxes`` (..., T, G, 4) over T, using only frames where ``valid``."""
    if window <= 1 or boxes.shape[-3] <= 1:
        return boxes
    t = boxes.shape[-3]
    w = valid.to(boxes.dtype).unsqueeze(-1).expand_as(boxes)
    val = (boxes * w).movedim(-3, -1).reshape(-1, 1, t)  # (N, 1, T)
    wt = w.movedim(-3, -1).reshape(-1, 1, t)
    pad = window // 2
    kernel = torch.ones(1, 1, window, dtype=boxes.dtype, device=boxes.device)
    num = F.conv1d(F.pad(val, (pad, pad), mode="replicate"), kernel)
    den = F.conv1d(F.pad(wt, (pad, pad), mode="replicate"), kernel)
    smoothed = (num / den.clamp_min(1e-12)).reshape(*boxes.movedim(-3, -1).shape).movedim(-1, -3)
    return torch.where(valid.unsqueeze(-1), smoothed, boxes)


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(n, n) matrix of a 1-D Gaussian convolution with replicate padding: ``y = B @ x``."""
    k = _gaussian_kernel(sigma, dtype, device)
    r = k.numel() // 2
    rows = torch.arange(n, device=device)
    src = (rows[:, None] + torch.arange(-r, r + 1, device=device)).clamp(0, n - 1)  # replicate edges
    mat = torch.zeros(n, n, dtype=dtype, device=device)
    mat.index_put_((rows[:, None].expand_as(src), src), k.expand_as(src), accumulate=True)
    return mat


def _blur(masks: Tensor, sigma_y: float, sigma_x: float) -> Tensor:
    """Separable Gaussian blur of ``masks`` (..., H, W) with replicate padding; sigmas in pixels.

    The two 1-D convolutions are applied as banded matrix products (``B_y @ m @ B_x^T``), which is
    exactly a padded separable convolution and an order of magnitude faster than single-channel
    ``conv2d`` on CPU.
    """
    h, w = masks.shape[-2:]
    if sigma_x > 1e-3:
        masks = masks @ _blur_matrix(w, sigma_x, masks.dtype, masks.device).T
    if sigma_y > 1e-3:
        masks = _blur_matrix(h, sigma_y, masks.dtype, masks.device) @ masks
    return masks


# --------------------------------------------------------------------------- public API
def region_boxes(
    kps: Tensor | Any, groups: Sequence[Sequence[int]], cfg: MaskConfig = _DEFAULT_CONFIG
) -> tuple[Tensor, Tensor]:
    """Boxes of the visible keypoints of each group.

    Args:
        kps: (..., T, 134, 3) stored keypoints (numpy or torch).
        groups: G index sets into the 134 layout.
        cfg: uses ``conf_threshold``, ``smooth_frames``, ``expand_ratio`` and ``min_size``.

    Returns:
        boxes (..., T, G, 4) as x0, y0, x1, y1 in [0, 1] and valid (..., T, G) bool (the group has at
        least one visible, finite point in that frame). Order of operations: tight box -> temporal
        smoothing (moving average over the valid frames in the window only) -> expansion about the
        centre -> minimum size -> clip to the frame. Invalid frames stay invalid (their box is all
        zeros) - a region that is not detected is not masked; they do not pull the average of
        neighbouring valid frames.
    """
    cfg = cfg if cfg is not None else _DEFAULT_CONFIG
    kps = _as_keypoints(kps)
    g = len(groups)
    member = torch.zeros(g, NUM_KEYPOINTS, dtype=torch.bool, device=kps.device)
    for i, idx in enumerate(groups):
        member[i, list(idx)] = True
    xy = kps[..., :2]
    vis = (kps[..., 2] >= cfg.conf_threshold) & torch.isfinite(xy).all(-1)  # (..., T, 134)
    vis_g = vis.unsqueeze(-2) & member  # (..., T, G, 134)
    valid = vis_g.any(-1)  # (..., T, G)

    x = xy[..., 0].unsqueeze(-2)  # (..., T, 1, 134)
    y = xy[..., 1].unsqueeze(-2)
    inf = torch.tensor(float("inf"), dtype=kps.dtype, device=kps.device)
    x0 = torch.where(vis_g, x, inf).amin(-1)
    y0 = torch.where(vis_g, y, inf).amin(-1)
    x1 = torch.where(vis_g, x, -inf).amax(-1)
    y1 = torch.where(vis_g, y, -inf).amax(-1)
    boxes = torch.stack([x0, y0, x1, y1], dim=-1)  # (..., T, G, 4)
    boxes = torch.where(valid.unsqueeze(-1), boxes, torch.zeros_like(boxes))

    boxes = _smooth_time(boxes, valid, cfg.smooth_frames)

    centre = (boxes[..., :2] + boxes[..., 2:]) * 0.5
    side = ((boxes[..., 2:] - boxes[..., :2]) * cfg.expand_ratio).clamp_min(cfg.min_size)
    boxes = torch.cat([centre - side * 0.5, centre + side * 0.5], dim=-1).clamp(0.0, 1.0)
    boxes = torch.where(valid.unsqueeze(-1), boxes, torch.zeros_like(boxes))
    return boxes, valid


def rasterize_boxes(boxes: Tensor, valid: Tensor, height: int, width: int) -> Tensor:
    """Rasterise boxes (..., G, 4) [x0, y0, x1, y1 in [0, 1]] with validity (..., G) to (..., G, H, W).

    Pixel ``(i, j)`` covers ``[j/W, (j+1)/W] x [i/H, (i+1)/H]`` (centre at ``(j+0.5)/W, (i+0.5)/H``)
    and gets the fraction of its area covered by the box: 1 inside, 0 outside, fractional on the
    edges (soft, anti-aliased edges; box edges on pixel boundaries give an exact 0/1 mask). Because
    coverage is area-exact, rasterising at a low resolution equals area-downsampling a high one.
    Invalid boxes give all-zero masks.
    """
    boxes = torch.as_tensor(boxes)
    if not boxes.is_floating_point():
        boxes = boxes.float()
    valid = torch.as_tensor(valid, device=boxes.device)
    px = torch.arange(width, dtype=boxes.dtype, device=boxes.device)
    py = torch.arange(height, dtype=boxes.dtype, device=boxes.device)
    x0, y0, x1, y1 = (boxes[..., i : i + 1] for i in range(4))  # (..., G, 1) each
    cov_x = (torch.minimum(x1 * width, px + 1) - torch.maximum(x0 * width, px)).clamp(0.0, 1.0)
    cov_y = (torch.minimum(y1 * height, py + 1) - torch.maximum(y0 * height, py)).clamp(0.0, 1.0)
    out = cov_y.unsqueeze(-1) * cov_x.unsqueeze(-2)  # (..., G, H, W)
    return out * valid.to(out.dtype)[..., None, None]


def motion_masks(kps: Tensor | Any, size: Size, cfg: MaskConfig = _DEFAULT_CONFIG) -> Tensor:
    """Motion masks (..., T, R, H, W) in [0, 1] from keypoints (..., T, 134, 3); R = ``cfg.regions``.

    Each region is the union (max) of its boxes, blurred (``blur_sigma``) and, if ``normalize``,
    divided by its per-frame maximum. A region without visible points is all zeros; ``background``
    is ``1 - face_hands`` and therefore all ones when neither face nor hands are visible. The dtype
    is float32 (float64 for float64 keypoints); the device is that of ``kps``.
    """
    cfg = cfg if cfg is not None else _DEFAULT_CONFIG
    kps = _as_keypoints(kps)
    h, w = _hw(size)
    base = [r for r in cfg.regions if r != BACKGROUND]
    if BACKGROUND in cfg.regions and "face_hands" not in base:
        base.append("face_hands")

    groups: list[tuple[int, ...]] = []
    for r in base:
        for grp in MASK_REGION_KEYPOINTS[r]:
            if tuple(grp) not in groups:
                groups.append(tuple(grp))
    boxes, valid = region_boxes(kps, groups, cfg)  # (..., T, G, 4), (..., T, G)

    per_region = []
    for r in base:
        idx = [groups.index(tuple(grp)) for grp in MASK_REGION_KEYPOINTS[r]]
        per_region.append(rasterize_boxes(boxes[..., idx, :], valid[..., idx], h, w).amax(-3))
    masks = torch.stack(per_region, dim=-3)  # (..., T, len(base), H, W)

    if cfg.blur_sigma > 0:
        masks = _blur(masks, cfg.blur_sigma * h, cfg.blur_sigma * w)
    if cfg.normalize:
        peak = masks.amax(dim=(-2, -1), keepdim=True)
        masks = torch.where(peak > 1e-6, masks / peak.clamp_min(1e-6), torch.zeros_like(masks))
    masks = masks.clamp(0.0, 1.0)

    channels = []
    for r in cfg.regions:
        if r == BACKGROUND:
            channels.append(1.0 - masks[..., base.index("face_hands"), :, :])
        else:
            channels.append(masks[..., base.index(r), :, :])
    return torch.stack(channels, dim=-3)


def iter_motion_masks(
    kps: Tensor | Any, size: Size, cfg: MaskConfig = _DEFAULT_CONFIG, chunk: int = 16
) -> Iterator[Tensor]:
    """:func:`motion_masks` of keypoints (T, 134, 3) in consecutive pieces (<= ``chunk``, R, H, W).

    Memory is O(chunk) for any T, and the values are exactly the full call's (each piece is computed with
    the ``smooth_frames // 2`` neighbouring frames of temporal context on both sides).
    """
    cfg = cfg if cfg is not None else _DEFAULT_CONFIG
    kps = _as_keypoints(kps)
    if kps.ndim != 3:
        raise ValueError(f"iter_motion_masks: expected keypoints (T, 134, 3), got {tuple(kps.shape)}")
    half, n = cfg.smooth_frames // 2, kps.shape[0]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lo, hi = max(0, start - half), min(n, stop + half)
        yield motion_masks(kps[lo:hi], size, cfg)[start - lo : stop - lo]


def resize_masks(masks: Tensor | Any, resolutions: Sequence[Size]) -> list[Tensor]:
    """Resize masks (..., H, W) to each resolution (int = square, tuple = (h, w)) -> list of (..., h, w).

    Downsampling uses area averaging (anti-aliased; preserves mean coverage), upsampling bilinear
    interpolation. Values stay in [0, 1]; the dtype is kept.
    """
    masks = torch.as_tensor(masks)
    out_dtype = masks.dtype if masks.is_floating_point() else torch.float32
    dtype = masks.dtype if masks.dtype in (torch.float32, torch.float64) else torch.float32
    h, w = masks.shape[-2:]
    flat = masks.to(dtype).reshape(-1, 1, h, w)
    out = []
    for res in resolutions:
        rh, rw = _hw(res)
        if (rh, rw) == (h, w):
            r = flat
        elif rh <= h and rw <= w:
            r = F.interpolate(flat, size=(rh, rw), mode="area")
        else:
            r = F.interpolate(flat, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        out.append(r.clamp(0.0, 1.0).reshape(*masks.shape[:-2], rh, rw).to(out_dtype))
    return out


def multi_resolution_masks(
    kps: Tensor | Any, size: Size, resolutions: Sequence[Size], cfg: MaskConfig = _DEFAULT_CONFIG
) -> list[Tensor]:
    """:func:`motion_masks` at ``size`` followed by :func:`resize_masks` to each resolution."""
    return resize_masks(motion_masks(kps, size, cfg), resolutions)


def static_masks(
    kps_ref: Tensor | Any, n_frames: int, size: Size, cfg: MaskConfig = _DEFAULT_CONFIG
) -> Tensor:
    """Masks of a single reference pose (..., 134, 3) repeated over ``n_frames`` -> (..., T, R, H, W).

    For the "static masks" ablation: the masks do not follow the motion.
    """
    kps_ref = _as_keypoints(kps_ref, "kps_ref", min_ndim=2)
    one = motion_masks(kps_ref.unsqueeze(-3), size, cfg)  # (..., 1, R, H, W)
    return one.expand(*one.shape[:-4], n_frames, *one.shape[-3:]).contiguous()


class MotionMaskGenerator:
    """Callable mask generator holding a :class:`MaskConfig` and the latent resolutions.

    Plain constructor values (Hydra-friendly; lists are accepted for tuples). Calling it with
    keypoints (..., T, 134, 3) returns one (..., T, R, h, w) tensor per resolution. ``size`` is the
    rasterisation size; it defaults to the constructor's ``size`` or, if that is None, the largest
    resolution (rasterisation is area-exact and the blur is frame-relative, so rasterising directly
    at the largest latent resolution approximates full-size rasterisation followed by downsampling).
    """

    def __init__(
        self,
        resolutions: Sequence[Size] = (64, 32, 16, 8),
        regions: Sequence[str] = MASK_REGIONS,
        expand_ratio: float = 1.2,
        min_size: float = 0.05,
        smooth_frames: int = 5,
        blur_sigma: float = 0.02,
        normalize: bool = True,
        conf_threshold: float = VISIBILITY_THRESHOLD,
        size: Size | Sequence[int] | None = None,
    ) -> None:
        self.config = MaskConfig(
            regions=tuple(str(r) for r in regions),
            expand_ratio=float(expand_ratio),
            min_size=float(min_size),
            smooth_frames=int(smooth_frames),
            blur_sigma=float(blur_sigma),
            normalize=bool(normalize),
            conf_threshold=float(conf_threshold),
        )
        self.resolutions: list[Size] = [
            int(r) if isinstance(r, numbers.Integral) else _hw(r) for r in resolutions
        ]
        if not self.resolutions:
            raise ValueError("resolutions must not be empty")
        self.size: Size | None = None if size is None else _hw(size)

    @property
    def regions(self) -> tuple[str, ...]:
        """The mask regions, in channel order."""
        return self.config.regions

    def __call__(self, kps: Tensor | Any, size: Size | None = None) -> list[Tensor]:
        """Keypoints (..., T, 134, 3) -> list over resolutions of masks (..., T, R, h, w)."""
        if size is None:
            size = (
                self.size if self.size is not None else max(self.resolutions, key=lambda r: math.prod(_hw(r)))
            )
        return multi_resolution_masks(kps, size, self.resolutions, self.config)

    def __repr__(self) -> str:
        return f"MotionMaskGenerator(resolutions={self.resolutions}, size={self.size}, config={self.config})"
