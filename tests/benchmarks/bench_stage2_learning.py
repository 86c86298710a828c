"""Stage II learning evidence on toy speakers: a tiny Stage II trained for minutes on CPU.

1. ``experiment=stage2_image_toy`` (image-level) for ``--image-minutes``;
2. ``experiment=stage2_video_toy`` from that export for ``--video-minutes`` twice: with motion-masked
   audio attention (the default) and with ``model/stage2/mask_guidance=no_audio`` (the control);
3. on held-out test clips (their poses and audio, their first frame as the reference), generates the first
   ``--frames`` frames with each video model and prints, side by side with baselines:

* validation loss before vs after training (fixed noise and timesteps per batch);
* PSNR of the generated frames vs the ground truth, against the mean training frame (the mean-frame
  baseline), the reference frame repeated, and the VAE reconstruction (the ceiling of any latent model);
* mouth-region error (MSE inside the ground-truth lips box) with motion-masked audio vs without audio.

The toy VAE (a pretrained-weights stand-in) is fitted once on the store first and not counted in the
training budget. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_stage2_learning.py \
        [--image-minutes 5] [--video-minutes 2.5] [--out outputs/bench/stage2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def compose(experiment: str, out: Path, name: str, overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from mmgt.config import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("train", [f"experiment={experiment}", *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path.cwd())  # hydra:runtime.cwd of a CLI run
        cfg.paths.output_dir = str(out / name)
        cfg.paths.data_dir = str(out / "data")
        cfg.trainer.enable_progress_bar = False
        cfg.model.sample_every_n_epochs = 0
        cfg.model.sample_at_end = False  # the figures time training only
    return cfg


def fit(cfg: Any, minutes: float) -> tuple[Path, dict[str, float], float]:
    """Validate, train for ``minutes`` (wall clock), export. Returns (export, val before/after, seconds)."""
    import hydra
    import pytorch_lightning as pl
    from omegaconf import open_dict

    from mmgt.train import build_model, instantiate_list

    pl.seed_everything(cfg.seed, workers=True)
    with open_dict(cfg):
        secs = int(minutes * 60)
        cfg.trainer.max_time = f"00:{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
        cfg.trainer.max_epochs = 10_000
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    model = build_model(cfg.model, dm.model_kwargs)
    trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=instantiate_list(cfg.callbacks), logger=instantiate_list(cfg.logger)
    )
    before = trainer.validate(model, datamodule=dm, verbose=False)[0]
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - t0
    after = trainer.validate(model, datamodule=dm, verbose=False)[0]
    export = model.export(Path(cfg.paths.output_dir) / "export")
    losses = {
        "val_loss_before": before["val/loss"],
        "val_loss_after": after["val/loss"],
        "val_mse_before": before["val/mse"],
        "val_mse_after": after["val/mse"],
        "steps": trainer.global_step,
    }
    return export, losses, seconds


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def mouth_boxes(
    kps: np.ndarray, size: int, scale: float = 1.6, min_px: int = 6
) -> list[tuple[int, int, int, int]]:
    """Per frame (y0, y1, x0, x1) pixel box around the ground-truth lips (iBUG 48-67), expanded."""
    from mmgt.schema import LIPS

    boxes = []
    for k in kps:
        xy = k[list(LIPS), :2] * size
        c, half = xy.mean(0), np.maximum((xy.max(0) - xy.min(0)) * scale / 2, min_px / 2)
        x0, y0 = np.floor(c - half).astype(int).clip(0, size)
        x1, y1 = np.ceil(c + half).astype(int).clip(0, size)
        boxes.append((y0, y1, x0, x1))
    return boxes


def mouth_mse(frames: np.ndarray, truth: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> float:
    errs = [
        np.mean((f[y0:y1, x0:x1].astype(np.float64) - t[y0:y1, x0:x1]) ** 2)
        for f, t, (y0, y1, x0, x1) in zip(frames, truth, boxes, strict=True)
    ]
    return float(np.mean(errs))


def evaluate(
    exports: dict[str, Path], store: Path, n_clips: int, n_frames: int, steps: int
) -> dict[str, Any]:
    from mmgt.clipstore import ClipStore
    from mmgt.pipeline import generate_clip
    from mmgt.stage2.components import decode_latents, encode_frames, frames_to_tensor, tensor_to_frames
    from mmgt.stage2.pipeline import Stage2Pipeline

    pipes = {name: Stage2Pipeline.from_pretrained(path) for name, path in exports.items()}
    size = next(iter(pipes.values())).size
    clips_train = ClipStore(store).clips(split="train")
    mean_frame = np.mean([c.video().mean(0) for c in clips_train], axis=0)
    vae = next(iter(pipes.values())).components.vae
    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, frames: np.ndarray, truth: np.ndarray, boxes: list) -> None:
        r = rows.setdefault(name, {"psnr": [], "mouth_mse": []})
        r["psnr"].append(psnr(frames, truth))
        r["mouth_mse"].append(mouth_mse(frames, truth, boxes))

    for i, clip in enumerate(ClipStore(store).clips(split="test")[:n_clips]):
        truth = clip.video()[:n_frames]
        kps = clip.keypoints()[:n_frames]
        boxes = mouth_boxes(kps, size)
        for name, pipe in pipes.items():
            clip_view = _Truncated(clip, n_frames)
            frames = generate_clip(pipe, clip_view, seed=i, steps=steps, progress=False)
            add(name, frames, truth, boxes)
        add("baseline: mean training frame", np.broadcast_to(mean_frame.round(), truth.shape), truth, boxes)
        add("baseline: reference frame repeated", np.broadcast_to(truth[0], truth.shape), truth, boxes)
        with torch.no_grad():
            recon = tensor_to_frames(
                decode_latents(vae, encode_frames(vae, frames_to_tensor(torch.from_numpy(truth))))
            )
        add("ceiling: VAE reconstruction", recon.numpy(), truth, boxes)
    stats = next(iter(pipes.values())).last_stats
    return {
        "rows": {k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in rows.items()},
        "clips": n_clips,
        "frames": n_frames,
        "stats": stats,
    }


class _Truncated:
    """A clip view limited to its first ``n`` frames (keypoints, audio, video)."""

    def __init__(self, clip: Any, n: int) -> None:
        self.clip, self.n = clip, n

    def keypoints(self) -> np.ndarray:
        return self.clip.keypoints()[: self.n]

    def audio(self) -> np.ndarray:
        return self.clip.audio()[: self.n * 640]

    def video(self) -> np.ndarray:
        return self.clip.video()[: self.n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-minutes", type=float, default=5.0)
    p.add_argument("--video-minutes", type=float, default=2.5)
    p.add_argument("--clips", type=int, default=4, help="held-out test clips to generate")
    p.add_argument("--frames", type=int, default=32, help="frames generated per clip")
    p.add_argument("--steps", type=int, default=15, help="DDIM steps of the evaluation")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "stage2")
    args = p.parse_args()
    t_all = time.perf_counter()

    image_cfg = compose("stage2_image_toy", args.out, "image", [])
    import hydra

    t0 = time.perf_counter()
    hydra.utils.instantiate(image_cfg.data).prepare_data()  # the store and its toy VAE (first use; no budget)
    vae_seconds = time.perf_counter() - t0
    image_export, image_losses, image_s = fit(image_cfg, args.image_minutes)

    video = {}
    for name, extra in (("motion-masked audio", []), ("no audio", ["model/stage2/mask_guidance=no_audio"])):
        cfg = compose(
            "stage2_video_toy", args.out, name.replace(" ", "_"), [f"model.init_from={image_export}", *extra]
        )
        video[name] = fit(cfg, args.video_minutes)
    store = Path(image_cfg.data.root)
    ev = evaluate({k: v[0] for k, v in video.items()}, store, args.clips, args.frames, args.steps)

    print("\n== Stage II learning on toy speakers (CPU; tiny networks; 64x64 frames, 16x16 latents)")
    print(f"toy store + VAE fit (once, not in the budget): {vae_seconds:.0f} s")
    head = ("run", "steps", "minutes", "val loss before", "after", "val mse before", "after")
    print(
        f"{head[0]:28s} {head[1]:>6s} {head[2]:>8s} {head[3]:>16s} {head[4]:>8s} {head[5]:>15s} {head[6]:>8s}"
    )
    runs = {
        "image-level": (image_losses, image_s),
        **{f"video-level, {k}": (v[1], v[2]) for k, v in video.items()},
    }
    for name, (losses, secs) in runs.items():
        print(
            f"{name:28s} {losses['steps']:6d} {secs / 60:8.1f} {losses['val_loss_before']:16.4f} "
            f"{losses['val_loss_after']:8.4f} {losses['val_mse_before']:15.4f} {losses['val_mse_after']:8.4f}"
        )
    print(f"\nheld-out: {ev['clips']} test clips x {ev['frames']} frames, DDIM {args.steps} steps")
    print(f"{'frames from':40s} {'PSNR dB':>8s} {'mouth MSE':>10s}")
    for name, r in ev["rows"].items():
        print(f"{name:40s} {r['psnr']:8.2f} {r['mouth_mse']:10.1f}")
    rows = ev["rows"]
    masked, no_audio = rows["motion-masked audio"], rows["no audio"]
    gain = masked["psnr"] - rows["baseline: mean training frame"]["psnr"]
    ratio = masked["mouth_mse"] / no_audio["mouth_mse"]
    print(
        f"\nPSNR gain over the mean-frame baseline: {gain:+.2f} dB; "
        f"mouth MSE with / without audio: {ratio:.3f}"
    )
    summary = {
        "vae_seconds": vae_seconds,
        "runs": {k: {**v[0], "seconds": v[1]} for k, v in runs.items()},
        **ev,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"total {time.perf_counter() - t_all:.0f} s; summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
