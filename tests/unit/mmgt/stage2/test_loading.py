"""Pretrained Stage II weights from local folders in the usual layouts (tiny models written with
save_pretrained), loaded through the real ``model/stage2/scale=sd15`` config; missing folders are clear
errors."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
import transformers
from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, UNet2DConditionModel
from omegaconf import OmegaConf, open_dict

from mmgt.config import CONFIG_DIR
from mmgt.schema import SAMPLE_RATE
from mmgt.stage2.loading import EXPECTED_LAYOUT, build_denoiser, build_vae, check_pretrained_folder
from mmgt.train import build_model
from tests.helpers.shared import compose_config

TINY = OmegaConf.to_container(
    OmegaConf.create({"model": OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml")}).model,
    resolve=True,
)


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random versions of every pretrained part, saved in the original folder layouts."""
    root = tmp_path_factory.mktemp("pretrained_weights")
    torch.manual_seed(0)
    unet_cfg = TINY["reference_net"]["config"]
    UNet2DConditionModel(**unet_cfg).save_pretrained(root / EXPECTED_LAYOUT["unet"][0])
    AutoencoderKL(**TINY["vae"]["config"]).save_pretrained(root / EXPECTED_LAYOUT["vae"][0])
    clip = transformers.CLIPVisionConfig(**TINY["image_encoder"]["config"])
    transformers.CLIPVisionModelWithProjection(clip).save_pretrained(
        root / EXPECTED_LAYOUT["image_encoder"][0]
    )
    adapter = MotionAdapter(**TINY["denoiser"]["motion_adapter"])
    for p in adapter.parameters():  # "pretrained" motion modules: non-zero everywhere
        p.data.normal_(0, 0.02)
    adapter.save_pretrained(root / EXPECTED_LAYOUT["motion_adapter"][0])
    ControlNetModel(
        block_out_channels=unet_cfg["block_out_channels"],
        down_block_types=unet_cfg["down_block_types"],
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=16,
        conditioning_embedding_out_channels=TINY["pose_guider"]["block_out_channels"],
    ).save_pretrained(root / EXPECTED_LAYOUT["controlnet"][0])
    w2v = root / EXPECTED_LAYOUT["speech_encoder"][0]
    config = transformers.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16, 16),
        conv_kernel=(10, 7, 10),
        conv_stride=(5, 8, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=8,
    )
    transformers.Wav2Vec2Model(config).save_pretrained(w2v)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SAMPLE_RATE).save_pretrained(w2v)
    return root


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmgt_prep.toy import generate_toy_dataset

    root = tmp_path_factory.getbasetemp() / "stage2_toy_store"
    generate_toy_dataset(root, 2, 2, seconds=2.0, size=64, seed=0, test_fraction=0.5, progress=False)
    return root


def test_sd15_config_loads_every_part_from_local_folders(
    pretrained_dir: Path, toy_store: Path, tmp_path: Path
) -> None:

    cfg = compose_config(
        "train",
        [
            "data=video",
            "model=stage2",
            "model/stage2/scale=sd15",
            "model/stage2/process=video",
            f"paths.pretrained_dir={pretrained_dir}",
            f"data.root={toy_store}",
            "data.frames=4",
            "data.batch_size=1",
            "audio_encoder@data.audio_features=wav2vec2",  # <paths.pretrained_dir>/wav2vec2-base-960h
            # the tiny folders' sizes (the file says 320 / 768 for SD-1.5)
            "model.pose_guider.out_channels=32",
            "model.pose_guider.block_out_channels=[8,16,32]",
            "model.audio_proj.hidden_dim=16",
            "model.audio_proj.tokens=4",
            "model.audio_proj.token_dim=32",
        ],
        output_dir=tmp_path,
    )
    with open_dict(cfg):
        cfg.data.samples_per_clip = 1
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    assert (
        dm.model_kwargs["audio_layers"] == 2 and dm.model_kwargs["audio_dim"] == 16
    )  # (T, L, D) hidden states
    model = build_model(cfg.model, dm.model_kwargs)
    comps = model.components

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        sa, sb = a.state_dict(), b.state_dict()
        return all(torch.equal(sa[k], sb[k]) for k in sb)

    unet = UNet2DConditionModel.from_pretrained(pretrained_dir / EXPECTED_LAYOUT["unet"][0])
    assert same(comps.reference_net, unet)
    adapter = MotionAdapter.from_pretrained(pretrained_dir / EXPECTED_LAYOUT["motion_adapter"][0])
    motion = {k: v for k, v in comps.denoiser.unet.state_dict().items() if "motion_modules" in k}
    assert motion and any(v.abs().sum() > 0 for k, v in motion.items() if "proj_out" in k)  # not zero-init
    assert torch.equal(comps.denoiser.unet.conv_in.weight, unet.conv_in.weight)
    assert torch.equal(
        comps.denoiser.unet.down_blocks[0].motion_modules[0].proj_out.weight,
        adapter.down_blocks[0].motion_modules[0].proj_out.weight,
    )
    controlnet = ControlNetModel.from_pretrained(pretrained_dir / EXPECTED_LAYOUT["controlnet"][0])
    assert torch.equal(
        comps.pose_guider.conditioning_embedding.conv_in.weight,
        controlnet.controlnet_cond_embedding.conv_in.weight,
    )
    assert (
        torch.count_nonzero(comps.pose_guider.conditioning_embedding.conv_out.weight) == 0
    )  # still zero-init
    vae = AutoencoderKL.from_pretrained(pretrained_dir / EXPECTED_LAYOUT["vae"][0])
    assert same(comps.vae, vae) and not any(p.requires_grad for p in comps.vae.parameters())
    # and it trains a step on wav2vec2 features (T, 2, 16) from the same local folder
    dm.setup("fit")
    loss = model.model_step(next(iter(dm.train_dataloader())))["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for n, p in comps.named_parameters() if n.startswith("audio_proj."))


def test_missing_or_incomplete_folders_are_clear_errors(tmp_path: Path) -> None:
    expected = r"(?s)sd-vae-ft-mse: pretrained vae folder not found.*expects.*stable-diffusion-v1-5/unet"
    with pytest.raises(FileNotFoundError, match=expected):
        build_vae(pretrained=tmp_path / "sd-vae-ft-mse")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    with pytest.raises(
        FileNotFoundError, match=r"incomplete pretrained unet folder, missing diffusion_pytorch_model"
    ):
        check_pretrained_folder(tmp_path / "unet", "unet")
    with pytest.raises(FileNotFoundError, match="animatediff-motion-adapter"):
        build_denoiser(config=TINY["denoiser"]["config"], motion_adapter=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="give a pretrained folder or a config"):
        build_vae()
