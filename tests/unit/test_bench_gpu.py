"""``tests/benchmarks/bench_gpu.py --quick``: every section of the GPU benchmark runs at tiny sizes on CPU.

The figures are not checked (speed is never asserted); what is: every section reports a status, the ones
that ran report numbers, the ones that did not say why, and the JSON / Markdown are written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "benchmarks" / "bench_gpu.py"


@pytest.mark.slow
def test_bench_gpu_quick_reports_every_section(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.benchmarks.bench_gpu import SECTIONS

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert (tmp_path / "bench_gpu.md").read_text().count("\n| ") >= len(SECTIONS)
    sections = report["sections"]
    assert set(SECTIONS) | {"a_psnr_random", "a_speedup"} == set(sections)
    numbers = {
        "a_peak": "measured_tflops",
        "a_original": "s_per_frame",
        "a_default": "achieved_tflops",
        "a_fast_eager": "unet_frame_evals_per_frame",
        "a_fast": "unet_frame_evals_per_frame",
        "b_train_image": "ckpt_steps_per_s_b1",
        "b_train_video": "no_ckpt_largest_batch",
        "c_stage1": "s_per_60s_audio",
        "d_eval": "fvd_clips_per_s",
        "e_prep": "workers1_fps",
        "a_psnr_random": "psnr_fast_vs_default_db",
        "a_speedup": "original_over_fast",
    }
    for name, res in sections.items():
        if res["status"] == "skipped":
            assert res["reason"], name
            continue
        assert res["status"] == "ok", (name, res.get("error"), res.get("log_tail"))
        if name in numbers:
            assert isinstance(res[numbers[name]], int | float) and res[numbers[name]] > 0, (name, res)
    assert sections["a_quality"]["status"] == "skipped"  # no --toy-export given
    assert sections["a_default"]["peak_vram_gb"] is None and sections["a_default"]["peak_vram_note"]
    assert (
        sections["a_original"]["unet_frame_evals_per_frame"]
        > sections["a_fast"]["unet_frame_evals_per_frame"]
    )
