"""Stage II speed levers: samplers, precision, memory format, attention kernels, VAE slicing / tiling.

Each lever is a generation option of :data:`~mmgt.stage2.export.DEFAULT_INFERENCE` (defaults: the plain
behaviour) that :class:`~mmgt.stage2.pipeline.Stage2Pipeline` applies around the networks, never inside
their forward; the precision is a constructor argument of the pipeline (``dtype``).

* ``scheduler``: a name of :data:`SCHEDULERS`, every one built on the training noise schedule
  (v-prediction, zero-SNR rescale, trailing timesteps) by :func:`make_scheduler`;
* ``cfg_mode``: one of :data:`CFG_MODES`;
* ``sdpa_backend``: a name of :data:`SDPA_BACKENDS` (:func:`sdpa_context`);
* ``channels_last``: :func:`set_memory_format` of the convolutional networks;
* ``vae_slicing`` / ``vae_tiling``: :func:`configure_vae`;
* ``compile`` / ``compile_mode`` / ``compile_backend`` / ``compile_fullgraph``: ``torch.compile`` of the
  denoiser (cached by the pipeline; by default the whole forward as one graph, which has no graph breaks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler
from diffusers.schedulers.scheduling_unipc_multistep import UniPCMultistepScheduler
from torch import nn

CFG_MODES: tuple[str, ...] = ("batched", "sequential")
"""Classifier-free guidance: both halves in one UNet batch (default), or two UNet calls (the original's;
half the activation memory, more kernel launches)."""


def _ddim(config: dict[str, Any]) -> DDIMScheduler:
    return DDIMScheduler.from_config(config, clip_sample=False, set_alpha_to_one=False)


def _dpmsolver(config: dict[str, Any]) -> DPMSolverMultistepScheduler:
    # zero-SNR: the first sigma is huge; first-order final steps and a zero final sigma keep few steps stable
    return DPMSolverMultistepScheduler.from_config(
        config,
        algorithm_type="dpmsolver++",
        solver_order=2,
        lower_order_final=True,
        final_sigmas_type="zero",
    )


def _unipc(config: dict[str, Any]) -> UniPCMultistepScheduler:
    return UniPCMultistepScheduler.from_config(
        config, solver_order=2, lower_order_final=True, final_sigmas_type="zero"
    )


def _euler(config: dict[str, Any]) -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler.from_config(config, final_sigmas_type="zero")


SCHEDULERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ddim": _ddim,
    "dpmsolver++": _dpmsolver,
    "unipc": _unipc,
    "euler": _euler,
}
"""Sampler name (option ``scheduler``) -> factory from the training scheduler's config (the one place)."""

SLICEABLE: tuple[type, ...] = (DDIMScheduler,)
"""Schedulers whose step is elementwise and stateless (the pipeline steps them on slices of frames); the
multistep solvers keep per-step state and are stepped on the whole latent video."""


def make_scheduler(config: dict[str, Any], name: str = "ddim") -> Any:
    """The inference scheduler ``name`` on the training noise schedule (``noise_scheduler`` of the export).

    Args:
        config: ``DDPMScheduler`` keyword arguments of training.
        name: a key of :data:`SCHEDULERS`.
    """
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {name!r}")
    return SCHEDULERS[name](DDPMScheduler(**config).config)


SDPA_BACKENDS: dict[str, str] = {
    "math": "MATH",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
}
"""Option ``sdpa_backend`` -> ``torch.nn.attention.SDPBackend`` member (None: torch chooses)."""


@contextlib.contextmanager
def sdpa_context(backend: str | None) -> Iterator[None]:
    """Restrict ``F.scaled_dot_product_attention`` to one kernel inside the block (None: no restriction)."""
    if backend is None:
        yield
        return
    if backend not in SDPA_BACKENDS:
        raise ValueError(f"sdpa_backend must be null or one of {list(SDPA_BACKENDS)}, got {backend!r}")
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(getattr(SDPBackend, SDPA_BACKENDS[backend])):
        yield


DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
"""Pipeline ``dtype`` names -> torch dtypes."""


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"fp32"`` / ``"fp16"`` / ``"bf16"`` / a torch dtype / None (keep the networks' own) -> torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be None, a torch dtype or one of {list(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def set_memory_format(modules: list[nn.Module], channels_last: bool) -> None:
    """Put the 4-D parameters of ``modules`` in ``torch.channels_last`` (or back to contiguous) format."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in modules:
        module.to(memory_format=fmt)


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D tensor (N, C, H, W) in channels-last format when asked (other tensors unchanged)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def configure_vae(vae: AutoencoderKL, slicing: bool, tiling: bool) -> None:
    """Switch the VAE's slicing (one frame at a time) and tiling (overlapping tiles, blended) on or off."""
    if slicing:
        vae.enable_slicing()
    else:
        vae.disable_slicing()
    if tiling:
        vae.enable_tiling()
    else:
        vae.disable_tiling()


__all__ = [
    "CFG_MODES",
    "DTYPES",
    "SCHEDULERS",
    "SDPA_BACKENDS",
    "configure_vae",
    "make_scheduler",
    "memory_format",
    "resolve_dtype",
    "sdpa_context",
    "set_memory_format",
]
