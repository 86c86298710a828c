"""Where runs and default data go: under the working directory (``./outputs``) or ``paths.output_root``; and
no environment variable decides where the configs are found (a user's ``PROJECT_ROOT`` changes nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mmgt.io import write_video
from tests.helpers.shared import compose_config

BIN = Path(sys.executable).parent
TOY_STORES = {"smga_toy": "toy_speakers_smga", "stage2_image_toy": "toy_speakers_video"}
TOY_STORES["stage2_video_toy"] = TOY_STORES["stage2_image_toy"]  # the video level reuses the image store


def _run(cmd: list[str], cwd: Path, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    proc = subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{tail}"
    return proc.stdout


@pytest.mark.slow  # ~15 s: mmgt-eval imports torch and torchmetrics
def test_mmgt_eval_finds_its_configs_and_writes_under_the_cwd_whatever_project_root_says(tmp_path):
    """PROJECT_ROOT set to another folder (it used to place outputs and the eval search path)."""
    elsewhere, work = tmp_path / "elsewhere", tmp_path / "work"
    elsewhere.mkdir()
    work.mkdir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "ref" / "a.mp4", frames)
    write_video(tmp_path / "gen" / "a.mp4", np.clip(frames.astype(int) + 8, 0, 255).astype(np.uint8))
    cmd = [str(BIN / "mmgt-eval"), f"generated={tmp_path / 'gen'}", f"reference={tmp_path / 'ref'}"]
    _run([*cmd, "metrics=[psnr]", "protocol=smoke", "progress=false"], cwd=work, PROJECT_ROOT=str(elsewhere))
    (results,) = (work / "outputs" / "eval" / "runs").glob("*/results.json")
    res = json.loads(results.read_text())
    assert res["protocol"]["name"] == "smoke"  # conf/eval/protocol/smoke.yaml, found through the package
    assert 20 < res["summary"]["psnr/psnr"] < 40
    assert list(elsewhere.iterdir()) == [] and sorted(p.name for p in work.iterdir()) == ["outputs"]


def test_default_locations_are_under_the_working_directory(tmp_path):
    """What the CLIs resolve in a bare folder: run folders and the default stores under ``./outputs``."""
    out = _run([str(BIN / "mmgt-train"), "experiment=smga_toy", "--cfg", "all", "--resolve", "-p", "paths"],
               cwd=tmp_path, PROJECT_ROOT=str(tmp_path / "elsewhere"))  # fmt: skip
    paths = yaml.safe_load(out[out.index("root_dir") :])
    assert paths["root_dir"] == str(tmp_path)
    assert paths["output_root"] == paths["log_dir"] == str(tmp_path / "outputs")
    assert paths["data_dir"] == str(tmp_path / "outputs" / "data")
    out = _run([str(BIN / "mmgt-prep"), "--cfg", "job", "--resolve", "-p", "out"], cwd=tmp_path)
    assert out.strip() == str(tmp_path / "outputs" / "data" / "toy_speakers")
    assert not (tmp_path / "outputs").exists()  # printing the config creates nothing


@pytest.mark.parametrize("experiment", sorted(TOY_STORES))
def test_output_root_moves_run_folders_and_toy_stores(experiment, tmp_path):
    root = tmp_path / "elsewhere"
    cfg = compose_config("train", [f"experiment={experiment}", f"paths.output_root={root}"])
    assert cfg.data.root == str(root / "data" / TOY_STORES[experiment])
    assert cfg.hydra.run.dir.startswith(f"{root}/train/runs/")
    assert cfg.hydra.sweep.dir.startswith(f"{root}/train/multiruns/")


@pytest.mark.parametrize("config", ["prep", "generate", "eval", "table"])
def test_output_root_moves_every_entry_points_runs(config, tmp_path):
    root = tmp_path / "elsewhere"
    cfg = compose_config(config, [f"paths.output_root={root}"])
    assert cfg.hydra.run.dir.startswith(f"{root}/{cfg.task_name}/runs/")
    if config == "prep":
        assert cfg.out == str(root / "data" / "toy_speakers")
