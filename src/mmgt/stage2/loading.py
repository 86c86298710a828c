"""Stage II weights on disk: pretrained local folders, builders for Hydra, and the export layout.

Pretrained weights are read only from local folders (``from_pretrained(..., local_files_only=True)``) in
their usual layouts (below, relative to a ``pretrained_dir``); a missing or incomplete folder is an error
that lists what is expected where. Every builder also accepts a plain config instead (random weights, for
tests and the toy speakers), so the same code path serves tiny and full-size models.

===================================  ===============================================  =====================
folder (usual name)                  what                                             loaded by
===================================  ===============================================  =====================
stable-diffusion-v1-5/unet           SD-1.5 UNet (config.json + weights)              build_denoiser,
                                                                                      build_reference_net
sd-vae-ft-mse                        AutoencoderKL                                    build_vae
sd-image-variations-diffusers/       CLIPVisionModelWithProjection (transformers:     build_image_encoder
  image_encoder                      config.json + model.safetensors)
animatediff-motion-adapter-v1-5-2    diffusers MotionAdapter (save_pretrained of      build_denoiser
                                     mm_sd_v15_v2; ``MotionAdapter.from_single_file``
                                     converts the original .ckpt)
control_v11p_sd15_openpose           ControlNetModel: PoseGuider init                 build_pose_guider
wav2vec2-base-960h                   speech encoder (``conf/audio_encoder/wav2vec2``:  data.audio_features
                                     ``audio_encoder@data.audio_features=wav2vec2``)
===================================  ===============================================  =====================

The export folder (what ``mmgt-train`` writes into ``<run>/export``) is :mod:`mmgt.stage2.export`;
:func:`load_export_weights` initialises components from one.

The toy VAE of CPU runs (``scale=tiny_fitted_vae``) is such a folder too, ``<store>/vae``, fitted by data
preparation (:mod:`mmgt_prep.toy_vae`) and loaded by :func:`build_vae` like ``sd-vae-ft-mse``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.models.unets.unet_motion_model import MotionAdapter, UNetMotionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from mmgt.stage2.audio_modules import AUDIO_PARAMETER_PATTERNS
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.components import COMPONENT_NAMES, Stage2Components
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.export import load_component
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet

log = logging.getLogger(__name__)

DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

EXPECTED_LAYOUT: dict[str, tuple[str, str]] = {
    "unet": ("stable-diffusion-v1-5/unet", "SD-1.5 UNet: config.json + diffusion_pytorch_model.safetensors"),
    "vae": ("sd-vae-ft-mse", "AutoencoderKL: config.json + diffusion_pytorch_model.safetensors"),
    "image_encoder": (
        "sd-image-variations-diffusers/image_encoder",
        "CLIPVisionModelWithProjection: config.json + model.safetensors",
    ),
    "motion_adapter": (
        "animatediff-motion-adapter-v1-5-2",
        "diffusers MotionAdapter (mm_sd_v15_v2): config.json + diffusion_pytorch_model.safetensors",
    ),
    "controlnet": (
        "control_v11p_sd15_openpose",
        "ControlNetModel (PoseGuider init): config.json + diffusion_pytorch_model.safetensors",
    ),
    "speech_encoder": ("wav2vec2-base-960h", "Wav2Vec2Model: config.json + model.safetensors"),
}
"""Component -> (usual folder under the pretrained dir, contents)."""


def _layout_help() -> str:
    rows = "\n".join(f"  {folder:45s} {what}" for folder, what in EXPECTED_LAYOUT.values())
    return (
        f"Stage II expects these local folders (under the pretrained dir, e.g. pretrained_weights/):\n{rows}"
    )


def check_pretrained_folder(path: str | Path, kind: str, weights: Sequence[str] = DIFFUSERS_WEIGHTS) -> Path:
    """Raise ``FileNotFoundError`` naming the folder, what is missing and the expected layout."""
    p = Path(path).expanduser()
    folder, what = EXPECTED_LAYOUT[kind]
    if not p.is_dir():
        raise FileNotFoundError(
            f"{p}: pretrained {kind} folder not found (usually {folder}: {what}).\n{_layout_help()}"
        )
    missing = [] if (p / "config.json").is_file() else ["config.json"]
    if not any((p / w).is_file() for w in weights) and not any(p.glob("*.safetensors.index.json")):
        missing.append(" or ".join(weights))
    if missing:
        raise FileNotFoundError(
            f"{p}: incomplete pretrained {kind} folder, missing {', '.join(missing)} "
            f"(usually {folder}: {what}).\n"
            f"{_layout_help()}"
        )
    return p


def _plain(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-plain dict (OmegaConf containers converted) without private ``_`` keys."""
    if config is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if not k.startswith("_")
    }


