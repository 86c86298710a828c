"""The toy VAE as a prep step: ToyStore(vae_steps) fits it into <store>/vae once, the tiny_fitted_vae scale
loads that folder as scale=sd15 loads the real VAE (build_vae on a folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from mmgt.config import CONFIG_DIR
from mmgt.stage2.loading import build_vae
from mmgt_prep.toy import ToyStore
from mmgt_prep.toy_vae import TOY_VAE_CONFIG, fit_store_vae, store_vae_dir


def test_the_toy_vae_architecture_is_the_tiny_scales() -> None:
    tiny = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae.config)
    assert tiny == TOY_VAE_CONFIG
    fitted = OmegaConf.to_container(
        OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny_fitted_vae.yaml").vae
    )
    assert fitted["pretrained"] == "${data.root}/vae" and fitted["config"] is None


def test_toy_store_preparation_fits_the_vae_once_and_it_loads_from_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ToyStore(
        root,
        n_speakers=1,
        clips_per_speaker=2,
        seconds=1.0,
        size=16,
        seed=0,
        test_fraction=0.25,
        progress=False,
        vae_steps=2,
    )(root)
    folder = store_vae_dir(root)
    assert (folder / "config.json").is_file() and (folder / "diffusion_pytorch_model.safetensors").is_file()
    vae = build_vae(pretrained=folder)
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    assert vae.config.scaling_factor != 0.18215  # set from the fitted latents
    with torch.no_grad():
        assert vae.decode(vae.encode(torch.zeros(1, 3, 16, 16)).latent_dist.mean).sample.shape == (
            1,
            3,
            16,
            16,
        )
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert fit_store_vae(root, steps=2) == folder and (folder / "config.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileNotFoundError, match="no VAE folder here; fit it once: mmgt-prep source=toy_vae"):
        build_vae(pretrained=tmp_path / "elsewhere", missing="fit it once: mmgt-prep source=toy_vae out=...")
