"""Fault injection (slow tier): prep and evaluation killed at random moments, then resumed or rerun.

* ``mmgt-prep`` SIGKILLed as a process group at 5 random moments (fixed seed) and once in the middle of a
  manifest append (the ``manifest_append`` fault of ``mmgt_prep.store.FAULT_ENV``), resumed each time: the
  store equals an uninterrupted run's byte for byte - every file under ``clips/``, and the manifest rows
  but for their ``written_at`` time stamps (the torn row cut off is kept in ``manifest.jsonl.torn``).
* ``mmgt-eval`` killed while scoring leaves no results file; rerun, it writes the same scores.
* A training run killed and resumed continues its step count:
  ``tests/integration/test_stage1_cli.py::test_train_writes_checkpoint_events_export_and_resumes_after_sigkill``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# version=1: the store is compared byte for byte, video.mp4 included; the toy promises identical keypoints,
# audio and events, and v1's mp4s also came out identical on every run, v2's (same frames) not across runs
TOY = ["source=toy", "version=1", "n_speakers=2", "clips_per_speaker=4", "seconds=2", "size=48"]
TOY += ["progress=false"]


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _prep(out: Path, run_dir: Path) -> list[str]:
    return ["-m", "mmgt_prep.cli", *TOY, f"out={out}", f"hydra.run.dir={run_dir}"]


def _snapshot(store: Path) -> dict[str, object]:
    clips = sorted(p for p in (store / "clips").rglob("*") if p.is_file())
    files = {p.relative_to(store).as_posix(): p.read_bytes() for p in clips}
    rows = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("written_at")
    return {"files": files, "rows": rows}


def test_prep_killed_at_random_moments_resumes_to_the_same_store(tmp_path: Path) -> None:
    ref, hurt = tmp_path / "ref", tmp_path / "hurt"
    t0 = time.perf_counter()
    proc = _start(_prep(ref, tmp_path / "h0"))
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()[-3000:]
    total = time.perf_counter() - t0
    # first (so that it always has work left), a kill in the middle of a manifest append: half a row, no
    # newline, then SIGKILL
    proc = _start(_prep(hurt, tmp_path / "h6"), {"MMGT_FAULT_INJECT": "manifest_append:1"})
    assert proc.wait(timeout=600) == -signal.SIGKILL
    assert not (hurt / "manifest.jsonl").read_bytes().endswith(b"\n")  # a torn row is there
    rng = np.random.default_rng(12)
    kills = []
    for i, moment in enumerate(sorted(rng.uniform(0.2 * total, total, 5))):
        proc = _start(_prep(hurt, tmp_path / f"h{i + 1}"))
        time.sleep(moment)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group, as a cluster scheduler does
        kills.append(proc.wait(timeout=60))
    proc = _start(_prep(hurt, tmp_path / "h7"))
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()[-3000:]
    assert -signal.SIGKILL in kills  # at least one of the random moments hit a running prep
    assert _snapshot(hurt) == _snapshot(ref)
    assert (hurt / "manifest.jsonl.torn").read_text().strip()
    assert not [p for p in (hurt / ".tmp").rglob("*")]  # no temporaries of the killed runs left


def test_eval_killed_while_scoring_writes_the_same_results_when_rerun(tmp_path: Path) -> None:
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"
    generate_toy_dataset(store, 2, 3, seconds=3, size=48, seed=0, test_fraction=0.5, progress=False)
    gen = tmp_path / "gen"  # "generated": the references, every other frame darkened
    from mmgt.clipstore import ClipStore
    from mmgt.io import write_video

    for clip in ClipStore(store).clips():
        frames = clip.video().copy()
        frames[::2] //= 2
        write_video(gen / clip.record.speaker / f"{clip.record.id}.mp4", frames)

    def cmd(results: Path, run: str) -> list[str]:
        return [
            "-m",
            "mmgt_eval.cli",
            f"generated={gen}",
            f"reference={store / 'clips'}",
            "metrics=[psnr,ssim]",
            f"results={results}",
            f"hydra.run.dir={tmp_path / run}",
            "progress=false",
        ]

    t0 = time.perf_counter()
    proc = _start(cmd(tmp_path / "ref.json", "e0"))
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()[-3000:]
    total = time.perf_counter() - t0
    results = tmp_path / "out" / "results.json"
    proc = _start(cmd(results, "e1"))
    time.sleep(0.7 * total)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL and not results.exists()
    assert not results.parent.exists() or not list(results.parent.iterdir())  # no partial file either
    proc = _start(cmd(results, "e2"))
    assert proc.wait(timeout=600) == 0, proc.stdout.read().decode()[-3000:]
    a, b = json.loads((tmp_path / "ref.json").read_text()), json.loads(results.read_text())
    assert (
        a["metrics"] == b["metrics"] and a["per_video"] == b["per_video"] and a["metrics"]["psnr"]["values"]
    )
