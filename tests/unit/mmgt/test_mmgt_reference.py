"""The released MMGT layouts load strictly and compute what the original code computed.

Oracle: ``$MMGT_REFERENCE_FIXTURES`` (default ../shared/fixtures/mmgt_reference; see its README): checkpoints
in the release layouts written by the original code with seeded random weights, its outputs for given
inputs, and the release-size key lists. Every size, seed and option is read from the fixture.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mmgt.stage1.diffusion import PoseDiffusion
from mmgt.stage1.reference import load_reference_checkpoint
from mmgt.stage2.attention import RegionMasks, Stage2AttentionContext
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet
from mmgt.stage2.release import (
    MM_SD_V15_V2,
    PROCESS1_FILES,
    PROCESS1_NOT_RELEASED,
    REFERENCE_NET_NOT_RELEASED,
    RELEASE_PREFIXES,
    SD15_UNET_CONFIG,
    convert_component,
    load_release_components,
    release_denoiser,
    split_net,
)
from tests.helpers.shared import reference_fixture

ATOL = 2e-5
"""float32 round-off against the original's outputs: 3.7e-6-5.9e-6 with 2 threads, up to 1.05e-5 with one
(the fp16 bank), as the reduction order changes with the thread count."""


def _close(ours: torch.Tensor, original: torch.Tensor) -> None:
    assert ours.shape == original.shape
    err = (ours.float() - original.float()).abs().max().item()
    assert err <= ATOL, f"max abs error {err:.3g} > {ATOL}"


# --------------------------------------------------------------------------- Stage I
def test_stage1_release_checkpoint_reproduces_the_original_forwards_and_ddim_sample() -> None:
    folder = reference_fixture("stage1_tiny")
    io = torch.load(folder / "smga_tiny_orig_io.pt", weights_only=True)
    cfg = io["config"]
    net = load_reference_checkpoint(folder / "smga_tiny_orig_ckpt.pth", heads=int(cfg["num_heads"]))
    assert (net.config.width, net.config.layers, net.config.ff_dim) == (
        cfg["latent_dim"],
        cfg["num_layers"],
        cfg["ff_size"],
    )
    args = (io["x_t"], io["times"], io["cond_embed"], io["cond_frame"])
    batch = io["x_t"].shape[0]
    with torch.no_grad():
        cond = net(*args)
        uncond = net(*args, drop_audio=torch.ones(batch, dtype=torch.bool))
        raw = load_reference_checkpoint(
            folder / "smga_tiny_orig_ckpt.pth", int(cfg["num_heads"]), use_ema=False
        )
        other = raw(*args)
    _close(cond, io["out_cond"])
    _close(uncond, io["out_uncond"])
    _close(uncond + 2.0 * (cond - uncond), io["out_guided_w2"])
    assert (other - io["out_cond"]).abs().max() > 1e-2  # the EMA weights were the ones loaded

    diffusion = PoseDiffusion(
        num_train_timesteps=len(io["alphas_cumprod_f32"]), beta_schedule="squaredcos_cap_v2"
    )
    _close(diffusion.scheduler.alphas_cumprod.float(), io["alphas_cumprod_f32"])
    with torch.no_grad():
        sample = diffusion.sample(
            net,
            io["cond_embed"],
            io["cond_frame"],
            steps=int(io["ddim_steps"]),
            eta=float(io["ddim_eta"]),
            guidance=float(io["ddim_guidance"]),
            generator=torch.Generator().manual_seed(int(io["ddim_seed"])),
        )
    _close(sample, io["ddim_sample"])


def _key_list(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")[:2]
            out[key] = tuple(int(x) for x in re.findall(r"\d+", shape))
    return out


def test_stage1_release_size_key_list_is_the_reference_layout() -> None:
    from mmgt.stage1.network import SMGAReferenceTransformer
    from mmgt.stage1.positions import rotary_angles
    from mmgt.stage1.reference import from_reference_state_dict, reference_config

    keys = _key_list(reference_fixture("stage1_release", "smga_release_orig_keys.txt"))
    with torch.device("meta"):
        release = {k: torch.empty(s) for k, s in keys.items()}
        net = SMGAReferenceTransformer(**reference_config(release, heads=8))
    width = net.config.width
    for k in release:  # the rotary frequency buffers are checked by value: give the original's
        if k.endswith("rotary.freqs"):
            release[k] = rotary_angles(torch.ones(1), width, net.config.rotary_theta)[0]

    state = from_reference_state_dict(release, net, source="release key list")
    assert set(state) == set(net.state_dict())
    assert (width, net.config.layers) == (512, 8)


# --------------------------------------------------------------------------- Stage II
def _stage2_config() -> dict:
    io = torch.load(reference_fixture("stage2_tiny", "stage2_tiny_orig_io.pt"), weights_only=True)
    cfg = io["config"]
    return io, json.loads(cfg) if isinstance(cfg, str) else cfg


def _architecture(cfg: dict, **denoiser: object) -> dict[str, torch.nn.Module]:
    """Our components at the fixture's sizes (every size from its config)."""
    motion = cfg["unet_additional_kwargs"]["motion_module_kwargs"]
    proj, pose = cfg["audio_proj"], cfg["pose_guider"]
    return {
        "reference_net": ReferenceNet(**cfg["unet"]),
        "denoiser": release_denoiser(
            cfg["unet"],
            audio_dim=int(cfg["unet_additional_kwargs"]["audio_attention_dim"]),
            motion_heads=int(motion["num_attention_heads"]),
            motion_max_seq_length=int(motion["temporal_position_encoding_max_len"]),
            **denoiser,
        ),
        "pose_guider": PoseGuider(
            out_channels=int(pose["conditioning_embedding_channels"]),
            block_out_channels=pose["block_out_channels"],
        ),
        "audio_proj": AudioProjModel(
            window=int(proj["seq_len"]),
            audio_layers=int(proj["blocks"]),
            audio_dim=int(proj["channels"]),
            hidden_dim=int(proj["intermediate_dim"]),
            tokens=int(proj["context_tokens"]),
            token_dim=int(proj["output_dim"]),
        ),
    }


