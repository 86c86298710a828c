"""Region error: boxes from keypoints, errors only inside them, runner integration and skips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mmgt.io import write_video
from mmgt.schema import LIPS
from mmgt_eval.metrics.region import RegionErrorAdapter, region_boxes, region_mse
from mmgt_eval.runner import evaluate


def _lips_at(cx: float, cy: float, t: int = 4, half: float = 0.05) -> np.ndarray:
    kps = np.zeros((t, 134, 3), np.float32)
    angles = np.linspace(0, 2 * np.pi, len(LIPS), endpoint=False)
    kps[:, list(LIPS), 0] = cx + half * np.cos(angles)
    kps[:, list(LIPS), 1] = cy + 0.5 * half * np.sin(angles)
    kps[:, list(LIPS), 2] = 1.0
    return kps


def test_boxes_expand_clip_and_skip_invisible() -> None:
    kps = _lips_at(0.5, 0.5)
    kps[1, :, 2] = 0
    boxes = region_boxes(kps, 100, 200, "lips", expand=2.0)
    assert boxes[1] is None
    y0, y1, x0, x1 = boxes[0]
    assert (x0, x1) == (80, 120) and (y0, y1) == (45, 55)  # 2x the 0.1 x 0.05 lips box
    corner = region_boxes(_lips_at(0.0, 0.0), 100, 100, expand=1.0)[0]
    assert corner[0] == 0 and corner[2] == 0  # clipped to the frame
    with pytest.raises(ValueError, match="unknown region"):
        region_boxes(kps, 10, 10, "tail")


def test_error_counts_only_pixels_inside_the_box() -> None:
    ref = np.zeros((4, 100, 100, 3), np.uint8)
    gen = ref.copy()
    gen[:, :20] = 255  # outside the mouth box: ignored
    boxes = region_boxes(_lips_at(0.5, 0.5), 100, 100)
    assert region_mse(gen, ref, boxes) == 0.0
    y0, y1, x0, x1 = boxes[0]
    gen[:, y0:y1, x0:x1] = 51  # 0.2 everywhere inside
    assert abs(region_mse(gen, ref, boxes) - 0.04) < 1e-9


def test_adapter_through_the_runner(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir(), ref.mkdir()
    frames = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    for i, noise in enumerate((4, 16)):
        write_video(ref / f"v{i}.mp4", frames, fps=25)
        np.save(ref / f"v{i}.npy", _lips_at(0.5, 0.6, t=8, half=0.1))
        noisy = np.clip(frames.astype(int) + rng.normal(0, noise, frames.shape), 0, 255).astype(np.uint8)
        write_video(gen / f"v{i}.mp4", noisy, fps=25)
    write_video(ref / "nokps.mp4", frames, fps=25)
    write_video(gen / "nokps.mp4", frames, fps=25)
    res = evaluate(gen, ref, {"mouth": RegionErrorAdapter(name="mouth")}, progress=False)
    entry = res["metrics"]["mouth"]
    per = res["per_video"]
    assert per["v0"]["scores"]["mouth"]["mouth_psnr"] > per["v1"]["scores"]["mouth"]["mouth_psnr"]
    assert entry["values"]["mouth_clips"] == 2 and entry["n_skipped"] == 1  # no keypoints: declared skip
    mean_psnr = np.mean([per[v]["scores"]["mouth"]["mouth_psnr"] for v in ("v0", "v1")])
    assert math.isclose(entry["values"]["mouth_psnr"], mean_psnr, rel_tol=1e-9)
    assert entry["value_higher_is_better"] == {"mouth_psnr": True, "mouth_mse": False, "mouth_clips": None}
