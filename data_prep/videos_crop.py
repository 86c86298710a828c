"""Frames of ``mmgt-prep source=videos``: the 25 fps time base, the square crop and the resize.

Time base
    Output frame ``k`` shows the source frame whose timestamp is nearest to ``k / 25`` s (ties: the
    earlier frame); a source with last frame at ``t`` lasting ``1/fps`` gives ``round((t + 1/fps) x 25)``
    frames (:func:`resample_frames`).

Crops are per source: ``center`` and ``left_ratio`` (:func:`fixed_crop`) from the frame size, ``person``
(:func:`person_crop`) from keypoints detected on a few sample frames; then resized to S x S
(:func:`crop_resize`, cv2.INTER_AREA).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmgt.io import MediaError
from mmgt.schema import FPS

PERSON_CONFIDENCE = 0.5
"""Keypoints at or above this confidence place the ``person`` crop."""


def resample_frames(
    frames: Iterator[tuple[float, np.ndarray]], src_fps: float, fps: int = FPS
) -> Iterator[tuple[int, np.ndarray]]:
    """(seconds, frame) in presentation order -> (k, frame) with frame k = the one nearest to ``k / fps``.

    Ties go to the earlier frame. After the last source frame (at ``t``, lasting ``1 / src_fps``) the
    output stops at ``round((t + 1/src_fps) x fps)`` frames (at least one).
    """
    k = 0
    prev: tuple[float, np.ndarray] | None = None
    for t, img in frames:
        while k / fps <= t:
            tk = k / fps
            use_prev = prev is not None and tk - prev[0] <= t - tk
            yield k, (prev[1] if use_prev and prev is not None else img)
            k += 1
        prev = (t, img)
    if prev is None:
        return
    n_total = max(int(round((prev[0] + 1.0 / src_fps) * fps)), 1)
    while k < n_total:
        yield k, prev[1]
        k += 1


@dataclass(frozen=True)
class CropBox:
    """A square crop ``[y0:y0+side, x0:x0+side]`` of a source frame, in pixels."""

    x0: int
    y0: int
    side: int

    def as_list(self) -> list[int]:
        """``[x0, y0, side]``."""
        return [self.x0, self.y0, self.side]


def _fit_square(cx: float, cy: float, side: float, width: int, height: int) -> CropBox:
    side_i = int(min(max(round(side), 2), width, height))
    x0 = int(min(max(round(cx - side_i / 2), 0), width - side_i))
    y0 = int(min(max(round(cy - side_i / 2), 0), height - side_i))
    return CropBox(x0, y0, side_i)


def fixed_crop(mode: str, width: int, height: int, ratio: float | str | None = None) -> CropBox:
    """The fixed square crop of side min(W, H) of a ``width`` x ``height`` frame for ``mode``.

    ``center``: the centred square. ``left_ratio``: left edge at ``ratio x W`` (``"right"``: right-aligned),
    vertically centred; without a ratio it falls back to ``center``.
    """
    side = min(width, height)
    if mode == "left_ratio" and ratio is not None:
        x0 = width - side if ratio == "right" else min(int(round(float(ratio) * width)), width - side)
        return CropBox(x0, (height - side) // 2, side)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def person_crop(keypoints: list[np.ndarray], width: int, height: int, scale: float) -> CropBox | None:
    """Square around every keypoint (conf >= PERSON_CONFIDENCE) of frames (134, 3) in full-frame coordinates.

    Side = ``scale`` x the box's larger side; None when no keypoint qualifies.
    """
    pts = [k[k[:, 2] >= PERSON_CONFIDENCE, :2] for k in keypoints]
    pts = [p for p in pts if len(p)]
    if not pts:
        return None
    xy = np.concatenate(pts) * np.array([width, height], dtype=np.float64)
    (x_lo, y_lo), (x_hi, y_hi) = xy.min(0), xy.max(0)
    side = scale * max(x_hi - x_lo, y_hi - y_lo, 1.0)
    return _fit_square((x_lo + x_hi) / 2, (y_lo + y_hi) / 2, side, width, height)


def crop_resize(frame: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: the box, area-resized (cv2.INTER_AREA)."""
    import cv2

    crop = frame[box.y0 : box.y0 + box.side, box.x0 : box.x0 + box.side]
    if crop.shape[0] == size and crop.shape[1] == size:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8) if path.stat().st_size else np.zeros(0, np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise MediaError(f"{path}: cannot decode the image (empty, corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


__all__ = ["PERSON_CONFIDENCE", "CropBox", "crop_resize", "fixed_crop", "person_crop", "resample_frames"]
