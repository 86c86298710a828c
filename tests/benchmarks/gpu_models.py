"""The networks of ``bench_gpu.py`` with random weights: release size (the GPU path) or tiny (``--quick``).

Nothing is downloaded: the architectures come from configs. Stage II is the Hydra model of
``model/stage2/variant=mmgt_release`` (SD-1.5 UNet for ReferenceNet and denoiser, AnimateDiff-v2 motion
modules, the release's audio modules, sd-vae-ft-mse, the sd-image-variations CLIP image encoder) with every
pretrained folder of ``scale=sd15`` replaced by the same architecture's config (:func:`stage2_model`);
Stage I is ``model/stage1=smga_reference``; the evaluation networks are pytorch-fid's Inception, an
Inception-I3D of StyleGAN-V's detector's architecture (Kinetics-400 logits) and SyncNet v2.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

SD_VAE_FT_MSE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "act_fn": "silu",
}
"""``stabilityai/sd-vae-ft-mse`` ``config.json`` (= the SD-1.5 VAE): 83.7 M parameters."""

SD_IMAGE_VARIATIONS_ENCODER: dict[str, Any] = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
"""``lambdalabs/sd-image-variations-diffusers/image_encoder`` ``config.json`` (CLIP ViT-L/14 vision tower
with a 768-d projection, the width of SD-1.5's cross-attention): 303 M parameters."""

WAV2VEC2_BASE_FEATURES = (12, 768)
"""(layers, width) of the Stage II audio features at release size (wav2vec2-base-960h, all 12 layers)."""


def _random_sd15(model: Any) -> None:
    """Replace the pretrained folders of ``scale=sd15`` in a composed ``cfg.model`` by their configs."""
    from omegaconf import OmegaConf

    from mmgt.stage2.release import SD15_UNET_CONFIG, motion_adapter_config

    model.vae = OmegaConf.create({"_target_": model.vae._target_, "config": SD_VAE_FT_MSE})
    model.image_encoder = OmegaConf.create(
        {"_target_": model.image_encoder._target_, "config": SD_IMAGE_VARIATIONS_ENCODER}
    )
    model.reference_net.pop("pretrained")
    model.reference_net.config = dict(SD15_UNET_CONFIG)
    model.denoiser.pop("pretrained")
    model.denoiser.config = dict(SD15_UNET_CONFIG)
    model.denoiser.motion_adapter = motion_adapter_config(SD15_UNET_CONFIG)
    model.pose_guider.controlnet = None


def stage2_model(process: str, size: int, frames: int, quick: bool, out: Path = Path("/tmp")) -> Any:
    """A ``Stage2LitModule`` of the released architecture with random weights, on the current device.

    Args:
        process: ``image`` (process 1) or ``video`` (process 2).
        size: frame side S (512 at release size).
        frames: frames per training clip (1 at image level).
        quick: tiny networks (``scale=tiny``, CPU tests) instead of release size.
        out: the run folder Hydra's paths point to (nothing is written).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from mmgt.config import CONFIG_DIR
    from mmgt.train import build_model

    overrides = [f"experiment=stage2_{process}_toy", "model/stage2/variant=mmgt_release"]
    overrides.append(f"model/stage2/scale={'tiny' if quick else 'sd15'}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", [*overrides, f"data.size={size}", f"data.frames={frames}"])
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path.cwd())
        cfg.paths.output_dir = str(out)
        cfg.model.inference = None  # DEFAULT_INFERENCE, not the toy experiment's settings
        if quick:
            cfg.model.vae = OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae
        else:
            _random_sd15(cfg.model)
    # the benchmarks pass features of this shape (no extractor, so no PyAV): recorded, never built
    layers, dim = (1, 95) if quick else WAV2VEC2_BASE_FEATURES
    features = {"_target_": f"random features ({layers} x {dim} per frame)"}
    meta = {"size": size, "frames": frames, "audio_features": features, "pose_render": {"limb_dim": 0.9}}
    return build_model(cfg.model, {"audio_layers": layers, "audio_dim": dim, "data_meta": meta})


def stage1_net(quick: bool) -> nn.Module:
    """The SMGA network of ``model/stage1=smga_reference`` (``tiny`` with ``quick``), random, eval mode."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mmgt.config import CONFIG_DIR

    name = "tiny" if quick else "smga_reference"
    node = OmegaConf.load(CONFIG_DIR / f"model/stage1/{name}.yaml").net
    extra = {} if "audio_dim" in node else {"audio_dim": 1059}  # WavLM-Large 1024 + 35 librosa (the release)
    return instantiate(node, **extra).eval()


# --------------------------------------------------------------------------- Inception-I3D (FVD detector)
class _Unit3D(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: tuple[int, int, int] = (1, 1, 1), s: int = 1) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, k, stride=s, padding=tuple(x // 2 for x in k), bias=False),
            nn.BatchNorm3d(cout, eps=1e-3),
            nn.ReLU(inplace=True),
        )


class _Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | max-pool -> 1x1, concatenated."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        k3 = (3, 3, 3)
        self.b0 = _Unit3D(cin, c[0])
        self.b1 = nn.Sequential(_Unit3D(cin, c[1]), _Unit3D(c[1], c[2], k3))
        self.b2 = nn.Sequential(_Unit3D(cin, c[3]), _Unit3D(c[3], c[4], k3))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), _Unit3D(cin, c[5]))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1)


_I3D_MIXED = {
    "3b": (192, (64, 96, 128, 16, 32, 32)),
    "3c": (256, (128, 128, 192, 32, 96, 64)),
    "4b": (480, (192, 96, 208, 16, 48, 64)),
    "4c": (512, (160, 112, 224, 24, 64, 64)),
    "4d": (512, (128, 128, 256, 24, 64, 64)),
    "4e": (512, (112, 144, 288, 32, 64, 64)),
    "4f": (528, (256, 160, 320, 32, 128, 128)),
    "5b": (832, (256, 160, 320, 32, 128, 128)),
    "5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3D(nn.Module):
    """Inception-v1 I3D (Carreira & Zisserman), the network of StyleGAN-V's FVD detector: (N, 3, T, 224, 224)
    in [-1, 1] -> (N, 400) Kinetics logits. Same layers and compute; random weights (not the detector)."""

    def __init__(self, classes: int = 400) -> None:
        super().__init__()
        mixed = {k: _Mixed(*v) for k, v in _I3D_MIXED.items()}
        self.features = nn.Sequential(
            _Unit3D(3, 64, (7, 7, 7), 2),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            _Unit3D(64, 64),
            _Unit3D(64, 192, (3, 3, 3)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            mixed["3b"],
            mixed["3c"],
            nn.MaxPool3d(3, 2, 1),
            *(mixed[k] for k in ("4b", "4c", "4d", "4e", "4f")),
            nn.MaxPool3d(2, 2),
            mixed["5b"],
            mixed["5c"],
        )
        self.logits = nn.Conv3d(1024, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, T, H, W) -> (N, classes), averaged over space and time."""
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool3d(x, (x.shape[2], 1, 1))
        return self.logits(x).mean(dim=(2, 3, 4))


def param_count(module: nn.Module) -> float:
    """Parameters in millions."""
    return sum(p.numel() for p in module.parameters()) / 1e6


def psnr(a: Any, b: Any) -> float:
    """PSNR in dB between two uint8 arrays of the same shape (inf when equal)."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