@pytest.fixture(scope="module")
def process2() -> dict:
    """The fixture's process-2 ``net`` loaded into our release variant (fp32 bank) + the io file."""
    io, cfg = _stage2_config()
    path = reference_fixture("stage2_tiny", "stage_2", "process_2", "net-32500.pth")
    models = _architecture(cfg, reference_dtype=None)
    release = split_net(torch.load(path, weights_only=True), path.name)
    load_release_components(
        models, release, dict.fromkeys(models, path.name), {"reference_net": REFERENCE_NET_NOT_RELEASED}
    )
    for m in models.values():
        m.eval()
    with torch.no_grad():
        states = models["reference_net"].write_states(io["ref_image_latents"], io["clip_image_embeds"])
    return {"io": io, "cfg": cfg, "models": models, "states": states}


def _masks(io: dict, regions: tuple[str, ...]) -> RegionMasks:
    """The fixture's per-level masks (B*F, h*w) as RegionMasks (full, face, lip -> the branch regions)."""
    levels = []
    for full, face, lip in zip(io["full_mask"], io["face_mask"], io["lip_mask"], strict=True):
        n, length = full.shape
        side = int(round(length**0.5))
        levels.append(torch.stack([full, face, lip], dim=1).reshape(n, 3, side, side))
    return RegionMasks(regions, levels)


CASES = {
    "pred_eval_mode_scale_111": {},
    "pred_eval_mode_no_reference": {"reference": False},
    "pred_eval_mode_zero_audio": {"reference": False, "audio": "zero"},
    "pred_inference_path_scale_112": {"scale": True},
    "pred_inference_path_no_reference": {"scale": True, "reference": False},
    "pred_inference_path_zero_audio": {"scale": True, "reference": False, "audio": "zero"},
    "pred_inference_path_scale_112_fp16_bank": {"scale": True, "bank": "float16"},
    "pred_eval_mode_without_audio_modules": {"audio": "none"},
    "pred_eval_mode_without_audio_modules_no_reference": {"audio": "none", "reference": False},
}
"""Fixture output -> options: eval mode = weights 1:1:1, the inference path = the fixture's motion_scale;
``*_zero_audio`` were recorded after the reference bank was cleared; fp16 bank = the original's default."""


