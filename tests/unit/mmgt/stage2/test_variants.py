"""The denoiser's variant registries: audio-module designs, motion-module GroupNorm, branch overrides, the
fp16 reference bank, and the released variant's configs agreeing with their single sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmgt.config import CONFIG_DIR
from mmgt.stage2.attention import RegionMasks, Stage2AttentionContext, mask_regions_of
from mmgt.stage2.audio_modules import MMHAAProcessors, ReleaseAudioTransformers, build_audio_module
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.motion_norm import ClipGroupNorm, FrameGroupNorm, build_motion_norm
from tests.helpers.shared import compose_config
from tests.unit.mmgt.stage2.test_denoiser import B, F, context_for, inputs, make_denoiser, tiny


def release_denoiser(**kwargs: object) -> MMGTDenoiser:
    return make_denoiser(
        audio_module=ReleaseAudioTransformers(),
        audio_placement=["down"],
        motion_norm=FrameGroupNorm,
        **kwargs,
    )


def test_frame_group_norm_normalises_each_frame_and_clip_norm_the_whole_clip() -> None:
    x = torch.randn(2, 8, 3, 4, 4) * torch.arange(1, 4).view(1, 1, 3, 1, 1)  # frames of different scale
    frame, clip = FrameGroupNorm(2, 8), ClipGroupNorm(2, 8)
    per_frame = torch.stack(
        [torch.nn.functional.group_norm(x[:, :, f], 2, eps=frame.eps) for f in range(3)], 2
    )
    torch.testing.assert_close(frame(x), per_frame)
    torch.testing.assert_close(clip(x), torch.nn.functional.group_norm(x, 2, eps=clip.eps))
    assert not torch.allclose(frame(x), clip(x), atol=1e-3)
    assert frame.state_dict().keys() == clip.state_dict().keys()  # the choice renames nothing


def test_variants_are_recorded_in_the_config_and_survive_a_round_trip(tmp_path: Path) -> None:
    den = release_denoiser(reference_dtype="float16")
    assert den.config.audio_module == {"_target_": "mmgt.stage2.audio_modules.ReleaseAudioTransformers"}
    assert den.config.motion_norm == {"_target_": "mmgt.stage2.motion_norm.FrameGroupNorm"}
    den.save_pretrained(tmp_path)
    back = MMGTDenoiser.from_pretrained(tmp_path)
    motion_norms = {type(m.norm) for n, m in back.unet.named_modules() if n.endswith("motion_modules.0")}
    assert motion_norms == {FrameGroupNorm} and back.audio_module_names == den.audio_module_names
    sample, t, embeds = inputs(den)
    ctx = context_for(den)
    with torch.no_grad():
        torch.testing.assert_close(
            back.eval()(sample, t, embeds, None, ctx), den.eval()(sample, t, embeds, None, ctx)
        )
    # exports written before these options (no entries) load with MM-HAA and diffusers' clip statistics
    old = MMGTDenoiser.from_config(
        {k: v for k, v in den.config.items() if k not in ("audio_module", "motion_norm")}
    )
    assert not old.audio_module_names and {
        type(m.norm) for n, m in old.unet.named_modules() if n.endswith("motion_modules.0")
    } == {ClipGroupNorm}


def test_unregistered_variants_are_refused() -> None:
    with pytest.raises(ValueError, match="audio_module: class 'os.system' is not allowed"):
        build_audio_module({"_target_": "os.system"})
    with pytest.raises(ValueError, match="not registered"):
        build_motion_norm({"_target_": "torch.nn.GroupNorm"})
    assert isinstance(build_audio_module(None), MMHAAProcessors) and build_motion_norm(None) is ClipGroupNorm
    with pytest.raises(ValueError, match="down blocks only"):
        make_denoiser(audio_module=ReleaseAudioTransformers(), audio_placement=["down", "mid"])


def test_release_audio_modules_sit_between_spatial_transformer_and_motion_module() -> None:
    den = release_denoiser()
    names = den.audio_module_names
    n_down = sum(1 for b in den.unet.down_blocks if getattr(b, "has_cross_attention", False))
    assert (
        names
        and all(n.startswith("down_blocks.") for n in names)
        and len(names) == n_down * len(den.unet.down_blocks[0].attentions)
    )
    first = den.unet.down_blocks[1].audio_modules[0]  # block-input width: the resnet's input channels
    assert first.proj_in.in_channels == den.unet.down_blocks[1].resnets[0].out_channels
    assert first.proj_in.out_channels == den.unet.down_blocks[1].resnets[0].in_channels
    sample, t, embeds = inputs(den)
    ctx = context_for(den)
    with torch.no_grad():
        with_audio = den.eval()(sample, t, embeds, None, ctx)
        without = den(sample, t, embeds, None, Stage2AttentionContext())
    assert (with_audio - without).abs().max() > 1e-4  # fresh modules are not the identity (as released)
    # gradients reach the audio modules; non-square latents work (the zero convs act per token)
    ctx2 = context_for(den, h=16, w=8)
    den.train()(sample[..., :8], t, embeds, None, ctx2).square().mean().backward()
    grads = [p.grad for n, p in den.named_parameters() if ".audio_modules." in n]
    assert grads and all(g is not None for g in grads)


def test_context_branch_overrides_change_regions_and_weights_per_forward() -> None:
    den = release_denoiser(audio_branches=["hands", "face_hands", "lips"])
    for name, p in den.named_parameters():  # non-zero zero-convs so every branch contributes
        if "zero_conv" in name:
            p.data.normal_(0, 0.1)
    sample, t, embeds = inputs(den)
    g = torch.Generator().manual_seed(3)
    regions = mask_regions_of(["full_plus_lips", "face_hands", "lips"])
    assert regions == ("lips", "face_hands")
    levels = [torch.rand(B * F, 3, *s, generator=g) for s in den.level_sizes(16, 16)]
    masks = RegionMasks(("hands", "face_hands", "lips"), levels)
    tokens = torch.randn(B * F, 4, den.config.audio_dim, generator=g)
    base = Stage2AttentionContext(audio_tokens=tokens, region_masks=masks)
    doubled = Stage2AttentionContext(audio_tokens=tokens, region_masks=masks, branch_weights=[2.0, 2.0, 2.0])
    lips = Stage2AttentionContext(
        audio_tokens=tokens, region_masks=masks, branch_regions=["full_plus_lips", "face_hands", "lips"]
    )
    with torch.no_grad():
        outs = [den.eval()(sample, t, embeds, None, c) for c in (base, doubled, lips)]
    assert (outs[0] - outs[1]).abs().max() > 1e-4 and (outs[0] - outs[2]).abs().max() > 1e-4
    lips_mask = masks.get("full_plus_lips", 16 * 16)
    torch.testing.assert_close(lips_mask, 1 + masks.get("lips", 16 * 16))
    with pytest.raises(ValueError, match="3 audio branches"):
        den(sample, t, embeds, None, Stage2AttentionContext(audio_tokens=tokens, branch_weights=[1.0]))


def test_fp16_reference_bank_rounds_the_reference_states() -> None:
    den32 = make_denoiser()
    den16 = MMGTDenoiser.from_config({**den32.config, "reference_dtype": "float16"})
    den16.load_state_dict(den32.state_dict())
    sample, t, embeds = inputs(den32)
    g = torch.Generator().manual_seed(4)
    paths = [
        k.removesuffix(".processor") for k in den32.unet.attn_processors if k.endswith("attn1.processor")
    ]
    paths = [p for p in paths if ".attentions." in p and ".motion_modules." not in p]
    states = {}
    with torch.no_grad():
        for p in paths:  # reference tokens of every read layer (any count; the layer's width)
            states[p] = torch.randn(B, 64, dict(den32.unet.named_modules())[p].query_dim, generator=g)
        ctx = Stage2AttentionContext(reference_states=states)
        rounded = {k: v.half().float() for k, v in states.items()}
        a = den16.eval()(sample, t, embeds, None, ctx)
        b = den32.eval()(sample, t, embeds, None, Stage2AttentionContext(reference_states=rounded))
        c = den32(sample, t, embeds, None, ctx)
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 0
    with pytest.raises(ValueError, match="reference_dtype"):
        make_denoiser(reference_dtype="float8")


def test_release_variant_configs_match_their_single_sources() -> None:
    from mmgt.release import RELEASE_MASKS
    from mmgt.stage2.release import RELEASE_DENOISER, RELEASE_INFERENCE, RELEASE_TRAINING

    def load(name: str) -> dict:
        return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model" / "stage2" / name))

    assert load("mask_guidance/mmgt_release.yaml")["mask_guidance"] == RELEASE_MASKS
    hierarchy = load("hierarchy/mmgt_release.yaml")
    assert {k: hierarchy["denoiser"][k] for k in RELEASE_TRAINING} == RELEASE_TRAINING
    assert hierarchy["inference"] == RELEASE_INFERENCE
    cfg = compose_config("train", ["model=stage2", "model/stage2/variant=mmgt_release"]).model
    den = OmegaConf.to_container(cfg.denoiser)
    assert den["audio_module"] == RELEASE_DENOISER["audio_module"]
    assert den["motion_norm"]["_target_"] == RELEASE_DENOISER["motion_norm"]["_target_"]
    assert den["reference_dtype"] == RELEASE_DENOISER["reference_dtype"]
    assert den["audio_placement"] == RELEASE_DENOISER["audio_placement"]
    assert den["audio_branches"] == RELEASE_TRAINING["audio_branches"]
    assert "sd-vae-ft-mse" in cfg.vae.pretrained and cfg.also_frozen == ["^reference_net\\.up_blocks\\.3\\."]
    default = compose_config("train", ["model=stage2"]).model.denoiser
    assert default.audio_module._target_.endswith("MMHAAProcessors")  # our corrected defaults stay
    assert default.motion_norm._target_.endswith("FrameGroupNorm")
    assert tiny()["denoiser"]["config"]  # the tiny scale is untouched
