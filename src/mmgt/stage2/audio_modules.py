"""Audio-module designs of the denoiser: how the audio tokens enter the UNet (a registry chosen by config).

One class per design (``conf/model/stage2/audio_module/<name>.yaml``), recorded in the denoiser's
``config.json`` as ``{"_target_": <class>, **kwargs}`` and rebuilt from there by :func:`build_audio_module`
(:func:`mmgt.factory.build` over :data:`AUDIO_MODULE_CLASSES`: the subclasses of :class:`AudioModuleDesign`
defined in this module):

=================================  ===========================================================================
class (YAML)                       design
=================================  ===========================================================================
:class:`MMHAAProcessors`           MM-HAA as the ``attn2`` processor of the spatial transformer blocks
(``mmhaa``, default)               (``processor``: a class of :data:`~mmgt.stage2.attention.AUDIO_PROCESSORS`,
                                   by name; default :class:`~mmgt.stage2.attention.MMHAAAttnProcessor`: the
                                   mask gates each branch after its zero-initialised output projection);
                                   parameters ``....processor.branches.*``.
:class:`ReleaseAudioTransformers`  the released MMGT / Hallo module: a separate transformer
(``mmgt_release``)                 (:class:`AudioTransformer`) between each down-block spatial transformer and
                                   its motion module, with the original's block-input-width quirk, the mask
                                   applied *before* a biased zero-initialised 1x1 conv, and the weighted sum;
                                   parameters ``down_blocks.<i>.audio_modules.<j>.*`` (the release's names).
=================================  ===========================================================================

A design is a plain object: :meth:`AudioModuleDesign.install` adds its modules / processors to a freshly
built ``UNetMotionModel`` (the denoiser calls it once, in its constructor). Both read the per-forward
inputs from :class:`~mmgt.stage2.attention.Stage2AttentionContext` (audio tokens, region masks, optional
per-forward branch regions / weights); without audio tokens both are skipped (exactly "no audio").
A new design is one subclass here plus one YAML; a new audio-attention processor for the MM-HAA design is
one class in :data:`~mmgt.stage2.attention.AUDIO_PROCESSORS` plus one YAML naming it (``processor:``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from mmgt.factory import build, to_node
from mmgt.stage2.attention import (
    AUDIO_PROCESSORS,
    MMHAAAttnProcessor,
    RegionMasks,
    _layer_attention,
    branch_mask,
    check_audio_tokens,
    placement_of,
    spatial_attention_paths,
)
from mmgt.untrusted import class_path, resolve_class

AUDIO_PARAMETER_PATTERNS: tuple[str, ...] = (r"\.processor\.branches\.", r"\.audio_modules\.")
"""Regular expressions matching the audio-module parameters of every design (denoiser parameter names)."""

AUDIO_MODULE_CLASSES: dict[str, type[AudioModuleDesign]] = {}
"""The designs a denoiser config may name (class path -> class; every subclass registers itself)."""


class AudioModuleDesign:
    """Base class of the audio-module designs; subclasses register themselves (see the module docstring)."""

    parameter_pattern: ClassVar[str] = ""
    """Regular expression matching this design's parameter names inside the denoiser's UNet."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        AUDIO_MODULE_CLASSES[class_path(cls)] = cls

    def install(
        self,
        unet: nn.Module,
        processors: dict[str, Any],
        *,
        audio_dim: int,
        branches: Sequence[str],
        motion_scale: Sequence[float],
        placement: Sequence[str],
    ) -> None:
        """Add this design's processors (entries of ``processors``, installed afterwards) or modules."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """``_target_`` + constructor arguments (recorded in the denoiser's config)."""
        return to_node(type(self))


def build_audio_module(spec: Mapping[str, Any] | AudioModuleDesign | None) -> AudioModuleDesign:
    """A design from its :meth:`~AudioModuleDesign.config` node (None: :class:`MMHAAProcessors`).

    Raises:
        UntrustedFileError: a ``_target_`` outside :data:`AUDIO_MODULE_CLASSES` or arguments that do not fit.
    """
    if spec is None:
        return MMHAAProcessors()
    if isinstance(spec, AudioModuleDesign):
        return spec
    return build(dict(spec), AUDIO_MODULE_CLASSES, "denoiser config: audio_module")


# --------------------------------------------------------------------------- MM-HAA processors
class MMHAAProcessors(AudioModuleDesign):
    """MM-HAA branches inside the ``attn2`` processors of the blocks in ``audio_placement`` (our design).

    Args:
        processor: class path of the audio-attention processor, one of
            :data:`~mmgt.stage2.attention.AUDIO_PROCESSORS` (constructed as ``MMHAAAttnProcessor`` is).
    """

    parameter_pattern = r"\.processor\.branches\."

    def __init__(self, processor: str = class_path(MMHAAAttnProcessor)) -> None:
        self.processor = resolve_class(processor, AUDIO_PROCESSORS, "audio_module: processor")

    def config(self) -> dict[str, Any]:
        """``_target_`` + ``processor`` (class path), recorded in the denoiser's config."""
        return {**super().config(), "processor": class_path(self.processor)}

    def install(
        self,
        unet: nn.Module,
        processors: dict[str, Any],
        *,
        audio_dim: int,
        branches: Sequence[str],
        motion_scale: Sequence[float],
        placement: Sequence[str],
    ) -> None:
        """A ``processor`` into ``processors`` per ``attn2`` in ``placement`` (none without branches)."""
        if not branches:
            return
        modules = dict(unet.named_modules())
        for path in spatial_attention_paths(list(processors)):
            if path.endswith("attn2") and placement_of(path) in placement:
                attn = modules[path]
                processors[f"{path}.processor"] = self.processor(
                    path, attn.query_dim, audio_dim, attn.heads, branches, motion_scale
                )


# --------------------------------------------------------------------------- the released module
_ZERO_CONV_NAMES: tuple[str, ...] = ("full", "face", "lip")
"""Names of the release's zero convs, by branch index."""


class AudioTransformerBlock(nn.Module):
    """The original's audio block (Hallo's ``AudioTemporalBasicTransformerBlock``), tokens (N, L, C').

    ``z <- z + SelfAttn(LN1(z))``; ``n = LN2(z)``; ``z <- z + sum_k w_k ZeroConv_k(CrossAttn_k(n, a) * M_k)``;
    ``z <- z + FF_GEGLU(LN3(z))``. The zero convs are biased 1x1 convolutions (per-token linear maps), so a
    branch leaks its bias outside its mask, as in the release.
    """

    def __init__(self, dim: int, heads: int, audio_dim: int, n_branches: int) -> None:
        super().__init__()
        if not 1 <= n_branches <= len(_ZERO_CONV_NAMES):
            raise ValueError(f"the release audio block has 1 to 3 branches, got {n_branches}")
        if dim % heads:
            raise ValueError(f"audio block width {dim} is not divisible by heads {heads}")
        self.n_branches = n_branches
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(query_dim=dim, heads=heads, dim_head=dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        for k in range(n_branches):
            self.add_module(
                f"attn2_{k}",
                Attention(query_dim=dim, cross_attention_dim=audio_dim, heads=heads, dim_head=dim // heads),
            )
            conv = nn.Conv2d(dim, dim, kernel_size=1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.add_module(f"zero_conv_{_ZERO_CONV_NAMES[k]}", conv)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(
        self,
        z: Tensor,
        audio_tokens: Tensor,
        masks: Sequence[Tensor | None],
        weights: Sequence[float],
    ) -> Tensor:
        """Z (N, L, C'), audio_tokens (N, T_a, D_a), one mask (N, L, 1) or None per branch -> (N, L, C')."""
        n1 = self.norm1(z)
        z = _layer_attention(self.attn1, n1, n1) + z
        n2 = self.norm2(z)
        total = None
        for k in range(self.n_branches):
            h = _layer_attention(getattr(self, f"attn2_{k}"), n2, audio_tokens.to(n2.dtype))
            if masks[k] is not None:
                h = h * masks[k].to(h.dtype)
            conv: nn.Conv2d = getattr(self, f"zero_conv_{_ZERO_CONV_NAMES[k]}")
            h = nn.functional.linear(h, conv.weight[:, :, 0, 0], conv.bias)  # = the 1x1 conv per token
            total = weights[k] * h if total is None else total + weights[k] * h
        z = total + z
        return self.ff(self.norm3(z)) + z


class AudioTransformer(nn.Module):
    """The original's audio module (``Transformer3DModel(use_audio_module=True)``) on frames (N, C, h, w).

    GroupNorm(C) per frame -> 1x1 ``proj_in`` C -> C' -> :class:`AudioTransformerBlock` -> 1x1 ``proj_out``
    C' -> C -> residual. ``C'`` = ``inner_channels`` (the release: the resnet's *input* width).
    """

    def __init__(
        self,
        channels: int,
        inner_channels: int,
        heads: int,
        audio_dim: int,
        n_branches: int,
        norm_num_groups: int = 32,
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Conv2d(channels, inner_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [AudioTransformerBlock(inner_channels, heads, audio_dim, n_branches)]
        )
        self.proj_out = nn.Conv2d(inner_channels, channels, kernel_size=1)

    def forward(
        self,
        hidden_states: Tensor,
        audio_tokens: Tensor,
        region_masks: RegionMasks | None,
        regions: Sequence[str],
        weights: Sequence[float],
    ) -> Tensor:
        """hidden_states (N, C, h, w), audio_tokens (N, T_a, D_a) -> (N, C, h, w)."""
        n, _, h, w = hidden_states.shape
        check_audio_tokens(audio_tokens, n, "AudioTransformer")
        masks = [branch_mask(region_masks, r, h * w, n, "AudioTransformer") for r in regions]
        x = self.proj_in(self.norm(hidden_states))
        inner = x.shape[1]
        x = x.permute(0, 2, 3, 1).reshape(n, h * w, inner)
        for block in self.transformer_blocks:
            x = block(x, audio_tokens, masks, weights)
        x = x.reshape(n, h, w, inner).permute(0, 3, 1, 2)
        return self.proj_out(x) + hidden_states


class ReleaseAudioTransformers(AudioModuleDesign):
    """The released MMGT audio modules: ``down_blocks.<i>.audio_modules.<j>`` = :class:`AudioTransformer`.

    One per spatial transformer of every down block (the release has no audio modules in the mid and up
    blocks), run after the spatial transformer and before the motion module
    (:func:`mmgt.stage2.denoiser.down_block_forward`). Width quirk: the inner width is the input width of
    the layer's resnet (the block's input width for its first layer, e.g. 640 -> 320 at SD size).
    Heads = the spatial attention's heads; GroupNorm groups = the UNet's ``norm_num_groups``.
    """

    parameter_pattern = r"\.audio_modules\."

    def install(
        self,
        unet: nn.Module,
        processors: dict[str, Any],
        *,
        audio_dim: int,
        branches: Sequence[str],
        motion_scale: Sequence[float],
        placement: Sequence[str],
    ) -> None:
        """Add ``audio_modules`` to every cross-attention down block (none without branches; down only)."""
        if not branches:
            return
        if tuple(placement) != ("down",):
            raise ValueError(
                f"ReleaseAudioTransformers: the released audio modules sit in the down blocks only; "
                f"audio_placement must be [down], got {list(placement)}"
            )
        groups = int(unet.config.norm_num_groups)
        for block in unet.down_blocks:
            if not getattr(block, "has_cross_attention", False):
                continue
            block.audio_modules = nn.ModuleList(
                AudioTransformer(
                    channels=resnet.out_channels,
                    inner_channels=resnet.in_channels,
                    heads=attn.transformer_blocks[0].attn1.heads,
                    audio_dim=audio_dim,
                    n_branches=len(branches),
                    norm_num_groups=groups,
                )
                for resnet, attn in zip(block.resnets, block.attentions, strict=True)
            )


__all__ = [
    "AUDIO_MODULE_CLASSES",
    "AUDIO_PARAMETER_PATTERNS",
    "AudioModuleDesign",
    "AudioTransformer",
    "AudioTransformerBlock",
    "MMHAAProcessors",
    "ReleaseAudioTransformers",
    "build_audio_module",
]
