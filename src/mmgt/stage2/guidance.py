"""Mask guidance of the MM-HAA branches: which masks (if any) gate the audio attention.

One class per ablation (selected in ``conf/model/stage2/mask_guidance/``), used identically in training
(:class:`~mmgt.stage2.module.Stage2LitModule`) and generation (:class:`~mmgt.stage2.pipeline.Stage2Pipeline`),
and recorded in the export so that generation applies the ablation it was trained with:

=========================  =====================================================================
class                      masks
=========================  =====================================================================
MotionMaskGuidance         per-frame motion masks from the frame's keypoints (MMGT; default)
StaticMaskGuidance         masks of the reference pose, the same for every frame (Hallo-style)
UnmaskedGuidance           no masks: every branch attends everywhere
NoAudioGuidance            no audio at all: the audio branches and the projection are unused
=========================  =====================================================================

Calling a guidance with keypoints (B, F, 134, 3), reference keypoints (B, 134, 3), the denoiser's level
sizes and the regions its branches need returns :class:`~mmgt.stage2.attention.RegionMasks` with
(B * F, R, h, w) masks per level, or None (no masking). Masks are computed on the fly from keypoints
(:mod:`mmgt.masks`), never stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from mmgt.factory import registry, to_node
from mmgt.masks import MaskConfig, motion_masks, resize_masks, static_masks
from mmgt.schema import VISIBILITY_THRESHOLD
from mmgt.stage2.attention import RegionMasks

Size = tuple[int, int]


class MaskGuidance:
    """Base class: no masks. Subclasses set ``uses_audio`` and implement :meth:`masks`."""

    uses_audio: bool = True
    """False: the model runs without audio tokens (the no-audio ablation). Read once, by
    :class:`~mmgt.stage2.module.Stage2LitModule` (``use_audio``), which records the decision in the export."""

    def masks(self, keypoints: Tensor, ref_keypoints: Tensor, size: Size, regions: Sequence[str]) -> Tensor:
        """(B, F, R, h, w) masks at ``size`` for keypoints (B, F, 134, 3) / reference (B, 134, 3)."""
        raise NotImplementedError

    def __call__(
        self, keypoints: Tensor, ref_keypoints: Tensor, sizes: Sequence[Size], regions: Sequence[str]
    ) -> RegionMasks | None:
        """Masks of ``regions`` at every level size (largest first) as RegionMasks, or None."""
        if not regions:
            return None
        if keypoints.ndim != 4 or ref_keypoints.ndim != 3:
            raise ValueError(
                f"keypoints must be (B, F, 134, 3) and ref_keypoints (B, 134, 3), got "
                f"{tuple(keypoints.shape)} and {tuple(ref_keypoints.shape)}"
            )
        raster = max(sizes, key=lambda s: s[0] * s[1])
        full = self.masks(keypoints.float(), ref_keypoints.float(), raster, regions)  # (B, F, R, h, w)
        levels = resize_masks(full.flatten(0, 1), sizes)
        return RegionMasks(regions, levels)

    def config(self) -> dict[str, Any]:
        """``_target_`` + constructor arguments (recorded in the export)."""
        return to_node(type(self))


class _BoxMasks(MaskGuidance):
    def __init__(
        self,
        expand_ratio: float = 1.2,
        min_size: float = 0.05,
        smooth_frames: int = 5,
        blur_sigma: float = 0.02,
        normalize: bool = True,
        conf_threshold: float = VISIBILITY_THRESHOLD,
    ) -> None:
        self.kwargs = {
            "expand_ratio": float(expand_ratio),
            "min_size": float(min_size),
            "smooth_frames": int(smooth_frames),
            "blur_sigma": float(blur_sigma),
            "normalize": bool(normalize),
            "conf_threshold": float(conf_threshold),
        }

    def mask_config(self, regions: Sequence[str]) -> MaskConfig:
        return MaskConfig(regions=tuple(regions), **self.kwargs)

    def config(self) -> dict[str, Any]:
        return {**super().config(), **self.kwargs}


class MotionMaskGuidance(_BoxMasks):
    """Per-frame motion masks from each frame's keypoints (:func:`mmgt.masks.motion_masks`)."""

    def masks(self, keypoints: Tensor, ref_keypoints: Tensor, size: Size, regions: Sequence[str]) -> Tensor:
        """(B, F, R, h, w) masks at ``size`` from each frame's keypoints (B, F, 134, 3)."""
        return motion_masks(keypoints, size, self.mask_config(regions))


class StaticMaskGuidance(_BoxMasks):
    """Masks of the reference pose repeated over the frames (:func:`mmgt.masks.static_masks`)."""

    def masks(self, keypoints: Tensor, ref_keypoints: Tensor, size: Size, regions: Sequence[str]) -> Tensor:
        """(B, F, R, h, w) masks at ``size`` of ``ref_keypoints`` (B, 134, 3), the same in every frame."""
        return static_masks(ref_keypoints, keypoints.shape[1], size, self.mask_config(regions))


class UnmaskedGuidance(MaskGuidance):
    """No masks: every audio branch attends over the whole frame."""

    def __call__(
        self, keypoints: Tensor, ref_keypoints: Tensor, sizes: Sequence[Size], regions: Sequence[str]
    ) -> RegionMasks | None:
        """None: no masks at any level."""
        return None


class NoAudioGuidance(UnmaskedGuidance):
    """No audio: the denoiser gets no audio tokens (its audio branches are skipped and frozen)."""

    uses_audio = False


GUIDANCE_CLASSES: dict[str, type[MaskGuidance]] = registry(
    MotionMaskGuidance, StaticMaskGuidance, UnmaskedGuidance, NoAudioGuidance
)
"""The classes an export may name (class path -> class), for :func:`mmgt.factory.build`."""


__all__ = [
    "GUIDANCE_CLASSES",
    "MaskGuidance",
    "MotionMaskGuidance",
    "NoAudioGuidance",
    "StaticMaskGuidance",
    "UnmaskedGuidance",
]
