"""Sweeps for real, through the CLI: a Hydra multirun whose failing jobs are recorded while the others
finish, then named with their errors and a non-zero exit status; run folders named by their overrides,
results.json + TensorBoard hparams per job, mmgt-table over the sweep; the submitit_local launcher (a failing
job too); a 2-process CPU DDP training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmgt.io import probe_video

TINY_TRAIN = """# @package _global_
# Stage I on a tiny toy store (2 speakers x 3 clips x 4 s: 1 test clip each), a few steps.
defaults:
  - smga_toy
  - _self_
data:
  batch_size: 8
  stride: 40
  prepare: {n_speakers: 2, clips_per_speaker: 3, seconds: 4, size: 32}
trainer: {max_steps: 3, enable_progress_bar: false}
model: {sample_every_n_epochs: 0}
"""
TINY_EVALUATED = """# @package _global_
# ... and evaluated (evaluate=stage1) on the test split.
defaults:
  - sweep_train
  - override /evaluate: stage1
  - _self_
evaluate: {steps: 2, size: 64, metrics: [lip_audio_pose, bas]}
"""


def _run(
    args: list[str], tmp_path: Path, experiment: str = "sweep_test", timeout: float = 1200
) -> subprocess.CompletedProcess:
    """``mmgt-train experiment=<experiment>`` (tiny experiments in a config folder on the search path)."""
    conf = tmp_path / "conf" / "experiment"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "sweep_train.yaml").write_text(TINY_TRAIN)
    (conf / "sweep_test.yaml").write_text(TINY_EVALUATED)
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (-m) go before the overrides
    cmd = [sys.executable, "-m", "mmgt.train", *flags, f"experiment={experiment}"]
    cmd += [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"paths.data_dir={tmp_path / 'data'}"]
    cmd += [f"paths.log_dir={tmp_path / 'logs'}", *(a for a in args if not a.startswith("-"))]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _sweep_dir(tmp_path: Path) -> Path:
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    return sweep


def _hparams_metrics(run: Path) -> set[str]:
    """Metric tags declared in the TensorBoard hparams summaries of a run."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    tags: set[str] = set()
    for events in (run / "tensorboard").rglob("events.out.tfevents*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        try:
            contents = acc.PluginTagToContent("hparams")
        except KeyError:  # an event file without hparams summaries (e.g. the training scalars)
            continue
        for _, content in contents.items():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            tags |= {m.name.tag for m in data.experiment.metric_infos}
    return tags


def _assert_failures_reported(
    proc: subprocess.CompletedProcess,
    sweep: Path,
    failed: list[str],
    n_jobs: int,
    experiment: str = "sweep_test",
) -> None:
    """The end of the sweep names every failed job folder with its error, and only those."""
    report = proc.stderr[proc.stderr.index("mmgt-train: ") :]
    assert report.startswith(f"mmgt-train: {len(failed)} of {n_jobs} sweep jobs failed"), report
    lines = report.splitlines()[1:]
    assert len(lines) == len(failed), report
    for name, line in zip(sorted(failed), sorted(lines), strict=True):
        assert line.startswith(f"  {sweep / f'experiment={experiment},{name}'}: "), line
        assert "stacking='nonsense', expected one of" in line, line  # the cause, not only Hydra's wrapper


@pytest.mark.slow
def test_multirun_records_failures_names_folders_and_tabulates(tmp_path: Path) -> None:
    proc = _run(["-m", "model.net.stacking=both,nonsense", "seed=0,1"], tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    _assert_failures_reported(
        proc, sweep, ["model.net.stacking=nonsense,seed=0", "model.net.stacking=nonsense,seed=1"], 4
    )
    jobs = {p.name: p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names = [f"model.net.stacking={s},seed={k}" for s in ("both", "nonsense") for k in (0, 1)]
    expected = {f"experiment=sweep_test,{n}" for n in names}
    assert expected <= set(jobs), sorted(jobs)
    for seed in (0, 1):
        ok = json.loads(
            (jobs[f"experiment=sweep_test,model.net.stacking=both,seed={seed}"] / "results.json").read_text()
        )
        assert ok["run"]["status"] == "ok" and ok["run"]["seed"] == seed
        assert ok["run"]["name"] == "experiment=sweep_test,model.net.stacking=both"
        assert "bas/bas" in ok["summary"] and "bas_shuffled/bas" in ok["summary"]
        # a 3-step model may hide every lip (all videos skipped): then lip_audio_pose is declared failed
        assert {"lip_audio_pose", "lip_audio_pose_shuffled"} <= set(ok["metrics"])
        bad_dir = jobs[f"experiment=sweep_test,model.net.stacking=nonsense,seed={seed}"]
        bad = json.loads((bad_dir / "results.json").read_text())
        assert bad["run"]["status"] == "failed" and "stacking" in bad["run"]["error"]
    run = jobs["experiment=sweep_test,model.net.stacking=both,seed=0"]
    video = next((run / "generated").rglob("*.mp4"))
    assert probe_video(video).has_audio and video.with_suffix(".npy").is_file()
    assert (run / "export" / "config.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert "eval/bas/bas" in _hparams_metrics(run)  # the HParams view can compare the sweep

    table = subprocess.run(
        [sys.executable, "-m", "mmgt_eval.table_cli", f"runs={sweep}", "metrics=[bas/bas]"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "model.net.stacking=both" in table.stdout and "±" in table.stdout
    assert "nonsense" in table.stdout and "failed" in table.stdout
    assert (sweep / "table.md").is_file() and (sweep / "table.csv").is_file()


@pytest.mark.slow
def test_submitit_local_runs_a_two_job_sweep(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    args = ["-m", "hydra/launcher=submitit_local", "model.net.stacking=both,nonsense"]
    proc = _run(args, tmp_path, experiment="sweep_train")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    _assert_failures_reported(proc, sweep, ["model.net.stacking=nonsense"], 2, experiment="sweep_train")
    job = sweep / "experiment=sweep_train,model.net.stacking=both"
    assert (job / "export" / "config.json").is_file(), sorted(p.name for p in sweep.iterdir())
    run = json.loads((job / "results.json").read_text())["run"]  # trained, not evaluated: kept, and says so
    assert run["status"] == "ok" and run["evaluated"] is False
    assert list((sweep / ".submitit").rglob("*_log.out"))  # the jobs ran under submitit


@pytest.mark.slow
def test_two_process_cpu_ddp_training(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    proc = _run(
        [
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy.process_group_backend=gloo",  # the config's is nccl (GPUs)
            "trainer.precision=32-true",
            "trainer.sync_batchnorm=false",
            f"hydra.run.dir={run}",
        ],
        tmp_path,
        experiment="sweep_train",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (run / "export" / "config.json").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    out = proc.stdout + proc.stderr
    assert "MEMBER: 1/2" in out and "MEMBER: 2/2" in out and "distributed_backend=gloo" in out
