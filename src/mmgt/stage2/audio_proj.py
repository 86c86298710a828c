"""``AudioProjModel``: a window of speech-encoder features per frame -> N audio tokens per frame.

Input: (B, F, W, L, D) - for every video frame the features of the W = 2m + 1 frames around it (m = 2: +-2
frames, edges clamped; :func:`mmgt.stage2.components.audio_windows`), each with L encoder layers of width D
(wav2vec2-base: L = 12 hidden layers, D = 768; weight-free toy features: L = 1). As in Hallo / MMGT the window
is flattened (W * L * D), then Linear -> ReLU -> Linear -> ReLU -> Linear to N * C, reshaped to N tokens of
C channels, LayerNorm. Output (B, F, N, C) (32 tokens of 768 in the original).
"""

from __future__ import annotations

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn


class AudioProjModel(ModelMixin, ConfigMixin):
    """Per-frame audio tokens from a window of multi-layer speech features.

    Args:
        window: frames per window W (2 m + 1).
        audio_layers: encoder layers per frame L.
        audio_dim: feature width D.
        hidden_dim: width of the two hidden layers (512 in the original).
        tokens: tokens per frame N.
        token_dim: channels per token C (the denoiser's ``audio_dim``).
    """

    @register_to_config
    def __init__(
        self,
        window: int = 5,
        audio_layers: int = 12,
        audio_dim: int = 768,
        hidden_dim: int = 512,
        tokens: int = 32,
        token_dim: int = 768,
    ) -> None:
        super().__init__()
        self.in_dim = window * audio_layers * audio_dim
        self.proj1 = nn.Linear(self.in_dim, hidden_dim)
        self.proj2 = nn.Linear(hidden_dim, hidden_dim)
        self.proj3 = nn.Linear(hidden_dim, tokens * token_dim)
        self.norm = nn.LayerNorm(token_dim)

    def forward(self, audio: Tensor) -> Tensor:
        """Audio (B, F, W, L, D) -> tokens (B, F, N, C)."""
        cfg = self.config
        expected = (cfg.window, cfg.audio_layers, cfg.audio_dim)
        if audio.ndim != 5 or tuple(audio.shape[2:]) != expected:
            raise ValueError(
                f"audio must be (B, F, {', '.join(map(str, expected))}), got {tuple(audio.shape)}"
            )
        b, f = audio.shape[:2]
        x = audio.reshape(b * f, self.in_dim).to(self.dtype)
        x = self.proj3(self.proj2(self.proj1(x).relu()).relu())
        return self.norm(x.reshape(b, f, cfg.tokens, cfg.token_dim))
