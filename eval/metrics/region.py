"""Region-restricted reconstruction error: PSNR / MSE inside a keypoint-defined box (e.g. the mouth).

Definition (this project's): for every frame, the box of the reference's keypoints of a region
(:data:`mmgt.schema.REGIONS`, default ``lips``) with confidence >= :data:`mmgt.schema.VISIBILITY_THRESHOLD`,
expanded by ``expand`` times its size around its centre, at least ``min_size`` (fraction of the frame side)
wide and high, clipped to the frame; MSE of generated vs reference RGB in [0, 1] over the box pixels;
per video the mean over frames with a box; PSNR = 10 log10(1 / MSE) of the *video's* MSE (capped at
``max_db``); reported as means over videos. Frames whose region is invisible are left out; a video with
no such frame is skipped (declared).

It isolates what audio conditioning should change - the mouth - from the rest of the frame, which the
pose and the reference image already determine.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchmetrics
from torch import Tensor

from mmgt.schema import REGIONS, VISIBILITY_THRESHOLD
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
)


def region_boxes(
    keypoints: np.ndarray,
    height: int,
    width: int,
    region: str = "lips",
    expand: float = 1.5,
    min_size: float = 0.05,
) -> list[tuple[int, int, int, int] | None]:
    """Per-frame pixel boxes (y0, y1, x0, x1) of a region of (T, 134, 3) keypoints; None where invisible."""
    if region not in REGIONS:
        raise ValueError(f"region: unknown region {region!r}; known: {', '.join(REGIONS)}")
    idx = list(REGIONS[region])
    boxes: list[tuple[int, int, int, int] | None] = []
    for frame in np.asarray(keypoints, dtype=np.float64)[:, idx]:
        pts = frame[frame[:, 2] >= VISIBILITY_THRESHOLD, :2]
        if len(pts) == 0:
            boxes.append(None)
            continue
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w = max((x1 - x0) * expand, min_size) / 2
        half_h = max((y1 - y0) * expand, min_size) / 2
        eps = 1e-3  # pixel edges: whole pixels touched by the box, robust to float32 round-off
        px0, px1 = math.floor((cx - half_w) * width + eps), math.ceil((cx + half_w) * width - eps)
        py0, py1 = math.floor((cy - half_h) * height + eps), math.ceil((cy + half_h) * height - eps)
        px0, py0 = max(px0, 0), max(py0, 0)
        px1, py1 = min(px1, width), min(py1, height)
        boxes.append((py0, py1, px0, px1) if px1 > px0 and py1 > py0 else None)
    return boxes


def region_mse(
    generated: np.ndarray, reference: np.ndarray, boxes: list[tuple[int, int, int, int] | None]
) -> float | None:
    """Mean over frames with a box of the MSE (RGB in [0, 1]) inside it; None if no frame has a box."""
    errors = []
    for g, r, box in zip(generated, reference, boxes, strict=True):
        if box is None:
            continue
        y0, y1, x0, x1 = box
        d = g[y0:y1, x0:x1].astype(np.float64) / 255.0 - r[y0:y1, x0:x1].astype(np.float64) / 255.0
        errors.append(float((d**2).mean()))
    return float(np.mean(errors)) if errors else None


class RegionErrorMetric(RunnerSyncedMetric):
    """Means over videos of the region MSE and PSNR (float64 sums; sync by sum)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    mse_sum: Tensor
    psnr_sum: Tensor
    n_videos: Tensor

    def __init__(self, max_db: float = 100.0) -> None:
        super().__init__()
        self.max_db = float(max_db)
        for name in ("mse_sum", "psnr_sum"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_videos", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def psnr(self, mse: float) -> float:
        """PSNR (dB, peak 1) of an MSE, capped at ``max_db``."""
        return self.max_db if mse <= 10 ** (-self.max_db / 10) else -10.0 * math.log10(mse)

    def update(self, mse: float) -> None:
        """Add one video's region MSE."""
        self.mse_sum += mse
        self.psnr_sum += self.psnr(mse)
        self.n_videos += 1

    def compute(self) -> dict[str, Tensor]:
        """``{"mse": mean MSE, "psnr": mean PSNR}`` over videos."""
        if int(self.n_videos) == 0:
            raise MetricInputError("region error: no video could be scored")
        return {"mse": self.mse_sum / self.n_videos, "psnr": self.psnr_sum / self.n_videos}


class RegionErrorAdapter(MetricAdapter):
    """Runner adapter: PSNR / MSE of the generated video inside a region box of the reference keypoints.

    Needs the reference video's keypoints (``<stem>.npy`` / ``keypoints.npy`` next to it); generated and
    reference must have the same frame count and size (``frame_policy="truncate"`` scores the common frames).
    """

    higher_is_better = True
    needs_reference = True
    variant = "mmgt"
    """A project definition (no published reference)."""

    def __init__(
        self,
        region: str = "lips",
        expand: float = 1.5,
        min_size: float = 0.05,
        max_db: float = 100.0,
        frame_policy: str = "error",
        name: str | None = None,
    ) -> None:
        if region not in REGIONS:
            raise ValueError(f"region: unknown region {region!r}; known: {', '.join(REGIONS)}")
        if frame_policy not in ("error", "truncate"):
            raise ValueError(f"frame_policy must be error|truncate, got {frame_policy!r}")
        self.region, self.expand, self.min_size, self.frame_policy = region, expand, min_size, frame_policy
        self.name = name or f"{region}_region"
        self.value_higher_is_better: dict[str, bool | None] = {
            f"{self.name}_psnr": True,
            f"{self.name}_mse": False,
            f"{self.name}_clips": None,
        }
        self.state = RegionErrorMetric(max_db)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Score one pair; per-video PSNR and MSE."""
        if reference is None:
            raise VideoSkipped(generated.name, f"{self.name}: needs a reference video")
        if reference.keypoints is None:
            raise VideoSkipped(generated.name, reference.missing_keypoints(f"{self.name} (reference)"))
        g, r, kps = generated.frames, reference.frames, reference.keypoints
        if g.shape[1:] != r.shape[1:]:
            raise MetricInputError(
                f"{generated.name}: generated frames are {g.shape[1:3]} (H, W) but the reference's are "
                f"{r.shape[1:3]}"
            )
        n = min(len(g), len(r), len(kps))
        if self.frame_policy == "error" and not (len(g) == len(r) == len(kps)):
            raise MetricInputError(
                f"{generated.name}: {len(g)} generated, {len(r)} reference frames, {len(kps)} keypoint "
                "frames (frame_policy=truncate scores the common frames)"
            )
        boxes = region_boxes(kps[:n], r.shape[1], r.shape[2], self.region, self.expand, self.min_size)
        mse = region_mse(g[:n], r[:n], boxes)
        if mse is None:
            raise VideoSkipped(generated.name, f"{self.name}: region {self.region} invisible in every frame")
        self.state.update(mse)
        return {f"{self.name}_psnr": self.state.psnr(mse), f"{self.name}_mse": mse}

    def compute(self) -> dict[str, float]:
        """Mean region PSNR and MSE over videos, and the number of videos."""
        n = int(self.state.n_videos)
        values = self.state.compute()
        return {
            f"{self.name}_psnr": float(values["psnr"]),
            f"{self.name}_mse": float(values["mse"]),
            f"{self.name}_clips": n,
        }

    def protocol(self) -> dict:
        """The definition and its parameters."""
        return {
            "metric": self.name,
            "definition": "PSNR/MSE of RGB in [0, 1] inside the reference keypoints' region box, per video",
            "region": self.region,
            "expand": self.expand,
            "min_size": self.min_size,
            "max_db": self.state.max_db,
            "frame_policy": self.frame_policy,
            "aggregation": "per video: mean MSE over frames, PSNR of that MSE; then means over videos",
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The accumulator."""
        return [self.state]
