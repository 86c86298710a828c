"""SMGA network: a face/body split transformer that predicts clean pose windows (x0) from audio.

One denoising step of Stage I. Inputs, for a window of ``T <= window`` frames at 25 fps:

* ``sample`` x_t: noisy poses, ``(B, T, 134, 3)`` in model space (x, y in [-1, 1], visibility in
  {0, 1}; :func:`mmgt.schema.to_model_space`) or ``(B, T, 402)`` in the reference layout
  (:func:`mmgt.schema.to_reference_402`, :class:`SMGAReferenceTransformer`);
* ``timestep``: ``(B,)`` diffusion steps 0..999 (int or float, as diffusers schedulers give them);
* ``audio``: ``(B, T, audio_dim)`` audio features, one row per video frame;
* ``cond_pose``: ``(B, 134, 3)`` (or ``(B, 402)``) the frame before the window;
* ``drop_audio``: optional ``(B,)`` bool; True replaces the audio by learned null embeddings
  (classifier-free guidance).

Architecture (MMGT's ``GestureDecoder``, which extends EDGE's decoder with a face/body split):

1. The pose vector and the conditioning pose are split by the face-keypoint mask into a face part and
   a body part (the other part zeroed); each stream is ``concat[x_part, cond_part]`` through one
   shared input projection ``pose_in`` (2 P -> width, P = 402).
2. Audio: ``audio_in`` (Linear) + ``audio_layers`` pre-LN transformer encoder layers with (rotary)
   self-attention -> audio tokens; their time mean through ``audio_pool`` (LN, Linear, SiLU, Linear)
   -> audio hidden. Dropped samples use ``null_audio_tokens`` / ``null_audio_hidden``.
3. Time: sinusoidal embedding -> Linear(width, 4 width) -> Mish -> ``time_to_film`` (+ audio hidden =
   the FiLM condition) and ``time_to_tokens`` (2 tokens). Cross-attention memory =
   ``memory_norm(concat[audio tokens, time tokens])``, ``(B, T + 2, width)``.
4. ``decoder_layers`` (a :data:`STACKINGS` stack of ``layers`` x :class:`SMGADecoderLayer`): per stream
   (separate weights) FiLM-modulated self-attention and cross-attention; then the streams are merged (sum)
   and a FiLM-modulated feed-forward updates the merged features.
5. ``pose_out`` (Linear width -> P) on the merged features of the last layer -> predicted x0.

Variants (names in the config, each choosing a class; the forward has no flag branches):

* ``stacking`` (:data:`STACKINGS`): ``"both"`` (default, :class:`DecoderStack`): each stream keeps its own
  residual path through all layers and the merge feed-forward's update is added to both streams.
  ``"reference"`` (:class:`ReferenceDecoderStack`): the original's stacking, in which the next layer's face
  input is the merged output and its body input is always the *first* projected body input (the original's
  ``DecoderLayerStack`` passes ``y`` unchanged), so the body branch is never stacked. (A naive fix - both
  streams = merged - would double the residual every layer.)
* ``positional`` + ``rotary_theta`` (:data:`mmgt.stage1.positions.POSITION_ENCODINGS`): ``"rope"``
  (default, per-head RoPE), ``"rope_inputs"`` (the original's placement), ``"absolute"`` (sinusoids added
  to the tokens), ``"none"``.
* the pose layout is the class: :class:`SMGATransformer` takes model-space keypoints (B, T, 134, 3);
  :class:`SMGAReferenceTransformer` the original's 402-d vectors (:func:`mmgt.schema.to_reference_402`).

Fixed against the original: no unused attention / norm / FiLM modules are created (every parameter
is used, no ``find_unused_parameters``), any ``T <= window`` works (rotary positions, null tokens
sliced), and there is no input-range guessing (inputs are documented, not transformed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import Timesteps
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from mmgt.schema import (
    FACE,
    KEYPOINT_DIMS,
    NUM_KEYPOINTS,
    from_model_space,
    from_reference_402,
    to_model_space,
    to_reference_402,
)
from mmgt.stage1.positions import ROTARY_THETA, PositionEncoding, build_positions


class PositionalAttention(nn.Module):
    """Multi-head attention (``to_q``, ``to_k``, ``to_v``, ``to_out``) with the network's position encoding.

    Args:
        width: model width (queries, keys and values all have it).
        heads: number of heads; ``width`` must be divisible by it.
        dropout: dropout on the attention probabilities (training only).
        positions: where positions enter (:mod:`mmgt.stage1.positions`; shared by all layers).
    """

    def __init__(self, width: int, heads: int, dropout: float, positions: PositionEncoding) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.positions = positions
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(width, width)
        self.to_v = nn.Linear(width, width)
        self.to_out = nn.Linear(width, width)

    def forward(
        self, hidden_states: Tensor, context: Tensor, query_positions: Tensor, key_positions: Tensor
    ) -> Tensor:
        """Attend from ``hidden_states`` (B, N, W) to ``context`` (B, M, W); positions (N,), (M,)."""
        query_input, key_input = self.positions.rotate_inputs(
            hidden_states, context, query_positions, key_positions
        )
        query = self.to_q(query_input).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, N, D)
        key = self.to_k(key_input).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        value = self.to_v(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        query, key = self.positions.rotate_heads(query, key, query_positions, key_positions)
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
    """Pre-LN transformer encoder layer with positional self-attention (audio tokens)."""

    def __init__(
        self, width: int, heads: int, ff_dim: int, dropout: float, positions: PositionEncoding
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = PositionalAttention(width, heads, dropout, positions)
        self.norm2 = nn.LayerNorm(width)
        self.ff = FeedForward(width, ff_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """(B, T, W) -> (B, T, W); ``positions`` (T,)."""
        normed = self.norm1(x)
        x = x + self.dropout(self.self_attn(normed, normed, positions, positions))
        return x + self.dropout(self.ff(self.norm2(x)))


class StreamBlock(nn.Module):
    """One stream (face or body) of a decoder layer: FiLM'd self-attention, then FiLM'd cross-attention."""

    def __init__(self, width: int, heads: int, dropout: float, positions: PositionEncoding) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = PositionalAttention(width, heads, dropout, positions)
        self.film1 = FiLM(width)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = PositionalAttention(width, heads, dropout, positions)
        self.film2 = FiLM(width)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, memory: Tensor, condition: Tensor, positions: Tensor, memory_positions: Tensor
    ) -> Tensor:
        """X (B, T, W), memory (B, M, W), condition (B, W), positions (T,), (M,) -> (B, T, W)."""
        normed = self.norm1(x)
        x = x + self.film1(self.dropout(self.self_attn(normed, normed, positions, positions)), condition)
        attended = self.cross_attn(self.norm2(x), memory, positions, memory_positions)
        return x + self.film2(self.dropout(attended), condition)


class SMGADecoderLayer(nn.Module):
    """Face and body :class:`StreamBlock` s, merged by a sum, then a FiLM'd feed-forward on the merge."""

    def __init__(
        self, width: int, heads: int, ff_dim: int, dropout: float, positions: PositionEncoding
    ) -> None:
        super().__init__()
        self.face = StreamBlock(width, heads, dropout, positions)
        self.body = StreamBlock(width, heads, dropout, positions)
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
        positions: Tensor,
        memory_positions: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Streams (B, T, W) -> (face + update, body + update, merged + update), update from the merge FF."""
        face = self.face(face, memory, condition, positions, memory_positions)
        body = self.body(body, memory, condition, positions, memory_positions)
        merged = face + body
        update = self.merge_film(self.dropout(self.merge_ff(self.merge_norm(merged))), condition)
        return face + update, body + update, merged + update


class DecoderStack(nn.ModuleList):
    """The :class:`SMGADecoderLayer` s, both streams stacked through all layers (``stacking="both"``)."""

    def forward(self, face: Tensor, body: Tensor, *context: Tensor) -> Tensor:
        """Streams (B, T, W) and the layers' memory, condition and positions -> the last merged (B, T, W)."""
        for layer in self:
            face, body, merged = layer(face, body, *context)
        return merged


