"""mmgt.render: OpenPose-style pose drawing, overlays and quick-look helpers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmgt import schema as S
from mmgt.masks import motion_masks
from mmgt.render import (
    REGION_COLORS,
    add_caption,
    draw_pose,
    mask_to_video,
    overlay_keypoints,
    overlay_masks,
    side_by_side,
)
from tests.helpers.poses import BODY_XY, make_pose


def lit(img: np.ndarray, x: float, y: float, r: int = 1) -> bool:
    """Any non-black pixel within ``r`` pixels of the frame-relative point (x, y)."""
    h, w = img.shape[:2]
    cx, cy = int(x * w), int(y * h)
    return bool(img[max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1].any())


def midpoint(a: str, b: str) -> tuple[float, float]:
    (xa, ya), (xb, yb) = BODY_XY[a], BODY_XY[b]
    return (xa + xb) / 2, (ya + yb) / 2


@pytest.fixture
def pose() -> np.ndarray:
    return make_pose(T=1, motion=0.0)[0]


def test_limbs_drawn_and_background_black(pose: np.ndarray) -> None:
    img = draw_pose(pose, 256)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    for a, b in [("neck", "right_shoulder"), ("neck", "left_shoulder"), ("right_shoulder", "right_elbow")]:
        assert lit(img, *midpoint(a, b)), (a, b)
    for x, y in [(0.05, 0.05), (0.95, 0.05), (0.9, 0.9), (0.1, 0.6)]:
        assert not lit(img, x, y, r=3), (x, y)
    # limb colours: the neck->right-shoulder limb is OpenPose red dimmed by 0.6
    mx, my = midpoint("neck", "right_shoulder")
    assert tuple(img[int(my * 256), int(mx * 256)]) == (153, 0, 0)
    # face dots are white
    nose_area = img[60:95, 100:156].reshape(-1, 3)
    assert (nose_area == 255).all(-1).any()


def test_size_scaling(pose: np.ndarray) -> None:
    small = draw_pose(pose, 256).any(-1).sum()
    large = draw_pose(pose, 512).any(-1).sum()
    assert 3.0 < large / small < 5.0
    rect = draw_pose(pose, (200, 300))
    assert rect.shape == (200, 300, 3) and rect.any()
    assert draw_pose(pose, 32).any()  # widths never drop below 1 px


def test_invisible_joints_not_drawn(pose: np.ndarray) -> None:
    wx, wy = BODY_XY["right_wrist"]
    assert lit(draw_pose(pose, 256), wx, wy, r=4)
    hidden = pose.copy()
    hidden[S.BODY_INDEX["right_wrist"], 2] = 0.0
    hidden[S.RIGHT_HAND, 2] = 0.2  # below the visibility threshold
    img = draw_pose(hidden, 256)
    assert not lit(img, wx, wy, r=4)
    assert lit(img, *BODY_XY["right_elbow"], r=2)  # the elbow dot is still there
    # legs (confidence 0 in the helper) are not drawn: nothing below the hips
    assert not img[int(0.9 * 256) :].any()
    no_face_hands = draw_pose(pose, 256, draw_face=False, draw_hands=False)
    assert no_face_hands.any(-1).sum() < draw_pose(pose, 256).any(-1).sum()


def test_batch_and_determinism() -> None:
    kps = make_pose(T=4)
    vid = draw_pose(kps, 128)
    assert vid.shape == (4, 128, 128, 3)
    for t in range(4):
        np.testing.assert_array_equal(vid[t], draw_pose(kps[t], 128))
    np.testing.assert_array_equal(vid, draw_pose(kps, 128))
    np.testing.assert_array_equal(vid, draw_pose(torch.from_numpy(kps), 128))
    assert not np.array_equal(vid[0], vid[2])  # the pose moves
    with pytest.raises(S.KeypointLayoutError):
        draw_pose(np.zeros((4, 133, 3)), 64)


def test_overlay_masks_tints_inside_only() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 3, 32, 32), dtype=np.float32)
    masks[:, 0, 8:24, 8:24] = 1.0
    out = overlay_masks(frames, masks, alpha=0.45)
    assert out.shape == frames.shape and out.dtype == np.uint8
    green = np.array(REGION_COLORS["face_hands"], np.float32)
    inside = frames[:, 24:40, 24:40].astype(np.float32)
    expected = np.rint(inside * 0.55 + green * 0.45).astype(np.uint8)
    np.testing.assert_array_equal(out[:, 24:40, 24:40], expected)
    np.testing.assert_array_equal(out[:, 52:, :], frames[:, 52:, :])
    np.testing.assert_array_equal(out[:, :, 52:], frames[:, :, 52:])
    np.testing.assert_array_equal(overlay_masks(frames, masks, alpha=0.0), frames)
    np.testing.assert_array_equal(overlay_masks(frames, torch.from_numpy(masks)), out)
    with pytest.raises(ValueError):
        overlay_masks(frames, masks[:, :2])


def test_helpers_shapes() -> None:
    kps = make_pose(T=3)
    frames = np.full((3, 96, 96, 3), 40, np.uint8)
    over = overlay_keypoints(frames, kps)
    assert over.shape == frames.shape and (over != 40).any()
    np.testing.assert_array_equal(overlay_keypoints(frames, kps, alpha=0.0), frames)
    m = motion_masks(kps, 32)
    strips = mask_to_video(m)
    assert strips.shape == (3, 32, 32 * 3, 3) and strips.dtype == np.uint8
    np.testing.assert_array_equal(strips[..., 32:64, 0], np.rint(m[:, 1].numpy() * 255).astype(np.uint8))
    sbs = side_by_side(frames, strips)
    assert sbs.shape == (3, 96, 96 + 96 * 3, 3)
    with pytest.raises(ValueError):
        side_by_side(frames, frames[:2])
    cap = add_caption(frames, "test")
    assert cap.shape == frames.shape and not np.array_equal(cap, frames)
    np.testing.assert_array_equal(cap[:, 60:], frames[:, 60:])  # only the top-left corner changes
    assert (frames == 40).all()  # input untouched


def test_save_png(tmp_path: Path) -> None:
    kps = make_pose(T=1)
    pose_img = draw_pose(kps, 256)
    over = overlay_masks(pose_img, motion_masks(kps, 64))
    img = side_by_side(pose_img, over)[0]
    path = tmp_path / "pose.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    back = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert back is not None and back.shape == (256, 512, 3)
    np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), img)
