"""Synthetic keypoints in the stored COCO-WholeBody-134 layout for tests (no detector needed)."""

from __future__ import annotations

import numpy as np

from mmgt import schema as S

# Upper body facing the camera; the person's right side is on the image left. x, y in [0, 1].
BODY_XY: dict[str, tuple[float, float]] = {
    "nose": (0.50, 0.30),
    "neck": (0.50, 0.46),
    "right_shoulder": (0.38, 0.47),
    "right_elbow": (0.32, 0.62),
    "right_wrist": (0.38, 0.75),
    "left_shoulder": (0.62, 0.47),
    "left_elbow": (0.68, 0.62),
    "left_wrist": (0.62, 0.75),
    "right_hip": (0.43, 0.88),
    "left_hip": (0.57, 0.88),
    "right_eye": (0.475, 0.28),
    "left_eye": (0.525, 0.28),
    "right_ear": (0.44, 0.295),
    "left_ear": (0.56, 0.295),
}
FACE_CENTRE = (0.50, 0.30)
FACE_RADII = (0.065, 0.085)


def _loop(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
    """``n`` points on a closed ellipse, starting at its left end."""
    t = np.linspace(np.pi, 3 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=-1)


def face_points(cx: float = FACE_CENTRE[0], cy: float = FACE_CENTRE[1]) -> np.ndarray:
    """The 68 iBUG points (68, 2) of a frontal face centred on (cx, cy)."""
    rx, ry = FACE_RADII
    t = np.linspace(0.0, np.pi, 17)  # jaw: left end -> chin -> right end (y down)
    jaw = np.stack([cx - rx * np.cos(t), cy + ry * np.sin(t)], axis=-1)
    brow_r = np.stack([np.linspace(cx - 0.8 * rx, cx - 0.2 * rx, 5), np.full(5, cy - 0.55 * ry)], -1)
    brow_l = np.stack([np.linspace(cx + 0.2 * rx, cx + 0.8 * rx, 5), np.full(5, cy - 0.55 * ry)], -1)
    nose_bridge = np.stack([np.full(4, cx), np.linspace(cy - 0.4 * ry, cy + 0.1 * ry, 4)], -1)
    nose_base = np.stack([np.linspace(cx - 0.2 * rx, cx + 0.2 * rx, 5), np.full(5, cy + 0.2 * ry)], -1)
    eye_r = _loop(cx - 0.4 * rx, cy - 0.3 * ry, 0.18 * rx, 0.06 * ry, 6)
    eye_l = _loop(cx + 0.4 * rx, cy - 0.3 * ry, 0.18 * rx, 0.06 * ry, 6)
    mouth_c = (cx, cy + 0.55 * ry)
    outer = _loop(*mouth_c, 0.35 * rx, 0.14 * ry, 12)
    inner = _loop(*mouth_c, 0.25 * rx, 0.06 * ry, 8)
    pts = np.concatenate([jaw, brow_r, brow_l, nose_bridge, nose_base, eye_r, eye_l, outer, inner])
    assert pts.shape == (68, 2)
    return pts


def hand_points(wrist: tuple[float, float], direction: float, scale: float = 0.02) -> np.ndarray:
    """21 hand points (21, 2): wrist, then 5 fingers of 4 joints fanned around ``direction`` (radians)."""
    pts = [np.asarray(wrist, dtype=np.float64)]
    for f, spread in enumerate(np.linspace(-0.7, 0.7, 5)):
        ang = direction + spread
        step = np.array([np.cos(ang), np.sin(ang)]) * scale * (0.8 if f == 0 else 1.0)
        base = pts[0] + step * 1.5
        pts.extend(base + step * j for j in range(4))
    return np.stack(pts)


def make_pose(T: int = 10, seed: int = 0, motion: float = 0.01) -> np.ndarray:
    """A plausible talking upper body (T, 134, 3) float32 in the stored layout.

    Body, face and both hands have confidence 1; knees, ankles and feet confidence 0 (out of frame).
    Head and hands sway smoothly (amplitude ``motion``) with a small seeded jitter.
    """
    rng = np.random.default_rng(seed)
    kps = np.zeros((T, S.NUM_KEYPOINTS, 3), dtype=np.float32)
    phase = np.linspace(0.0, 2.0 * np.pi, T, endpoint=False) + rng.uniform(0, 2 * np.pi)
    for t in range(T):
        head = np.array([np.sin(phase[t]), 0.5 * np.cos(phase[t])]) * motion * 0.5
        rhand = np.array([np.cos(phase[t]), np.sin(2 * phase[t])]) * motion * 2
        lhand = np.array([-np.sin(phase[t]), np.cos(2 * phase[t])]) * motion * 2
        jitter = rng.normal(0.0, motion * 0.05, size=(S.NUM_KEYPOINTS, 2))
        for name, xy in BODY_XY.items():
            off = np.zeros(2)
            if name in ("nose", "right_eye", "left_eye", "right_ear", "left_ear"):
                off = head
            elif name == "right_wrist":
                off = rhand
            elif name == "left_wrist":
                off = lhand
            elif name in ("right_elbow", "left_elbow"):
                off = (rhand if name.startswith("right") else lhand) * 0.5
            kps[t, S.BODY_INDEX[name], :2] = np.asarray(xy) + off
            kps[t, S.BODY_INDEX[name], 2] = 1.0
        kps[t, S.FACE, :2] = face_points(FACE_CENTRE[0] + head[0], FACE_CENTRE[1] + head[1])
        rw = kps[t, S.BODY_INDEX["right_wrist"], :2]
        lw = kps[t, S.BODY_INDEX["left_wrist"], :2]
        kps[t, S.LEFT_HAND, :2] = hand_points(tuple(lw), direction=-np.pi / 2 - 0.3)
        kps[t, S.RIGHT_HAND, :2] = hand_points(tuple(rw), direction=-np.pi / 2 + 0.3)
        kps[t, S.FACE, 2] = 1.0
        kps[t, S.LEFT_HAND, 2] = 1.0
        kps[t, S.RIGHT_HAND, 2] = 1.0
        kps[t, :, :2] += jitter
    for i in S.LEG_INDICES:
        kps[:, i] = (0.5, 1.1, 0.0)
    kps[:, S.FEET] = (0.5, 1.2, 0.0)
    return kps


def box_pose(
    box: tuple[float, float, float, float], region: range = S.FACE, T: int = 1, seed: int = 0
) -> np.ndarray:
    """(T, 134, 3) with only ``region``'s points visible, spread over ``box`` (x0, y0, x1, y1)."""
    rng = np.random.default_rng(seed)
    kps = np.zeros((T, S.NUM_KEYPOINTS, 3), dtype=np.float32)
    x0, y0, x1, y1 = box
    idx = np.asarray(region)
    pts = rng.uniform([x0, y0], [x1, y1], size=(T, len(idx), 2))
    pts[:, :4] = [[x0, y0], [x1, y0], [x0, y1], [x1, y1]]
    kps[:, idx, :2] = pts
    kps[:, idx, 2] = 1.0
    return kps