@pytest.mark.parametrize("name", sorted(CASES))
def test_process2_denoiser_reproduces_the_original_output(process2: dict, name: str) -> None:
    opts = CASES[name]
    io, models, states = process2["io"], process2["models"], process2["states"]
    den: MMGTDenoiser = models["denoiser"]
    if opts.get("bank"):
        den = MMGTDenoiser.from_config({**den.config, "reference_dtype": opts["bank"]})
        den.load_state_dict(models["denoiser"].state_dict())
        den.eval()
    tokens = io["audio_tokens"].flatten(0, 1)  # (B * F, N, C)
    audio = {"none": None, "zero": torch.zeros_like(tokens)}.get(opts.get("audio", ""), tokens)
    context = Stage2AttentionContext(
        reference_states=states if opts.get("reference", True) else None,
        audio_tokens=audio,
        region_masks=_masks(io, den.branches),
        branch_weights=io["motion_scale"].tolist() if opts.get("scale") else None,
    )
    with torch.no_grad():
        out = den(io["noisy_latents"], io["timesteps"], io["clip_image_embeds"], io["pose_features"], context)
    _close(out, io[name])


def test_process2_pose_features_audio_tokens_and_reference_states(process2: dict) -> None:
    io, models, states = process2["io"], process2["models"], process2["states"]
    with torch.no_grad():
        _close(models["pose_guider"](io["pose_vid"]), io["pose_features"])
        assert torch.equal(models["audio_proj"](io["audio_emb"]), io["audio_tokens"])
    assert set(states) == set(io["reference_states"])
    for path, value in io["reference_states"].items():
        _close(states[path], value)


def test_process2_motion_modules_need_per_frame_statistics(process2: dict) -> None:
    """Over-the-clip statistics (diffusers') change the released model's output far beyond round-off."""
    io, models = process2["io"], process2["models"]
    den = models["denoiser"]
    clip = MMGTDenoiser.from_config(
        {**den.config, "motion_norm": {"_target_": "mmgt.stage2.motion_norm.ClipGroupNorm"}}
    )
    clip.load_state_dict(den.state_dict())
    context = Stage2AttentionContext(audio_tokens=None)
    with torch.no_grad():
        out = clip.eval()(
            io["noisy_latents"], io["timesteps"], io["clip_image_embeds"], io["pose_features"], context
        )
    reference = io["pred_eval_mode_without_audio_modules_no_reference"]
    assert (out - reference).abs().max() > 100 * ATOL


def test_process1_triplet_loads_strictly_and_writes_the_original_states() -> None:
    io, cfg = _stage2_config()
    folder = reference_fixture("stage2_tiny", "stage_2", "process_1")
    files = {name: next(folder.glob(f"{stem}-*.pth")) for name, stem in PROCESS1_FILES.items()}
    release = {name: torch.load(p, weights_only=True) for name, p in files.items()}
    models = {k: v for k, v in _architecture(cfg).items() if k in files}
    load_release_components(
        models,
        release,
        {k: p.name for k, p in files.items()},
        {"reference_net": REFERENCE_NET_NOT_RELEASED, "denoiser": PROCESS1_NOT_RELEASED},
    )
    unet = models["denoiser"].unet
    assert torch.equal(unet.conv_in.weight, release["denoiser"]["conv_in.weight"].float())
    with torch.no_grad():
        _close(models["pose_guider"](io["pose_vid"]), io["pose_features"])
        states = models["reference_net"].eval().write_states(io["ref_image_latents"], io["clip_image_embeds"])
    for path, value in io["reference_states"].items():
        _close(states[path], value)


