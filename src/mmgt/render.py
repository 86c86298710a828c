"""Deterministic visualisation of keypoints and motion masks (numpy + OpenCV, RGB uint8).

* :func:`draw_pose` - OpenPose/DWPose-style pose image on black (the pose-video input of the
  PoseGuider): 17 body limbs as coloured ellipses dimmed by ``limb_dim`` (0.6 as in ControlNet's
  OpenPose annotator), then 18 joint dots; 20 HSV-coloured bones and dots per hand; white face dots.
  Line widths and radii scale with the image side (reference values at 512 px, minimum 1 px).
* :func:`overlay_keypoints`, :func:`overlay_masks` - draw skeletons / tint masks over video frames.
* :func:`mask_to_video`, :func:`side_by_side`, :func:`add_caption` - quick-look helpers.

Images and videos are RGB uint8, (H, W, 3) or (T, H, W, 3). Keypoints are in the stored layout
(x, y in [0, 1], confidence), (134, 3) or (T, 134, 3). Sizes given as int are square; tuples are
(height, width).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from mmgt.schema import (
    BODY,
    BODY_EDGES,
    FACE,
    FEET,
    FEET_EDGES,
    HAND_EDGES,
    LEFT_HAND,
    MASK_REGIONS,
    NUM_KEYPOINTS,
    RIGHT_HAND,
    VISIBILITY_THRESHOLD,
    KeypointLayoutError,
)

OPENPOSE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
"""OpenPose limb/joint colours (RGB), indexed by limb (17 used) or body joint (18)."""
HAND_BONE_COLORS: tuple[tuple[int, int, int], ...] = tuple(
    (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))
    for r, g, b in (colorsys.hsv_to_rgb(i / len(HAND_EDGES), 1.0, 1.0) for i in range(len(HAND_EDGES)))
)
"""Per-bone hand colours: hue i / 20 at full saturation and value (as in the OpenPose hand drawer)."""
HAND_POINT_COLOR: tuple[int, int, int] = (0, 0, 255)
FACE_POINT_COLOR: tuple[int, int, int] = (255, 255, 255)
FEET_COLORS: tuple[tuple[int, int, int], ...] = ((255, 0, 170),) * 3 + ((0, 170, 255),) * 3

REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "face_hands": (0, 255, 0),
    "lips": (255, 0, 0),
    "hands": (0, 0, 255),
    "face": (255, 255, 0),
    "background": (128, 128, 128),
}
"""Tint per motion-mask region name (RGB)."""
_FALLBACK_COLORS: tuple[tuple[int, int, int], ...] = ((255, 0, 255), (0, 255, 255), (255, 128, 0))

REFERENCE_SIDE: int = 512
"""Image side at which the OpenPose widths below apply: limbs 4, joints 4, hand bones 2, hand points 4,
face points 3 px."""


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    h, w = (int(s) for s in size)
    return h, w


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _px(width: float, scale: float) -> int:
    return max(1, int(round(width * scale)))


def _dots(canvas: np.ndarray, pts: np.ndarray, vis: np.ndarray, joints: Any, radius: int, color: Any) -> None:
    """Filled circles at the visible ``joints``; ``color`` one (B, G, R) or a function of the joint."""
    for j in joints:
        if vis[j]:
            c = color(j) if callable(color) else color
            cv2.circle(canvas, (int(pts[j, 0]), int(pts[j, 1])), radius, c, thickness=-1)


def _limbs(canvas: np.ndarray, xy: np.ndarray, vis: np.ndarray, edges: Any, colors: Any, stick: int) -> None:
    """OpenPose limbs: a filled ellipse of half-width ``stick`` along each edge with both ends visible."""
    for (a, b), color in zip(edges, colors, strict=False):
        if not (vis[a] and vis[b]):
            continue
        (xa, ya), (xb, yb) = xy[a], xy[b]
        length = math.hypot(xb - xa, yb - ya)
        angle = math.degrees(math.atan2(yb - ya, xb - xa))
        centre = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
        poly = cv2.ellipse2Poly(centre, (int(round(length / 2)), stick), int(round(angle)), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, color)


def _hands(canvas: np.ndarray, pts: np.ndarray, vis: np.ndarray, scale: float) -> None:
    """Bones (lines) and points of both hands."""
    bone_w, hand_r = _px(2, scale), _px(4, scale)
    for hand in (LEFT_HAND, RIGHT_HAND):
        off = hand.start
        for (a, b), color in zip(HAND_EDGES, HAND_BONE_COLORS, strict=True):
            if vis[off + a] and vis[off + b]:
                pa, pb = pts[off + a], pts[off + b]
                cv2.line(canvas, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), color, bone_w)
        _dots(canvas, pts, vis, hand, hand_r, HAND_POINT_COLOR)


def _draw_frame(
    kps: np.ndarray,
    h: int,
    w: int,
    conf_threshold: float,
    draw_face: bool,
    draw_hands: bool,
    draw_feet: bool,
    limb_dim: float,
) -> np.ndarray:
    scale = min(h, w) / REFERENCE_SIDE
    canvas = np.zeros((h, w, 3), dtype=np.uint8)
    vis = np.isfinite(kps[:, :2]).all(-1) & (kps[:, 2] >= conf_threshold)
    xy = np.where(vis[:, None], kps[:, :2], 0.0) * np.array([w, h], dtype=np.float64)
    pts = np.round(xy).astype(np.int64)

    stick = _px(4, scale)
    _limbs(canvas, xy, vis, BODY_EDGES, OPENPOSE_COLORS, stick)  # one colour per edge, in order
    if draw_feet:
        _limbs(canvas, xy, vis, FEET_EDGES, FEET_COLORS, stick)
    canvas = (canvas.astype(np.float32) * limb_dim).astype(np.uint8)

    joint_r = _px(4, scale)
    _dots(canvas, pts, vis, BODY, joint_r, lambda j: OPENPOSE_COLORS[j])
    if draw_feet:
        _dots(canvas, pts, vis, FEET, joint_r, lambda j: FEET_COLORS[j - FEET.start])
    if draw_hands:
        _hands(canvas, pts, vis, scale)
    if draw_face:
        _dots(canvas, pts, vis, FACE, _px(3, scale), FACE_POINT_COLOR)
    return canvas


def draw_pose(
    kps: Any,
    size: int | tuple[int, int],
    *,
    conf_threshold: float = VISIBILITY_THRESHOLD,
    draw_face: bool = True,
    draw_hands: bool = True,
    draw_feet: bool = False,
    limb_dim: float = 0.6,
) -> np.ndarray:
    """Render keypoints (134, 3) or (T, 134, 3) to OpenPose-style images (H, W, 3) or (T, H, W, 3) uint8.

    Points with confidence below ``conf_threshold`` (or non-finite) are not drawn, nor are limbs or
    bones touching them. ``limb_dim`` multiplies the limb layer before the joints are drawn
    (ControlNet/DWPose: 0.6; the MMGT reference used 0.9).
    """
    kps = _to_numpy(kps).astype(np.float64)
    if kps.ndim not in (2, 3) or kps.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise KeypointLayoutError(f"draw_pose: expected (134, 3) or (T, 134, 3), got {kps.shape}")
    h, w = _hw(size)
    frames = [
        _draw_frame(k, h, w, conf_threshold, draw_face, draw_hands, draw_feet, limb_dim)
        for k in kps.reshape(-1, NUM_KEYPOINTS, 3)
    ]
    out = np.stack(frames)
    return out[0] if kps.ndim == 2 else out


def overlay_keypoints(frames: np.ndarray, kps: Any, alpha: float = 1.0, **draw_kwargs: Any) -> np.ndarray:
    """Draw the skeleton of ``kps`` (T, 134, 3) over ``frames`` (T, H, W, 3) uint8 -> (T, H, W, 3) uint8.

    Skeleton pixels (non-black in :func:`draw_pose`) are blended with weight ``alpha``; others are
    unchanged. A single frame (H, W, 3) with (134, 3) keypoints also works. ``draw_kwargs`` go to
    :func:`draw_pose`.
    """
    frames = np.asarray(frames)
    h, w = frames.shape[-3:-1]
    skel = draw_pose(kps, (h, w), **draw_kwargs)
    if skel.shape != frames.shape:
        raise ValueError(f"frames {frames.shape} and rendered keypoints {skel.shape} do not match")
    mask = skel.max(-1, keepdims=True) > 0
    if alpha == 1.0:  # the same values as the blend below, without float copies of the frames
        return np.where(mask, skel, frames).astype(np.uint8)
    drawn = mask.astype(np.float32) * alpha
    out = frames.astype(np.float32) * (1.0 - drawn) + skel.astype(np.float32) * drawn
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resize_stack(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, mh, mw) float -> (N, h, w) float, bilinear (area when shrinking)."""
    if masks.shape[-2:] == (h, w):
        return masks
    interp = cv2.INTER_AREA if masks.shape[-2] >= h and masks.shape[-1] >= w else cv2.INTER_LINEAR
    return np.stack([cv2.resize(m, (w, h), interpolation=interp) for m in masks])


