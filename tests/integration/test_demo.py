"""``make demo``'s job end to end at smoke size (``python -m mmgt.demo --quick``): every phase runs, the sweep
folders hold what the issue promises, and mmgt-table reproduces the printed table from the folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmgt.demo import STAGE2_COLUMNS
from mmgt.io import probe_video


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mmgt.demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = proc.stdout
    for k in range(1, 8):
        assert f"[{k}/7]" in printed  # a progress line per phase
    assert (out / "toy_montage.png").stat().st_size > 1000  # the store's picture (README)

    # the sweep: motion / none / no_audio x 2 seeds, each with results, checkpoints, videos with audio
    jobs = sorted(p for p in (out / "sweep").iterdir() if (p / "results.json").is_file())
    assert len(jobs) == 6
    for job in jobs:
        res = json.loads((job / "results.json").read_text())
        assert res["run"]["status"] == "ok" and "psnr/psnr" in res["summary"]
        assert list((job / "checkpoints").glob("*.ckpt"))
        video = next((job / "generated").rglob("*.mp4"))
        assert probe_video(video).has_audio
        events = next((job / "tensorboard").rglob("events.out.tfevents.*"))
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        assert any("psnr" in tag for tag in acc.Tags()["scalars"])

    # the printed table: a row per configuration with mean ± std over the 2 seeds, the baseline row
    table = (out / "tables" / "stage2" / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "±" in line]
    assert len(rows) == 3 and "mean_frame" in table and "reference_frame" in table
    assert all(row in printed for row in rows)
    # the four learning targets, each judged with its figures
    verdicts = [line for line in printed.splitlines() if line.strip().startswith(("MET", "NOT MET"))]
    assert len(verdicts) == 4 and all("nan" not in line for line in verdicts), verdicts
    # ... and mmgt-table reproduces it from the folders
    base = out / "baseline"
    again = subprocess.run(
        [sys.executable, "-m", "mmgt_eval.table_cli", f"runs={out / 'sweep'}",
         f"reference={{mean_frame:{base}_mean_frame,reference_frame:{base}_reference_frame}}",
         f"metrics=[{','.join(STAGE2_COLUMNS)}]",
         f"out={tmp_path / 'again'}", "on_missing_metric=keep", f"hydra.run.dir={tmp_path / 'log'}"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "table.md").read_text() == table

    s1 = json.loads((out / "stage1" / "results.json").read_text())["summary"]
    assert {"lip_audio_pose/lip_audio_r", "lip_audio_pose_shuffled/lip_audio_r"} <= set(s1)
    assert "Stage I: lip-audio r" in printed and "TensorBoard:" in printed
