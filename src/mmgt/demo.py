"""``make demo``: the main job on the embedded default (toy speakers), end to end, on a 2-core CPU.

Every phase is one of the project's own commands (printed, so it can be rerun or scaled up by hand):

1. ``mmgt-prep source=toy vae_steps=...``: the toy-speaker clip store and its toy VAE (+ a montage picture of
   it, as in the README);
2. preprocessing: the audio features both stages read, cached per clip (``features/<name>.npy``);
3. Stage I: ``mmgt-train experiment=smga_toy evaluate=stage1`` - trains SMGA, generates the held-out clips
   from their audio (and from shuffled audio, the control) and scores them;
4. Stage II, image level: ``mmgt-train experiment=stage2_image_toy`` (on the toy VAE of phase 1);
5. the ablation sweep ``mmgt-train sweep=demo`` (conf/sweep/demo.yaml: video level, mask guidance
   motion vs none vs no_audio x seeds 0, 1) from the image-level export, each job trained, its test split
   generated and scored;
6. the still-frame baselines (the mean training frame; each clip's reference frame repeated) scored by
   the same protocol, and the tables (``mmgt-table``): the sweep with
   mean ± std over seeds, and Stage I's learning evidence;
7. where the TensorBoard logs, videos and tables are.

Run: ``python -m mmgt.demo [--out outputs/demo] [--quick]`` (``--out`` relative to the working directory;
``make demo`` runs it in the repository root). Reruns reuse the store, features and the
image-level export; the Stage I run and the sweep are redone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PHASES = 7


class Demo:
    """Runs the phases, timing each; ``budget`` holds the training lengths (minutes / epochs)."""

    def __init__(self, out: Path, budget: dict[str, Any]) -> None:
        self.out, self.budget = out, budget
        self.still: dict[str, dict[str, float]] = {}  # each still-frame baseline's summary (set by tables())
        self.t0 = time.perf_counter()
        self.store = out / "data" / f"toy_speakers_v{budget['toy_version']}"
        self.env = dict(os.environ, HF_HUB_OFFLINE="1")

    def phase(self, k: int, text: str) -> None:
        """Print the header of phase ``k`` with the time since the start."""
        print(f"\n[{k}/{PHASES}] {text}  (+{time.perf_counter() - self.t0:.0f} s)", flush=True)

    def run(self, *args: str) -> str:
        """Run ``python -m <module> <args>`` and return its output.

        The output also goes to ``<out>/logs/<n>.log`` (shown on failure).
        """
        cmd = [sys.executable, "-m", *args]
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        print(f"  $ {shown}", flush=True)
        log_dir = self.out / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{len(list(log_dir.glob('*.log'))):02d}_{args[0].split('.')[-1]}.log"
        with log.open("w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env, text=True)
        if proc.returncode != 0:
            print(log.read_text()[-4000:])
            raise SystemExit(f"demo: command failed (exit {proc.returncode}); full log: {log}")
        return log.read_text()

    # ------------------------------------------------------------------ phases
    def data(self) -> None:
        """Phase 1: the toy clip store and the toy VAE fitted once on it."""
        self.phase(1, "toy speakers -> clip store (+ the toy VAE, fitted once on it)")
        b = self.budget
        self.run(
            "mmgt_prep.cli", "source=toy", f"out={self.store}", f"n_speakers={b['speakers']}",
            f"clips_per_speaker={b['clips_per_speaker']}", f"seconds={b['seconds']}", "size=64", "seed=0",
            f"version={b['toy_version']}",
            f"vae_steps={b['vae_steps']}", "progress=false", f"hydra.run.dir={self.out / 'logs' / 'prep'}",
        )  # fmt: skip
        from mmgt.clipstore import ClipStore

        store = ClipStore(self.store)
        counts = {s: len(store.clips(split=s)) for s in ("train", "test")}
        montage = write_montage(store, self.out / "toy_montage.png")
        print(
            f"  {len(store.clips())} clips ({counts['train']} train, {counts['test']} test) in {self.store}; "
            f"a picture of them: {montage}"
        )

    def features(self) -> None:
        """Phase 2: the training audio features, cached per clip."""
        self.phase(2, "preprocessing: audio features cached per clip")
        from mmgt.audio import load_or_compute_features
        from mmgt.clipstore import ClipStore
        from mmgt.config import audio_encoder

        extractor = audio_encoder("baseline")  # what both toy experiments read (data.audio_features)
        clips = ClipStore(self.store).clips()
        for clip in clips:
            load_or_compute_features(clip, extractor)
        print(f"  {extractor.name}: {len(clips)} clips -> <clip>/features/{extractor.name}.npy")

    def stage1(self) -> Path:
        """Phase 3: Stage I trained, generated and scored; returns its run folder."""
        self.phase(3, "Stage I (SMGA): train, generate the held-out clips, score (+ shuffled-audio control)")
        run = self.out / "stage1"
        shutil.rmtree(run, ignore_errors=True)
        if "stage1_epochs" in self.budget:  # a fixed length: the same model however busy the machine is
            length = [f"trainer.max_epochs={self.budget['stage1_epochs']}"]
        else:
            m, sec = divmod(int(self.budget["stage1_seconds"]), 60)
            length = [f"trainer.max_time=00:00:{m:02d}:{sec:02d}", "trainer.max_epochs=100000"]
        self.run(
            "mmgt.train", "experiment=smga_toy", "evaluate=stage1", f"data.root={self.store}", *length,
            "trainer.enable_progress_bar=false", "run_name=smga_toy", f"hydra.run.dir={run}",
        )  # fmt: skip
        return run

    def stage2_image(self) -> Path:
        """Phase 4: Stage II image level; returns its export folder."""
        self.phase(4, "Stage II, image level (ReferenceNet + denoiser + PoseGuider)")
        run = self.out / "stage2_image"
        overrides = run / ".hydra" / "overrides.yaml"
        made_here = overrides.is_file() and f"data.root={self.store}" in overrides.read_text()
        if (run / "export" / "mmgt_stage2.json").is_file() and made_here:  # trained on this very store
            print(f"  reusing {run / 'export'}")
            return run / "export"
        shutil.rmtree(run, ignore_errors=True)
        self.run(
            "mmgt.train", "experiment=stage2_image_toy", f"data.root={self.store}",
            f"trainer.max_epochs={self.budget['image_epochs']}", "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run}",
        )  # fmt: skip
        return run / "export"

    def sweep(self, image_export: Path) -> Path:
        """Phase 5: the mask-guidance sweep from ``image_export``; returns the multirun folder."""
        self.phase(5, "ablation sweep: motion masks / no masks / no audio x 2 seeds (video level, evaluated)")
        sweep = self.out / "sweep"
        shutil.rmtree(sweep, ignore_errors=True)
        self.run(
            "mmgt.train", f"sweep={self.budget['sweep']}", f"data.root={self.store}",
            f"model.init_from={image_export}", "trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={sweep}",
        )  # fmt: skip
        return sweep

    def tables(self, stage1: Path, sweep: Path) -> tuple[str, str]:
        """Phase 6: still-frame baselines and the (Stage II, Stage I) tables as Markdown."""
        self.phase(6, "still-frame baselines (mean frame, reference frame) and the tables (mmgt-table)")
        from omegaconf import OmegaConf

        from mmgt.stage2.evaluate import STILL_BASELINES, still_baseline

        ev = OmegaConf.load(sweep / "multirun.yaml").evaluate  # the clips and frames the sweep scored
        baselines = {}
        for kind in STILL_BASELINES:
            baselines[kind] = self.out / f"baseline_{kind}"
            shutil.rmtree(baselines[kind], ignore_errors=True)
            res = still_baseline(
                self.store, baselines[kind], kind, metrics=list(ev.metrics), max_clips=ev.max_clips,
                max_frames=ev.max_frames,
            )  # fmt: skip
            self.still[kind] = res["summary"]
        reference = ",".join(f"{kind}:{path}" for kind, path in baselines.items())
        metrics = f"[{','.join(STAGE2_COLUMNS)}]"
        video = self.run(
            "mmgt_eval.table_cli", f"runs={sweep}", f"reference={{{reference}}}", f"metrics={metrics}",
            f"out={self.out / 'tables' / 'stage2'}", "on_missing_metric=keep",
            f"hydra.run.dir={self.out / 'logs' / 'table2'}",
        )  # fmt: skip
        lip = "lip_audio_pose"
        s1 = f"[{lip}/lip_audio_r,{lip}_shuffled/lip_audio_r,{lip}/lip_audio_r_reference,bas/bas]"
        pose = self.run(
            "mmgt_eval.table_cli", f"runs={stage1}", f"metrics={s1}", f"out={self.out / 'tables' / 'stage1'}",
            "on_missing_metric=keep",
            f"hydra.run.dir={self.out / 'logs' / 'table1'}",
        )  # fmt: skip
        return _table(video), _table(pose)

    def summary(self, stage1: Path, sweep: Path, tables: tuple[str, str]) -> None:
        """Phase 7: print the tables and what they show."""
        self.phase(7, "done")
        print("\nStage II ablation (toy speakers, test split; mean ± std over 2 seeds):\n")
        print(tables[0])
        print("\nStage I learning evidence (lip_audio_r: generated vs shuffled audio vs ground truth):\n")
        print(tables[1])
        s = json.loads((stage1 / "results.json").read_text())["summary"]
        own, other = (
            _r(s.get("lip_audio_pose/lip_audio_r")),
            _r(s.get("lip_audio_pose_shuffled/lip_audio_r")),
        )
        print(f"\nStage I: lip-audio r {own} with the clip's audio, {other} with another clip's")
        psnr = [
            json.loads(p.read_text()).get("summary", {}).get("psnr/psnr", float("nan"))
            for p in sorted(sweep.glob("*/results.json"))
        ] or [float("nan")]
        still = {kind: summary["psnr/psnr"] for kind, summary in self.still.items()}
        print(
            f"Stage II: PSNR {min(psnr):.1f}-{max(psnr):.1f} dB over the sweep's runs; the mean training "
            f"frame {still['mean_frame']:.1f} dB, the reference frame repeated "
            f"{still['reference_frame']:.1f} dB"
        )
        print("\nTargets (issue 17; mean ± std over seeds, held-out clips):")
        for line in targets(sweep, self.still):
            print(f"  {line}")
        print(
            f"\nTensorBoard: .venv/bin/tensorboard --logdir {self.out}  (runs named by their overrides)\n"
            f"videos:      {sweep}/<run>/generated/<speaker>/<clip>.mp4, {stage1}/generated\n"
            f"tables:      {self.out / 'tables'}/*/table.{{md,tex,csv}}\n"
            f"total:       {time.perf_counter() - self.t0:.0f} s"
        )


STAGE2_COLUMNS = (
    "psnr/psnr", "ssim/ssim", "hands/hand_error", "hands/hand_error_reference", "mouth/mouth_psnr",
    "mouth_shuffled/mouth_psnr",
)  # fmt: skip
"""The Stage II table's columns (``mmgt-table metrics=``)."""


