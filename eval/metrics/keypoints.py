"""Keypoint helpers shared by the gesture metrics (BAS, FGD, Diversity, kinetic features).

Every gesture metric works on (T, 134, 3) stored-layout keypoints (``mmgt.schema``) of a video, extracted by
one pinned pose estimator from both the generated and the reference videos; the runner loads them from
``keypoints.npy`` next to each video into :attr:`VideoSample.keypoints`.

Coordinates. Motion features use keypoints in model space (``x, y`` in [-1, 1]; ``mmgt.schema``). Points
under the confidence threshold are filled by linear interpolation over time from the frames where the joint
is visible (held at the ends); a joint never visible in a clip stays at 0 and contributes no motion. With
fully visible keypoints this is the references' computation exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgt import schema as S
from mmgt_eval.metrics.base import VideoSample, VideoSkipped

__all__ = ["JOINT_SETS", "joint_indices", "pose_xy"]

_UPPER_BODY = tuple(
    S.BODY_INDEX[n] for n in S.BODY_NAMES if "hip" not in n and "knee" not in n and "ankle" not in n
)
JOINT_SETS: dict[str, tuple[int, ...]] = {
    "upper_body": _UPPER_BODY,  # nose, neck, shoulders, elbows, wrists, eyes, ears (12)
    "arms": tuple(S.BODY_INDEX[n] for n in S.BODY_NAMES[1:8]),  # neck, shoulders, elbows, wrists (7)
    "upper_body_hands": _UPPER_BODY + tuple(S.LEFT_HAND) + tuple(S.RIGHT_HAND),  # 54
    "all": tuple(range(S.NUM_KEYPOINTS)),
}
"""Named joint sets (indices into the 134 layout) that motion features average over."""


def joint_indices(joints: str | Sequence[int]) -> tuple[int, ...]:
    """Indices of a named joint set (:data:`JOINT_SETS`) or an explicit index list."""
    if isinstance(joints, str):
        if joints not in JOINT_SETS:
            raise ValueError(f"unknown joint set {joints!r}; known: {', '.join(JOINT_SETS)}")
        return JOINT_SETS[joints]
    idx = tuple(int(i) for i in joints)
    if not idx or min(idx) < 0 or max(idx) >= S.NUM_KEYPOINTS:
        raise ValueError(f"joint indices must be non-empty and in [0, {S.NUM_KEYPOINTS}), got {idx}")
    return idx


def _check_keypoints(keypoints: Any, source: str) -> np.ndarray:
    kps = np.asarray(keypoints, dtype=np.float64)
    S.validate_keypoints(kps, source=source)
    if kps.ndim != 3:
        raise S.KeypointLayoutError(f"{source}: expected keypoints (T, 134, 3), got shape {kps.shape}")
    return kps


def pose_xy(
    keypoints: Any, joints: str | Sequence[int] = "upper_body", source: str = "keypoints"
) -> np.ndarray:
    """Model-space positions (T, J, 2) float64 of ``joints``, gaps filled over time.

    Points with confidence below ``mmgt.schema.VISIBILITY_THRESHOLD`` are linearly interpolated from the
    frames where that joint is visible (held constant before the first / after the last); a joint never
    visible is 0 throughout (no motion).
    """
    kps = _check_keypoints(keypoints, source)[:, list(joint_indices(joints))]
    xy = kps[..., :2] * 2.0 - 1.0
    vis = kps[..., 2] >= S.VISIBILITY_THRESHOLD
    t = np.arange(kps.shape[0], dtype=np.float64)
    for j in range(xy.shape[1]):
        v = vis[:, j]
        if v.all():
            continue
        if not v.any():
            xy[:, j] = 0.0
            continue
        for c in range(2):
            xy[:, j, c] = np.interp(t, t[v], xy[v, j, c])
    return xy


def _keypoints_of(sample: VideoSample, metric: str) -> np.ndarray:
    if sample.keypoints is None:
        raise VideoSkipped(sample.name, sample.missing_keypoints(metric))
    return _check_keypoints(sample.keypoints, f"{sample.name} keypoints")