def test_release_files_with_wrong_keys_are_errors_listing_them() -> None:
    _, cfg = _stage2_config()
    path = reference_fixture("stage2_tiny", "stage_2", "process_2", "net-32500.pth")
    net = torch.load(path, weights_only=True)
    key = next(k for k in net if k.endswith("audio_modules.0.proj_in.weight"))
    shaped = next(k for k in net if k.startswith("pose_guider.conv_in.weight"))
    net.pop(key)
    net[shaped] = net[shaped][:1]
    net["denoising_unet.extra.weight"] = torch.zeros(1)
    models = _architecture(cfg)
    with pytest.raises(ValueError) as err:
        load_release_components(models, split_net(net, "net.pth"), dict.fromkeys(models, "net.pth"))
    text = str(err.value)
    assert f"missing {key.removeprefix('denoising_unet.')}" in text
    assert "conv_in.weight has shape (1, 3, 3, 3)" in text and "unexpected extra.weight" in text
    assert "missing conv_norm_out.weight" in text  # the ReferenceNet head is not in the release
    with pytest.raises(ValueError, match="keys outside"):
        split_net({"other.weight": torch.zeros(1)}, "net.pth")


# --------------------------------------------------------------------------- release-size key lists
NOT_IN_RELEASE = {"reference_net": REFERENCE_NET_NOT_RELEASED}
"""Documented leftovers on our side: the ReferenceNet's unused output head (4 keys)."""


@pytest.fixture(scope="module")
def release_size_model() -> dict[str, torch.nn.Module]:
    """The released variant at SD-1.5 size on the meta device (no weights, no downloads)."""
    summary = json.loads(reference_fixture("stage2_keys", "release_key_summary.json").read_text())
    with torch.device("meta"):
        models = {
            "reference_net": ReferenceNet(**SD15_UNET_CONFIG),
            "denoiser": release_denoiser(
                SD15_UNET_CONFIG,
                audio_dim=768,
                motion_heads=MM_SD_V15_V2["motion_num_attention_heads"],
                motion_max_seq_length=MM_SD_V15_V2["motion_max_seq_length"],
            ),
            "pose_guider": PoseGuider(out_channels=320, block_out_channels=(16, 32, 96, 256)),
            "audio_proj": AudioProjModel(window=5, audio_layers=12, audio_dim=768, hidden_dim=512, tokens=32),
        }
    return {"models": models, "summary": summary}


def test_release_size_net_key_list_is_consumed_exactly(release_size_model: dict) -> None:
    keys = _key_list(reference_fixture("stage2_keys", "release_net-32500_keys.txt"))
    models = release_size_model["models"]
    assert len(keys) == release_size_model["summary"]["n_keys"]
    with torch.device("meta"):
        release = split_net({k: torch.empty(s) for k, s in keys.items()}, "release_net-32500_keys.txt")
    leftovers = {}
    for name, model in models.items():
        state, problems = convert_component(name, release[name], model, name, NOT_IN_RELEASE.get(name, ()))
        assert problems == [], problems[:5]
        leftovers[name] = [k for k in state if any(re.search(p, k) for p in NOT_IN_RELEASE.get(name, ()))]
    assert leftovers["reference_net"] == [
        "conv_norm_out.weight",
        "conv_norm_out.bias",
        "conv_out.weight",
        "conv_out.bias",
    ]
    assert not any(leftovers[n] for n in ("denoiser", "pose_guider", "audio_proj"))
    n_params = sum(int(torch.Size(s).numel()) for s in keys.values())
    assert n_params == release_size_model["summary"]["n_params"]
    audio = [k for k in release["denoiser"] if ".audio_modules." in k]
    assert len(audio) == release_size_model["summary"]["groups"]["denoising_unet/audio_modules"][0]


@pytest.mark.parametrize("name", sorted(PROCESS1_FILES))
def test_release_size_process1_key_lists_are_consumed_exactly(release_size_model: dict, name: str) -> None:
    stem = PROCESS1_FILES[name]
    keys = _key_list(reference_fixture("stage2_keys", f"release_process1_{stem}-29580_keys.txt"))
    not_released = {**NOT_IN_RELEASE, "denoiser": PROCESS1_NOT_RELEASED}.get(name, ())
    with torch.device("meta"):
        release = {k: torch.empty(s) for k, s in keys.items()}
    _, problems = convert_component(name, release, release_size_model["models"][name], stem, not_released)
    assert problems == [], problems[:5]
    assert RELEASE_PREFIXES[name]  # every process-1 file is one component of the net
