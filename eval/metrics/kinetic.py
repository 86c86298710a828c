"""Per-clip kinetic features (Bailando / fairmotion): as Bailando computes them, and a corrected version.

Both give, per joint (joint-major: ``3 j .. 3 j + 2``), the mean horizontal kinetic energy, the mean vertical
kinetic energy and the mean "energy expenditure", from velocities / accelerations averaged over a
+-``sliding_window`` frame window (windows truncated at the clip ends), for frames ``i = 1 .. T-1``, each sum
divided by ``T - 1``. They differ in the third feature and in the frame time:

* :func:`bailando_kinetic_features` is ``lisiyao21/Bailando@cc90b98 utils/features/kinetic.py`` +
  ``utils/features/utils.py`` **as written**, quirks included (``../shared/fixtures/metrics_reference``
  README §1; these quirks make our numbers comparable with tables computed with Bailando's code):

  1. *operator precedence* in ``calc_average_acceleration``: ``v1 = p[k] - p[k-1] / frame_time`` divides
     only the second position, so the per-window "acceleration" is
     ``a_k = ((p[k+1] - p[k]) / ft - (p[k] - p[k-1] / ft)) / ft``, not a second difference; the energy
     term depends on absolute position (translation changes it) and is not homogeneous in ``ft``;
  2. *fixed frame time*: ``extract_kinetic_features`` always uses ``1/60`` s (AIST++ is 60 fps), whatever the
     data rate (:data:`BAILANDO_FRAME_TIME`);
  3. *float32*: ``extract_kinetic_features`` returns float32 (the callers in
     :mod:`mmgt_eval.metrics.diversity` cast; this function returns the float64 values before that cast);
  4. 3-D positions with ``up_vec="y"``: horizontal = (x, z), vertical = y. Our 2-D keypoints are handed over
     as (x, y, 0) in model space (:func:`bailando_positions`).

  Bailando's ``calc_and_save_feats`` also truncates to 1200 frames and subtracts the frame-0 position of the
  SMPL root before extracting; 2-D upper-body keypoints have no such root, so that step is not applied (as in
  the fixture). It reproduces the fixture's features bit for bit.
* :func:`kinetic_features` is the corrected definition: the true second difference
  ``(p[k+1] - 2 p[k] + p[k-1]) / ft^2``, frame time ``1 / fps``, float64, 2-D (horizontal x, vertical y).
  Its kinetic energies equal Bailando's at the same frame time; its energy term is translation-invariant and
  scales as 1 / ft^2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmgt import schema as S
from mmgt_eval.metrics.base import MetricInputError
from mmgt_eval.metrics.keypoints import pose_xy

__all__ = [
    "BAILANDO_FRAME_TIME",
    "bailando_kinetic_features",
    "bailando_positions",
    "kinetic_features",
]

BAILANDO_FRAME_TIME = 1 / 60
"""``KineticFeatures``' default frame time, which ``extract_kinetic_features`` never changes."""


def bailando_positions(keypoints: Any, joints: str | Sequence[int] = "upper_body") -> np.ndarray:
    """(T, J, 3) float64 positions as handed to Bailando: model-space (2x - 1, 2y - 1) and z = 0.

    ``keypoints`` (T, 134, 3) stored layout; invisible points are interpolated over time (:func:`pose_xy`).
    """
    xy = pose_xy(keypoints, joints)
    return np.concatenate([xy, np.zeros((*xy.shape[:2], 1))], axis=-1)


def _window_sum(
    values: np.ndarray, first: int, last: int, n_frames: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame i = 1 .. T-1: sum and count of values[k - first], k = i + j, |j| <= w, first <= k <= last.

    Added in j order as the reference loop adds them (adding 0 for the invalid ones is exact).
    """
    i = np.arange(1, n_frames)
    total = np.zeros((n_frames - 1, *values.shape[1:]))
    count = np.zeros(n_frames - 1)
    for j in range(-window, window + 1):
        k = i + j
        ok = (k >= first) & (k <= last)
        total = total + np.where(ok[:, None, None], values[np.clip(k, first, last) - first], 0.0)
        count += ok
    return total, count[:, None, None]


def _mean_over_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Sequential sum over frames (the reference's ``+=`` order) divided by T - 1."""
    return np.cumsum(x, axis=0)[-1] / (n_frames - 1.0)


def bailando_kinetic_features(
    positions: Any, frame_time: float = BAILANDO_FRAME_TIME, sliding_window: int = 2
) -> np.ndarray:
    """Bailando's ``extract_kinetic_features`` (3 J,) float64, before its float32 cast; ``up_vec="y"``.

    Args:
        positions: (T, J, 3) float positions (x, y up, z), e.g. :func:`bailando_positions`.
        frame_time: seconds per frame; Bailando always uses 1/60 (quirk 2 of the module docstring).
        sliding_window: half-width of the averaging window (Bailando: 2).

    T = 2 has no acceleration window: Bailando returns NaN there; this raises instead. Needs T >= 3.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise MetricInputError(f"Bailando kinetic features need (T, J, 3) positions, got shape {p.shape}")
    n = p.shape[0]
    if n < 3:
        raise MetricInputError(f"kinetic features need at least 3 frames, got {n}")
    ft, w = float(frame_time), int(sliding_window)
    step = p[1:] - p[:-1]  # step[k - 1] = p[k] - p[k-1], k = 1 .. T-1
    total, count = _window_sum(step, 1, n - 1, n, w)  # k = i + j with k - 1 >= 0 and k <= T-1
    ke_h = _mean_over_frames(np.linalg.norm(total[..., [0, 2]] / (count * ft), axis=-1) ** 2, n)
    ke_v = _mean_over_frames(np.linalg.norm(total[..., [1]] / (count * ft), axis=-1) ** 2, n)
    k = np.arange(1, n - 1)
    v2 = (p[k + 1] - p[k]) / ft
    v1 = p[k] - p[k - 1] / ft  # the reference's precedence (quirk 1)
    total, count = _window_sum((v2 - v1) / ft, 1, n - 2, n, w)  # k - 1 >= 0 and k + 1 <= T-1
    energy = _mean_over_frames(np.linalg.norm(total / count, axis=-1), n)
    return np.stack([ke_h, ke_v, energy], axis=1).reshape(-1)


def kinetic_features(
    keypoints: Any, fps: float = S.FPS, joints: str | Sequence[int] = "upper_body", sliding_window: int = 2
) -> np.ndarray:
    """Corrected kinetic features (3 J,) float64 of one clip (2-D: horizontal = x, vertical = y).

    Velocities and kinetic energies as Bailando's at frame time ``1 / fps``; the energy expenditure is the
    mean norm of the window-averaged true second difference ``(p[k+1] - 2 p[k] + p[k-1]) / ft^2``. Needs
    T >= 3.
    """
    p = pose_xy(keypoints, joints)
    n = p.shape[0]
    if n < 3:
        raise MetricInputError(f"kinetic features need at least 3 frames, got {n}")
    ft = 1.0 / fps
    total, count = _window_sum(p[1:] - p[:-1], 1, n - 1, n, sliding_window)
    vel = total / (count * ft)
    total, count = _window_sum((p[2:] - 2 * p[1:-1] + p[:-2]) / ft**2, 1, n - 2, n, sliding_window)
    acc = total / count
    ke_h = (vel[..., 0] ** 2).mean(axis=0)
    ke_v = (vel[..., 1] ** 2).mean(axis=0)
    energy = np.linalg.norm(acc, axis=-1).mean(axis=0)
    return np.stack([ke_h, ke_v, energy], axis=1).reshape(-1)
