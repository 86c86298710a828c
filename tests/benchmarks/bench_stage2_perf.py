"""Stage II performance at tiny scale: memory of long generation, gradient checkpointing, UNet evaluations.

* peak memory (process RSS, fresh subprocess each) of generating 60 s vs 3.2 s of audio with the same
  tiny model: features, pose features, audio tokens and masks are per frame, everything else is per
  context window, so the peak should barely grow with the length;
* the peak activation memory of one training step (video-level, B x F frames) with and without gradient
  checkpointing (RSS sampled every 2 ms during the step, above the RSS before it);
* UNet-frame evaluations per output frame of the sampler (steps x CFG x window coverage) against the
  original's 90 (30 DDIM steps x CFG 2 x 12-frame windows every 8 frames with wrap-around).

The model is a randomly initialised tiny export (memory and counts do not depend on the weights).
Usage::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_stage2_perf.py [--out outputs/bench/stage2_perf]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiny_model(out: Path, frames: int = 8, size: int = 64, overrides: tuple[str, ...] = ()) -> Any:
    """A Stage2LitModule of ``experiment=stage2_video_toy`` with a random tiny VAE and no data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf, open_dict

    from mmgt.config import CONFIG_DIR, audio_encoder
    from mmgt.train import build_model

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train", ["experiment=stage2_video_toy", f"data.size={size}", f"data.frames={frames}", *overrides]
        )
    with open_dict(cfg):
        cfg.paths.root_dir = str(Path.cwd())  # hydra:runtime.cwd of a CLI run
        cfg.paths.output_dir = str(out)
        cfg.model.vae = OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae
    meta = {
        "size": size,
        "frames": frames,
        "audio_features": audio_encoder("baseline").node(),
        "audio_margin": 2,
        "pose_render": {"draw_face": False},
    }
    return build_model(cfg.model, {"audio_layers": 1, "audio_dim": 95, "data_meta": meta})


