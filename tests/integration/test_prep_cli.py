"""`mmgt-prep source=toy` end to end through the real Hydra CLI, including resume and previews."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmgt.clipstore import ClipStore
from mmgt.io import probe_video


def _prep(out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "mmgt_prep.cli", "source=toy", f"out={out}", "n_speakers=2"]
    cmd += [
        "clips_per_speaker=2",
        "seconds=2",
        "size=64",
        "progress=false",
        f"hydra.run.dir={out.parent}/hydra_run",
    ]
    proc = subprocess.run(cmd + list(extra), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_toy_prep_cli_writes_store_previews_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    summary = _prep(out, "preview=true")
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (4, 0, 0)
    phases = summary["phases"]  # seconds: the whole command's wall time, previews included
    assert set(phases) == {"startup", "prep", "previews"} and phases["previews"] > 0
    assert abs(sum(phases.values()) - summary["seconds"]) < 0.01 and phases["startup"] > 0
    assert summary["splits"] == {"train": 2, "test": 2}
    store = ClipStore(out)
    assert len(store.clips()) == 4 and store.speakers() == ["toy_spk0", "toy_spk1"]
    assert {c.record.split for c in store.clips()} == {"train", "test"}
    info = probe_video(out / "previews" / "toy_spk0_000.mp4")
    assert info.has_audio and info.n_frames == 50 and info.width == 4 * 64
    again = _prep(out)
    assert (again["ok"], again["skipped"]) == (0, 4)
