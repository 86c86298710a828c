"""mmgt.sweep: after a multirun, the failed jobs (failed results, no results, unreadable results) are named
with their errors and the process exits 1; jobs of an earlier sweep into the same folder are not counted."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from mmgt.sweep import STALE_S, SweepReport, failed_jobs

HYDRA_ERROR = (
    "InstantiationException: Error in call to target 'mmgt.stage1.module.SMGALitModule':\n"
    "ValueError(\"SMGATransformer: stacking='nonsense', expected one of ('both', 'reference')\")\n"
    "full_key: model"
)


def _job(sweep: Path, name: str, run: dict | None = None, text: str | None = None) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(name.split(",")))
    if run is not None:
        (job / "results.json").write_text(json.dumps({"run": run}))
    if text is not None:
        (job / "results.json").write_text(text)
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    old = _job(sweep, "seed=9", {"status": "failed", "error": "from an earlier sweep"})
    stale = time.time() - 10 * STALE_S
    os.utime(old / ".hydra" / "overrides.yaml", (stale, stale))
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # the sweeper writes it when the sweep starts
    _job(sweep, "seed=0", {"status": "ok", "error": None, "evaluated": True})
    _job(sweep, "seed=1", {"status": "ok", "error": None, "evaluated": False})  # trained, not evaluated: ok
    _job(
        sweep,
        "seed=2",
        {"status": "failed", "error": HYDRA_ERROR + "\nTraceback (most recent call last): ..."},
    )
    _job(sweep, "seed=3")  # killed before writing results
    _job(sweep, "seed=4", text="{not json")
    (sweep / ".submitit" / "1_0" / ".hydra").mkdir(parents=True)  # launcher files are not jobs
    (sweep / ".submitit" / "1_0" / ".hydra" / "overrides.yaml").write_text("[]")
    return sweep


def test_failed_jobs_are_found_with_their_errors(sweep: Path) -> None:
    failed, seen = failed_jobs(sweep)
    assert seen == 5
    by = {f.folder.name: f.error for f in failed}
    assert sorted(by) == ["seed=2", "seed=3", "seed=4"]
    assert by["seed=2"].startswith("InstantiationException: Error in call to target")
    assert "stacking='nonsense', expected one of" in by["seed=2"] and "Traceback" not in by["seed=2"]
    assert "no results.json: the job did not finish" in by["seed=3"]
    assert "unreadable" in by["seed=4"]


def test_the_report_exits_1_naming_every_failed_job(sweep: Path) -> None:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as exc:
        SweepReport().on_multirun_end(config=config)
    message = str(exc.value.code)
    assert message.startswith("mmgt-train: 3 of 5 sweep jobs failed (the others' results are kept):")
    for name in ("seed=2", "seed=3", "seed=4"):
        assert f"\n  {sweep / name}: " in message
    assert "seed=0" not in message and "seed=1" not in message and "seed=9" not in message


def test_a_clean_sweep_exits_normally(tmp_path: Path) -> None:
    _job(tmp_path, "seed=0", {"status": "ok", "error": None})
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    SweepReport().on_multirun_end(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert failed_jobs(tmp_path) == ([], 1)