class ReferenceDecoderStack(DecoderStack):
    """The original's stacking (``stacking="reference"``): merged -> next face input, body never stacked."""

    def forward(self, face: Tensor, body: Tensor, *context: Tensor) -> Tensor:
        """As :meth:`DecoderStack.forward`; every layer sees the first projected body input."""
        for layer in self:
            face = layer(face, body, *context)[2]
        return face


STACKINGS: dict[str, type[DecoderStack]] = {"both": DecoderStack, "reference": ReferenceDecoderStack}
"""Registered name (the network config's ``stacking``) -> decoder stack class."""

LEGACY_ROTARY: dict[tuple[bool, str], str] = {
    (True, "heads"): "rope",
    (True, "inputs"): "rope_inputs",
    (False, "heads"): "absolute",
    (False, "inputs"): "absolute",
}
"""Exports written before ``positional``: their (``rotary``, ``rotary_mode``) -> the registered name."""


class SMGATransformer(ModelMixin, ConfigMixin):
    """Stage-I SMGA denoiser: predicts the clean pose window x0 from x_t, timestep, audio and previous pose.

    Poses are model-space keypoints (B, T, n_keypoints, pose_channels); :class:`SMGAReferenceTransformer`
    takes the original's flat vectors.

    Args:
        audio_dim: audio feature size per frame (e.g. 1059 = WavLM 1024 + 35 librosa in the reference).
        n_keypoints: keypoints per frame (134, COCO-WholeBody in the MMGT order).
        pose_channels: channels per keypoint (3: x, y, visibility - or score in the reference layout).
        window: longest window in frames (80 = 3.2 s at 25 fps); length of the null audio tokens.
        width: transformer width.
        layers: decoder layers (each with a face and a body stream).
        heads: attention heads.
        ff_dim: feed-forward hidden size.
        audio_layers: transformer encoder layers over the audio tokens.
        dropout: dropout probability (attention probabilities and residual branches).
        stacking: a :data:`STACKINGS` name, ``"both"`` or ``"reference"`` (see the module docstring).
        face_indices: keypoints of the face stream; default :data:`mmgt.schema.FACE` (24..91).
        positional: a :data:`mmgt.stage1.positions.POSITION_ENCODINGS` name (``rope``, ``rope_inputs``,
            ``absolute``, ``none``).
        rotary_theta: RoPE base (:mod:`mmgt.stage1.positions`; the original uses 10000).

    Example:
        >>> net = SMGATransformer(audio_dim=8, width=32, layers=1, heads=4, ff_dim=64, audio_layers=1)
        >>> x = torch.zeros(2, 17, 134, 3)
        >>> net(x, torch.tensor([10, 500]), torch.zeros(2, 17, 8), torch.zeros(2, 134, 3)).shape
        torch.Size([2, 17, 134, 3])
    """

    to_layout = staticmethod(to_model_space)
    """Stored keypoints (..., 134, 3) -> this network's pose layout (numpy or torch)."""
    from_layout = staticmethod(from_model_space)
    """This network's pose layout -> stored keypoints (..., 134, 3)."""

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
        face_indices: list[int] | None = None,
        positional: str = "rope",
        rotary_theta: float = ROTARY_THETA,
    ) -> None:
        super().__init__()
        if stacking not in STACKINGS:
            raise ValueError(f"SMGATransformer: stacking={stacking!r}, expected one of {tuple(STACKINGS)}")
        if layers < 1:
            raise ValueError(f"SMGATransformer: layers must be >= 1, got {layers}")
        if width % heads:
            raise ValueError(f"SMGATransformer: width {width} is not divisible by heads {heads}")
        self.positions = build_positions(positional, rotary_theta)
        self.positions.check(width, heads)
        self.pose_dim = n_keypoints * pose_channels
        # (P,) 1 on the channels of face keypoints; derived from the config, so not saved.
        self.register_buffer(
            "face_mask", _face_mask(face_indices, n_keypoints, pose_channels), persistent=False
        )
        self.pose_in = nn.Linear(2 * self.pose_dim, width)
        # per-dimension audio standardisation (training-set statistics, set_audio_stats); saved with the
        # weights so generation normalises exactly as training did. Identity until set.
        self.register_buffer("audio_mean", torch.zeros(audio_dim))
        self.register_buffer("audio_std", torch.ones(audio_dim))
        # per-coordinate pose standardisation (training-set statistics, set_pose_stats): the diffusion runs
        # on (pose - mean) / std (PoseDiffusion calls normalize_pose / denormalize_pose), so every
        # coordinate - a lip as much as a hand - carries unit variance. Identity until set.
        self.register_buffer("pose_mean", torch.zeros(self.pose_dim))
        self.register_buffer("pose_std", torch.ones(self.pose_dim))
        self.audio_in = nn.Linear(audio_dim, width)
        self.audio_encoder = nn.ModuleList(
            AudioEncoderLayer(width, heads, ff_dim, dropout, self.positions) for _ in range(audio_layers)
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
        self.decoder_layers = STACKINGS[stacking](
            SMGADecoderLayer(width, heads, ff_dim, dropout, self.positions) for _ in range(layers)
        )
        self.pose_out = nn.Linear(width, self.pose_dim)

    @classmethod
    def load_config(cls, *args: Any, **kwargs: Any) -> Any:
        """Diffusers' ``load_config``, with the keys of exports written before ``positional`` translated."""
        loaded = super().load_config(*args, **kwargs)
        upgrade_config(loaded[0] if isinstance(loaded, tuple) else loaded)
        return loaded

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """The shape of one frame of ``sample``: (n_keypoints, pose_channels)."""
        return (self.config.n_keypoints, self.config.pose_channels)

    def to_model_space(self, pose: Tensor) -> Tensor:
        """Poses in this network's layout (..., *frame_shape) -> model space (..., 134, 3)."""
        return pose

    @torch.no_grad()
    def set_audio_stats(self, mean: Tensor, std: Tensor, eps: float = 1e-4) -> None:
        """Set the audio standardisation: features become ``(audio - mean) / max(std, eps)``.

        Args:
            mean: (audio_dim,) per-dimension mean of the training features.
            std: (audio_dim,) per-dimension standard deviation.
            eps: floor of ``std``.
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
            std: the same shape, standard deviation.
            min_std: floor of ``std`` (static or invisible coordinates would otherwise be blown up).
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
        """Poses (..., *frame_shape) in the network's layout -> the standardised diffusion space."""
        flat = pose.reshape(*pose.shape[: pose.ndim - len(self.frame_shape)], self.pose_dim)
        return ((flat - self.pose_mean) / self.pose_std).reshape(pose.shape)

    def denormalize_pose(self, pose: Tensor) -> Tensor:
        """Inverse of :meth:`normalize_pose`."""
        flat = pose.reshape(*pose.shape[: pose.ndim - len(self.frame_shape)], self.pose_dim)
        return (flat * self.pose_std + self.pose_mean).reshape(pose.shape)

    def _check_inputs(self, sample: Tensor, timestep: Tensor, audio: Tensor, cond_pose: Tensor) -> None:
        cfg, name, frame_shape = self.config, type(self).__name__, self.frame_shape
        if sample.ndim != 2 + len(frame_shape) or tuple(sample.shape[2:]) != frame_shape:
            raise ValueError(
                f"{name}: sample must be (B, T, {', '.join(map(str, frame_shape))}), "
                f"got {tuple(sample.shape)}"
            )
        batch, frames = sample.shape[:2]
        if not 1 <= frames <= cfg.window:
            raise ValueError(f"{name}: window of {frames} frames, expected 1..{cfg.window}")
        if tuple(cond_pose.shape) != (batch, *frame_shape):
            raise ValueError(
                f"{name}: cond_pose must be {(batch, *frame_shape)}, got {tuple(cond_pose.shape)}"
            )
        if tuple(audio.shape) != (batch, frames, cfg.audio_dim):
            raise ValueError(
                f"{name}: audio must be (B, T, audio_dim) = {(batch, frames, cfg.audio_dim)}, "
                f"got {tuple(audio.shape)}"
            )
        if timestep.ndim > 1 or (timestep.ndim == 1 and timestep.shape[0] != batch):
            raise ValueError(f"{name}: timestep must be () or ({batch},), got {tuple(timestep.shape)}")

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
            sample: x_t in the standardised space (:meth:`normalize_pose`), (B, T, *frame_shape); T <= window.
            timestep: (B,) or scalar diffusion step in [0, num_train_timesteps).
            audio: (B, T, audio_dim) features at 25 fps, aligned with the frames of ``sample``.
            cond_pose: (B, *frame_shape): the frame before the window, standardised.
            drop_audio: optional (B,) bool; True -> audio replaced by the null embeddings.

        Returns:
            Predicted x0 (standardised) with the shape of ``sample``.
        """
        timestep = torch.as_tensor(timestep, device=sample.device)
        self._check_inputs(sample, timestep, audio, cond_pose)
        batch, frames = sample.shape[:2]
        positions = torch.arange(frames, device=sample.device)
        face, body = self._pose_streams(sample, cond_pose)
        audio_tokens, audio_hidden = self._audio(audio, positions, drop_audio)
        time_hidden = F.mish(self.time_mlp(self.time_proj(timestep.reshape(-1).expand(batch)).to(face.dtype)))
        condition = self.time_to_film(time_hidden) + audio_hidden
        time_tokens = self.time_to_tokens(time_hidden).unflatten(-1, (2, self.config.width))
        memory = self.memory_norm(torch.cat([audio_tokens, time_tokens], dim=1))
        memory_positions = self.positions.memory_positions(frames, sample.device)
        merged = self.decoder_layers(face, body, memory, condition, positions, memory_positions)
        return self.pose_out(merged).reshape(sample.shape)

    def _pose_streams(self, sample: Tensor, cond_pose: Tensor) -> tuple[Tensor, Tensor]:
        """Face and body streams (B, T, W): ``[x_part, cond_part]`` through the shared input projection."""
        batch, frames = sample.shape[:2]
        pose = sample.reshape(batch, frames, self.pose_dim)
        cond = cond_pose.reshape(batch, 1, self.pose_dim).expand(batch, frames, self.pose_dim)
        face_mask = self.face_mask.to(pose.dtype)
        body_mask = 1.0 - face_mask
        face = self.pose_in(torch.cat([pose * face_mask, cond * face_mask], dim=-1))
        body = self.pose_in(torch.cat([pose * body_mask, cond * body_mask], dim=-1))
        return self.positions.add_to_tokens(face), self.positions.add_to_tokens(body)

    def _audio(self, audio: Tensor, positions: Tensor, drop_audio: Tensor | None) -> tuple[Tensor, Tensor]:
        """Audio tokens (B, T, W) and pooled audio hidden (B, W), null embeddings for dropped samples."""
        tokens = self.positions.add_to_tokens(self.audio_in((audio - self.audio_mean) / self.audio_std))
        for layer in self.audio_encoder:
            tokens = layer(tokens, positions)
        if drop_audio is None:
            return tokens, self.audio_pool(tokens.mean(dim=1))
        drop = drop_audio.to(device=audio.device, dtype=torch.bool).reshape(-1, 1, 1)
        tokens = torch.where(drop, self.null_audio_tokens[:, : tokens.shape[1]].to(tokens.dtype), tokens)
        hidden = self.audio_pool(tokens.mean(dim=1))
        return tokens, torch.where(drop[:, 0], self.null_audio_hidden.to(hidden.dtype), hidden)


class SMGAReferenceTransformer(SMGATransformer):
    """:class:`SMGATransformer` in the original MMGT layout (``GestureDecoder``).

    Poses are the original's flat (…, 402) vectors with its pixel normalisation, scores included
    (:func:`mmgt.schema.to_reference_402`).

    Built with the original's choices, ``stacking="reference"``, ``positional="rope_inputs"``,
    ``rotary_theta=10000`` (:data:`mmgt.stage1.reference.REFERENCE_VARIANT`,
    ``conf/model/stage1/smga_reference.yaml``), it computes what the released checkpoint computes
    (:func:`mmgt.stage1.reference.load_reference_checkpoint`).
    """

    to_layout = staticmethod(to_reference_402)
    from_layout = staticmethod(from_reference_402)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """The shape of one frame of ``sample``: (n_keypoints * pose_channels,)."""
        return (self.pose_dim,)

    def to_model_space(self, pose: Tensor) -> Tensor:
        """Original (..., 402) vectors -> model-space keypoints (..., 134, 3)."""
        return to_model_space(from_reference_402(pose))


SMGA_NETWORKS: dict[str, type[SMGATransformer]] = {
    c.__name__: c for c in (SMGATransformer, SMGAReferenceTransformer)
}
"""``_class_name`` of a ``config.json`` -> the Stage I network class (the allow-list of export loading)."""


def network_class(config: Mapping[str, Any], source: str = "config.json") -> type[SMGATransformer]:
    """The class that ``from_pretrained`` of a network ``config`` (a ``config.json`` dict) must use."""
    if config.get("input_layout") == "reference402":  # written before the layout was a class
        return SMGAReferenceTransformer
    name = config.get("_class_name", SMGATransformer.__name__)
    if name not in SMGA_NETWORKS:
        raise ValueError(f"{source}: _class_name {name!r} is not a Stage I network ({sorted(SMGA_NETWORKS)})")
    return SMGA_NETWORKS[name]


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """Translate, in place, the keys of a network config written before ``positional``.

    ``rotary`` and ``rotary_mode`` -> ``positional`` (:data:`LEGACY_ROTARY`); ``input_layout`` is the class
    now (:func:`network_class`).
    """
    rotary, mode = config.pop("rotary", None), config.pop("rotary_mode", None)
    config.pop("input_layout", None)
    if "positional" not in config and (rotary is not None or mode is not None):
        config["positional"] = LEGACY_ROTARY[(rotary is None or bool(rotary), mode or "heads")]
    return config


def _face_mask(face_indices: list[int] | None, n_keypoints: int, pose_channels: int) -> Tensor:
    """(n_keypoints * pose_channels,) 1 on the channels of the face keypoints (default :data:`FACE`)."""
    face = list(FACE) if face_indices is None else [int(i) for i in face_indices]
    if not face or min(face) < 0 or max(face) >= n_keypoints:
        raise ValueError(f"SMGATransformer: face_indices must lie in [0, {n_keypoints}), got {face}")
    keypoint_is_face = torch.zeros(n_keypoints)
    keypoint_is_face[face] = 1.0
    return keypoint_is_face.repeat_interleave(pose_channels)


__all__ = [
    "SMGA_NETWORKS",
    "STACKINGS",
    "DecoderStack",
    "ReferenceDecoderStack",
    "SMGAReferenceTransformer",
    "SMGATransformer",
    "network_class",
    "upgrade_config",
]
