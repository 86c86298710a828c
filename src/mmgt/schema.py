"""Data contracts shared by every part of MMGT: constants, keypoint layout, tensor conventions.

This module is the single source of truth for frame rate, sample rate, keypoint layout and the
conversions between stored and model-side keypoints. It imports numpy only (torch tensors are
accepted wherever arrays are, through duck typing), so every package may import it.

Tensor conventions (used throughout the code base and documented only here):

======================  ===================  ===============================================
what                    shape                values
======================  ===================  ===============================================
video on disk           (T, H, W, 3) uint8   RGB, 25 fps, square S x S
video in models         (B, T, C, H, W)      float in [-1, 1]
audio                   (N,) float32         mono, 16 kHz, in [-1, 1]
stored keypoints        (T, 134, 3) float32  x, y in [0, 1] of the frame (x right, y down),
                                             confidence in [0, 1]; 0 = not detected
model-space keypoints   (..., 134, 3)        x, y in [-1, 1], visibility in {0, 1}
motion masks            (T, R, h, w) float   [0, 1]; R follows ``MASK_REGIONS`` order
audio features          (T, ...) float32     at 25 fps, one row per video frame
======================  ===================  ===============================================

Keypoints follow COCO-WholeBody-134 in the DWPose order MMGT uses: 0-17 body in OpenPose-18 order
(neck = mean of the shoulders), 18-23 feet, 24-91 face (iBUG-68; 72-91 lips), 92-112 left hand,
113-133 right hand (21 points each: wrist, then thumb, index, middle, ring, pinky from base to tip).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# --------------------------------------------------------------------------- time base
FPS: int = 25
"""Video frame rate of every clip, model and output."""
SAMPLE_RATE: int = 16_000
"""Audio sample rate of every clip, feature extractor and output."""
SAMPLES_PER_FRAME: int = SAMPLE_RATE // FPS
"""Audio samples per video frame (640)."""
AUDIO_MARGIN: int = 2
"""Stage II's default audio context: each frame sees the features of frames t-2 .. t+2 (the original's)."""


def num_frames_for_samples(n_samples: int) -> int:
    """Number of video frames covering ``n_samples`` audio samples: round(duration x FPS)."""
    return int(round(n_samples / SAMPLES_PER_FRAME))


# --------------------------------------------------------------------------- keypoint layout
NUM_KEYPOINTS: int = 134
KEYPOINT_DIMS: int = 3  # x, y, confidence

BODY_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
FEET_NAMES: tuple[str, ...] = (
    "left_big_toe", "left_small_toe", "left_heel",
    "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
HAND_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}_{joint}" for finger in ("thumb", "index", "middle", "ring", "pinky") for joint in (1, 2, 3, 4)
)

BODY = range(0, 18)
FEET = range(18, 24)
FACE = range(24, 92)
LIPS = range(72, 92)
LEFT_HAND = range(92, 113)
RIGHT_HAND = range(113, 134)

FACE_OFFSET: int = FACE.start
"""Index of iBUG-68 point 0 in the 134 layout: iBUG point ``i`` is keypoint ``FACE_OFFSET + i``."""

# iBUG-68 sub-parts, as indices into the 134 layout.
FACE_JAW = range(FACE_OFFSET + 0, FACE_OFFSET + 17)
FACE_RIGHT_BROW = range(FACE_OFFSET + 17, FACE_OFFSET + 22)
FACE_LEFT_BROW = range(FACE_OFFSET + 22, FACE_OFFSET + 27)
FACE_NOSE = range(FACE_OFFSET + 27, FACE_OFFSET + 36)
FACE_RIGHT_EYE = range(FACE_OFFSET + 36, FACE_OFFSET + 42)
FACE_LEFT_EYE = range(FACE_OFFSET + 42, FACE_OFFSET + 48)
FACE_OUTER_LIPS = range(FACE_OFFSET + 48, FACE_OFFSET + 60)
FACE_INNER_LIPS = range(FACE_OFFSET + 60, FACE_OFFSET + 68)
LIP_TOP_INNER: int = FACE_OFFSET + 62
"""iBUG 62: middle of the upper inner lip."""
LIP_BOTTOM_INNER: int = FACE_OFFSET + 66
"""iBUG 66: middle of the lower inner lip; lip opening = distance(62, 66)."""

REGIONS: dict[str, tuple[int, ...]] = {
    "body": tuple(BODY),
    "feet": tuple(FEET),
    "face": tuple(FACE),
    "lips": tuple(LIPS),
    "left_hand": tuple(LEFT_HAND),
    "right_hand": tuple(RIGHT_HAND),
    "hands": tuple(LEFT_HAND) + tuple(RIGHT_HAND),
}
"""Named index sets into the 134 layout (the one place regions are defined)."""

BODY_INDEX: dict[str, int] = {name: i for i, name in enumerate(BODY_NAMES)}
LEG_INDICES: tuple[int, ...] = tuple(
    BODY_INDEX[n] for n in ("right_knee", "right_ankle", "left_knee", "left_ankle")
)
"""Knees and ankles: out of frame in upper-body video (the reference's ``mask_leg``)."""


def _names() -> tuple[str, ...]:
    face = tuple(f"face_{i}" for i in range(68))
    left = tuple(f"left_hand_{n}" for n in HAND_NAMES)
    right = tuple(f"right_hand_{n}" for n in HAND_NAMES)
    return BODY_NAMES + FEET_NAMES + face + left + right


KEYPOINT_NAMES: tuple[str, ...] = _names()
assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS

# --------------------------------------------------------------------------- skeleton edges
BODY_EDGES: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
"""The 17 OpenPose limbs, in OpenPose's drawing (and colour) order."""
FEET_EDGES: tuple[tuple[int, int], ...] = ((13, 18), (13, 19), (13, 20), (10, 21), (10, 22), (10, 23))
HAND_EDGES: tuple[tuple[int, int], ...] = tuple(
    (0 if j == 0 else 1 + 4 * f + j - 1, 1 + 4 * f + j) for f in range(5) for j in range(4)
)
"""The 20 hand bones, local indices 0-20 (add ``LEFT_HAND.start`` or ``RIGHT_HAND.start``)."""
LEFT_HAND_EDGES = tuple((a + LEFT_HAND.start, b + LEFT_HAND.start) for a, b in HAND_EDGES)
RIGHT_HAND_EDGES = tuple((a + RIGHT_HAND.start, b + RIGHT_HAND.start) for a, b in HAND_EDGES)
SKELETON_EDGES: tuple[tuple[int, int], ...] = BODY_EDGES + FEET_EDGES + LEFT_HAND_EDGES + RIGHT_HAND_EDGES

# --------------------------------------------------------------------------- motion-mask regions
MASK_REGIONS: tuple[str, ...] = ("face_hands", "lips", "hands")
"""Default motion-mask regions, in channel order. ``background`` is the complement of ``face_hands``."""
MASK_REGION_KEYPOINTS: dict[str, tuple[tuple[int, ...], ...]] = {
    # each region is a union of boxes, one box per index set
    "face_hands": (REGIONS["face"], REGIONS["left_hand"], REGIONS["right_hand"]),
    "face": (REGIONS["face"],),
    "lips": (REGIONS["lips"],),
    "hands": (REGIONS["left_hand"], REGIONS["right_hand"]),
}
"""Keypoint groups whose boxes make up each motion-mask region (``background`` is derived)."""

VISIBILITY_THRESHOLD: float = 0.3
"""Confidence at or above which a keypoint counts as visible (the reference's score threshold)."""


# --------------------------------------------------------------------------- validation & conversion
class KeypointLayoutError(ValueError):
    """Raised when an array does not follow the (T, 134, 3) keypoint layout."""


def validate_keypoints(kps: Any, source: str = "keypoints") -> None:
    """Raise :class:`KeypointLayoutError` (naming ``source``) unless ``kps`` is (..., 134, 3) and finite."""
    shape = tuple(kps.shape)
    if len(shape) < 2 or shape[-2:] != (NUM_KEYPOINTS, KEYPOINT_DIMS):
        raise KeypointLayoutError(
            f"{source}: expected keypoints of shape (T, {NUM_KEYPOINTS}, {KEYPOINT_DIMS}) in the "
            f"COCO-WholeBody-134 layout (x, y, confidence), got shape {shape}"
        )
    arr = np.asarray(kps.detach().cpu() if hasattr(kps, "detach") else kps)
    if not np.isfinite(arr).all():
        raise KeypointLayoutError(f"{source}: keypoints contain NaN or inf")


def to_model_space(kps: Any) -> Any:
    """Stored keypoints (..., 134, 3) [x, y in [0,1], conf] -> model space [x, y in [-1,1], visibility].

    Invisible points (confidence below ``VISIBILITY_THRESHOLD``) get x = y = 0 so that they carry no
    position information. Works on numpy arrays and torch tensors alike.
    """
    vis = (kps[..., 2:3] >= VISIBILITY_THRESHOLD) * 1.0
    xy = (kps[..., :2] * 2.0 - 1.0) * vis
    return _cat_last(xy, vis, like=kps)


def from_model_space(model_kps: Any) -> Any:
    """Model space (..., 134, 3) -> stored keypoints; visibility becomes confidence clipped to [0, 1]."""
    xy = (model_kps[..., :2] + 1.0) * 0.5
    conf = model_kps[..., 2:3].clip(0.0, 1.0)
    return _cat_last(xy, conf, like=model_kps)


REFERENCE_CANVAS: int = 512
"""Pixel canvas of the original MMGT 402-d keypoint normalisation."""


def to_reference_402(kps: Any, canvas: int = REFERENCE_CANVAS) -> Any:
    """Stored keypoints (T, 134, 3) -> the original MMGT (T, 402) form: v' = 2 (v + 200) / 1000 - 1.

    x and y are first scaled to pixels of a ``canvas`` x ``canvas`` frame; as in the original, the
    normalisation is also applied to the confidence scores (reference-compatibility only).
    """
    px = _cat_last(kps[..., :2] * canvas, kps[..., 2:3], like=kps)
    flat = px.reshape(*px.shape[:-2], NUM_KEYPOINTS * KEYPOINT_DIMS)
    return 2.0 * (flat + 200.0) / 1000.0 - 1.0


def from_reference_402(vec: Any, canvas: int = REFERENCE_CANVAS) -> Any:
    """Inverse of :func:`to_reference_402`: (T, 402) -> stored keypoints (T, 134, 3)."""
    px = (vec + 1.0) * 1000.0 / 2.0 - 200.0
    px = px.reshape(*px.shape[:-1], NUM_KEYPOINTS, KEYPOINT_DIMS)
    return _cat_last(px[..., :2] / canvas, px[..., 2:3], like=vec)


def _cat_last(a: Any, b: Any, like: Any) -> Any:
    if isinstance(like, np.ndarray):
        return np.concatenate([a, b], axis=-1).astype(like.dtype, copy=False)
    import torch  # local import: schema stays importable without torch initialisation cost

    return torch.cat([a, b], dim=-1).to(like.dtype)


def lip_opening(kps: Any) -> Any:
    """Inner-lip opening (T,) from stored keypoints: distance between iBUG points 62 and 66 (frame units)."""
    d = kps[..., LIP_BOTTOM_INNER, :2] - kps[..., LIP_TOP_INNER, :2]
    return (d**2).sum(-1) ** 0.5
