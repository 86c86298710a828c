"""Stage I learning evidence on toy speakers: a tiny SMGA trained for a few minutes on 2 CPU cores.

Trains ``experiment=smga_toy`` with ``evaluate=stage1`` (every held-out test clip generated from its audio
and its first frame, and - the control - from another clip's audio) and prints, generated vs shuffled audio
vs ground truth:

* lip sync: Pearson r between the lip opening and the clip's audio envelope (mmgt-eval ``lip_audio_pose``);
* beat alignment: share of hand-speed peaks within 2 frames of a stressed syllable, from the toy's own
  syllable timings (``mmgt_prep.toy.beat_alignment``), and mmgt-eval's generic BAS (Bailando definition).

Usage::

    .venv/bin/python tests/benchmarks/bench_stage1_learning.py [--minutes 4.5] [--out outputs/bench/stage1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def toy_beat_alignment(run_dir: Path, store_root: Path) -> dict[str, float]:
    """Mean toy beat alignment of the generated, shuffled-audio and ground-truth keypoints."""
    from mmgt.clipstore import ClipStore
    from mmgt_prep.toy import beat_alignment

    out: dict[str, list[float]] = {"generated": [], "generated_shuffled": [], "ground_truth": []}
    for clip in ClipStore(store_root).clips(split="test"):
        events = json.loads((clip.dir / "events.json").read_text())
        name = f"{clip.record.speaker}/{clip.record.id}.npy"
        for folder in ("generated", "generated_shuffled"):
            out[folder].append(beat_alignment(np.load(run_dir / folder / name), events))
        out["ground_truth"].append(beat_alignment(clip.keypoints(), events))
    return {k: float(np.mean(v)) for k, v in out.items()}


def train(minutes: float, out: Path, overrides: list[str]) -> tuple[dict, Path, Path]:
    """Train + evaluate ``experiment=smga_toy`` for at most ``minutes`` of training."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from mmgt.config import CONFIG_DIR
    from mmgt.train import train as run_train

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["experiment=smga_toy", "evaluate=stage1", *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path.cwd())  # hydra:runtime.cwd of a CLI run
        cfg.paths.output_dir = str(out / "run")
        cfg.paths.data_dir = str(out / "data")
        secs = int(minutes * 60)
        cfg.trainer.max_time = f"00:{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
        cfg.trainer.max_epochs = 10_000
        cfg.trainer.enable_progress_bar = False
    result = run_train(cfg)
    return result, Path(cfg.paths.output_dir), Path(cfg.data.root)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=4.5, help="training budget")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "stage1")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides of experiment=smga_toy")
    args = p.parse_args()
    t0 = time.perf_counter()
    _, run_dir, store = train(args.minutes, args.out, args.overrides)
    res = json.loads((run_dir / "results.json").read_text())
    s = res["summary"]
    beats = toy_beat_alignment(run_dir, store)
    steps = 0
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        import torch

        steps = int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    print(
        f"\nStage I learning evidence: tiny SMGA, {args.minutes:g} min training ({steps} steps), "
        f"{res['generation']['clips']} held-out clips, {time.perf_counter() - t0:.0f} s in all"
    )
    print(f"{'measure':40s} {'generated':>10s} {'shuffled audio':>15s} {'ground truth':>13s}")
    rows = [
        (
            "lip opening vs audio envelope (r)",
            "lip_audio_pose/lip_audio_r",
            "lip_audio_pose_shuffled/lip_audio_r",
            "lip_audio_pose/lip_audio_r_reference",
        ),
        ("BAS (Bailando)", "bas/bas", "bas_shuffled/bas", "bas/bas_reference"),
    ]
    for label, gen, shuf, gt in rows:
        print(
            f"{label:40s} {s.get(gen, float('nan')):10.3f} {s.get(shuf, float('nan')):15.3f} "
            f"{s.get(gt, float('nan')):13.3f}"
        )
    print(
        f"{'hand peaks on stressed syllables (toy)':40s} {beats['generated']:10.3f} "
        f"{beats['generated_shuffled']:15.3f} {beats['ground_truth']:13.3f}"
    )
    summary = {"steps": steps, "minutes": args.minutes, "toy_beat_alignment": beats, "summary": s}
    (args.out / "bench_stage1.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"results: {run_dir / 'results.json'}; videos: {run_dir / 'generated'}")


if __name__ == "__main__":
    main()
