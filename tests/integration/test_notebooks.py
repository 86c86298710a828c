"""The notebooks run top to bottom (nbclient) on real toy outputs, and are committed without outputs.

Inputs: a toy clip store (mmgt_prep.toy, 2 speakers x 2 clips x 2 s at 64²) and a sweep folder laid out as
the sweep runner leaves it: ``<sweep>/<overrides>/{.hydra/overrides.yaml, generated/*.mp4, results.json}``,
the results written by the real mmgt-eval runner (PSNR/SSIM of noisy copies of the toy clips against the
clips), plus a failed job. The kernel is this interpreter (a kernelspec written into tmp_path), so the test
needs only ``pip install -e .[dev]`` (nbclient, ipykernel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from mmgt.clipstore import ClipStore
from mmgt.io import read_video, write_video

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOISE = {"default": 3.0, "mask_guidance=none": 12.0}


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory) -> Path:
    from mmgt_prep.toy import generate_toy_dataset

    out = tmp_path_factory.mktemp("nb") / "toy_store"
    summary = generate_toy_dataset(
        out, n_speakers=2, clips_per_speaker=2, seconds=2.0, size=64, seed=0, progress=False
    )
    assert summary["ok"] == 4
    return out


@pytest.fixture(scope="module")
def toy_sweep(toy_store, tmp_path_factory) -> Path:
    from mmgt_eval.metrics.image import PSNRAdapter, SSIMAdapter
    from mmgt_eval.runner import RunProtocol, evaluate

    protocol = RunProtocol(name="first20", max_frames=20)  # the first 20 frames of each clip: quick

    sweep = tmp_path_factory.mktemp("nb") / "multiruns" / "2025-01-01_00-00-00"
    reference = {
        c.record.id: read_video(c.video_path, with_audio=False).frames for c in ClipStore(toy_store).clips()
    }
    for name, noise in NOISE.items():
        for seed in (0, 1):
            overrides = ([] if name == "default" else [name]) + [f"seed={seed}"]
            job = sweep / ",".join(overrides)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            rng = np.random.default_rng([seed, int(noise)])
            for clip_id, frames in reference.items():
                noisy = frames.astype(np.float64) + rng.normal(0.0, noise, frames.shape)
                write_video(job / "generated" / f"{clip_id}.mp4", np.clip(noisy, 0, 255).astype(np.uint8))
            results = job / "results.json"
            evaluate(
                job / "generated",
                toy_store / "clips",  # clip-store names <speaker>/<id>: paired through a manifest
                {"psnr": PSNRAdapter(), "ssim": SSIMAdapter()},
                pairing=_pairing(job, toy_store),
                protocol=protocol,
                results_path=results,
                progress=False,
            )
            data = json.loads(results.read_text())
            data["run"] = {"status": "ok", "error": None, "overrides": overrides, "seed": seed, "name": name}
            results.write_text(json.dumps(data))
    failed = sweep / "mask_guidance=none,seed=2"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["mask_guidance=none", "seed=2"]))
    (failed / "results.json").write_text(
        json.dumps({"run": {"status": "failed", "error": "RuntimeError: out of memory", "seed": 2}})
    )
    # a reference row: the clips scored against themselves by the same protocol
    clips = toy_store / "clips"
    evaluate(
        clips,
        clips,
        {"psnr": PSNRAdapter(), "ssim": SSIMAdapter()},
        protocol=protocol,
        results_path=sweep.parent / "ground_truth" / "results.json",
        progress=False,
    )
    return sweep


def _pairing(job: Path, store: Path) -> Path:
    rows = [
        {"generated": f"{c.record.id}.mp4", "reference": f"{c.record.speaker}/{c.record.id}/video.mp4"}
        for c in ClipStore(store).clips()
    ]
    path = job / "pairing.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernelspec for this interpreter, first on JUPYTER_PATH (user kernelspecs may point elsewhere)."""
    spec = tmp_path / "jupyter" / "kernels" / "mmgt-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "mmgt test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel then uses the inline backend (PNG outputs)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return "mmgt-test"