def write_montage(store: Any, path: Path) -> Path:
    """``mmgt.render.store_montage`` of ``store`` (a row per speaker: frames and keypoints) as a PNG."""
    from PIL import Image

    from mmgt.atomic import atomic_file
    from mmgt.render import store_montage

    with atomic_file(path) as tmp:
        Image.fromarray(store_montage(store)).save(tmp, format="PNG")
    return path


GUIDANCE_KEY = "model/stage2/mask_guidance"
"""The sweep's ablation axis (conf/sweep/demo.yaml)."""


def sweep_values(sweep: Path, key: str = GUIDANCE_KEY) -> dict[str, dict[str, list[float]]]:
    """``{configuration: {metric value: [one per seed]}}`` of the sweep's ok runs, by their ``key``."""
    from mmgt_eval.results import collect

    out: dict[str, dict[str, list[float]]] = {}
    for run in collect(sweep):
        name = next((o.split("=", 1)[1] for o in run.overrides if o.startswith(f"{key}=")), None)
        if run.reference or run.status != "ok" or name is None:
            continue
        for metric, value in run.values.items():
            out.setdefault(name, {}).setdefault(metric, []).append(value)
    return out


def _ms(values: list[float]) -> tuple[float, float]:
    """Mean and (population) std of ``values``; nan, nan when empty."""
    import numpy as np

    return (float(np.mean(values)), float(np.std(values))) if values else (float("nan"), float("nan"))