# --------------------------------------------------------------------------- pretrained loaders
def load_unet2d(path: str | Path) -> UNet2DConditionModel:
    """An SD-style ``UNet2DConditionModel`` from a local folder (e.g. ``stable-diffusion-v1-5/unet``)."""
    p = check_pretrained_folder(path, "unet")
    return UNet2DConditionModel.from_pretrained(p, local_files_only=True)


def load_motion_adapter(path: str | Path) -> MotionAdapter:
    """A diffusers ``MotionAdapter`` (AnimateDiff motion modules) from a local folder."""
    p = check_pretrained_folder(path, "motion_adapter")
    return MotionAdapter.from_pretrained(p, local_files_only=True)


def build_vae(
    pretrained: str | Path | None = None, config: Mapping[str, Any] | None = None, missing: str = ""
) -> AutoencoderKL:
    """Frozen ``AutoencoderKL``: from a local folder or a config (random weights).

    The folder: ``sd-vae-ft-mse`` or a toy store's ``vae``. ``missing``: how to make the folder, added to
    the error when it is not there.
    """
    if pretrained is not None:
        if missing and not (Path(pretrained) / "config.json").is_file():
            raise FileNotFoundError(f"{pretrained}: no VAE folder here; {missing}")
        vae = AutoencoderKL.from_pretrained(check_pretrained_folder(pretrained, "vae"), local_files_only=True)
    elif config is not None:
        vae = AutoencoderKL(**_plain(config))
    else:
        raise ValueError("build_vae: give a pretrained folder or a config")
    return vae.requires_grad_(False).eval()


def build_image_encoder(
    pretrained: str | Path | None = None, config: Mapping[str, Any] | None = None
) -> CLIPVisionModelWithProjection:
    """Frozen CLIP image encoder: from a local folder or a ``CLIPVisionConfig`` (a tiny stand-in)."""
    if pretrained is not None:
        p = check_pretrained_folder(pretrained, "image_encoder", TRANSFORMERS_WEIGHTS)
        model = CLIPVisionModelWithProjection.from_pretrained(p, local_files_only=True)
    elif config is not None:
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**_plain(config)))
    else:
        raise ValueError("build_image_encoder: give a pretrained folder or a config")
    return model.requires_grad_(False).eval()


def build_reference_net(
    pretrained: str | Path | None = None, config: Mapping[str, Any] | None = None
) -> ReferenceNet:
    """ReferenceNet from an SD UNet folder or a UNet2DConditionModel config (random weights).

    The folder: e.g. ``stable-diffusion-v1-5/unet``.
    """
    if pretrained is not None:
        return ReferenceNet.from_pretrained(
            check_pretrained_folder(pretrained, "unet"), local_files_only=True
        )
    if config is None:
        raise ValueError("build_reference_net: give a pretrained folder or a config")
    return ReferenceNet(**_plain(config))


