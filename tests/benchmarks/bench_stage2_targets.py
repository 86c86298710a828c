"""Stage II's learning targets against video-level training length: the demo's sweep, trained longer.

The demo (``make demo``) trains its mask-guidance sweep for 3 video-level epochs, what fits its 15-minute
budget. This benchmark reruns that sweep from the demo's own store and image-level export for longer
(``--epochs``, e.g. 3 6 12) and prints, per length, the demo's targets (``mmgt.demo.targets``): Stage II vs
the reference frame repeated (PSNR, hand error), mouth PSNR with own vs shuffled audio, motion masks vs no
masks on the mouth - the learning curve that shows how far each target is at the demo's budget.

Without a finished demo in ``--demo`` it runs the demo there first. Each length is one
``mmgt-train sweep=demo`` (printed; ``--guidance`` picks the configurations, default motion and none, the two
the targets compare), scored by the sweep's own evaluation. Usage (after
``make demo``, or ``python -m mmgt.demo --out DIR``)::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_stage2_targets.py \
        [--demo outputs/demo] [--epochs 3 12] [--out outputs/bench/stage2_targets]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def demo_inputs(demo: Path) -> tuple[Path, Path, dict[str, float]]:
    """The demo's store, image-level export and still-frame summaries (``baseline_<kind>/results.json``)."""
    stores = sorted((demo / "data").glob("toy_speakers*"))
    export = demo / "stage2_image" / "export"
    if not stores or not (export / "mmgt_stage2.json").is_file() or not list(demo.glob("baseline_*")):
        print(f"no finished demo in {demo}: running it first (python -m mmgt.demo --out {demo})", flush=True)
        subprocess.run([sys.executable, "-m", "mmgt.demo", "--out", str(demo)], check=True)
        stores = sorted((demo / "data").glob("toy_speakers*"))
    still = {}
    for path in demo.glob("baseline_*/results.json"):
        still[path.parent.name.removeprefix("baseline_")] = json.loads(path.read_text())["summary"]
    return stores[-1], export, still


def sweep(store: Path, export: Path, epochs: int, guidance: str, out: Path) -> float:
    """One ``mmgt-train sweep=demo`` of ``epochs`` video-level epochs into ``out``; returns its seconds."""
    args = [
        "mmgt.train", "sweep=demo", f"data.root={store}", f"model.init_from={export}",
        f"trainer.max_epochs={epochs}", f"model/stage2/mask_guidance={guidance}",  # wins over the sweep file
        "trainer.enable_progress_bar=false", f"hydra.sweep.dir={out}",
    ]  # fmt: skip
    print("  $ python -m " + " ".join(args), flush=True)
    t0 = time.perf_counter()
    log = out.parent / f"{out.name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed (exit {proc.returncode}); log: {log}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the sweeps, print the targets per length, write ``<out>/targets.{json,md}``."""
    from mmgt.demo import sweep_values, targets

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", type=Path, default=ROOT / "outputs" / "demo", help="a finished demo's --out")
    p.add_argument("--epochs", type=int, nargs="+", default=[3, 12])
    p.add_argument("--guidance", default="motion,none", help="the sweep's mask_guidance values")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "stage2_targets")
    args = p.parse_args(argv)
    store, export, still = demo_inputs(args.demo.resolve())
    out = args.out.resolve()
    rows: dict[str, Any] = {}
    for epochs in args.epochs:
        folder = out / f"epochs_{epochs}"
        seconds = sweep(store, export, epochs, args.guidance, folder)
        rows[str(epochs)] = {"seconds": round(seconds, 1), "targets": targets(folder, still)}
        rows[str(epochs)]["values"] = sweep_values(folder)
        print(f"\nvideo-level epochs {epochs} ({seconds:.0f} s for the sweep):")
        for line in rows[str(epochs)]["targets"]:
            print(f"  {line}")
    lines = ["| video-level epochs | target | verdict and figures |", "|---|---|---|"]
    for epochs, row in rows.items():
        for k, line in enumerate(row["targets"], 1):
            lines.append(f"| {epochs} | {k} | {line} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "targets.md").write_text("\n".join(lines) + "\n")
    summary = {"store": str(store), "image_export": str(export), "still": still, "runs": rows}
    (out / "targets.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"\n{out / 'targets.md'}")
    return summary


if __name__ == "__main__":
    main()