def targets(sweep: Path, still: dict[str, dict[str, float]]) -> list[str]:
    """The demo's learning targets, each ``MET`` / ``NOT MET`` with its figures.

    1. Stage II (motion masks) beats the reference frame repeated in PSNR;
    2. ... and follows the driving pose: its hand error is below the reference frame repeated;
    3. its mouth PSNR with the clip's own audio exceeds another clip's audio by more than 2 std over seeds;
    4. motion masks beat no masks on the mouth by more than the larger std of the two.

    ``still``: the still-frame baselines' result summaries (``mean_frame``, ``reference_frame``).
    """
    runs = sweep_values(sweep)
    motion, none = runs.get("motion", {}), runs.get("none", {})
    psnr, spsnr = _ms(motion.get("psnr/psnr", []))
    hand, shand = _ms(motion.get("hands/hand_error", []))
    own, sown = _ms(motion.get("mouth/mouth_psnr", []))
    shuf, sshuf = _ms(motion.get("mouth_shuffled/mouth_psnr", []))
    nomask, snomask = _ms(none.get("mouth/mouth_psnr", []))
    ref = still.get("reference_frame", {})
    ref_psnr, ref_hand = ref.get("psnr/psnr", float("nan")), ref.get("hands/hand_error", float("nan"))
    floor = ref.get("hands/hand_error_reference", float("nan"))
    verdict = lambda ok: "MET    " if ok else "NOT MET"  # noqa: E731
    return [
        f"{verdict(psnr > ref_psnr)} PSNR, motion {psnr:.2f} ± {spsnr:.2f} dB vs the reference frame "
        f"repeated {ref_psnr:.2f} dB",
        f"{verdict(hand < ref_hand)} hand error, motion {hand:.3f} ± {shand:.3f} vs the reference frame "
        f"repeated {ref_hand:.3f} (fraction of the frame side; the detector on the ground truth {floor:.3f})",
        f"{verdict(own - shuf > 2 * max(sown, sshuf))} mouth PSNR, own audio {own:.2f} ± {sown:.2f} vs "
        f"shuffled {shuf:.2f} ± {sshuf:.2f} dB (needs a gap > 2 std: {own - shuf:+.2f} vs "
        f"{2 * max(sown, sshuf):.2f})",
        f"{verdict(own - nomask > max(sown, snomask))} mouth PSNR, motion masks {own:.2f} ± {sown:.2f} vs "
        f"none {nomask:.2f} ± {snomask:.2f} dB (needs a gap > 1 std: {own - nomask:+.2f} vs "
        f"{max(sown, snomask):.2f})",
    ]


