"""A pretrained-VAE stand-in for CPU runs: a tiny ``AutoencoderKL`` fitted once on a clip store's frames.

Stage II keeps its VAE frozen, so it must be *pretrained* (``sd-vae-ft-mse`` for real runs); a random VAE
would make every pixel metric meaningless. No weights can be downloaded here, so data preparation fits a
tiny VAE (:data:`TOY_VAE_CONFIG`, the tiny scale's architecture: 4x downsampling, 4 latent channels,
64^2 frames -> 16^2 latents) on the store's train frames and saves it with ``save_pretrained`` in the
``sd-vae-ft-mse`` layout at ``<store>/vae``; ``model/stage2/scale=tiny_fitted_vae`` then loads that folder
as ``scale=sd15`` loads the real VAE (``mmgt.stage2.loading.build_vae(pretrained=...)``).

When it runs: toy stores (:class:`mmgt_prep.toy.ToyStore` and ``mmgt-prep source=toy`` with
``vae_steps`` > 0, what the Stage II toy experiments and ``make demo`` use); for a store of one's own
videos, once before Stage II::

    mmgt-prep source=toy_vae out=<store> size=64 [steps=800]

Fitting: L1 + L2 reconstruction with a small KL term, AdamW with one-cycle LR, on random crops; the
``scaling_factor`` is 1 / std(latents), as for SD. Only diffusers' own ``AutoencoderKL`` is used (no
training code of ``mmgt``: the import rules of ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmgt_prep.settings import Settings

log = logging.getLogger(__name__)

VAE_FOLDER = "vae"
"""The toy VAE's folder inside a store (``config.json`` + ``diffusion_pytorch_model.safetensors``)."""

TOY_VAE_STEPS = 800
"""Fitting steps by default (~2-4 min on 1 core)."""

TOY_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "mid_block_add_attention": False,
}
"""``AutoencoderKL`` arguments of the toy VAE = ``vae.config`` of ``conf/model/stage2/scale/tiny.yaml``
(a test keeps the two equal)."""


def store_vae_dir(store: str | Path) -> Path:
    """``<store>/vae``: where the toy VAE of a store lives."""
    return Path(store) / VAE_FOLDER


def fit_toy_vae(
    frames: np.ndarray,
    config: Mapping[str, Any] = TOY_VAE_CONFIG,
    steps: int = TOY_VAE_STEPS,
    batch_size: int = 16,
    crop: int | None = 32,
    lr: float = 3e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
) -> Any:
    """Fit an ``AutoencoderKL(**config)`` on frames (N, S, S, 3) uint8; returns it frozen, in eval mode.

    The VAE is fully convolutional (``mid_block_add_attention: false``), so it is fitted on random ``crop``
    x ``crop`` patches (4x cheaper at 64^2) and applies to whole frames. The scaling factor is 1 / std of
    the latent means of whole frames.
    """
    import torch
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**dict(config)).requires_grad_(True).train()
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    side = x.shape[-1]
    crop = side if crop is None else min(int(crop), side)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    t0 = time.perf_counter()
    for step in range(steps):
        batch = x[torch.randint(0, len(x), (batch_size,), generator=gen)]
        top, left = torch.randint(0, side - crop + 1, (2,), generator=gen).tolist()
        batch = batch[:, :, top : top + crop, left : left + crop]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=gen)).sample
        loss = (
            (recon - batch).abs().mean() + (recon - batch).pow(2).mean() + kl_weight * posterior.kl().mean()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            log.info(
                "toy VAE step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.perf_counter() - t0
            )
    vae.eval()
    with torch.no_grad():
        sample = x[torch.randperm(len(x), generator=gen)[:128]]
        std = float(vae.encode(sample).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae.requires_grad_(False)


def _resize(frames: np.ndarray, size: int | None) -> np.ndarray:
    if size is None or frames.shape[1:3] == (size, size):
        return frames
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def fit_store_vae(
    store: str | Path,
    steps: int = TOY_VAE_STEPS,
    size: int | None = None,
    frame_stride: int = 2,
    crop: int | None = 32,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Fit the toy VAE on ``store``'s train frames and save it at ``<store>/vae``; returns the folder.

    Every ``frame_stride``-th train frame, resized to ``size`` (None: the clips' own size). Once: an existing
    folder is kept unless ``overwrite``.
    """
    from mmgt.atomic import staged_folder
    from mmgt.clipstore import ClipStore

    out = store_vae_dir(store)
    if (out / "config.json").is_file() and not overwrite:
        return out
    clips = ClipStore(store).clips(split="train")
    if not clips:
        raise FileNotFoundError(f"{store}: no train clips to fit the toy VAE on")
    frames = np.concatenate([_resize(c.video()[::frame_stride], size) for c in clips if c.has_video])
    log.info("fitting the toy VAE on %d frames of %s (saved to %s)", len(frames), store, out)
    vae = fit_toy_vae(frames, TOY_VAE_CONFIG, steps, crop=crop, seed=seed)
    with staged_folder(out, overwrite=True) as tmp:
        vae.save_pretrained(tmp, safe_serialization=True)
    return out


@dataclass(frozen=True)
class ToyVAEFit(Settings):
    """The node of ``mmgt-prep source=toy_vae out=<store>`` (``conf/source/toy_vae.yaml`` holds the values).

    ``retry_failed`` and ``progress`` come with every prep command (``conf/prep.yaml``); fitting has no
    failed units to retry.
    """

    out: str
    size: int | None
    steps: int
    seed: int
    overwrite: bool
    retry_failed: bool = False
    progress: bool = True

    def run(self) -> dict[str, Any]:
        """Fit and save ``<out>/vae`` (:func:`fit_store_vae`); returns its folder and the fitting time."""
        t0 = time.perf_counter()
        out = fit_store_vae(self.out, self.steps, self.size, seed=self.seed, overwrite=self.overwrite)
        return {"vae": str(out), "fit_seconds": round(time.perf_counter() - t0, 3)}


__all__ = [
    "TOY_VAE_CONFIG",
    "TOY_VAE_STEPS",
    "VAE_FOLDER",
    "fit_store_vae",
    "fit_toy_vae",
    "ToyVAEFit",
    "store_vae_dir",
]
