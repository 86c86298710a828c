"""A pretrained-VAE stand-in for toy runs: a tiny ``AutoencoderKL`` fitted once on a clip store's frames.

Stage II keeps its VAE frozen, so it must be *pretrained* (``sd-vae-ft-mse`` for real runs); a random VAE
would make every pixel metric meaningless. No weights can be downloaded here, so toy recipes fit a tiny VAE
(the tiny scale's architecture: 4x downsampling, 4 latent channels, 64^2 frames -> 16^2 latents) on the
train split's frames the first time they run (:func:`mmgt.stage2.loading.load_or_fit_toy_vae`, which reads
the store and saves the VAE with ``save_pretrained`` in the ``sd-vae-ft-mse`` layout); later runs load it
through the same :func:`~mmgt.stage2.loading.build_vae` path. This file holds only the fitting on frames
(no file IO). The ``scaling_factor`` is set to
1 / std(latents) as for SD. Fitting: L1 + L2 reconstruction with a small KL term, AdamW with one-cycle LR,
on random crops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

log = logging.getLogger(__name__)


def fit_toy_vae(
    frames: np.ndarray,
    config: Mapping[str, Any],
    steps: int = 800,
    batch_size: int = 16,
    crop: int | None = 32,
    lr: float = 3e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
) -> AutoencoderKL:
    """Fit an ``AutoencoderKL(**config)`` (plain values) on frames (N, S, S, 3) uint8; returns it frozen, in
    eval mode.

    The VAE is fully convolutional (``mid_block_add_attention: false`` in the toy config), so it is fitted on
    random ``crop`` x ``crop`` patches (4x cheaper at 64^2) and applies to whole frames. The scaling factor is
    1 / std of the latent means of whole frames.
    """
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