def toy_inputs(seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A toy speaker clip (reference frame, keypoints, audio) tiled to ``seconds``."""
    from mmgt_prep.toy import generate_clip, speaker_style

    clip = generate_clip(speaker_style(0, 0), 4.0, 64, np.random.default_rng([0, 0, 0]))
    n = int(round(seconds * 25))
    reps = -(-n // len(clip.keypoints))
    kps = np.concatenate([clip.keypoints] * reps)[:n]
    audio = np.concatenate([clip.audio] * reps)[: n * 640]
    return clip.frames[0], kps, audio


def child_generate(export: Path, seconds: float, steps: int, pose_cache: str = "device") -> dict[str, Any]:
    from mmgt.stage2.pipeline import Stage2Pipeline

    ref, kps, audio = toy_inputs(seconds)
    pipe = Stage2Pipeline.from_pretrained(export)
    before = rss_mb()
    t0 = time.perf_counter()
    frames = pipe(ref, kps, audio=audio, steps=steps, pose_cache=pose_cache, progress=False)
    return {
        "seconds_audio": seconds,
        "pose_cache": pose_cache,
        "frames": len(frames),
        "wall_s": time.perf_counter() - t0,
        "rss_before_mb": before,
        "peak_rss_mb": peak_mb(),
        **pipe.last_stats,
    }


def child_train(checkpointing: bool, frames: int, size: int, batch: int) -> dict[str, Any]:
    import torch

    over = ("model.gradient_checkpointing=true",) if checkpointing else ()
    model = tiny_model(Path("/tmp"), frames, size, over)
    g = torch.Generator().manual_seed(0)
    kps = torch.from_numpy(toy_inputs(frames / 25)[1][:frames]).float()
    b = {
        "frames": torch.rand(batch, frames, 3, size, size, generator=g) * 2 - 1,
        "pose": torch.rand(batch, frames, 3, size, size, generator=g),
        "ref_image": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
        "audio": torch.randn(batch, frames, 5, 1, 95, generator=g),
        "keypoints": kps.expand(batch, -1, -1, -1),
        "ref_keypoints": kps[0].expand(batch, -1, -1),
    }
    model.model_step(b)["loss"].backward()  # warm-up: gradient buffers, allocator pools
    model.zero_grad(set_to_none=False)
    base = rss_mb()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.002)

    thread = threading.Thread(target=sample)
    thread.start()
    t0 = time.perf_counter()
    model.model_step(b)["loss"].backward()
    wall = time.perf_counter() - t0
    done.set()
    thread.join()
    return {"checkpointing": checkpointing, "step_peak_above_base_mb": peak[0] - base, "wall_s": wall}


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=False,
        env=os.environ,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "stage2_perf")
    p.add_argument("--steps", type=int, default=2, help="DDIM steps of the memory runs (memory is per step)")
    p.add_argument("--train-frames", type=int, default=12)
    p.add_argument("--train-size", type=int, default=128)
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            res = child_generate(Path(rest[0]), float(rest[1]), int(rest[2]), rest[3])
        else:
            res = child_train(rest[0] == "1", int(rest[1]), int(rest[2]), int(rest[3]))
        print(json.dumps(res))
        return

    from mmgt.stage2.pipeline import context_windows, reference_evals_per_frame

    export = args.out / "export"
    if not (export / "mmgt_stage2.json").is_file():
        tiny_model(args.out).export(export)
    gen = {s: run_child("generate", str(export), str(s), str(args.steps), "device") for s in (3.2, 60.0)}
    recompute = run_child("generate", str(export), "60.0", str(args.steps), "none")
    short, long = gen[3.2], gen[60.0]
    print(
        "\n== Stage II generation memory, tiny scale (fresh process each; peak RSS includes imports + model)"
    )
    head = ("audio", "pose_cache", "frames", "RSS before MB", "peak RSS MB", "wall s", "UNet evals/frame")
    widths = (8, 10, 7, 14, 12, 8, 17)
    print(" ".join(f"{h:>{w}s}" for h, w in zip(head, widths, strict=True)))
    for r in (short, long, recompute):
        print(
            f"{r['seconds_audio']:7.1f}s {r['pose_cache']:>10s} {r['frames']:7d} {r['rss_before_mb']:14.0f} "
            f"{r['peak_rss_mb']:12.0f} {r['wall_s']:8.1f} {r['unet_frame_evals_per_frame']:17.1f}"
        )
    print(f"peak RSS 60 s / 3.2 s: {long['peak_rss_mb'] / short['peak_rss_mb']:.3f} (target <= 1.10)")
    print(
        f"peak RSS 60 s with pose_cache=none / 3.2 s: {recompute['peak_rss_mb'] / short['peak_rss_mb']:.3f}"
    )

    sizes = (str(args.train_frames), str(args.train_size), str(args.train_batch))
    ck = {c: run_child("train", str(c), *sizes) for c in (0, 1)}
    saving = 1 - ck[1]["step_peak_above_base_mb"] / ck[0]["step_peak_above_base_mb"]
    print(
        f"\n== gradient checkpointing, one video-level training step "
        f"(B={args.train_batch}, F={args.train_frames}, {args.train_size}^2 frames)"
    )
    for c in (0, 1):
        r = ck[c]
        state = "on " if c else "off"
        print(
            f"checkpointing {state}: step peak {r['step_peak_above_base_mb']:7.1f} MB above base, "
            f"{r['wall_s']:.2f} s"
        )
    print(f"activation-memory saving: {saving:.0%}; time cost x{ck[1]['wall_s'] / ck[0]['wall_s']:.2f}")

    steps = 25
    ours = steps * 2 * sum(len(w) for w in context_windows(80, 12, 4)) / 80
    print("\n== UNet-frame evaluations per output frame")
    print(
        f"original (30 DDIM steps, CFG 2, 12/4 windows with wrap-around):  {reference_evals_per_frame():.1f}"
    )
    print(f"ours, default export settings (25 steps, CFG, 12/4, no wrap), 80 frames: {ours:.1f}")
    per_step = long["unet_frame_evals_per_frame"] / args.steps / (2 if long["cfg"] else 1)
    print(f"ours, toy export (20 steps, guidance 1 = no CFG, 8/2 windows), 60 s: {per_step * 20:.1f}")
    print(f"ours, toy export with CFG (guidance > 1), 60 s: {per_step * 40:.1f}")
    summary = {"generate": gen, "generate_pose_cache_none": recompute, "checkpointing": ck}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