def _r(value: float | None) -> str:
    """A lip-audio r for the summary line, or why there is none."""
    return "n/a (no lips drawn: see the Failed metrics above)" if value is None else f"{value:.3f}"


def _table(log: str) -> str:
    """The Markdown table (and its notes) mmgt-table printed, without the log lines around it."""
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), 0)
    return "\n".join(line for line in lines[start:] if not line.startswith("["))


BUDGETS: dict[str, dict[str, Any]] = {
    "default": {"toy_version": 2, "speakers": 4, "clips_per_speaker": 6, "seconds": 8.0,
                "stage1_seconds": 100, "image_epochs": 12, "vae_steps": 800, "sweep": "demo"},
    "quick": {"toy_version": 2, "speakers": 2, "clips_per_speaker": 3, "seconds": 4.0,
              "stage1_epochs": 40, "image_epochs": 1, "vae_steps": 30, "sweep": "demo_quick"},
}  # fmt: skip
"""The toy version (the store is ``data/toy_speakers_v<N>``) and the training lengths: ``default`` is sized
for the 15-minute budget on 2 cores (Stage I by wall time; see the README for the measured time); ``quick``
is a smoke run of fixed length (Stage I by epochs), the same on a loaded machine."""


def main(argv: list[str] | None = None) -> None:
    """``python -m mmgt.demo [--out DIR] [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs") / "demo", help="relative: to the cwd")
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny data, a few steps)")
    args = parser.parse_args(argv)
    demo = Demo(args.out.resolve(), BUDGETS["quick" if args.quick else "default"])
    demo.data()
    demo.features()
    stage1 = demo.stage1()
    image = demo.stage2_image()
    sweep = demo.sweep(image)
    demo.summary(stage1, sweep, demo.tables(stage1, sweep))


if __name__ == "__main__":
    main()
