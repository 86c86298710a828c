"""SMGA network: a face/body split transformer that predicts clean pose windows (x0) from audio.

One denoising step of Stage I. Inputs, for a window of ``T <= window`` frames at 25 fps:

* ``sample`` x_t: noisy poses, ``(B, T, 134, 3)`` in model space (x, y in [-1, 1], visibility in
  {0, 1}; :func:`mmgt.schema.to_model_space`) or ``(B, T, 402)`` in the reference layout
  (:func:`mmgt.schema.to_reference_402`, ``input_layout="reference402"``);
* ``timestep``: ``(B,)`` diffusion steps 0..999 (int or float, as diffusers schedulers give them);
* ``audio``: ``(B, T, audio_dim)`` audio features, one row per video frame;
* ``cond_pose``: ``(B, 134, 3)`` (or ``(B, 402)``) the frame before the window;
* ``drop_audio``: optional ``(B,)`` bool; True replaces the audio by learned null embeddings
  (classifier-free guidance).

Architecture (MMGT's ``GestureDecoder``, which extends EDGE's decoder with a face/body split):

1. The pose vector and the conditioning pose are split by the face-keypoint mask into a face part and
   a body part (the other part zeroed); each stream is ``concat[x_part, cond_part]`` through one
   shared input projection ``pose_in`` (2 P -> width, P = 402).
2. Audio: ``audio_in`` (Linear) + ``audio_layers`` pre-LN transformer encoder layers with rotary
   self-attention -> audio tokens; their time mean through ``audio_pool`` (LN, Linear, SiLU, Linear)
   -> audio hidden. Dropped samples use ``null_audio_tokens`` / ``null_audio_hidden``.
3. Time: sinusoidal embedding -> Linear(width, 4 width) -> Mish -> ``time_to_film`` (+ audio hidden =
   the FiLM condition) and ``time_to_tokens`` (2 tokens). Cross-attention memory =
   ``memory_norm(concat[audio tokens, time tokens])``, ``(B, T + 2, width)``.
4. ``decoder_layers`` (``layers`` x :class:`SMGADecoderLayer`): per stream (separate weights)
   FiLM-modulated self-attention and cross-attention; then the streams are merged (sum) and a
   FiLM-modulated feed-forward updates the merged features.
5. ``pose_out`` (Linear width -> P) on the merged features of the last layer -> predicted x0.

Variants (strings in the config, as in diffusers):

* ``stacking="both"`` (default): each stream keeps its own residual path through all layers and the
  merge feed-forward's update is added to both streams. ``"reference"``: the original's stacking, in
  which the next layer's face input is the merged output and its body input is always the *first*
  projected body input (``DecoderLayerStack`` passes ``y`` unchanged), so the body branch is never
  stacked. (A naive fix - both streams = merged - would double the residual every layer.)
* ``rotary_mode="heads"`` (default): standard RoPE, applied per head to the projected queries and
  keys (relative positions); in cross-attention the audio tokens have their frame positions and the
  two time tokens position 0, so tail windows shorter than ``window`` see the same geometry.
  ``"inputs"``: the original's placement (rotary-embedding-torch over the full width, applied to the
  attention *inputs* of the query/key projections, memory positions 0..T+1); needed to run weights
  trained by the original code (:mod:`mmgt.stage1.reference`).
* ``rotary_theta``: RoPE base. 10000 is the usual (and the original's) value; it spreads the
  frequencies over thousands of positions, so within an 80-frame window most of a small head's
  channel pairs barely rotate. The shipped tiny/base configs use 100 (periods of ~6 to ~350 frames):
  on a one-window overfit test the audio -> lip alignment was learnt in 400 steps with 100 for two
  seeds, against one of two seeds with 10000 (tests/unit/test_stage1_diffusion.py).
* ``rotary=False``: fixed sinusoidal absolute positions added to pose and audio tokens instead.

Fixed against the original: no unused attention / norm / FiLM modules are created (every parameter
is used, no ``find_unused_parameters``), any ``T <= window`` works (rotary positions, null tokens
sliced), and there is no input-range guessing (inputs are documented, not transformed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import Timesteps, get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from mmgt.schema import FACE, KEYPOINT_DIMS, NUM_KEYPOINTS

STACKING_MODES: tuple[str, ...] = ("both", "reference")
INPUT_LAYOUTS: tuple[str, ...] = ("model", "reference402")
ROTARY_MODES: tuple[str, ...] = ("heads", "inputs")
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


class RotaryAttention(nn.Module):
    """Multi-head attention with optional rotary positions (``to_q``, ``to_k``, ``to_v``, ``to_out``).

    Args:
        width: model width (queries, keys and values all have it).
        heads: number of heads; ``width`` must be divisible by it.
        dropout: dropout on the attention probabilities (training only).
        rotary_mode: ``"heads"`` rotates per-head projected queries/keys; ``"inputs"`` rotates the
            full-width inputs of the query/key projections (the original's placement).
    """

    def __init__(
        self, width: int, heads: int, dropout: float, rotary_mode: str, rotary_theta: float = ROTARY_THETA
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        if rotary_mode == "heads" and (width // heads) % 2:
            raise ValueError(f"rotary_mode='heads' needs an even head size, got {width // heads}")
        self.heads = heads
        self.dropout = dropout
        self.rotary_mode = rotary_mode
        self.rotary_theta = rotary_theta
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(width, width)
        self.to_v = nn.Linear(width, width)
        self.to_out = nn.Linear(width, width)

    def forward(
        self,
        hidden_states: Tensor,
        context: Tensor,
        query_positions: Tensor | None = None,
        key_positions: Tensor | None = None,
    ) -> Tensor:
        """Attend from ``hidden_states`` (B, N, W) to ``context`` (B, M, W); positions (N,), (M,) or None."""
        query_input, key_input = hidden_states, context
        if query_positions is not None and self.rotary_mode == "inputs":
            width = hidden_states.shape[-1]
            query_input = apply_rotary(
                hidden_states, rotary_angles(query_positions, width, self.rotary_theta)
            )
            key_input = apply_rotary(context, rotary_angles(key_positions, width, self.rotary_theta))
        query = self.to_q(query_input).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, N, D)
        key = self.to_k(key_input).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        value = self.to_v(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        if query_positions is not None and self.rotary_mode == "heads":
            head_dim = query.shape[-1]
            query = apply_rotary(query, rotary_angles(query_positions, head_dim, self.rotary_theta))
            key = apply_rotary(key, rotary_angles(key_positions, head_dim, self.rotary_theta))
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.dropout if self.training else 0.0
        )
        return self.to_out(attended.transpose(1, 2).flatten(-2))


class FeedForward(nn.Module):
    """``linear2(dropout(gelu(linear1(x))))``, width -> ff_dim -> width."""

    def __init__(self, width: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, ff_dim)
        self.linear2 = nn.Linear(ff_dim, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, W) -> (B, N, W)."""
        return self.linear2(self.dropout(F.gelu(self.linear1(x))))


class FiLM(nn.Module):
    """Feature-wise affine modulation ``(1 + scale) * h + shift`` with (scale, shift) = Linear(Mish(c))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, 2 * width)

    def forward(self, hidden_states: Tensor, condition: Tensor) -> Tensor:
        """``hidden_states`` (B, N, W) modulated by ``condition`` (B, W)."""
        scale, shift = self.proj(F.mish(condition))[:, None, :].chunk(2, dim=-1)
        return hidden_states * (1.0 + scale) + shift


class AudioEncoderLayer(nn.Module):
    """Pre-LN transformer encoder layer with rotary self-attention (audio tokens)."""

    def __init__(
        self, width: int, heads: int, ff_dim: int, dropout: float, rotary_mode: str, rotary_theta: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = RotaryAttention(width, heads, dropout, rotary_mode, rotary_theta)
        self.norm2 = nn.LayerNorm(width)
        self.ff = FeedForward(width, ff_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, positions: Tensor | None) -> Tensor:
        """(B, T, W) -> (B, T, W); ``positions`` (T,) or None (no rotary)."""
        normed = self.norm1(x)
        x = x + self.dropout(self.self_attn(normed, normed, positions, positions))
        return x + self.dropout(self.ff(self.norm2(x)))


class StreamBlock(nn.Module):
    """One stream (face or body) of a decoder layer: FiLM'd self-attention, then FiLM'd cross-attention."""

    def __init__(self, width: int, heads: int, dropout: float, rotary_mode: str, rotary_theta: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = RotaryAttention(width, heads, dropout, rotary_mode, rotary_theta)
        self.film1 = FiLM(width)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = RotaryAttention(width, heads, dropout, rotary_mode, rotary_theta)
        self.film2 = FiLM(width)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        condition: Tensor,
        positions: Tensor | None,
        memory_positions: Tensor | None,
    ) -> Tensor:
        """x (B, T, W), memory (B, M, W), condition (B, W) -> (B, T, W)."""
        normed = self.norm1(x)
        x = x + self.film1(self.dropout(self.self_attn(normed, normed, positions, positions)), condition)
        attended = self.cross_attn(self.norm2(x), memory, positions, memory_positions)
        return x + self.film2(self.dropout(attended), condition)


class SMGADecoderLayer(nn.Module):
    """Face and body :class:`StreamBlock` s, merged by a sum, then a FiLM'd feed-forward on the merge."""

    def __init__(
        self, width: int, heads: int, ff_dim: int, dropout: float, rotary_mode: str, rotary_theta: float
    ) -> None:
        super().__init__()
        self.face = StreamBlock(width, heads, dropout, rotary_mode, rotary_theta)
        self.body = StreamBlock(width, heads, dropout, rotary_mode, rotary_theta)
        self.merge_norm = nn.LayerNorm(width)
        self.merge_ff = FeedForward(width, ff_dim, dropout)
        self.merge_film = FiLM(width)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        face: Tensor,
        body: Tensor,
        memory: Tensor,
        condition: Tensor,
        positions: Tensor | None,
        memory_positions: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Streams (B, T, W) -> (face + update, body + update, merged + update), update from the merge FF."""
        face = self.face(face, memory, condition, positions, memory_positions)
        body = self.body(body, memory, condition, positions, memory_positions)
        merged = face + body
        update = self.merge_film(self.dropout(self.merge_ff(self.merge_norm(merged))), condition)
        return face + update, body + update, merged + update


class SMGATransformer(ModelMixin, ConfigMixin):
    """Stage-I SMGA denoiser: predicts the clean pose window x0 from x_t, timestep, audio and previous pose.

    Args:
        audio_dim: audio feature size per frame (e.g. 1059 = WavLM 1024 + 35 librosa in the reference).
        n_keypoints: keypoints per frame (134, COCO-WholeBody in the MMGT order).
        pose_channels: channels per keypoint (3: x, y, visibility - or score in ``reference402``).
        window: longest window in frames (80 = 3.2 s at 25 fps); length of the null audio tokens.
        width: transformer width.
        layers: decoder layers (each with a face and a body stream).
        heads: attention heads.
        ff_dim: feed-forward hidden size.
        audio_layers: transformer encoder layers over the audio tokens.
        dropout: dropout probability (attention probabilities and residual branches).
        stacking: ``"both"`` or ``"reference"`` (see the module docstring).
        input_layout: ``"model"`` -> ``sample`` (B, T, n_keypoints, pose_channels); ``"reference402"``
            -> ``sample`` (B, T, n_keypoints * pose_channels), the original normalisation incl. scores.
        rotary: rotary positions in all attention layers (else fixed sinusoidal absolute positions).
        face_indices: keypoints of the face stream; default :data:`mmgt.schema.FACE` (24..91).
        rotary_mode: ``"heads"`` or ``"inputs"`` (see the module docstring).
        rotary_theta: RoPE base (see the module docstring; the original uses 10000).

    Example:
        >>> net = SMGATransformer(audio_dim=8, width=32, layers=1, heads=4, ff_dim=64, audio_layers=1)
        >>> x = torch.zeros(2, 17, 134, 3)
        >>> net(x, torch.tensor([10, 500]), torch.zeros(2, 17, 8), torch.zeros(2, 134, 3)).shape
        torch.Size([2, 17, 134, 3])
    """

    @register_to_config
    def __init__(
        self,
        audio_dim: int,
        n_keypoints: int = NUM_KEYPOINTS,
        pose_channels: int = KEYPOINT_DIMS,
        window: int = 80,
        width: int = 512,
        layers: int = 8,
        heads: int = 8,
        ff_dim: int = 1024,
        audio_layers: int = 2,
        dropout: float = 0.1,
        stacking: str = "both",
        input_layout: str = "model",
        rotary: bool = True,
        face_indices: list[int] | None = None,
        rotary_mode: str = "heads",
        rotary_theta: float = ROTARY_THETA,
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("stacking", stacking, STACKING_MODES),
            ("input_layout", input_layout, INPUT_LAYOUTS),
            ("rotary_mode", rotary_mode, ROTARY_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"SMGATransformer: {name}={value!r}, expected one of {allowed}")
        if layers < 1:
            raise ValueError(f"SMGATransformer: layers must be >= 1, got {layers}")
        face = list(FACE) if face_indices is None else [int(i) for i in face_indices]
        if not face or min(face) < 0 or max(face) >= n_keypoints:
            raise ValueError(f"SMGATransformer: face_indices must lie in [0, {n_keypoints}), got {face}")
        pose_dim = n_keypoints * pose_channels
        keypoint_is_face = torch.zeros(n_keypoints)
        keypoint_is_face[face] = 1.0
        # (P,) 1 on the channels of face keypoints; derived from the config, so not saved.
        self.register_buffer("face_mask", keypoint_is_face.repeat_interleave(pose_channels), persistent=False)
        self.pose_dim = pose_dim

        self.pose_in = nn.Linear(2 * pose_dim, width)
        # per-dimension audio standardisation (training-set statistics, set_audio_stats); saved with the
        # weights so generation normalises exactly as training did. Identity until set.
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))
        # per-coordinate pose standardisation (training-set statistics, set_pose_stats): the diffusion runs
        # on (pose - mean) / std (PoseDiffusion calls normalize_pose / denormalize_pose), so every
        # coordinate - a lip as much as a hand - carries unit variance. Identity until set.
        self.register_buffer("pose_mean", torch.zeros(pose_dim))
        self.register_buffer("pose_std", torch.ones(pose_dim))
        self.audio_in = nn.Linear(audio_dim, width)
        self.audio_encoder = nn.ModuleList(
            AudioEncoderLayer(width, heads, ff_dim, dropout, rotary_mode, rotary_theta)
            for _ in range(audio_layers)
        )
        self.null_audio_tokens = nn.Parameter(torch.randn(1, window, width))
        self.null_audio_hidden = nn.Parameter(torch.randn(1, width))
        self.audio_pool = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width)
        )
        self.time_proj = Timesteps(width, flip_sin_to_cos=False, downscale_freq_shift=1)
        self.time_mlp = nn.Linear(width, 4 * width)
        self.time_to_film = nn.Linear(4 * width, width)
        self.time_to_tokens = nn.Linear(4 * width, 2 * width)
        self.memory_norm = nn.LayerNorm(width)
        self.decoder_layers = nn.ModuleList(
            SMGADecoderLayer(width, heads, ff_dim, dropout, rotary_mode, rotary_theta) for _ in range(layers)
        )
        self.pose_out = nn.Linear(width, pose_dim)

    @torch.no_grad()
    def set_audio_stats(self, mean: Tensor, std: Tensor, eps: float = 1e-4) -> None:
        """Set the audio standardisation: features become ``(audio - mean) / max(std, eps)``.

        Args:
            mean: (audio_dim,) per-dimension mean of the training features.
            std: (audio_dim,) per-dimension standard deviation.
        """
        dim = self.config.audio_dim
        mean, std = torch.as_tensor(mean).reshape(-1), torch.as_tensor(std).reshape(-1)
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(
                f"SMGATransformer.set_audio_stats: expected ({dim},) mean and std, got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        self.audio_mean.copy_(mean.to(self.audio_mean))
        self.audio_std.copy_(std.clamp_min(eps).to(self.audio_std))

    @torch.no_grad()
    def set_pose_stats(self, mean: Tensor, std: Tensor, min_std: float = 0.01) -> None:
        """Set the pose standardisation from per-coordinate statistics of the training poses.

        Args:
            mean: (n_keypoints, pose_channels) or (P,) mean in the network's input layout.
            std: the same shape, standard deviation; floored at ``min_std`` (static or invisible
                coordinates would otherwise be blown up).
        """
        mean, std = torch.as_tensor(mean).reshape(-1), torch.as_tensor(std).reshape(-1)
        if mean.shape != (self.pose_dim,) or std.shape != (self.pose_dim,):
            raise ValueError(
                f"SMGATransformer.set_pose_stats: expected {self.pose_dim} values, got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        self.pose_mean.copy_(mean.to(self.pose_mean))
        self.pose_std.copy_(std.clamp_min(min_std).to(self.pose_std))

    def normalize_pose(self, pose: Tensor) -> Tensor:
        """Model-space poses (..., n_keypoints, channels) or (..., P) -> the standardised diffusion space."""
        shape = pose.shape
        flat = pose.reshape(*shape[: -2 if self.config.input_layout == "model" else -1], self.pose_dim)
        return ((flat - self.pose_mean) / self.pose_std).reshape(shape)

    def denormalize_pose(self, pose: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_pose`."""
        shape = pose.shape
        flat = pose.reshape(*shape[: -2 if self.config.input_layout == "model" else -1], self.pose_dim)
        return (flat * self.pose_std + self.pose_mean).reshape(shape)

    def _check_inputs(self, sample: Tensor, timestep: Tensor, audio: Tensor, cond_pose: Tensor) -> None:
        cfg = self.config
        frame_shape = (
            (cfg.n_keypoints, cfg.pose_channels) if cfg.input_layout == "model" else (self.pose_dim,)
        )
        if sample.ndim != 2 + len(frame_shape) or tuple(sample.shape[2:]) != frame_shape:
            raise ValueError(
                f"SMGATransformer(input_layout={cfg.input_layout!r}): sample must be (B, T, "
                f"{', '.join(map(str, frame_shape))}), got {tuple(sample.shape)}"
            )
        batch, frames = sample.shape[:2]
        if not 1 <= frames <= cfg.window:
            raise ValueError(f"SMGATransformer: window of {frames} frames, expected 1..{cfg.window}")
        if tuple(cond_pose.shape) != (batch, *frame_shape):
            raise ValueError(
                f"SMGATransformer: cond_pose must be {(batch, *frame_shape)}, got {tuple(cond_pose.shape)}"
            )
        if tuple(audio.shape) != (batch, frames, cfg.audio_dim):
            raise ValueError(
                f"SMGATransformer: audio must be (B, T, audio_dim) = {(batch, frames, cfg.audio_dim)}, "
                f"got {tuple(audio.shape)}"
            )
        if timestep.ndim > 1 or (timestep.ndim == 1 and timestep.shape[0] != batch):
            raise ValueError(
                f"SMGATransformer: timestep must be () or ({batch},), got {tuple(timestep.shape)}"
            )

    def forward(
        self,
        sample: Tensor,
        timestep: Tensor | int | float,
        audio: Tensor,
        cond_pose: Tensor,
        drop_audio: Tensor | None = None,
    ) -> Tensor:
        """Predict x0.

        Args:
            sample: x_t in the standardised space (:meth:`normalize_pose`), (B, T, n_keypoints,
                pose_channels) or (B, T, P) for ``reference402``; T <= window.
            timestep: (B,) or scalar diffusion step in [0, num_train_timesteps).
            audio: (B, T, audio_dim) features at 25 fps, aligned with the frames of ``sample``.
            cond_pose: (B, n_keypoints, pose_channels) or (B, P): the frame before the window, standardised.
            drop_audio: optional (B,) bool; True -> audio replaced by the null embeddings.

        Returns:
            Predicted x0 (standardised) with the shape of ``sample``.
        """
        timestep = torch.as_tensor(timestep, device=sample.device)
        self._check_inputs(sample, timestep, audio, cond_pose)
        batch, frames = sample.shape[:2]
        width = self.config.width

        # 1. face / body streams: [x_part, cond_part] through the shared input projection
        pose = sample.reshape(batch, frames, self.pose_dim)
        cond = cond_pose.reshape(batch, 1, self.pose_dim).expand(batch, frames, self.pose_dim)
        face_mask = self.face_mask.to(pose.dtype)
        body_mask = 1.0 - face_mask
        face = self.pose_in(torch.cat([pose * face_mask, cond * face_mask], dim=-1))
        body = self.pose_in(torch.cat([pose * body_mask, cond * body_mask], dim=-1))

        positions = torch.arange(frames, device=sample.device)
        audio_tokens = self.audio_in((audio - self.audio_mean) / self.audio_std)
        if self.config.rotary:
            memory_positions = torch.cat(
                [positions, torch.arange(frames, frames + 2, device=sample.device)]
                if self.config.rotary_mode == "inputs"
                else [positions, positions.new_zeros(2)]
            )
        else:
            absolute = get_timestep_embedding(positions, width, flip_sin_to_cos=True, downscale_freq_shift=0)
            absolute = absolute.to(face.dtype)
            face, body, audio_tokens = face + absolute, body + absolute, audio_tokens + absolute
            positions = memory_positions = None

        # 2. audio tokens and pooled audio hidden, with null embeddings for dropped samples
        for layer in self.audio_encoder:
            audio_tokens = layer(audio_tokens, positions)
        if drop_audio is not None:
            drop = drop_audio.to(device=sample.device, dtype=torch.bool).reshape(batch, 1, 1)
            audio_tokens = torch.where(
                drop, self.null_audio_tokens[:, :frames].to(audio_tokens.dtype), audio_tokens
            )
        audio_hidden = self.audio_pool(audio_tokens.mean(dim=1))
        if drop_audio is not None:
            audio_hidden = torch.where(
                drop[:, 0], self.null_audio_hidden.to(audio_hidden.dtype), audio_hidden
            )

        # 3. time: FiLM condition (+ audio hidden) and two memory tokens
        time_hidden = F.mish(self.time_mlp(self.time_proj(timestep.reshape(-1).expand(batch)).to(face.dtype)))
        condition = self.time_to_film(time_hidden) + audio_hidden
        time_tokens = self.time_to_tokens(time_hidden).unflatten(-1, (2, width))
        memory = self.memory_norm(torch.cat([audio_tokens, time_tokens], dim=1))

        # 4. decoder stack
        body_input = body
        for layer in self.decoder_layers:
            face_out, body_out, merged = layer(face, body, memory, condition, positions, memory_positions)
            if self.config.stacking == "both":
                face, body = face_out, body_out
            else:  # "reference": merged -> next face input; body input never stacked
                face, body = merged, body_input

        # 5. output projection -> x0
        return self.pose_out(merged).reshape(sample.shape)
