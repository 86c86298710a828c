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
every ``attn1`` reads the ReferenceNet states, ``attn2`` is MM-HAA in the blocks listed in
``audio_placement`` (``down`` / ``mid`` / ``up``) and plain image cross-attention elsewhere. Motion modules
keep diffusers' processors. The forward runs the UNet's own sub-modules (time embedding, ``conv_in``,
blocks, output head) explicitly, because the pose features enter between ``conv_in`` and the first block.

Zero initialisation: the audio branches' output projections (always) and the motion modules' ``proj_out``
(fresh modules, as AnimateDiff), so a freshly built denoiser equals the image UNet it was made from;
pretrained motion adapters overwrite the latter.

Gradient checkpointing checkpoints whole UNet blocks (resnets, spatial attention, audio branches and motion
modules together) - coarser than diffusers' per-resnet / per-transformer checkpointing, which leaves the
motion modules' activations stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    FULL_REGION,
    PLACEMENTS,
    CrossAttnProcessor,
    MMHAAAttnProcessor,
    ReferenceReadAttnProcessor,
    Stage2AttentionContext,
    placement_of,
    spatial_attention_paths,
)

BRANCH_REGIONS: tuple[str, ...] = (FULL_REGION, *KNOWN_REGIONS)
"""Valid MM-HAA branch regions: ``full`` (unmasked) or a motion-mask region of :mod:`mmgt.masks`."""


class MMGTDenoiser(ModelMixin, ConfigMixin):
    """Denoising motion UNet with reference attention and MM-HAA audio attention.

    Args:
        unet_config: ``UNetMotionModel`` constructor arguments (its ``config``; JSON values).
        audio_dim: channels of the audio tokens (the AudioProjModel's output width).
        audio_branches: mask region of each MM-HAA branch, in order (``full``, ``background``,
            ``face_hands``, ``lips``, ``hands``, ``face``); empty = no audio modules.
        motion_scale: weight of each branch (train and test use the same weights).
        audio_placement: UNet parts that get MM-HAA: any of ``down``, ``mid``, ``up``.
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
        config = {k: v for k, v in dict(unet_config).items() if not k.startswith("_")}
        self.unet = UNetMotionModel(**config)
        for name, module in self.unet.named_modules():
            if name.endswith("motion_modules") and isinstance(module, nn.ModuleList):
                for motion in module:
                    nn.init.zeros_(motion.proj_out.weight)
                    nn.init.zeros_(motion.proj_out.bias)
        self.branches, self.scale, self.placement = branches, scale, placement
        self.gradient_checkpointing = False
        self._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
        self._install_processors(int(audio_dim))

    # ------------------------------------------------------------------ processors
    def _install_processors(self, audio_dim: int) -> None:
        procs: dict[str, Any] = dict(self.unet.attn_processors)
        modules = dict(self.unet.named_modules())
        for path in spatial_attention_paths(list(procs)):
            key = f"{path}.processor"
            if path.endswith("attn1"):
                procs[key] = ReferenceReadAttnProcessor(path)
            elif self.branches and placement_of(path) in self.placement:
                attn = modules[path]
                procs[key] = MMHAAAttnProcessor(
                    path, attn.query_dim, audio_dim, attn.heads, self.branches, self.scale
                )
            else:
                procs[key] = CrossAttnProcessor()
        self.unet.set_attn_processor(procs)

    @property
    def audio_processor_names(self) -> list[str]:
        """Module paths of the attentions carrying MM-HAA branches."""
        return [
            k.removesuffix(".processor")
            for k, p in self.unet.attn_processors.items()
            if isinstance(p, MMHAAAttnProcessor)
        ]

    @property
    def mask_regions(self) -> tuple[str, ...]:
        """Regions whose masks the branches need (``full`` needs none), in first-use order."""
        return tuple(dict.fromkeys(b for b in self.branches if b != FULL_REGION))

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def pose_channels(self) -> int:
        """Channels of the PoseGuider features added after ``conv_in``."""
        return int(self.unet.config.block_out_channels[0])

    @property
    def cross_attention_dim(self) -> int:
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
        up_factor = 2**unet.num_upsamplers
        forward_upsample_size = height % up_factor != 0 or width % up_factor != 0

        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        timesteps = timesteps.expand(batch)
        emb = unet.time_embedding(unet.time_proj(timesteps).to(dtype=unet.dtype))
        emb = emb.repeat_interleave(frames, dim=0)
        states = encoder_hidden_states.repeat_interleave(frames, dim=0)
        kwargs = {"context": context}

        hidden = sample.permute(0, 2, 1, 3, 4).reshape(batch * frames, -1, height, width)
        hidden = unet.conv_in(hidden)
        if pose_features is not None:
            expected = (batch, hidden.shape[1], frames, height, width)
            if tuple(pose_features.shape) != expected:
                raise ValueError(f"pose_features must be {expected}, got {tuple(pose_features.shape)}")
            hidden = hidden + pose_features.permute(0, 2, 1, 3, 4).reshape(hidden.shape).to(hidden.dtype)

        residuals: tuple[Tensor, ...] = (hidden,)
        for block in unet.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, res = self._run(
                    block,
                    hidden_states=hidden,
                    temb=emb,
                    encoder_hidden_states=states,
                    num_frames=frames,
                    cross_attention_kwargs=kwargs,
                )
            else:
                hidden, res = self._run(block, hidden_states=hidden, temb=emb, num_frames=frames)
            residuals += res

        mid_frames = {"num_frames": frames} if hasattr(unet.mid_block, "motion_modules") else {}
        hidden = self._run(
            unet.mid_block,
            hidden_states=hidden,
            temb=emb,
            encoder_hidden_states=states,
            cross_attention_kwargs=kwargs,
            **mid_frames,
        )

        for i, block in enumerate(unet.up_blocks):
            res = residuals[-len(block.resnets) :]
            residuals = residuals[: -len(block.resnets)]
            upsample_size = None
            if i < len(unet.up_blocks) - 1 and forward_upsample_size:
                upsample_size = residuals[-1].shape[2:]
            common = {
                "hidden_states": hidden,
                "temb": emb,
                "res_hidden_states_tuple": res,
                "upsample_size": upsample_size,
                "num_frames": frames,
            }
            if getattr(block, "has_cross_attention", False):
                hidden = self._run(
                    block, encoder_hidden_states=states, cross_attention_kwargs=kwargs, **common
                )
            else:
                hidden = self._run(block, **common)

        if unet.conv_norm_out is not None:
            hidden = unet.conv_act(unet.conv_norm_out(hidden))
        hidden = unet.conv_out(hidden)
        return hidden.reshape(batch, frames, *hidden.shape[1:]).permute(0, 2, 1, 3, 4)
