"""MM-HAA and reference attention processors, verified against naive references and by gradients."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention

from mmgt.stage2.attention import (
    CrossAttnProcessor,
    MMHAAAttnProcessor,
    ReferenceReadAttnProcessor,
    ReferenceWriteAttnProcessor,
    RegionMasks,
    Stage2AttentionContext,
    reference_keep_or_none,
)

C, HEADS, AUDIO_DIM, N_AUDIO = 16, 2, 12, 5
REGIONS = ("background", "face_hands", "lips")


def _attention(cross_dim: int | None = C) -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=C, cross_attention_dim=cross_dim, heads=HEADS, dim_head=C // HEADS, bias=False)


def _processor(regions=REGIONS, scale=(1.0, 2.0, 0.5)) -> MMHAAAttnProcessor:
    torch.manual_seed(1)
    proc = MMHAAAttnProcessor("blk.attn2", C, AUDIO_DIM, HEADS, regions, scale)
    for branch in proc.branches:  # non-zero outputs: a zero-initialised branch proves nothing
        torch.nn.init.normal_(branch.to_out.weight, std=0.2)
        torch.nn.init.normal_(branch.to_out.bias, std=0.2)
    return proc


def _naive_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, keep=None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v per head with an explicit loop; ``keep`` (N, L_k) bool masks keys."""
    n, lq, dim = q.shape
    d = dim // heads
    out = torch.zeros_like(q)
    for b in range(n):
        for h in range(heads):
            sl = slice(h * d, (h + 1) * d)
            scores = q[b, :, sl] @ k[b, :, sl].T / math.sqrt(d)
            if keep is not None:
                scores = scores.masked_fill(~keep[b][None, :], float("-inf"))
            out[b, :, sl] = scores.softmax(-1) @ v[b, :, sl]
    return out


def _masks(n: int, h: int, w: int, seed: int = 2) -> RegionMasks:
    g = torch.Generator().manual_seed(seed)
    return RegionMasks(REGIONS, [torch.rand(n, len(REGIONS), h, w, generator=g)])


def test_mmhaa_equals_naive_masked_attention() -> None:
    attn, proc = _attention(), _processor()
    n, h, w = 3, 4, 6  # non-square level
    x = torch.randn(n, h * w, C)
    image = torch.randn(n, 1, C)
    audio = torch.randn(n, N_AUDIO, AUDIO_DIM)
    masks = _masks(n, h, w)
    out = proc(attn, x, image, context=Stage2AttentionContext(audio_tokens=audio, region_masks=masks))

    expected = attn.to_out[0](_naive_attention(attn.to_q(x), attn.to_k(image), attn.to_v(image), HEADS))
    flat = masks._by_tokens[h * w]  # (N, h*w, R)
    for r, (branch, weight) in enumerate(zip(proc.branches, proc.motion_scale, strict=True)):
        a = _naive_attention(branch.to_q(x), branch.to_k(audio), branch.to_v(audio), HEADS)
        expected = expected + weight * flat[:, :, r : r + 1] * branch.to_out(a)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_all_ones_mask_equals_unmasked_branch() -> None:
    attn, proc = _attention(), _processor()
    n, h, w = 2, 4, 4
    x, image, audio = torch.randn(n, h * w, C), torch.randn(n, 1, C), torch.randn(n, N_AUDIO, AUDIO_DIM)
    ones = RegionMasks(REGIONS, [torch.ones(n, len(REGIONS), h, w)])
    masked = proc(attn, x, image, context=Stage2AttentionContext(audio_tokens=audio, region_masks=ones))
    unmasked = proc(attn, x, image, context=Stage2AttentionContext(audio_tokens=audio, region_masks=None))
    torch.testing.assert_close(masked, unmasked, rtol=0, atol=0)
    full = _processor(regions=("full",) * 3)  # the ``full`` region needs no mask at all
    full.load_state_dict(proc.state_dict())
    with_full = full(attn, x, image, context=Stage2AttentionContext(audio_tokens=audio, region_masks=ones))
    torch.testing.assert_close(with_full, unmasked, rtol=0, atol=0)


