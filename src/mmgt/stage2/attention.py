"""Stage II attention processors: reference attention (write / read) and MM-HAA masked audio attention.

diffusers' ``Attention`` delegates its computation to a swappable *processor*; Stage II replaces the
processors of the spatial transformer blocks (installed with ``set_attn_processor`` keyed by module path,
e.g. ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor``):

* :class:`ReferenceWriteAttnProcessor` (ReferenceNet ``attn1``): plain self-attention that also records its
  input - the block's normalised hidden states ``(B, L, C)`` - in the context, under its module path.
* :class:`ReferenceReadAttnProcessor` (denoiser ``attn1``): self-attention whose keys and values are the
  frame's own tokens concatenated with the reference tokens recorded under the same path; samples whose
  ``reference_keep`` is False attend to their own tokens only (exactly the attention without reference:
  the reference keys are masked out), which is the unconditional half of classifier-free guidance.
* :class:`MMHAAAttnProcessor` (denoiser ``attn2`` at the configured placement): the image-embedding
  cross-attention of the block plus R region branches of cross-attention to the audio tokens, each with
  its own query/key/value projections and a zero-initialised output projection, multiplied by its motion
  mask at the block's resolution and summed with the weights ``motion_scale``::

      out = CrossAttn(n, image_embeds) + sum_r  w_r * M_r  (.)  to_out_r( Attn(q_r(n), k_r(a), v_r(a)) )

  where ``n`` is the block's normalised hidden states (``norm2`` output) and ``a`` the audio tokens of the
  frame. The mask is applied after the output projection, so a branch is exactly zero outside its region
  (the original applied it before a biased 1x1 conv, leaking the bias everywhere). Masks are looked up by
  token count, so any (non-square) latent works.
* :class:`CrossAttnProcessor`: the plain image cross-attention for ``attn2`` where MM-HAA is not placed.

The audio-attention processor is chosen by name (:data:`AUDIO_PROCESSORS`, the MM-HAA design's
``processor``): an audio-attention ablation is one class added there plus one YAML.

How the inputs reach the processors (the explicit channel): ``BasicTransformerBlock`` passes the same
``cross_attention_kwargs`` to ``attn1`` *and* ``attn2``, and ``Attention.forward`` silently drops keyword
arguments a processor does not declare. Stage II therefore passes exactly one keyword, ``context``, a
:class:`Stage2AttentionContext` holding every per-forward input (reference states, reference keep mask,
audio tokens, region masks), and every processor installed in a Stage II UNet declares it. Each processor
reads the fields that concern it and documents which. Nothing is stored on the modules between forwards,
so the processors are stateless (safe under gradient checkpointing, CFG batching and data parallelism).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from mmgt.factory import registry

FULL_REGION: str = "full"
"""Branch region meaning "everywhere" (mask of ones; no mask tensor needed)."""

DERIVED_BRANCH_REGIONS: dict[str, tuple[float, str]] = {"full_plus_lips": (1.0, "lips")}
"""Branch regions computed from a mask region: name -> (offset, region), mask = offset + M_region.
``full_plus_lips`` (values in [1, 2]) is the first branch of the original MMGT inference script."""


def mask_regions_of(branches: Sequence[str]) -> tuple[str, ...]:
    """Mask regions the branches need (``full`` none, derived ones their source), in first-use order."""
    needed = (DERIVED_BRANCH_REGIONS[b][1] if b in DERIVED_BRANCH_REGIONS else b for b in branches)
    return tuple(dict.fromkeys(r for r in needed if r != FULL_REGION))


PLACEMENTS: dict[str, str] = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
"""Placement name -> module-path prefix of the UNet blocks it covers."""


class RegionMasks:
    """Soft region masks at every latent resolution of the denoiser, looked up by token count.

    Args:
        regions: names of the mask channels, e.g. ``("background", "face_hands", "lips")``.
        levels: one tensor (N, R, h, w) per resolution, N = batch x frames, values in [0, 1].
    """

    def __init__(self, regions: Sequence[str], levels: Sequence[Tensor]) -> None:
        self.regions = tuple(regions)
        self._by_tokens: dict[int, Tensor] = {}
        for m in levels:
            if m.ndim != 4 or m.shape[1] != len(self.regions):
                raise ValueError(f"masks must be (N, {len(self.regions)}, h, w), got {tuple(m.shape)}")
            n = m.shape[-2] * m.shape[-1]
            if n in self._by_tokens:
                raise ValueError(f"two mask levels with {n} tokens: {[tuple(x.shape) for x in levels]}")
            self._by_tokens[n] = m.flatten(2).transpose(1, 2)  # (N, h*w, R)

    @property
    def token_counts(self) -> list[int]:
        """Token counts (h * w) of the mask levels, ascending."""
        return sorted(self._by_tokens)

    def get(self, region: str, n_tokens: int) -> Tensor | None:
        """(N, n_tokens, 1) mask of ``region`` at the level with ``n_tokens`` tokens; None for ``full``.

        A derived branch region (:data:`DERIVED_BRANCH_REGIONS`) is its offset plus its source mask.
        """
        if region == FULL_REGION:
            return None
        if region in DERIVED_BRANCH_REGIONS:
            offset, source = DERIVED_BRANCH_REGIONS[region]
            return offset + self.get(source, n_tokens)
        if n_tokens not in self._by_tokens:
            raise ValueError(
                f"no motion mask with {n_tokens} tokens (h*w); have levels with {self.token_counts} tokens"
            )
        if region not in self.regions:
            raise ValueError(f"no mask for region {region!r}; masks have {self.regions}")
        r = self.regions.index(region)
        return self._by_tokens[n_tokens][:, :, r : r + 1]

    def select(self, index: Tensor | slice) -> RegionMasks:
        """Masks of a subset of the N rows (e.g. one context window)."""
        out = RegionMasks.__new__(RegionMasks)
        out.regions = self.regions
        out._by_tokens = {n: m[index] for n, m in self._by_tokens.items()}
        return out

    def to(self, dtype: torch.dtype) -> RegionMasks:
        """The masks in ``dtype`` (the networks' precision)."""
        out = RegionMasks.__new__(RegionMasks)
        out.regions = self.regions
        out._by_tokens = {n: m.to(dtype) for n, m in self._by_tokens.items()}
        return out

    def repeat(self, times: int) -> RegionMasks:
        """Masks with the N rows repeated ``times`` (the CFG halves share masks)."""
        out = RegionMasks.__new__(RegionMasks)
        out.regions = self.regions
        out._by_tokens = {n: m.repeat(times, 1, 1) for n, m in self._by_tokens.items()}
        return out


@dataclass
class Stage2AttentionContext:
    """Every per-forward input of the Stage II processors (the one ``cross_attention_kwargs`` entry).

    Attributes:
        reference_states: module path -> (B, L, C) normalised hidden states of the ReferenceNet; filled by
            :class:`ReferenceWriteAttnProcessor`, read by :class:`ReferenceReadAttnProcessor` (None: the
            denoiser runs without reference attention).
        reference_keep: (B,) bool; False = that sample attends without the reference (CFG, dropout). None:
            every sample attends to it (no key mask, so SDPA may pick a mask-free kernel); callers decide
            this before the forward (:func:`reference_keep_or_none`), so the forward has no branch on
            tensor values (no ``torch.compile`` graph break).
        audio_tokens: (B * F, N, D_a) audio tokens per frame (None: no audio, the MM-HAA branches are off).
        region_masks: masks of the MM-HAA branches' regions (None: every branch unmasked).
        branch_regions / branch_weights: this forward's mask region and weight of each audio branch (None:
            the denoiser's configured ``audio_branches`` / ``motion_scale``); generation passes the
            export's ``inference`` values here (the original used other masks and weights at inference).
    """

    reference_states: dict[str, Tensor] | None = None
    reference_keep: Tensor | None = None
    audio_tokens: Tensor | None = None
    region_masks: RegionMasks | None = None
    branch_regions: Sequence[str] | None = None
    branch_weights: Sequence[float] | None = None
    written: list[str] = field(default_factory=list)


def reference_keep_or_none(keep: Tensor | None) -> Tensor | None:
    """The ``reference_keep`` of a context: None when every sample keeps the reference (one host sync)."""
    return None if keep is None or bool(keep.all()) else keep


def _check_plain(attn: Attention) -> None:
    if attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_cross:
        raise ValueError(
            "Stage II processors support plain SD attention layers (no spatial/group/cross norm)"
        )
    if attn.norm_q is not None or attn.norm_k is not None or attn.residual_connection:
        raise ValueError("Stage II processors support plain SD attention layers (no q/k norm, no residual)")


def _heads(x: Tensor, heads: int) -> Tensor:
    """(N, L, H * d) -> (N, H, L, d)."""
    n, length, dim = x.shape
    return x.view(n, length, heads, dim // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    """(N, H, L, d) -> (N, L, H * d)."""
    n, h, length, d = x.shape
    return x.transpose(1, 2).reshape(n, length, h * d)


def _layer_attention(
    attn: Attention, hidden_states: Tensor, context_states: Tensor, attention_mask: Tensor | None = None
) -> Tensor:
    """The attention layer's own projections + SDPA + output projection. Shapes (N, L, C) -> (N, L, C)."""
    query = _heads(attn.to_q(hidden_states), attn.heads)
    key = _heads(attn.to_k(context_states), attn.heads)
    value = _heads(attn.to_v(context_states), attn.heads)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
    out = attn.to_out[1](attn.to_out[0](_merge(out).to(query.dtype)))
    return out / attn.rescale_output_factor


class ReferenceWriteAttnProcessor:
    """ReferenceNet self-attention that records its input under its module path.

    Reads ``context.reference_states`` (the dict to write into); the other fields are not used here.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        context: Stage2AttentionContext | None = None,
    ) -> Tensor:
        """Self-attention of ``hidden_states`` (B, L, C); stores them in ``context.reference_states``."""
        _check_plain(attn)
        if context is None or context.reference_states is None:
            raise ValueError(f"{self.name}: the ReferenceNet needs a context with a reference_states dict")
        context.reference_states[self.name] = hidden_states
        context.written.append(self.name)
        return _layer_attention(attn, hidden_states, hidden_states)


class ReferenceReadAttnProcessor:
    """Denoiser self-attention over the frame's tokens and the reference tokens of the same module path.

    Reads ``context.reference_states`` and ``context.reference_keep``. ``bank_dtype`` (e.g.
    ``torch.float16``, the original's reference bank) rounds the reference tokens to that dtype before they
    are used in the dtype of the hidden states (None: used as written).
    """

    def __init__(self, name: str, bank_dtype: torch.dtype | None = None) -> None:
        self.name = name
        self.bank_dtype = bank_dtype

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        context: Stage2AttentionContext | None = None,
    ) -> Tensor:
        """hidden_states (B * F, L, C) -> (B * F, L, C); reference states (B, L_ref, C) repeat over F."""
        _check_plain(attn)
        if attention_mask is not None:
            raise ValueError(f"{self.name}: self-attention masks are not supported")
        if context is None or context.reference_states is None:
            return _layer_attention(attn, hidden_states, hidden_states)
        if self.name not in context.reference_states:
            raise KeyError(
                f"{self.name}: no ReferenceNet state for this layer (the ReferenceNet and the denoiser must "
                f"have the same spatial layout; got states for {len(context.reference_states)} layers)"
            )
        ref = context.reference_states[self.name]
        n, length, _ = hidden_states.shape
        if n % ref.shape[0]:
            raise ValueError(
                f"{self.name}: batch {n} is not a multiple of the reference batch {ref.shape[0]}"
            )
        frames = n // ref.shape[0]
        if self.bank_dtype is not None:
            ref = ref.to(self.bank_dtype)
        ref = ref.to(hidden_states.dtype).repeat_interleave(frames, dim=0)
        keys = torch.cat([hidden_states, ref], dim=1)
        mask = None
        keep = context.reference_keep
        if keep is not None:
            keep = keep.to(hidden_states.device).bool().repeat_interleave(frames)  # (N,)
            own = torch.ones(n, length, dtype=torch.bool, device=hidden_states.device)
            mask = torch.cat([own, keep[:, None].expand(n, ref.shape[1])], dim=1)[:, None, None, :]
        return _layer_attention(attn, hidden_states, keys, mask)


class CrossAttnProcessor:
    """The plain image-embedding cross-attention (``attn2`` without MM-HAA).

    Declares ``context`` because ``BasicTransformerBlock`` passes the same keyword arguments to ``attn1``
    and ``attn2``; it uses none of its fields.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        context: Stage2AttentionContext | None = None,
    ) -> Tensor:
        """hidden_states (N, L, C), encoder_hidden_states (N, L_e, D) -> (N, L, C)."""
        _check_plain(attn)
        if attention_mask is not None:
            raise ValueError("CrossAttnProcessor: encoder attention masks are not supported")
        states = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        return _layer_attention(attn, hidden_states, states)


class AudioBranch(nn.Module):
    """One MM-HAA region branch: cross-attention from the hidden states to the audio tokens.

    ``to_out`` is zero-initialised, so a fresh branch contributes exactly zero.
    """

    def __init__(self, query_dim: int, audio_dim: int, heads: int) -> None:
        super().__init__()
        if query_dim % heads:
            raise ValueError(f"query_dim {query_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(audio_dim, query_dim, bias=False)
        self.to_v = nn.Linear(audio_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)

    def forward(self, hidden_states: Tensor, audio_tokens: Tensor) -> Tensor:
        """hidden_states (N, L, C), audio_tokens (N, T_a, D_a) -> (N, L, C)."""
        query = _heads(self.to_q(hidden_states), self.heads)
        key = _heads(self.to_k(audio_tokens.to(hidden_states.dtype)), self.heads)
        value = _heads(self.to_v(audio_tokens.to(hidden_states.dtype)), self.heads)
        out = F.scaled_dot_product_attention(query, key, value)
        return self.to_out(_merge(out))


class MMHAAAttnProcessor(nn.Module):
    """Image cross-attention + motion-mask-guided hierarchical audio attention (``attn2`` of a block).

    Reads ``context.audio_tokens`` and ``context.region_masks``. Without audio tokens the branches are
    skipped (the block is then exactly the plain cross-attention).

    Args:
        name: the attention's module path (for error messages).
        query_dim: channels of the block (C).
        audio_dim: channels of the audio tokens (D_a).
        heads: attention heads of each branch (the layer's ``heads``).
        regions: one mask region per branch (``full`` = unmasked), e.g. background, face_hands, lips.
        motion_scale: one weight per branch (``w_r``).
    """

    def __init__(
        self,
        name: str,
        query_dim: int,
        audio_dim: int,
        heads: int,
        regions: Sequence[str],
        motion_scale: Sequence[float],
    ) -> None:
        super().__init__()
        if len(regions) != len(motion_scale) or not regions:
            raise ValueError(f"{name}: need one motion_scale per branch, got {list(regions)}, {motion_scale}")
        self.name = name
        self.regions = tuple(regions)
        self.motion_scale = tuple(float(w) for w in motion_scale)
        self.branches = nn.ModuleList(AudioBranch(query_dim, audio_dim, heads) for _ in self.regions)

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        context: Stage2AttentionContext | None = None,
    ) -> Tensor:
        """hidden_states (N, L, C), encoder_hidden_states (N, L_e, D), audio (N, T_a, D_a) -> (N, L, C)."""
        _check_plain(attn)
        if attention_mask is not None:
            raise ValueError(f"{self.name}: encoder attention masks are not supported")
        states = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        out = _layer_attention(attn, hidden_states, states)
        if context is None or context.audio_tokens is None:
            return out
        regions, weights = branch_settings(context, self.regions, self.motion_scale, self.name)
        return out + self.audio_attention(
            hidden_states, context.audio_tokens, context.region_masks, regions, weights
        )

    def audio_attention(
        self,
        hidden_states: Tensor,
        audio_tokens: Tensor,
        region_masks: RegionMasks | None,
        regions: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
    ) -> Tensor:
        """sum_r w_r * M_r * branch_r(hidden_states, audio_tokens): (N, L, C)."""
        n, length, _ = hidden_states.shape
        check_audio_tokens(audio_tokens, n, self.name)
        regions = self.regions if regions is None else regions
        weights = self.motion_scale if weights is None else weights
        total = torch.zeros_like(hidden_states)
        for region, weight, branch in zip(regions, weights, self.branches, strict=True):
            h = branch(hidden_states, audio_tokens)
            mask = branch_mask(region_masks, region, length, n, self.name)
            if mask is not None:
                h = h * mask.to(h.dtype)
            total = total + weight * h
        return total


AUDIO_PROCESSORS: dict[str, type[nn.Module]] = registry(MMHAAAttnProcessor)
"""Audio-attention processors the MM-HAA design may name (``audio_module.processor``; class path -> class).
Each takes ``(name, query_dim, audio_dim, heads, regions, motion_scale)``, reads the audio tokens and masks
from :class:`Stage2AttentionContext` and keeps its parameters under ``branches``."""


def check_audio_tokens(audio_tokens: Tensor, n: int, name: str) -> None:
    """Raise unless the audio tokens are (N = n, T_a, D_a), one row per frame."""
    if audio_tokens.ndim != 3 or audio_tokens.shape[0] != n:
        raise ValueError(
            f"{name}: audio tokens must be (N={n}, T_a, D_a) per frame, got {tuple(audio_tokens.shape)}"
        )


def branch_settings(
    context: Stage2AttentionContext, regions: Sequence[str], weights: Sequence[float], name: str
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """This forward's (regions, weights) of the audio branches: the context's overrides or the defaults."""
    out_r = tuple(regions if context.branch_regions is None else context.branch_regions)
    out_w = tuple(float(w) for w in (weights if context.branch_weights is None else context.branch_weights))
    if len(out_r) != len(regions) or len(out_w) != len(regions):
        raise ValueError(
            f"{name}: {len(regions)} audio branches, but the context gives regions {list(out_r)} and "
            f"weights {list(out_w)}"
        )
    return out_r, out_w


def branch_mask(
    region_masks: RegionMasks | None, region: str, n_tokens: int, n: int, name: str
) -> Tensor | None:
    """(N, n_tokens, 1) mask of a branch region (None: unmasked), checked against the batch N."""
    mask = None if region_masks is None else region_masks.get(region, n_tokens)
    if mask is not None and mask.shape[0] != n:
        raise ValueError(f"{name}: masks have {mask.shape[0]} rows for a batch of {n}")
    return mask


def spatial_attention_paths(processor_keys: Sequence[str]) -> list[str]:
    """Module paths (``...attn1`` / ``...attn2``) of the spatial attentions (not the motion modules)."""
    out = []
    for key in processor_keys:
        path = key.removesuffix(".processor")
        if ".attentions." in path and ".motion_modules." not in path:
            out.append(path)
    return out


def placement_of(path: str) -> str:
    """``down`` / ``mid`` / ``up`` for a module path of a UNet block."""
    for name, prefix in PLACEMENTS.items():
        if path.startswith(prefix):
            return name
    raise ValueError(f"{path}: not inside down_blocks / mid_block / up_blocks")


def reference_writer_processors(processor_keys: Sequence[str]) -> dict[str, object]:
    """Processor dict for a ReferenceNet: writers on spatial ``attn1``, plain cross-attention on ``attn2``."""
    procs: dict[str, object] = {}
    for key in processor_keys:
        path = key.removesuffix(".processor")
        if path.endswith("attn1"):
            procs[key] = ReferenceWriteAttnProcessor(path)
        elif path.endswith("attn2"):
            procs[key] = CrossAttnProcessor()
        else:
            raise ValueError(f"{key}: unexpected attention in a ReferenceNet")
    return procs


def check_states(states: Mapping[str, Tensor], expected: Sequence[str]) -> None:
    """Raise if the written reference states do not cover exactly the expected layer paths."""
    missing = sorted(set(expected) - set(states))
    if missing:
        raise KeyError(f"ReferenceNet wrote no states for {missing}")
