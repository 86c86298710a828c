"""``ReferenceNet``: a diffusers ``UNet2DConditionModel`` run once at t = 0 on the reference latent.

Its spatial self-attention layers get :class:`~mmgt.stage2.attention.ReferenceWriteAttnProcessor`, which
records each layer's normalised input; :meth:`ReferenceNet.write_states` returns them keyed by module path,
ready for the denoiser's :class:`~mmgt.stage2.attention.ReferenceReadAttnProcessor` of the same path
(Moore-AnimateAnyone's "reference attention", ``fusion_blocks="full"``: every down, mid and up layer).

The class adds no parameters to ``UNet2DConditionModel`` (same config and weights: an SD-1.5 ``unet``
folder loads into it directly). The writers are installed on first use, whatever way the model was built.

Parameters that cannot influence any written state (the output head and the tail of the last transformer
block after its recorded input) are listed by :meth:`ReferenceNet.unused_parameter_names`; training
freezes them (the original froze the whole ``up_blocks.3`` for the same reason, DDP's unused parameters).
"""

from __future__ import annotations

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import Tensor

from mmgt.stage2.attention import (
    ReferenceWriteAttnProcessor,
    Stage2AttentionContext,
    reference_writer_processors,
)


class ReferenceNet(UNet2DConditionModel):
    """UNet2DConditionModel whose self-attention inputs are the reference features of the denoiser."""

    def _ensure_writers(self) -> None:
        procs = self.attn_processors
        if not all(
            isinstance(p, ReferenceWriteAttnProcessor)
            for k, p in procs.items()
            if k.endswith("attn1.processor")
        ):
            self.set_attn_processor(reference_writer_processors(list(procs)))

    @property
    def state_paths(self) -> list[str]:
        """Module paths of the layers whose states are written (the spatial ``attn1`` layers)."""
        return [k.removesuffix(".processor") for k in self.attn_processors if k.endswith("attn1.processor")]

    def write_states(self, latents: Tensor, encoder_hidden_states: Tensor) -> dict[str, Tensor]:
        """Run at t = 0 on reference latents (B, C, h, w) with image embeddings (B, L, D).

        Returns:
            module path -> (B, h_l * w_l, C_l) normalised hidden states of every spatial ``attn1``.
        """
        self._ensure_writers()
        context = Stage2AttentionContext(reference_states={})
        timestep = torch.zeros(latents.shape[0], device=latents.device, dtype=torch.long)
        self(latents, timestep, encoder_hidden_states, cross_attention_kwargs={"context": context})
        return context.reference_states

    def unused_parameter_names(self) -> list[str]:
        """Names of the parameters without influence on :meth:`write_states` (no gradient ever).

        Walking the up blocks from the last one: a block without attention is entirely unused; in the
        last block with attention, everything of its last transformer block after ``norm1`` (whose output
        is the recorded state) and the transformer's ``proj_out`` are unused. Plus the output head.
        """
        unused = ["conv_norm_out.", "conv_out."]
        for i in reversed(range(len(self.up_blocks))):
            block = self.up_blocks[i]
            attentions = getattr(block, "attentions", None)
            if not attentions:
                unused.append(f"up_blocks.{i}.")
                continue
            j = len(attentions) - 1
            transformer = attentions[j]
            k = len(transformer.transformer_blocks) - 1
            last: BasicTransformerBlock = transformer.transformer_blocks[k]
            prefix = f"up_blocks.{i}.attentions.{j}."
            for name, _ in last.named_parameters():
                if not name.startswith("norm1."):
                    unused.append(f"{prefix}transformer_blocks.{k}.{name}")
            unused.append(f"{prefix}proj_out.")
            later = [f"up_blocks.{i}.resnets.{r}." for r in range(j + 1, len(block.resnets))]
            unused += later + ([f"up_blocks.{i}.upsamplers."] if block.upsamplers is not None else [])
            break
        return [n for n, _ in self.named_parameters() if any(n == u or n.startswith(u) for u in unused)]
