"""docs/own-data.md, run verbatim on real videos from a temporary working folder (no toy data): prep with
automatic splits, Stage I trained and evaluated, Stage II image then video level evaluated, a sweep and its
table with a plot. Also: outputs stay under the working folder, a typo'd ``data.root`` fails fast, and a sweep
with a failing job exits non-zero with the other job's results intact (one test: one prep)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.shared import SAMPLES_DIR, samples_path
from tests.helpers.videos import AOC, MOORE, make_video_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "own-data.md"
VIDEOS = (  # 6 videos, 2 speakers, 25 and 29.97 fps, 4-7 s (the probe, shorter)
    ("aoc/address_a.mp4", AOC, 4.0, 0.0),
    ("aoc/address_b.mp4", AOC, 7.0, 1.0),
    ("aoc/address_c.mp4", AOC, 4.0, 4.0),
    ("moore/talk_a.mp4", MOORE, 4.0, 1.0),
    ("moore/talk_b.mp4", MOORE, 7.0, 0.0),
    ("moore/talk_c.mp4", MOORE, 4.0, 5.0),
)


def doc_commands(path: Path = DOC) -> list[list[str]]:
    """The commands of the ```bash blocks of ``path`` (continuation lines joined), as argument lists."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the installed console scripts
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc.stdout


def _values(results: Path, metric: str) -> dict[str, float]:
    res = json.loads(results.read_text())
    entry = res["metrics"][metric]
    assert entry["status"] == "ok", (metric, entry)
    return entry["values"]


def _lip_audio_pose_scored_or_invisible(results: Path) -> None:
    """``lip_audio_pose`` scored, or (the doc's smoke-length model) failed with every video skipped for
    invisible lips: never failed for another reason."""
    res = json.loads(results.read_text())
    entry = res["metrics"]["lip_audio_pose"]
    if entry["status"] != "ok":
        reasons = {s["reason"] for s in res["skips"] if s["metric"] == "lip_audio_pose"}
        assert entry["n_skipped"] >= 1 and all("lips invisible" in r for r in reasons), (entry, reasons)


def test_the_own_data_walkthrough_from_videos_to_a_table(tmp_path: Path) -> None:
    """The doc verbatim; then, on its store, a typo'd ``data.root`` and a sweep with a failing job."""
    samples_path(AOC), samples_path(MOORE)  # skip without the sample media
    work = tmp_path / "work"
    make_video_folder(work / "videos", SAMPLES_DIR, VIDEOS)
    started = time.time()
    commands = doc_commands()
    assert [c[0] for c in commands] == [
        "mmgt-prep",
        "mmgt-train",
        "mmgt-prep",
        *["mmgt-train"] * 3,
        "mmgt-table",
    ]
    for cmd in commands:
        _ok(_run(cmd, work))
    # prep: automatic splits, every video whole in one split
    rows = (work / "outputs/stores/talks/manifest.jsonl").read_text().splitlines()
    manifest = [json.loads(line) for line in rows]
    ok = [r for r in manifest if r["status"] == "ok"]
    assert {r["split"] for r in ok} == {"train", "val", "test"}
    by_source: dict[str, set[str]] = {}
    for r in ok:
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert len(by_source) == 6 and all(len(s) == 1 for s in by_source.values())
    assert all("features/logmel80+energy+onset+mfcc13.npy" in r["checksums"] for r in ok)  # = training's
    # Stage I and Stage II scored their test splits with the weight-free metrics
    runs = work / "outputs" / "runs"
    stage1 = runs / "smga" / "results.json"
    for metric in ("bas", "diversity"):
        assert _values(stage1, metric)
    _lip_audio_pose_scored_or_invisible(stage1)
    for metric in ("psnr", "ssim"):
        assert _values(runs / "stage2_video" / "results.json", metric)[metric] > 0
    stage2 = json.loads((runs / "stage2_video" / "results.json").read_text())
    assert stage2["run"]["status"] == "ok" and stage2["generation"]["eval_size"] == 64
    # the sweep and its table
    table = (work / "outputs/sweeps/stacking/table.png").read_bytes()
    assert table[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing was written outside the working folder (the repository's outputs/ untouched)
    repo_outputs = list((REPO / "outputs").rglob("*")) if (REPO / "outputs").exists() else []
    assert not [p for p in repo_outputs if p.stat().st_mtime > started]

    # a typo in data.root fails fast, names the path and the prep command, and creates nothing
    t0 = time.perf_counter()
    typo = _run(["mmgt-train", "experiment=smga", "data.root=outputs/stores/tlaks"], work)
    assert typo.returncode != 0 and time.perf_counter() - t0 < 120
    message = typo.stdout + typo.stderr
    assert "outputs/stores/tlaks" in message and "mmgt-prep source=videos" in message
    assert not (work / "outputs/stores/tlaks").exists()
    # a sweep with a failing job runs the other, then exits non-zero naming the failure
    sweep = ["mmgt-train", "-m", "experiment=smga", "data.root=outputs/stores/talks", "trainer.max_steps=3"]
    sweep += [
        "model.sample_steps=2",
        "model.net.stacking=both,nonsense",
        "hydra.sweep.dir=outputs/sweeps/bad",
    ]
    proc = _run(sweep, work)
    assert proc.returncode != 0 and "1 of 2 sweep jobs failed" in proc.stdout + proc.stderr
    good = json.loads(next((work / "outputs/sweeps/bad").glob("*stacking=both*/results.json")).read_text())
    assert good["run"]["status"] == "ok"