def overlay_masks(
    frames: np.ndarray, masks: Any, regions: Sequence[str] = MASK_REGIONS, alpha: float = 0.45
) -> np.ndarray:
    """Tint ``frames`` (T, H, W, 3) uint8 with ``masks`` (T, R, h, w) in [0, 1] -> (T, H, W, 3) uint8.

    Masks (numpy or torch) are resized to the frame size; region ``r`` blends its colour
    (``REGION_COLORS``) with weight ``alpha * mask``, regions applied in order. Pixels where every
    mask is 0 are unchanged. A single frame (H, W, 3) with masks (R, h, w) also works.
    """
    frames = np.asarray(frames)
    m = _to_numpy(masks).astype(np.float32)
    single = frames.ndim == 3
    if single:
        frames, m = frames[None], m[None]
    t, h, w = frames.shape[:3]
    if m.ndim != 4 or m.shape[0] != t or m.shape[1] != len(regions):
        raise ValueError(f"masks {m.shape} do not match frames {frames.shape} and regions {tuple(regions)}")
    out = frames.astype(np.float32)
    for r, name in enumerate(regions):
        color = np.array(REGION_COLORS.get(name, _FALLBACK_COLORS[r % len(_FALLBACK_COLORS)]), np.float32)
        weight = np.clip(_resize_stack(m[:, r], h, w), 0.0, 1.0)[..., None] * alpha
        out = out * (1.0 - weight) + color * weight
    res = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return res[0] if single else res


