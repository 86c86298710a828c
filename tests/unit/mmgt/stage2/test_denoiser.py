"""Stage II networks at the tiny scale of the real config: zero-init equivalences, placement, round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import UNet2DConditionModel
from omegaconf import OmegaConf

from mmgt.config import CONFIG_DIR
from mmgt.stage2.attention import MMHAAAttnProcessor, RegionMasks, Stage2AttentionContext
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.loading import build_audio_proj, build_denoiser, build_pose_guider, build_reference_net
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet

B, F, H, W = 2, 3, 16, 16


def tiny() -> dict[str, Any]:
    """The tiny scale of ``conf/model/stage2/scale/tiny.yaml`` (resolved, as plain dicts)."""
    cfg = OmegaConf.create({"model": OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml")})
    return OmegaConf.to_container(cfg.model, resolve=True)


def make_denoiser(**audio: Any) -> MMGTDenoiser:
    """A tiny denoiser (seeded)."""
    t = tiny()["denoiser"]
    torch.manual_seed(0)
    kwargs = {"audio_dim": t["audio_dim"], "audio_placement": ["down", "mid", "up"], **audio}
    return build_denoiser(config=t["config"], motion_adapter=t["motion_adapter"], **kwargs)


def randomize_zero_inits(den: MMGTDenoiser) -> None:
    """Give the zero-initialised parts (audio branch outputs, motion proj_out) non-zero weights."""
    g = torch.Generator().manual_seed(5)
    for name, p in den.named_parameters():
        if ".processor.branches." in name or ("motion_modules" in name and "proj_out" in name):
            p.data = torch.randn(p.shape, generator=g) * 0.1


def inputs(den: MMGTDenoiser, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(B, den.latent_channels, F, H, W, generator=g)
    t = torch.tensor([10, 700])
    embeds = torch.randn(B, 1, den.cross_attention_dim, generator=g)
    return sample, t, embeds


def context_for(den: MMGTDenoiser, h: int = H, w: int = W, seed: int = 1) -> Stage2AttentionContext:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(B * F, 4, den.config.audio_dim, generator=g)
    levels = [torch.rand(B * F, len(den.mask_regions), *s, generator=g) for s in den.level_sizes(h, w)]
    return Stage2AttentionContext(audio_tokens=tokens, region_masks=RegionMasks(den.mask_regions, levels))


def test_fresh_denoiser_equals_the_image_unet_per_frame() -> None:
    """Zero-init motion modules and audio branches: the video UNet starts as the 2D UNet on every frame."""
    t = tiny()["denoiser"]
    torch.manual_seed(0)
    unet2d = UNet2DConditionModel(**t["config"])
    den = build_denoiser(config=t["config"], motion_adapter=t["motion_adapter"], audio_dim=t["audio_dim"])
    den.unet.load_state_dict(
        {
            **den.unet.state_dict(),
            **{k: v for k, v in unet2d.state_dict().items() if k in den.unet.state_dict()},
        }
    )
    sample, ts, embeds = inputs(den)
    out = den(sample, ts, embeds, context=context_for(den))
    frames = sample.permute(0, 2, 1, 3, 4).flatten(0, 1)
    ref = unet2d(frames, ts.repeat_interleave(F), embeds.repeat_interleave(F, dim=0)).sample
    torch.testing.assert_close(out.permute(0, 2, 1, 3, 4).flatten(0, 1), ref, rtol=1e-4, atol=1e-5)


def test_audio_modules_are_identity_at_init() -> None:
    with_audio = make_denoiser()
    without = make_denoiser(audio_branches=[], motion_scale=[])
    assert with_audio.audio_processor_names and not without.audio_processor_names
    without.load_state_dict(with_audio.state_dict(), strict=False)
    sample, ts, embeds = inputs(with_audio)
    a = with_audio(sample, ts, embeds, context=context_for(with_audio))
    b = without(sample, ts, embeds)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    randomize_zero_inits(with_audio)  # once trained, audio changes the output
    assert not torch.allclose(with_audio(sample, ts, embeds, context=context_for(with_audio)), b)


@pytest.mark.parametrize(
    ("placement", "expected"),
    [(["down"], 2), (["down", "mid"], 3), (["down", "mid", "up"], 7), (["mid"], 1), (["up"], 4)],
)
def test_module_counts_follow_placement(placement: list[str], expected: int) -> None:
    den = make_denoiser(audio_placement=placement)
    names = den.audio_processor_names
    assert len(names) == expected
    prefixes = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
    assert all(any(n.startswith(prefixes[p]) for p in placement) for n in names)
    procs = [p for p in den.unet.attn_processors.values() if isinstance(p, MMHAAAttnProcessor)]
    assert all(len(p.branches) == 3 for p in procs)
    owners = {n.split(".processor.")[0] for n, _ in den.named_parameters() if ".processor.branches." in n}
    assert owners == {f"unet.{n}" for n in names}


def test_branch_count_follows_hierarchy() -> None:
    den = make_denoiser(audio_branches=["full"], motion_scale=[1.0], audio_placement=["down"])
    procs = [p for p in den.unet.attn_processors.values() if isinstance(p, MMHAAAttnProcessor)]
    assert len(procs) == 2 and all(p.regions == ("full",) for p in procs)
    assert den.mask_regions == ()
    with pytest.raises(ValueError, match="unknown audio branch regions"):
        make_denoiser(audio_branches=["mouth"], motion_scale=[1.0])
    with pytest.raises(ValueError, match="audio_placement"):
        make_denoiser(audio_placement=["middle"])


def test_non_square_latents() -> None:
    den = make_denoiser()
    randomize_zero_inits(den)
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(B, 4, F, 16, 12, generator=g)
    assert den.level_sizes(16, 12) == [(16, 12), (8, 6)]
    out = den(sample, torch.tensor([5, 50]), torch.randn(B, 1, 32), context=context_for(den, 16, 12))
    assert out.shape == sample.shape and torch.isfinite(out).all()


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    den = make_denoiser()
    randomize_zero_inits(den)
    sample, ts, embeds = inputs(den)
    ctx = context_for(den)
    den(sample, ts, embeds, context=ctx).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in den.named_parameters() if p.grad is not None}
    den.zero_grad()
    den.enable_gradient_checkpointing()
    den(sample, ts, embeds, context=ctx).square().mean().backward()
    for n, p in den.named_parameters():
        if n in grads:
            torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)


def test_reference_net_unused_parameters_are_exactly_the_gradient_free_ones() -> None:
    t = tiny()
    ref = build_reference_net(config=t["reference_net"]["config"])
    lat = torch.randn(B, 4, H, W)
    states = ref.write_states(lat, torch.randn(B, 1, 32))
    assert set(states) == set(ref.state_paths) and len(states) == 7
    sum(s.square().mean() for s in states.values()).backward()
    no_grad = {n for n, p in ref.named_parameters() if p.grad is None}
    assert no_grad == set(ref.unused_parameter_names())


def test_pose_guider_is_zero_at_init_and_downsamples_like_the_vae() -> None:
    pg = build_pose_guider(32, [8, 16, 32])
    assert pg.downsampling == 4
    out = pg(torch.rand(B, 3, F, 64, 64))
    assert out.shape == (B, 32, F, 16, 16) and torch.count_nonzero(out) == 0


def test_audio_proj_shapes_and_errors() -> None:
    ap = build_audio_proj(audio_layers=2, audio_dim=7, window=5, hidden_dim=16, tokens=3, token_dim=8)
    assert ap(torch.randn(B, F, 5, 2, 7)).shape == (B, F, 3, 8)
    with pytest.raises(ValueError, match=r"audio must be \(B, F, 5, 2, 7\)"):
        ap(torch.randn(B, F, 5, 1, 7))


def test_save_load_round_trip(tmp_path: Path) -> None:
    den = make_denoiser(audio_placement=["down", "up"])
    randomize_zero_inits(den)
    t = tiny()
    ref = build_reference_net(config=t["reference_net"]["config"])
    pg = build_pose_guider(32, [8, 16, 32])
    torch.nn.init.normal_(pg.conditioning_embedding.conv_out.weight, std=0.1)
    ap = build_audio_proj(1, 6, tokens=4, token_dim=32, hidden_dim=16)
    for model, name in ((den, "denoiser"), (ref, "reference_net"), (pg, "pose_guider"), (ap, "audio_proj")):
        model.save_pretrained(tmp_path / name)
    den2 = MMGTDenoiser.from_pretrained(tmp_path / "denoiser", local_files_only=True)
    ref2 = ReferenceNet.from_pretrained(tmp_path / "reference_net", local_files_only=True)
    pg2 = PoseGuider.from_pretrained(tmp_path / "pose_guider", local_files_only=True)
    ap2 = AudioProjModel.from_pretrained(tmp_path / "audio_proj", local_files_only=True)
    assert den2.audio_processor_names == den.audio_processor_names
    sample, ts, embeds = inputs(den)
    lat = torch.randn(B, 4, H, W)
    pose = torch.rand(B, 3, F, 64, 64)
    with torch.no_grad():
        outs = []
        for d, r, p in ((den, ref, pg), (den2, ref2, pg2)):
            ctx = context_for(d)
            ctx.reference_states = r.write_states(lat, embeds)
            outs.append(d(sample, ts, embeds, p(pose), ctx))
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
        a = torch.randn(B, F, 5, 1, 6)
        torch.testing.assert_close(ap(a), ap2(a), rtol=0, atol=0)