def test_branch_gradient_outside_its_mask_is_exactly_zero() -> None:
    proc = _processor(regions=("lips",), scale=(1.0,))
    n, h, w = 2, 4, 5
    mask = torch.zeros(n, 1, h, w)
    mask[:, :, 1:3, 2:4] = torch.rand(n, 1, 2, 2) + 0.1  # soft, non-zero inside the box only
    masks = RegionMasks(("lips",), [mask])
    x = torch.randn(n, h * w, C, requires_grad=True)
    audio = torch.randn(n, N_AUDIO, AUDIO_DIM, requires_grad=True)
    branch_out = proc.audio_attention(x, audio, masks)
    branch_out.square().sum().backward()
    outside = mask.flatten(1) == 0  # (N, h*w)
    assert x.grad is not None and audio.grad is not None
    assert torch.count_nonzero(x.grad[outside]) == 0
    assert torch.count_nonzero(branch_out.detach()[outside]) == 0  # no bias leaks outside the region
    assert torch.count_nonzero(x.grad[~outside]) > 0  # inside the mask the branch does learn
    # an all-zero mask cuts the audio off completely
    audio.grad = None
    proc.audio_attention(x, audio, RegionMasks(("lips",), [torch.zeros_like(mask)])).sum().backward()
    assert torch.count_nonzero(audio.grad) == 0


def test_fresh_branches_are_zero_and_no_audio_skips_them() -> None:
    attn = _attention()
    proc = MMHAAAttnProcessor("blk.attn2", C, AUDIO_DIM, HEADS, REGIONS, (1.0, 1.0, 1.0))
    x, image, audio = torch.randn(2, 16, C), torch.randn(2, 1, C), torch.randn(2, N_AUDIO, AUDIO_DIM)
    plain = CrossAttnProcessor()(attn, x, image)
    with_audio = proc(
        attn, x, image, context=Stage2AttentionContext(audio_tokens=audio, region_masks=_masks(2, 4, 4))
    )
    torch.testing.assert_close(with_audio, plain, rtol=0, atol=0)
    torch.testing.assert_close(proc(attn, x, image, context=None), plain, rtol=0, atol=0)


def test_reference_write_then_read_equals_concatenated_self_attention() -> None:
    attn = _attention(cross_dim=None)
    frames, b, length = 3, 2, 12
    ref = torch.randn(b, length, C)
    ctx = Stage2AttentionContext(reference_states={})
    ReferenceWriteAttnProcessor("blk.attn1")(attn, ref, context=ctx)
    assert ctx.reference_states["blk.attn1"] is ref
    x = torch.randn(b * frames, length, C)
    keep = torch.tensor([True, False])
    ctx.reference_keep = keep
    out = ReferenceReadAttnProcessor("blk.attn1")(attn, x, context=ctx)
    ref_frames = ref.repeat_interleave(frames, dim=0)
    keys = torch.cat([x, ref_frames], dim=1)
    key_keep = torch.cat(
        [
            torch.ones(b * frames, length, dtype=torch.bool),
            keep.repeat_interleave(frames)[:, None].expand(-1, length),
        ],
        1,
    )
    expected = attn.to_out[0](
        _naive_attention(attn.to_q(x), attn.to_k(keys), attn.to_v(keys), HEADS, keep=key_keep)
    )
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # a dropped reference is exactly plain self-attention
    plain = CrossAttnProcessor()(attn, x[frames:])
    torch.testing.assert_close(out[frames:], plain, rtol=1e-5, atol=1e-6)
    assert reference_keep_or_none(keep) is keep and reference_keep_or_none(torch.ones(2).bool()) is None


def test_clear_errors() -> None:
    masks = _masks(2, 4, 4)
    with pytest.raises(ValueError, match="no motion mask with 10 tokens"):
        masks.get("lips", 10)
    with pytest.raises(ValueError, match="no mask for region 'hands'"):
        masks.get("hands", 16)
    attn, proc = _attention(), _processor()
    with pytest.raises(ValueError, match="audio tokens must be"):
        proc(
            attn,
            torch.randn(2, 16, C),
            torch.randn(2, 1, C),
            context=Stage2AttentionContext(audio_tokens=torch.randn(3, 5, AUDIO_DIM)),
        )
    with pytest.raises(KeyError, match="no ReferenceNet state"):
        ReferenceReadAttnProcessor("other.attn1")(
            _attention(None),
            torch.randn(2, 4, C),
            context=Stage2AttentionContext(reference_states={"a": torch.randn(1, 4, C)}),
        )