def mask_to_video(masks: Any) -> np.ndarray:
    """Masks (T, R, h, w) in [0, 1] -> (T, h, w * R, 3) uint8: the regions side by side in grey."""
    m = _to_numpy(masks).astype(np.float32)
    if m.ndim != 4:
        raise ValueError(f"mask_to_video: expected (T, R, h, w), got {m.shape}")
    t, r, h, w = m.shape
    grey = np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8)
    strip = grey.transpose(0, 2, 1, 3).reshape(t, h, r * w)
    return np.repeat(strip[..., None], 3, axis=-1)


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """Concatenate uint8 videos (T, H_i, W_i, 3) horizontally, each resized to the first one's height.

    Widths keep each video's aspect ratio. Single images (H, W, 3) work too (all inputs alike).
    """
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    vids = [np.asarray(v) for v in videos]
    single = vids[0].ndim == 3
    if single:
        vids = [v[None] for v in vids]
    t, h = vids[0].shape[:2]
    if any(v.shape[0] != t for v in vids):
        raise ValueError(f"videos differ in length: {[v.shape[0] for v in vids]}")
    resized = []
    for v in vids:
        if v.shape[1] != h:
            nw = max(1, int(round(v.shape[2] * h / v.shape[1])))
            v = np.stack([cv2.resize(f, (nw, h), interpolation=cv2.INTER_AREA) for f in v])
        resized.append(v)
    out = np.concatenate(resized, axis=2)
    return out[0] if single else out


def add_caption(frames: np.ndarray, text: str, color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Copy of ``frames`` (T, H, W, 3) or (H, W, 3) uint8 with ``text`` top-left on a dark backing box."""
    out = np.array(frames, dtype=np.uint8, copy=True)
    single = out.ndim == 3
    if single:
        out = out[None]
    h = out.shape[1]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, h / 640)
    thick = max(1, int(round(h / 400)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(2, int(round(h / 150)))
    for f in out:
        cv2.rectangle(f, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), thickness=-1)
        cv2.putText(f, text, (pad, pad + th), font, scale, color, thick, cv2.LINE_AA)
    return out[0] if single else out


def store_montage(store: Any, n_frames: int = 4) -> np.ndarray:
    """(H, W, 3) uint8 picture of a clip store: one row per speaker, ``n_frames`` frames of its first clip.

    Each frame is beside the same frame with the ground-truth keypoints drawn over it.
    """
    rows = []
    for speaker in store.speakers():
        clip = store.clips(speakers=[speaker])[0]
        frames = clip.video()
        idx = np.linspace(0, len(frames) - 1, n_frames).astype(int)
        drawn = overlay_keypoints(frames[idx], clip.keypoints()[idx])
        rows.append(np.concatenate(list(np.concatenate([frames[idx], drawn], axis=2)), axis=1))
    return np.concatenate(rows, axis=0)
