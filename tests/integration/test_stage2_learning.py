"""A tiny Stage II learns on toy speakers in minutes on CPU: the validation loss falls and generated held-out
frames get measurably closer to the ground truth. The full figures (PSNR against the mean-frame baseline,
mouth-region error with and without audio) come from tests/benchmarks/bench_stage2_learning.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgt.train import build_model
from tests.benchmarks.bench_stage2_learning import _Truncated, compose, fit, psnr


def _held_out_psnr(export: Path, store_root: str) -> float:
    from mmgt.clipstore import ClipStore
    from mmgt.pipeline import generate_clip
    from mmgt.stage2.pipeline import Stage2Pipeline

    pipe = Stage2Pipeline.from_pretrained(export)
    scores = []
    for i, clip in enumerate(ClipStore(store_root).clips(split="test")):
        frames = generate_clip(pipe, _Truncated(clip, 8), seed=i, steps=8, progress=False)
        scores.append(psnr(frames, clip.video()[:8]))
    return float(np.mean(scores))


@pytest.mark.slow
def test_image_level_learns(tmp_path: Path) -> None:
    overrides = [
        "data.prepare.n_speakers=3",
        "data.prepare.clips_per_speaker=3",  # 2 train + 1 test clip per speaker
        "data.prepare.seconds=4",
        "data.samples_per_clip=16",
        "data.prepare.vae_steps=150",
        "trainer.max_steps=100",
    ]
    import hydra
    import pytorch_lightning as pl

    cfg = compose("stage2_image_toy", tmp_path, "image", overrides)
    pl.seed_everything(cfg.seed)  # the same initialisation as fit() below
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    before = build_model(cfg.model, dm.model_kwargs).export(tmp_path / "untrained")
    export, losses, _ = fit(cfg, minutes=30)
    assert losses["steps"] == 100
    assert losses["val_loss_after"] < 0.5 * losses["val_loss_before"], losses
    psnr_before, psnr_after = _held_out_psnr(before, cfg.data.root), _held_out_psnr(export, cfg.data.root)
    assert psnr_after > psnr_before + 2.0, (psnr_before, psnr_after)
