"""``PoseGuider``: pose video -> features added to the denoiser after ``conv_in``.

diffusers' ``ControlNetConditioningEmbedding`` (the ControlNet hint encoder: ``conv_in``, then per level a
3x3 conv and a stride-2 3x3 conv, SiLU after each, and a **zero-initialised** ``conv_out``), applied to every
frame. MMGT initialises it from ControlNet-openpose's ``controlnet_cond_embedding`` without ``conv_out``
(:func:`mmgt.stage2.loading.load_pose_guider_from_controlnet`); its state-dict keys are therefore
``conditioning_embedding.<ControlNet key>``. ``len(block_out_channels) - 1`` stride-2 convolutions must equal
the VAE's downsampling (3 for SD's 8x; 2 for the toy VAE's 4x).
"""

from __future__ import annotations

from collections.abc import Sequence

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor


class PoseGuider(ModelMixin, ConfigMixin):
    """Per-frame pose-image encoder with a zero-initialised output.

    Args:
        out_channels: channels of the denoiser's ``conv_in`` output (``block_out_channels[0]``).
        in_channels: channels of the pose images (3, RGB).
        block_out_channels: widths of the levels; ``len - 1`` stride-2 downsamplings.
    """

    @register_to_config
    def __init__(
        self,
        out_channels: int = 320,
        in_channels: int = 3,
        block_out_channels: Sequence[int] = (16, 32, 96, 256),
    ) -> None:
        super().__init__()
        self.conditioning_embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=out_channels,
            conditioning_channels=in_channels,
            block_out_channels=tuple(block_out_channels),
        )

    @property
    def downsampling(self) -> int:
        """Spatial reduction factor (2 ** number of stride-2 convolutions)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, pose: Tensor) -> Tensor:
        """Pose (B, 3, F, H, W) in [0, 1] -> features (B, out_channels, F, H / s, W / s)."""
        if pose.ndim != 5:
            raise ValueError(f"pose must be (B, 3, F, H, W), got {tuple(pose.shape)}")
        b, c, f, h, w = pose.shape
        frames = pose.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = self.conditioning_embedding(frames.to(self.dtype))
        return out.reshape(b, f, *out.shape[1:]).permute(0, 2, 1, 3, 4)
