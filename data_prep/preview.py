"""Preview videos of clip-store clips: frames | keypoints | motion masks | pose, with the audio muxed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmgt.clipstore import Clip
from mmgt.io import write_video
from mmgt.masks import MaskConfig, motion_masks
from mmgt.render import add_caption, draw_pose, overlay_keypoints, overlay_masks, side_by_side
from mmgt.schema import FPS


def preview_frames(
    frames: np.ndarray, keypoints: np.ndarray, mask_cfg: MaskConfig | None = None
) -> np.ndarray:
    """(T, H, W, 3) uint8 frames + (T, 134, 3) keypoints -> (T, H, 4W, 3) uint8 preview strip."""
    cfg = mask_cfg or MaskConfig()
    height, width = frames.shape[1:3]
    masks = motion_masks(torch.from_numpy(keypoints), (height, width), cfg).numpy()
    panels = [
        add_caption(frames, "video"),
        add_caption(overlay_keypoints(frames, keypoints), "keypoints"),
        add_caption(overlay_masks(frames, masks, cfg.regions), "+".join(cfg.regions)),
        add_caption(draw_pose(keypoints, (height, width)), "pose"),
    ]
    return side_by_side(*panels)


def write_clip_preview(clip: Clip, out_path: str | Path, mask_cfg: MaskConfig | None = None) -> Path:
    """Write the preview mp4 of one clip (with its audio) to ``out_path``."""
    strip = preview_frames(clip.video(), clip.keypoints(), mask_cfg)
    return write_video(out_path, strip, fps=FPS, audio=clip.audio())