def build_denoiser(
    pretrained: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    motion_adapter: str | Path | Mapping[str, Any] | None = None,
    audio_dim: int = 768,
    audio_branches: Sequence[str] = ("background", "face_hands", "lips"),
    motion_scale: Sequence[float] | None = None,
    audio_placement: Sequence[str] = ("down",),
    audio_module: Any = None,
    motion_norm: Any = None,
    reference_dtype: str | None = None,
) -> MMGTDenoiser:
    """The denoiser from an SD UNet (folder or ``UNet2DConditionModel`` config) + motion modules.

    ``motion_adapter``: a local ``MotionAdapter`` folder (pretrained AnimateDiff modules) or a MotionAdapter
    config (fresh modules, their ``proj_out`` zero-initialised so that the video UNet starts as the image
    UNet). The UNet weights are copied with diffusers' ``UNetMotionModel.from_unet2d``; every key of the
    result must load (only the audio modules, which are new, may be missing). ``audio_module``,
    ``motion_norm``, ``reference_dtype``: the variants of :class:`MMGTDenoiser` (None: its defaults).
    """
    unet2d = load_unet2d(pretrained) if pretrained is not None else None
    if unet2d is None:
        if config is None:
            raise ValueError("build_denoiser: give a pretrained UNet folder or a UNet2DConditionModel config")
        unet2d = UNet2DConditionModel(**_plain(config))
    if motion_adapter is None:
        raise ValueError("build_denoiser: give a motion_adapter folder or a MotionAdapter config")
    if isinstance(motion_adapter, str | Path):
        adapter = load_motion_adapter(motion_adapter)
    else:
        adapter = MotionAdapter(**_plain(motion_adapter))
        for module in adapter.modules():
            if hasattr(module, "proj_out") and hasattr(module, "transformer_blocks"):
                torch.nn.init.zeros_(module.proj_out.weight)
                torch.nn.init.zeros_(module.proj_out.bias)
    motion = UNetMotionModel.from_unet2d(unet2d, adapter)
    denoiser = MMGTDenoiser(
        unet_config=_plain(motion.config),
        audio_dim=audio_dim,
        audio_branches=list(audio_branches),
        motion_scale=None if motion_scale is None else list(motion_scale),
        audio_placement=list(audio_placement),
        audio_module=audio_module,
        motion_norm=motion_norm,
        reference_dtype=reference_dtype,
    )
    result = denoiser.unet.load_state_dict(motion.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if not _is_audio_key(k)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"build_denoiser: UNet weights do not fit the denoiser (missing {missing[:5]}, unexpected "
            f"{result.unexpected_keys[:5]})"
        )
    return denoiser


def build_pose_guider(
    out_channels: int,
    block_out_channels: Sequence[int] = (16, 32, 96, 256),
    controlnet: str | Path | None = None,
) -> PoseGuider:
    """PoseGuider; with ``controlnet`` its embedding (all but the zero ``conv_out``) comes from ControlNet."""
    guider = PoseGuider(out_channels=out_channels, block_out_channels=list(block_out_channels))
    if controlnet is not None:
        from diffusers.models.controlnets.controlnet import ControlNetModel

        net = ControlNetModel.from_pretrained(
            check_pretrained_folder(controlnet, "controlnet"), local_files_only=True
        )
        state = {
            k: v
            for k, v in net.controlnet_cond_embedding.state_dict().items()
            if not k.startswith("conv_out.")
        }
        result = guider.conditioning_embedding.load_state_dict(state, strict=False)
        if result.unexpected_keys or [k for k in result.missing_keys if not k.startswith("conv_out.")]:
            raise ValueError(
                f"{controlnet}: ControlNet hint encoder does not fit the PoseGuider "
                f"(block_out_channels {list(block_out_channels)}): {result}"
            )
    return guider


def build_audio_proj(
    audio_layers: int,
    audio_dim: int,
    window: int = 5,
    hidden_dim: int = 512,
    tokens: int = 32,
    token_dim: int = 768,
) -> AudioProjModel:
    """AudioProjModel for features of ``audio_layers`` x ``audio_dim`` per frame (from the DataModule)."""
    return AudioProjModel(
        window=window,
        audio_layers=audio_layers,
        audio_dim=audio_dim,
        hidden_dim=hidden_dim,
        tokens=tokens,
        token_dim=token_dim,
    )


# --------------------------------------------------------------------------- export
def _is_audio_key(key: str) -> bool:
    return any(re.search(p, key) for p in AUDIO_PARAMETER_PATTERNS)


def load_export_weights(components: Stage2Components, export_dir: str | Path, parts: Sequence[str]) -> None:
    """Initialise ``parts`` of ``components`` from an earlier export (video-level from image-level).

    Keys must match exactly, except audio-module keys of the denoiser (``.processor.branches.``,
    ``.audio_modules.``: :data:`~mmgt.stage2.audio_modules.AUDIO_PARAMETER_PATTERNS`), which may be absent
    on either side (another audio design, placement or hierarchy); anything else raises.
    """
    path = Path(export_dir)
    for name in parts:
        if name not in COMPONENT_NAMES:
            raise ValueError(f"unknown component {name!r}; choose from {COMPONENT_NAMES}")
        if not (path / name / "config.json").is_file():
            raise FileNotFoundError(f"{path / name}: no exported {name} to initialise from")
        source = load_component(path, name)
        result = getattr(components, name).load_state_dict(source.state_dict(), strict=False)
        bad = [k for k in [*result.missing_keys, *result.unexpected_keys] if not _is_audio_key(k)]
        if bad:
            raise ValueError(f"{path / name}: weights do not fit the configured {name}: {bad[:6]}")
