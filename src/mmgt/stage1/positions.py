"""Position encodings of the SMGA attention layers: one class per choice, chosen by a registered name.

The network config's ``positional`` names one of :data:`POSITION_ENCODINGS` (``rotary_theta`` is the RoPE
base of the rotary ones); the network builds it once and hands it to every attention layer, so the
choice round trips through ``save_pretrained`` / ``from_pretrained`` and the forward has no branches:

=================  ========================================================================================
name               what it does
=================  ========================================================================================
``rope``           :class:`HeadRotary` - standard RoPE per head on the projected queries and keys (relative
(default)          positions). In cross-attention the audio tokens have their frame positions and the two
                   time tokens position 0, so tail windows shorter than ``window`` see the same geometry.
``rope_inputs``    :class:`InputRotary` - the original's placement (rotary-embedding-torch over the full
                   width, applied to the *inputs* of the query/key projections; memory positions 0..T+1);
                   needed to run weights trained by the original code (:mod:`mmgt.stage1.reference`).
``absolute``       :class:`AbsolutePositions` - fixed sinusoidal absolute positions added to the pose and
                   audio tokens; attention is position-free.
``none``           :class:`PositionEncoding` - no positions at all (the frames are a set).
=================  ========================================================================================

``rotary_theta``: 10000 is the usual (and the original's) base; it spreads the frequencies over thousands
of positions, so within an 80-frame window most of a small head's channel pairs barely rotate. The shipped
tiny/base configs use 100 (periods of ~6 to ~350 frames): on a one-window overfit test the audio -> lip
alignment was learnt in 400 steps with 100 for two seeds, against one of two seeds with 10000
(tests/unit/mmgt/stage1/test_diffusion.py). A new encoding is one subclass here plus its name in the registry.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import Tensor

ROTARY_THETA: float = 10_000.0


def rotary_angles(positions: Tensor, dim: int, theta: float = ROTARY_THETA) -> Tensor:
    """Rotation angles ``(N, dim // 2)`` for integer ``positions`` (N,): position x theta^(-2i/dim)."""
    inv_freq = theta ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    return positions.to(torch.float32)[:, None] * inv_freq[None, :]


def apply_rotary(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate channel pairs (0, 1), (2, 3), ... of ``x`` (..., N, dim) by ``angles`` (N, dim / 2)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    first, second = pairs.unbind(-1)
    cos, sin = angles.cos(), angles.sin()
    rotated = torch.stack((first * cos - second * sin, first * sin + second * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


class PositionEncoding:
    """No positions (``none``); the base class: every hook is the identity.

    Args:
        theta: RoPE base (used by the rotary subclasses).
    """

    name: ClassVar[str] = "none"

    def __init__(self, theta: float = ROTARY_THETA) -> None:
        self.theta = float(theta)

    def check(self, width: int, heads: int) -> None:
        """Raise ValueError when the encoding cannot work at this width and head count."""

    def add_to_tokens(self, tokens: Tensor) -> Tensor:
        """Pose / audio tokens (B, T, W) before the attention stacks -> the same shape."""
        return tokens

    def memory_positions(self, frames: int, device: torch.device) -> Tensor:
        """Positions (T + 2,) of the cross-attention memory: T audio tokens, then the 2 time tokens."""
        positions = torch.arange(frames, device=device)
        return torch.cat([positions, positions.new_zeros(2)])

    def rotate_inputs(
        self, query: Tensor, key: Tensor, q_pos: Tensor, k_pos: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Attention inputs (B, N, W), (B, M, W) of the query / key projections, positions (N,), (M,)."""
        return query, key

    def rotate_heads(self, query: Tensor, key: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """Projected per-head queries (B, H, N, D) and keys (B, H, M, D)."""
        return query, key

    def _rotate(self, query: Tensor, key: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """RoPE over the last dimension of ``query`` (..., N, D) and ``key`` (..., M, D)."""
        dim = query.shape[-1]
        return (
            apply_rotary(query, rotary_angles(q_pos, dim, self.theta)),
            apply_rotary(key, rotary_angles(k_pos, dim, self.theta)),
        )


class AbsolutePositions(PositionEncoding):
    """Fixed sinusoidal absolute positions added to the pose and audio tokens (``absolute``)."""

    name = "absolute"

    def add_to_tokens(self, tokens: Tensor) -> Tensor:
        """``tokens`` (B, N, W) plus the sinusoidal table of positions 0..N-1."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        table = get_timestep_embedding(
            positions, tokens.shape[-1], flip_sin_to_cos=True, downscale_freq_shift=0
        )
        return tokens + table.to(tokens.dtype)


class HeadRotary(PositionEncoding):
    """RoPE on the per-head projected queries and keys (``rope``)."""

    name = "rope"

    def check(self, width: int, heads: int) -> None:
        """RoPE rotates pairs of channels: the head size must be even."""
        if (width // heads) % 2:
            raise ValueError(f"positional='rope' needs an even head size, got {width // heads}")

    def rotate_heads(self, query: Tensor, key: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """Per-head queries (B, H, N, D) and keys (B, H, M, D), rotated by their positions."""
        return self._rotate(query, key, q_pos, k_pos)


class InputRotary(PositionEncoding):
    """The original's RoPE: full width, on the inputs of the query / key projections (``rope_inputs``)."""

    name = "rope_inputs"

    def memory_positions(self, frames: int, device: torch.device) -> Tensor:
        """Positions (T + 2,) 0..T+1: the original numbers the T audio tokens and the 2 time tokens on."""
        return torch.arange(frames + 2, device=device)

    def rotate_inputs(
        self, query: Tensor, key: Tensor, q_pos: Tensor, k_pos: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Full-width query inputs (B, N, W) and key inputs (B, M, W), rotated by their positions."""
        return self._rotate(query, key, q_pos, k_pos)


POSITION_ENCODINGS: dict[str, type[PositionEncoding]] = {
    c.name: c for c in (HeadRotary, InputRotary, AbsolutePositions, PositionEncoding)
}
"""Registered name (the network config's ``positional``) -> class."""


def build_positions(name: str, theta: float) -> PositionEncoding:
    """The encoding registered as ``name`` (ValueError naming the choices otherwise)."""
    if name not in POSITION_ENCODINGS:
        raise ValueError(f"SMGATransformer: positional={name!r}, expected one of {tuple(POSITION_ENCODINGS)}")
    return POSITION_ENCODINGS[name](theta)


__all__ = [
    "POSITION_ENCODINGS",
    "ROTARY_THETA",
    "AbsolutePositions",
    "HeadRotary",
    "InputRotary",
    "PositionEncoding",
    "apply_rotary",
    "build_positions",
    "rotary_angles",
]
