"""Motion-module normalisation: the GroupNorm at the input of every AnimateDiff motion module.

One class per choice (``conf/model/stage2/motion_norm/<name>.yaml``), recorded in the denoiser's
``config.json`` as ``{"_target_": <class>}`` and rebuilt by :func:`build_motion_norm` (registered classes
only). Both are ``nn.GroupNorm`` subclasses with the same parameters (``norm.weight`` / ``norm.bias``), so
the choice changes no weight names:

=======================  ==========================================================================
class (YAML)             statistics
=======================  ==========================================================================
:class:`FrameGroupNorm`  each frame on its own - the original AnimateDiff (``b c f h w -> (b f) c h w``)
(``frame``, default)     and MMGT; what AnimateDiff's and MMGT's released motion weights were trained with
:class:`ClipGroupNorm`   over all frames of a clip - diffusers' ``AnimateDiffTransformer3D``; what
(``clip``)               exports written before this option were trained with (the constructor default)
=======================  ==========================================================================

The default (``frame``) is chosen so that pretrained motion weights run with the normalisation they were
trained with: at F = 4 the two differ by 16 % of the output on the MMGT fixtures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import Tensor, nn

_REGISTRY: dict[str, type[nn.GroupNorm]] = {}


def _register(cls: type[nn.GroupNorm]) -> type[nn.GroupNorm]:
    _REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


@_register
class ClipGroupNorm(nn.GroupNorm):
    """GroupNorm over (C / G, F, H, W) of a clip (B, C, F, H, W): diffusers' motion-module statistics."""


@_register
class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (C / G, H, W) of every frame of a clip (B, C, F, H, W): AnimateDiff's statistics."""

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, F, H, W) -> (B, C, F, H, W), each frame normalised on its own (4-d input: as GroupNorm)."""
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).transpose(1, 2)


def motion_norm_config(cls: type[nn.GroupNorm]) -> dict[str, Any]:
    """``{"_target_": ...}`` of a registered class."""
    return {"_target_": f"{cls.__module__}.{cls.__qualname__}"}


def build_motion_norm(spec: Mapping[str, Any] | type[nn.GroupNorm] | None) -> type[nn.GroupNorm]:
    """The registered class of a ``{"_target_": ...}`` spec (a partial or the class itself; None: clip)."""
    if spec is None:
        return ClipGroupNorm
    if isinstance(spec, type):
        cls = spec
    elif callable(spec) and isinstance(getattr(spec, "func", None), type):  # Hydra _partial_
        cls = spec.func
    else:
        target = str(dict(spec).get("_target_", ""))
        if target not in _REGISTRY:
            raise ValueError(f"motion_norm {target!r} is not registered; choose from {sorted(_REGISTRY)}")
        return _REGISTRY[target]
    if f"{cls.__module__}.{cls.__qualname__}" not in _REGISTRY:
        raise ValueError(f"motion_norm {cls} is not registered; choose from {sorted(_REGISTRY)}")
    return cls


def install_motion_norm(unet: nn.Module, cls: type[nn.GroupNorm]) -> None:
    """Replace the input GroupNorm of every motion module of ``unet`` by ``cls`` (same parameters)."""
    for module in unet.modules():
        if isinstance(module, AnimateDiffTransformer3D) and type(module.norm) is not cls:
            old = module.norm
            new = cls(old.num_groups, old.num_channels, eps=old.eps, affine=old.affine)
            new.to(device=old.weight.device, dtype=old.weight.dtype)
            new.load_state_dict(old.state_dict())
            module.norm = new


__all__ = [
    "ClipGroupNorm",
    "FrameGroupNorm",
    "build_motion_norm",
    "install_motion_norm",
    "motion_norm_config",
]
