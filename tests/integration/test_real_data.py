"""From a folder of real talking-face videos to a trained Stage I, as a user runs it from a working folder of
their own: ``mmgt-prep source=videos`` with automatic splits, then ``mmgt-train experiment=smga`` on the store
(validating on its ``val`` split). (A typo'd ``data.root``: tests/unit/test_data_roots.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmgt.clipstore import ClipStore
from tests.conftest import SAMPLES_DIR, samples_path
from tests.helpers.videos import AOC, MOORE, make_video_folder

VIDEOS = (  # 3 sources (one per split), 25 and 29.97 fps, each a little over one 80-frame window
    ("aoc/address_a.mp4", AOC, 3.4, 0.0),
    ("aoc/address_b.mp4", AOC, 3.4, 4.0),
    ("moore/talk_a.mp4", MOORE, 3.4, 1.0),
)


def _run(cwd: Path, module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", module, *args, "hydra.run.dir=hydra_run"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_prep_with_automatic_splits_then_stage1_trains_on_the_store(tmp_path: Path) -> None:
    samples_path(AOC), samples_path(MOORE)  # skip without the sample media
    work = tmp_path / "work"
    make_video_folder(work / "videos", SAMPLES_DIR, VIDEOS)
    prep_args = ["source=videos", "input=videos", "out=store", "size=128", "progress=false"]
    prep = _run(work, "mmgt_prep.cli", *prep_args)
    assert prep.returncode == 0, prep.stderr[-3000:]
    summary = json.loads(prep.stdout[prep.stdout.index("{") :])
    assert (summary["ok"], summary["failed"]) == (3, 0), summary["failures"]
    assert summary["splits"] == {"train": 1, "test": 1, "val": 1}
    store = ClipStore(work / "store")
    assert {c.record.split for c in store.clips()} == {"train", "val", "test"}
    assert all(c.features("logmel80+energy+onset+mfcc13") is not None for c in store.clips())  # = training's

    train = _run(
        work,
        "mmgt.train",
        "experiment=smga",
        "data.root=store",
        "data.stride=5",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        "model.sample_every_n_epochs=0",
        "model.sample_steps=2",
    )
    assert train.returncode == 0, (train.stdout + train.stderr)[-3000:]
    result = json.loads(train.stdout[train.stdout.index('{\n  "metrics"') :])
    assert "val/loss" in result["metrics"] and Path(result["export"]).is_dir()
    assert json.loads(Path(result["results"]).read_text())["run"]["status"] == "ok"
