"""The Stage II component set and the tensor steps training and generation share.

:class:`Stage2Components` holds the six networks (an ``nn.Module`` container, so devices and dtypes move
together); the functions below are the shared, shape-documented steps around them: VAE encode/decode in
slices, CLIP image embeddings, audio windows, reference states. Everything here is torch only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from torch import Tensor, nn
from transformers import CLIPVisionModelWithProjection

from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

COMPONENT_NAMES: tuple[str, ...] = (
    "vae",
    "image_encoder",
    "reference_net",
    "denoiser",
    "pose_guider",
    "audio_proj",
)
"""Attribute names = export subfolders."""


class Stage2Components(nn.Module):
    """The Stage II networks. Frozen: ``vae`` and ``image_encoder`` (always)."""

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        reference_net: ReferenceNet,
        denoiser: MMGTDenoiser,
        pose_guider: PoseGuider,
        audio_proj: AudioProjModel,
    ) -> None:
        super().__init__()
        self.vae = vae
        self.image_encoder = image_encoder
        self.reference_net = reference_net
        self.denoiser = denoiser
        self.pose_guider = pose_guider
        self.audio_proj = audio_proj
        for frozen in (self.vae, self.image_encoder):
            frozen.requires_grad_(False)
            frozen.eval()
        self.check()

    def check(self) -> None:
        """Raise when the components do not fit together (channels, widths, resolutions)."""
        den = self.denoiser
        problems = []
        if self.vae.config.latent_channels != den.latent_channels:
            problems.append(
                f"VAE latent channels {self.vae.config.latent_channels} != denoiser {den.latent_channels}"
            )
        if self.pose_guider.config.out_channels != den.pose_channels:
            problems.append(
                f"PoseGuider out_channels {self.pose_guider.config.out_channels} != denoiser conv_in "
                f"{den.pose_channels}"
            )
        vae_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if self.pose_guider.downsampling != vae_factor:
            problems.append(f"PoseGuider downsamples {self.pose_guider.downsampling}x, the VAE {vae_factor}x")
        embed = self.image_encoder.config.projection_dim
        if embed != den.cross_attention_dim or embed != self.reference_net.config.cross_attention_dim:
            problems.append(
                f"image embedding width {embed} != cross_attention_dim of the denoiser "
                f"({den.cross_attention_dim}) / ReferenceNet "
                f"({self.reference_net.config.cross_attention_dim})"
            )
        if self.audio_proj.config.token_dim != den.config.audio_dim:
            problems.append(
                f"audio token width {self.audio_proj.config.token_dim} != denoiser audio_dim "
                f"{den.config.audio_dim}"
            )
        paths = set(self.reference_net.state_paths)
        reads = {p for p in den.unet.attn_processors if p.endswith("attn1.processor") and ".attentions." in p}
        reads = {p.removesuffix(".processor") for p in reads}
        if paths != reads:
            problems.append(
                f"ReferenceNet and denoiser spatial layers differ: {sorted(paths ^ reads)[:4]} ..."
            )
        if problems:
            raise ValueError("Stage II components do not fit: " + "; ".join(problems))

    @property
    def vae_factor(self) -> int:
        """Pixels per latent pixel along each side (8 for the SD VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        """The VAE's latent scaling factor (latents = posterior sample * factor)."""
        return float(self.vae.config.scaling_factor)


# --------------------------------------------------------------------------- shared steps
@torch.no_grad()
def encode_frames(vae: AutoencoderKL, frames: Tensor, chunk: int = 16) -> Tensor:
    """Frames (N, 3, H, W) in [-1, 1] -> scaled latents (N, C, h, w) (posterior mean), ``chunk`` at a time."""
    out = [
        vae.encode(frames[i : i + chunk].to(vae.dtype)).latent_dist.mean for i in range(0, len(frames), chunk)
    ]
    return torch.cat(out) * vae.config.scaling_factor


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: Tensor, chunk: int = 8) -> Tensor:
    """Scaled latents (N, C, h, w) -> frames (N, 3, H, W) in [-1, 1], decoded ``chunk`` frames at a time."""
    out = [
        vae.decode(latents[i : i + chunk].to(vae.dtype) / vae.config.scaling_factor).sample.clamp(-1, 1)
        for i in range(0, len(latents), chunk)
    ]
    return torch.cat(out)


@torch.no_grad()
def image_embeddings(image_encoder: CLIPVisionModelWithProjection, images: Tensor) -> Tensor:
    """Reference images (B, 3, H, W) in [-1, 1] -> CLIP ``image_embeds`` as one token (B, 1, D).

    The images are resized (bilinear, antialiased) to the encoder's ``image_size`` and normalised with the
    CLIP mean and std (what ``CLIPImageProcessor`` does, on tensors).
    """
    size = int(image_encoder.config.image_size)
    x = (images.float() + 1.0) / 2.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    embeds = image_encoder(pixel_values=((x - mean) / std).to(image_encoder.dtype)).image_embeds
    return embeds[:, None, :]


def audio_windows(features: Tensor, margin: int) -> Tensor:
    """Per-frame features (T, L, D) or (T, D) -> windows (T, 2 margin + 1, L, D), edge frames clamped."""
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise ValueError(f"audio features must be (T, L, D) or (T, D), got {tuple(features.shape)}")
    t = features.shape[0]
    offsets = torch.arange(-margin, margin + 1, device=features.device)
    index = (torch.arange(t, device=features.device)[:, None] + offsets[None]).clamp(0, max(t - 1, 0))
    return features[index]


def pose_to_tensor(pose_frames: Tensor) -> Tensor:
    """Rendered pose frames (..., H, W, 3) uint8 -> (..., 3, H, W) float in [0, 1] (PoseGuider input)."""
    return pose_frames.movedim(-1, -3).float() / 255.0


def frames_to_tensor(frames: Tensor) -> Tensor:
    """Video frames (..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


def tensor_to_frames(frames: Tensor) -> Tensor:
    """(..., 3, H, W) float in [-1, 1] -> (..., H, W, 3) uint8."""
    return ((frames.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).movedim(-3, -1)