def _execute(name: str, kernel: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name=kernel, resources={"metadata": {"path": str(cwd)}}, allow_errors=False
    )
    client.execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            data = out.get("data", {})
            parts.extend(data.get(k, "") for k in ("text/plain", "text/html", "text/markdown"))
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", ["01_explore_clip_store.ipynb", "02_compare_runs.ipynb"])
def test_notebooks_are_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) - 1  # every step is explained


def _documented_commands(notebook: str) -> str:
    """The lines of docs/experiments.md's notebook block that make the output folder and run ``notebook``."""
    doc = (NOTEBOOKS.parent / "docs" / "experiments.md").read_text()
    block = doc.split("## Notebooks", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = block.replace("\\\n", " ").splitlines()
    return "\n".join(line for line in lines if line.startswith("mkdir") or f"notebooks/{notebook}" in line)


def test_explore_clip_store_runs_by_the_documented_command(toy_store, kernel, tmp_path):
    """docs/experiments.md's command, run in a copy of the repository whose outputs/data/toy_speakers is the
    toy store: the notebook's default store; the executed copy lands in outputs/notebooks/ and the
    committed notebook is left as it was."""
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    name = "01_explore_clip_store.ipynb"
    (repo / "notebooks" / name).write_bytes((NOTEBOOKS / name).read_bytes())
    (repo / "outputs" / "data").mkdir(parents=True)
    (repo / "outputs" / "data" / "toy_speakers").symlink_to(toy_store)
    script = _documented_commands(name)
    assert "jupyter-execute" in script and "--inplace" not in script
    script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/").replace(
        ".ipynb --", f".ipynb --kernel_name={kernel} --"
    )
    env = {k: v for k, v in os.environ.items() if k != "MMGT_STORE"}
    proc = subprocess.run(
        ["bash", "-ec", script], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (repo / "notebooks" / name).read_bytes() == (NOTEBOOKS / name).read_bytes()
    nb = nbformat.read(repo / "outputs" / "notebooks" / name, as_version=4)
    text = _text(nb)
    ids = [c.record.id for c in ClipStore(toy_store).clips()]
    assert all(f"<td>{i}</td>" in text for i in ids)  # the manifest table
    assert "status: {'ok': 4}" in text and "usable: 4 clips, 200 frames (8.0 s)" in text
    r = float(text.split("Pearson r(lip opening, audio RMS) = ")[1].split()[0])
    assert r > 0.9  # the toy mouth follows the audio envelope
    assert "mask coverage" in text and "logmel" in text
    assert _images(nb) == 4  # frames + keypoints, trajectories, masks, audio + features


def test_explore_clip_store_says_how_to_make_a_store(kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("MMGT_STORE", str(tmp_path / "no_store"))
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="mmgt-prep source=toy out="):
        _execute("01_explore_clip_store.ipynb", kernel, tmp_path)


def test_compare_runs_runs(toy_sweep, kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("MMGT_SWEEP", str(toy_sweep))
    monkeypatch.setenv("MMGT_REFERENCE", str(toy_sweep.parent / "ground_truth"))
    nb = _execute("02_compare_runs.ipynb", kernel, tmp_path)
    text = _text(nb)
    assert "5 runs in 2 configurations (1 failed, 0 not evaluated), 1 reference rows" in text
    assert "| configuration | n | psnr/psnr ↑ | ssim/ssim ↑ |" in text
    assert "| default | 2 | **" in text and "| mask_guidance=none | 2 (+1 failed) |" in text
    assert "mask_guidance=none (seed 2): RuntimeError: out of memory" in text
    assert "| *reference* |" in text and "| ground_truth | 1 | 100.0 | 1.000 |" in text
    assert _images(nb) == 2  # the mmgt-table figure, sample frames
    plot = next(
        out["data"]["image/png"]
        for cell in nb.cells
        if cell.cell_type == "code" and "plot_table" in cell.source
        for out in cell.outputs
    )
    assert len(plot) > 20_000  # a real figure (base64 PNG), not an empty axes
