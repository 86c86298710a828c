"""Preview videos of clip-store clips: frames | keypoints | motion masks | pose, with the audio muxed.

Streamed: frames are decoded (:func:`mmgt.io.iter_video_frames`), their motion masks computed
(:func:`mmgt.masks.iter_motion_masks`, exactly the whole clip's values, at :data:`MASK_SIDE`) and the
strips encoded (:class:`mmgt.io.VideoWriter`) ``chunk`` frames at a time, so memory stays flat in the
clip's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from mmgt.clipstore import Clip
from mmgt.io import VideoWriter, iter_video_frames
from mmgt.masks import MaskConfig, iter_motion_masks
from mmgt.render import add_caption, draw_pose, overlay_keypoints, overlay_masks, side_by_side
from mmgt.schema import FPS

CHUNK = 16
"""Frames composed at once (~50 MB of strips and masks at 512^2)."""
MASK_SIDE = 128
"""Longest side the preview's motion masks are computed at (blurred, smooth: bilinearly resized onto the
frames; at 512^2 frames 16x less work than full size)."""
PRESET = "veryfast"
"""libx264 preset of the previews (for viewing: ~2.5x less CPU than ``medium``)."""


def _strip(frames: np.ndarray, keypoints: np.ndarray, masks: np.ndarray, cfg: MaskConfig) -> np.ndarray:
    """(t, H, W, 3) uint8 frames, (t, 134, 3) keypoints, (t, R, H, W) masks -> (t, H, 4W, 3) uint8."""
    height, width = frames.shape[1:3]
    return side_by_side(
        add_caption(frames, "video"),
        add_caption(overlay_keypoints(frames, keypoints), "keypoints"),
        add_caption(overlay_masks(frames, masks, cfg.regions), "+".join(cfg.regions)),
        add_caption(draw_pose(keypoints, (height, width)), "pose"),
    )


def iter_preview_frames(
    frames: Iterable[np.ndarray],
    keypoints: np.ndarray,
    mask_cfg: MaskConfig | None = None,
    chunk: int = CHUNK,
) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames (any iterable) + (T, 134, 3) keypoints -> preview strips (<= chunk, H, 4W, 3).

    The strips come in order; stops at the shorter of the two. Masks are computed at :data:`MASK_SIDE`.
    """
    cfg = mask_cfg or MaskConfig()
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    height, width = np.asarray(first).shape[:2]
    scale = min(1.0, MASK_SIDE / max(height, width))
    mask_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    pending = [np.asarray(first)]
    start = 0
    for masks in iter_motion_masks(torch.from_numpy(np.asarray(keypoints)), mask_size, cfg, chunk):
        n = masks.shape[0]
        pending += [np.asarray(f) for f in islice(it, n - len(pending))]
        if not pending:
            return
        m = len(pending)
        yield _strip(np.stack(pending), keypoints[start : start + m], masks[:m].numpy(), cfg)
        if m < n:
            return
        start += m
        pending = []


def preview_frames(
    frames: np.ndarray, keypoints: np.ndarray, mask_cfg: MaskConfig | None = None
) -> np.ndarray:
    """(T, H, W, 3) uint8 frames + (T, 134, 3) keypoints -> (T, H, 4W, 3) uint8 preview strip.

    Made in memory: for short clips; :func:`write_clip_preview` streams.
    """
    return np.concatenate(list(iter_preview_frames(frames, keypoints, mask_cfg)))


def write_clip_preview(
    clip: Clip,
    out_path: str | Path,
    mask_cfg: MaskConfig | None = None,
    chunk: int = CHUNK,
    preset: str = PRESET,
) -> Path:
    """Write the preview mp4 of one clip (with its audio) to ``out_path``, streamed (see the module)."""
    frames = (frame for _, frame in iter_video_frames(clip.video_path))
    with VideoWriter(out_path, fps=FPS, audio=clip.audio(), preset=preset) as writer:
        for strip in iter_preview_frames(frames, clip.keypoints(), mask_cfg, chunk):
            for frame in strip:
                writer.write(frame)
    return Path(out_path)
