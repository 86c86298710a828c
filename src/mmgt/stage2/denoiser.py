"""``MMGTDenoiser``: the Stage II denoising UNet (``UNetMotionModel`` + MM-HAA + reference attention).

One denoising step over a clip of F frames. Inputs:

* ``sample``: noisy latents (B, C, F, h, w) (diffusers' video layout);
* ``timestep``: (B,) or a scalar, diffusion steps 0..999;
* ``encoder_hidden_states``: (B, L, D) image embeddings of the reference (CLIP ``image_embeds`` as one
  token, zero for the unconditional half); repeated over the frames here (diffusers' motion UNet expects
  them per frame, (B * F, L, D));
* ``pose_features``: (B, C0, F, h, w) PoseGuider output, **added after** ``conv_in`` (None = no pose);
* ``context``: :class:`~mmgt.stage2.attention.Stage2AttentionContext` with the reference states, audio
  tokens (B * F, N, D_a) and region masks (None = neither reference nor audio).

Architecture: ``self.unet`` is a real diffusers ``UNetMotionModel`` (SD-style spatial blocks with
AnimateDiff motion modules after every spatial layer; ``from_unet2d`` builds it from an SD UNet and a
``MotionAdapter``). Its spatial processors are replaced (module-path keyed ``set_attn_processor``):
every ``attn1`` reads the ReferenceNet states, ``attn2`` is plain image cross-attention. The audio enters
as the configured design (``audio_module``, :mod:`mmgt.stage2.audio_modules`): MM-HAA ``attn2``
processors in the blocks listed in ``audio_placement`` (default) or the released MMGT's separate audio
transformers between the down blocks' spatial transformers and motion modules. The motion modules'
input GroupNorm is the configured ``motion_norm`` (:mod:`mmgt.stage2.motion_norm`: per frame or over the
clip). The forward runs the UNet's own sub-modules (time embedding, ``conv_in``, blocks, output head)
explicitly, because the pose features enter between ``conv_in`` and the first block.

Zero initialisation: the audio branches' output projections (always) and the motion modules' ``proj_out``
(fresh modules, as AnimateDiff), so a freshly built denoiser equals the image UNet it was made from;
pretrained motion adapters overwrite the latter.

Gradient checkpointing checkpoints whole UNet blocks (resnets, spatial attention, audio branches and motion
modules together) - coarser than diffusers' per-resnet / per-transformer checkpointing, which leaves the
motion modules' activations stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_motion_model import UNetMotionModel
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmgt.masks import KNOWN_REGIONS
from mmgt.stage2.attention import (
    AUDIO_PROCESSORS,
    DERIVED_BRANCH_REGIONS,
    FULL_REGION,
    PLACEMENTS,
    CrossAttnProcessor,
    ReferenceReadAttnProcessor,
    Stage2AttentionContext,
    branch_settings,
    mask_regions_of,
    spatial_attention_paths,
)
from mmgt.stage2.audio_modules import AudioModuleDesign, build_audio_module
from mmgt.stage2.motion_norm import build_motion_norm, install_motion_norm, motion_norm_config

BRANCH_REGIONS: tuple[str, ...] = (FULL_REGION, *KNOWN_REGIONS, *DERIVED_BRANCH_REGIONS)
"""Valid audio branch regions: ``full`` (unmasked), a motion-mask region of :mod:`mmgt.masks`, or a
derived one (``full_plus_lips`` = 1 + lips, the original inference's first branch)."""

BANK_DTYPES: dict[str, torch.dtype] = {"float16": torch.float16, "bfloat16": torch.bfloat16}
"""``reference_dtype`` names: the dtype the reference states are rounded to when read."""


class MMGTDenoiser(ModelMixin, ConfigMixin):
    """Denoising motion UNet with reference attention and MM-HAA audio attention.

    Args:
        unet_config: ``UNetMotionModel`` constructor arguments (its ``config``; JSON values).
        audio_dim: channels of the audio tokens (the AudioProjModel's output width).
        audio_branches: mask region of each MM-HAA branch, in order (``full``, ``background``,
            ``face_hands``, ``lips``, ``hands``, ``face``); empty = no audio modules.
        motion_scale: weight of each branch (generation may override regions and weights per forward,
            :class:`~mmgt.stage2.attention.Stage2AttentionContext`; by default train and test agree).
        audio_placement: UNet parts that get audio modules: any of ``down``, ``mid``, ``up``.
        audio_module: the audio design, a ``{"_target_": ...}`` dict or an
            :class:`~mmgt.stage2.audio_modules.AudioModuleDesign` (None: MM-HAA processors).
        motion_norm: the motion modules' GroupNorm, ``{"_target_": ...}`` or the class (None: over the
            clip, diffusers' statistics, which exports without this entry were trained with).
        reference_dtype: round the reference states to this dtype when read (``float16``: the original's
            reference bank; None: as written).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        unet_config: dict[str, Any],
        audio_dim: int = 768,
        audio_branches: Sequence[str] = ("background", "face_hands", "lips"),
        motion_scale: Sequence[float] | None = None,
        audio_placement: Sequence[str] = ("down",),
        audio_module: Mapping[str, Any] | AudioModuleDesign | None = None,
        motion_norm: Mapping[str, Any] | type[nn.GroupNorm] | None = None,
        reference_dtype: str | None = None,
    ) -> None:
        super().__init__()
        branches = tuple(str(b) for b in audio_branches)
        scale = tuple(float(w) for w in (motion_scale if motion_scale is not None else [1.0] * len(branches)))
        bad = [b for b in branches if b not in BRANCH_REGIONS]
        if bad:
            raise ValueError(f"unknown audio branch regions {bad}; choose from {BRANCH_REGIONS}")
        if len(scale) != len(branches):
            raise ValueError(f"motion_scale {list(scale)} needs one weight per branch {list(branches)}")
        placement = tuple(str(p) for p in audio_placement)
        if any(p not in PLACEMENTS for p in placement):
            raise ValueError(f"audio_placement {list(placement)}: choose from {list(PLACEMENTS)}")
        if reference_dtype is not None and reference_dtype not in BANK_DTYPES:
            raise ValueError(f"reference_dtype {reference_dtype!r}: choose from {list(BANK_DTYPES)} or null")
        design = build_audio_module(audio_module)
        norm = build_motion_norm(motion_norm)
        self.register_to_config(audio_module=design.config(), motion_norm=motion_norm_config(norm))
        config = {k: v for k, v in dict(unet_config).items() if not k.startswith("_")}
        self.unet = UNetMotionModel(**config)
        install_motion_norm(self.unet, norm)
        for name, module in self.unet.named_modules():
            if name.endswith("motion_modules") and isinstance(module, nn.ModuleList):
                for motion in module:
                    nn.init.zeros_(motion.proj_out.weight)
                    nn.init.zeros_(motion.proj_out.bias)
        self.branches, self.scale, self.placement = branches, scale, placement
        self.audio_design = design
        self.gradient_checkpointing = False
        self._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
        self._install_processors(int(audio_dim), BANK_DTYPES.get(reference_dtype or ""))

    # ------------------------------------------------------------------ processors
    def _install_processors(self, audio_dim: int, bank_dtype: torch.dtype | None) -> None:
        procs: dict[str, Any] = dict(self.unet.attn_processors)
        for path in spatial_attention_paths(list(procs)):
            key = f"{path}.processor"
            if path.endswith("attn1"):
                procs[key] = ReferenceReadAttnProcessor(path, bank_dtype)
            else:
                procs[key] = CrossAttnProcessor()
        self.audio_design.install(
            self.unet,
            procs,
            audio_dim=audio_dim,
            branches=self.branches,
            motion_scale=self.scale,
            placement=self.placement,
        )
        # attentions of modules the design added keep their own processors
        self.unet.set_attn_processor({**self.unet.attn_processors, **procs})

    @property
    def audio_processor_names(self) -> list[str]:
        """Module paths of the attentions carrying MM-HAA branches (an :data:`AUDIO_PROCESSORS` processor)."""
        audio = tuple(AUDIO_PROCESSORS.values())
        return [
            k.removesuffix(".processor") for k, p in self.unet.attn_processors.items() if isinstance(p, audio)
        ]

    @property
    def audio_module_names(self) -> list[str]:
        """Module paths of the released design's audio modules (``down_blocks.<i>.audio_modules.<j>``)."""
        return [n for n, m in self.unet.named_modules() if n.split(".")[-2:-1] == ["audio_modules"]]

    @property
    def mask_regions(self) -> tuple[str, ...]:
        """Regions whose masks the branches need (``full`` needs none), in first-use order."""
        return mask_regions_of(self.branches)

    @property
    def latent_channels(self) -> int:
        """Channels C of the noisy latents (B, C, F, h, w) the UNet takes."""
        return int(self.unet.config.in_channels)

    @property
    def pose_channels(self) -> int:
        """Channels of the PoseGuider features added after ``conv_in``."""
        return int(self.unet.config.block_out_channels[0])

    @property
    def cross_attention_dim(self) -> int:
        """Width of the image-embedding tokens (B, L, D) the cross attention reads (first block's if many)."""
        dim = self.unet.config.cross_attention_dim
        return int(dim if isinstance(dim, int) else dim[0])

    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Latent resolutions (h, w) of the UNet levels for an input latent of height x width."""
        sizes = [(height, width)]
        for block in self.unet.down_blocks[:-1]:
            if block.downsamplers is not None:
                h, w = sizes[-1]
                sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
        return sizes

    # ------------------------------------------------------------------ checkpointing
    def enable_gradient_checkpointing(self, gradient_checkpointing_func: Any = None) -> None:
        """Checkpoint whole UNet blocks (see the module docstring)."""
        if gradient_checkpointing_func is not None:
            self._gradient_checkpointing_func = gradient_checkpointing_func
        self.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        """Run the UNet blocks without checkpointing."""
        self.gradient_checkpointing = False

    def _run(self, block: nn.Module, **kwargs: Any) -> Any:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block, **kwargs)
        return block(**kwargs)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | float | int,
        encoder_hidden_states: Tensor,
        pose_features: Tensor | None = None,
        context: Stage2AttentionContext | None = None,
    ) -> Tensor:
        """Predict the model output (v for v-prediction) for ``sample`` (B, C, F, h, w) -> (B, C, F, h, w)."""
        unet = self.unet
        if sample.ndim != 5:
            raise ValueError(f"sample must be (B, C, F, h, w), got {tuple(sample.shape)}")
        batch, _, frames, height, width = sample.shape
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states must be (B={batch}, L, D), got {tuple(encoder_hidden_states.shape)}"
            )
        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        emb = unet.time_embedding(unet.time_proj(timesteps.expand(batch)).to(dtype=unet.dtype))
        step = {
            "temb": emb.repeat_interleave(frames, dim=0),
            "encoder_hidden_states": encoder_hidden_states.repeat_interleave(frames, dim=0),
            "num_frames": frames,
        }
        hidden = self._embed(sample, pose_features)
        hidden, residuals = self._down(hidden, step, context)
        mid_frames = {"num_frames": frames} if hasattr(unet.mid_block, "motion_modules") else {}
        hidden = self._run(
            unet.mid_block,
            hidden_states=hidden,
            temb=step["temb"],
            encoder_hidden_states=step["encoder_hidden_states"],
            cross_attention_kwargs={"context": context},
            **mid_frames,
        )
        up_factor = 2**unet.num_upsamplers
        hidden = self._up(hidden, residuals, step, context, height % up_factor != 0 or width % up_factor != 0)
        if unet.conv_norm_out is not None:
            hidden = unet.conv_act(unet.conv_norm_out(hidden))
        hidden = unet.conv_out(hidden)
        return hidden.reshape(batch, frames, *hidden.shape[1:]).permute(0, 2, 1, 3, 4)

    def _embed(self, sample: Tensor, pose_features: Tensor | None) -> Tensor:
        """``conv_in`` of the frames (B, C, F, h, w) plus the PoseGuider features -> (B * F, C0, h, w)."""
        batch, _, frames, height, width = sample.shape
        hidden = sample.permute(0, 2, 1, 3, 4).reshape(batch * frames, -1, height, width)
        hidden = self.unet.conv_in(hidden)
        if pose_features is None:
            return hidden
        expected = (batch, hidden.shape[1], frames, height, width)
        if tuple(pose_features.shape) != expected:
            raise ValueError(f"pose_features must be {expected}, got {tuple(pose_features.shape)}")
        return hidden + pose_features.permute(0, 2, 1, 3, 4).reshape(hidden.shape).to(hidden.dtype)

    def _down(
        self, hidden: Tensor, step: dict[str, Any], context: Stage2AttentionContext | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The down blocks: hidden states (B * F, C, h, w) and every residual, in order."""
        residuals: tuple[Tensor, ...] = (hidden,)
        plain = {k: v for k, v in step.items() if k != "encoder_hidden_states"}
        for block in self.unet.down_blocks:
            if hasattr(block, "audio_modules"):
                run: Any = partial(down_block_forward, block)
                kwargs = {**step, "context": context, "branches": self.branches, "motion_scale": self.scale}
            elif getattr(block, "has_cross_attention", False):
                run, kwargs = block, {**step, "cross_attention_kwargs": {"context": context}}
            else:
                run, kwargs = block, plain
            hidden, res = self._run(run, hidden_states=hidden, **kwargs)
            residuals += res
        return hidden, residuals

    def _up(
        self,
        hidden: Tensor,
        residuals: tuple[Tensor, ...],
        step: dict[str, Any],
        context: Stage2AttentionContext | None,
        forward_upsample_size: bool,
    ) -> Tensor:
        """The up blocks, consuming the down blocks' residuals (last first)."""
        blocks = self.unet.up_blocks
        for i, block in enumerate(blocks):
            res = residuals[-len(block.resnets) :]
            residuals = residuals[: -len(block.resnets)]
            upsample_size = None
            if i < len(blocks) - 1 and forward_upsample_size:
                upsample_size = residuals[-1].shape[2:]
            common = {
                "hidden_states": hidden,
                "temb": step["temb"],
                "res_hidden_states_tuple": res,
                "upsample_size": upsample_size,
                "num_frames": step["num_frames"],
            }
            if getattr(block, "has_cross_attention", False):
                common.update(
                    encoder_hidden_states=step["encoder_hidden_states"],
                    cross_attention_kwargs={"context": context},
                )
            hidden = self._run(block, **common)
        return hidden


def down_block_forward(
    block: nn.Module,
    hidden_states: Tensor,
    temb: Tensor,
    encoder_hidden_states: Tensor,
    num_frames: int,
    context: Stage2AttentionContext | None,
    branches: Sequence[str],
    motion_scale: Sequence[float],
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Diffusers' ``CrossAttnDownBlockMotion.forward`` with the block's ``audio_modules`` (released design).

    The audio modules run between each spatial transformer and its motion module; hidden states
    (B * F, C, h, w).

    Without audio tokens in ``context`` the audio modules are skipped (the model without audio).
    """
    kwargs = {"context": context}
    out: tuple[Tensor, ...] = ()
    audio = None if context is None else context.audio_tokens
    if audio is not None:
        regions, weights = branch_settings(context, branches, motion_scale, "audio_modules")
    for resnet, attn, audio_module, motion in zip(
        block.resnets, block.attentions, block.audio_modules, block.motion_modules, strict=True
    ):
        hidden_states = resnet(input_tensor=hidden_states, temb=temb)
        hidden_states = attn(
            hidden_states=hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs=kwargs,
            return_dict=False,
        )[0]
        if audio is not None:
            hidden_states = audio_module(hidden_states, audio, context.region_masks, regions, weights)
        hidden_states = motion(hidden_states, num_frames=num_frames)
        out = (*out, hidden_states)
    if block.downsamplers is not None:
        for downsampler in block.downsamplers:
            hidden_states = downsampler(hidden_states=hidden_states)
        out = (*out, hidden_states)
    return hidden_states, out
