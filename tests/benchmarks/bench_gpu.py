"""The GPU path, measured: release-size networks with random weights on one CUDA device (issue 18).

Sections, each in a forked process with its own time box (a section that fails or runs out of time is
reported with its status and the tail of its log, not fatal):

* ``a_peak``: the device's bf16 matmul peak (measured) next to its datasheet peak;
* ``a_original`` / ``a_default`` / ``a_fast_eager`` / ``a_fast``: Stage II generation of 10 s (250 frames)
  at 512^2 with the original's settings (30 DDIM steps, sequential CFG, fp16, closed-loop 12/4 windows: 90
  UNet-frame evaluations per frame), :data:`~mmgt.stage2.export.DEFAULT_INFERENCE`, and the fast levers
  (bf16, channels_last, batched CFG, DPM-Solver++ at 8 steps) without and with torch.compile (``a_fast``
  runs last: its first call compiles): s per frame (from a two-window probe when the 250 frames would not
  fit the box), peak VRAM, UNet-frame evaluations per frame, achieved TFLOP/s (FlopCounterMode on one UNet
  call x the evaluations) and its fraction of the peak; ``a_speedup``: the ratios of the same run;
  ``a_quality``: PSNR fast vs default on a trained toy export (``--toy-export``); ``a_psnr_random``: the
  same on the random full-size probes (same seed; random weights, so only a sanity figure);
* ``b_train_image`` / ``b_train_video``: one training step of process 1 (image level) and process 2
  (12 frames) at 512^2, bf16 autocast, with and without gradient checkpointing: steps/s, peak memory and
  the largest batch that fits (doubling until out of memory or out of time);
* ``c_stage1``: Stage I (SMGA, release size) generating 60 s of audio: s per 60 s, peak memory;
* ``d_eval``: FID Inception, Inception-I3D (FVD) and SyncNet feature extraction in items/s;
* ``e_prep``: ``mmgt-prep`` with 1, 2, 4, 8 workers against the plain loop (tests/benchmarks/bench_prep.py;
  needs PyAV, mediapipe and ../shared/samples).

Usage (the networks: tests/benchmarks/gpu_models.py; ``make bench-gpu`` installs the wheels of
tests/benchmarks/gpu_wheels.sh first)::

    python tests/benchmarks/bench_gpu.py --out outputs/bench/gpu [--only a_default,c_stage1] [--frames 250]
    python tests/benchmarks/bench_gpu.py --quick --out /tmp/bench_gpu    # tiny sizes on CPU (the test)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # the parent checks CUDA without initialising it
os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests.benchmarks.gpu_harness import Skip, run_section, write_report  # noqa: E402
from tests.benchmarks.gpu_models import (  # noqa: E402
    InceptionI3D,
    param_count,
    psnr,
    stage1_net,
    stage2_model,
)

PEAK_TFLOPS_BF16 = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.1}
"""Dense bf16 tensor-core peaks from the datasheets (TFLOP/s), matched against the device name in order."""

LEVERS = ("cfg_mode", "scheduler", "channels_last", "sdpa_backend", "compile")
"""Generation options of the speed levers (branch ``levers``); a configuration using one the pipeline does
not have is reported as skipped."""


def _original() -> dict[str, Any]:
    from mmgt.release import _inference

    return {**_inference("original")[0], "cfg_mode": "sequential", "dtype": "fp16"}


def _fast(compile: bool = True) -> dict[str, Any]:
    return {
        "dtype": "bf16",
        "sdpa_backend": None,
        "channels_last": True,
        "cfg_mode": "batched",
        "compile": compile,
        "scheduler": "dpmsolver++",
        "steps": 8,
    }


CONFIGS: dict[str, Callable[[], dict[str, Any]]] = {
    "original": _original,  # the original's sampler: 30 DDIM steps, closed-loop 12/4 windows, fp16
    "default": dict,  # DEFAULT_INFERENCE as it is
    "fast_eager": lambda: _fast(compile=False),  # the fast levers but torch.compile
    "fast": _fast,  # all the levers (its first call pays inductor's compilation: the last section)
}


# --------------------------------------------------------------------------- helpers
def device(args: argparse.Namespace) -> torch.device:
    return torch.device("cpu" if args.quick else "cuda")


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gb(dev: torch.device) -> float | None:
    """Peak allocated device memory since :func:`reset_peak` (GiB); None on CPU (no VRAM)."""
    return torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None


def rss_peak_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory(dev: torch.device) -> dict[str, Any]:
    gb = peak_gb(dev)
    if gb is None:
        return {"peak_vram_gb": None, "peak_vram_note": "no CUDA (quick run)", "peak_rss_gb": rss_peak_gb()}
    return {"peak_vram_gb": round(gb, 2)}


def toy_inputs(frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 reference frame and (frames, 134, 3) keypoints of a toy speaker."""
    import cv2

    from tests.benchmarks.bench_stage2_perf import toy_inputs as toy

    ref, kps, _ = toy(frames / 25)
    return cv2.resize(ref, (size, size), interpolation=cv2.INTER_LINEAR), kps[:frames]


# --------------------------------------------------------------------------- (a) generation
def _pipeline_levers() -> list[str]:
    """The lever options (and ``dtype``) the current Stage2Pipeline does not take."""
    import inspect

    from mmgt.stage2.pipeline import Stage2Pipeline

    params = inspect.signature(Stage2Pipeline.denoise).parameters
    missing = [k for k in LEVERS if k not in params]
    return missing + ([] if "dtype" in inspect.signature(Stage2Pipeline).parameters else ["dtype"])


def unet_flops_per_frame(pipe: Any, ref: np.ndarray, kps: np.ndarray, feats: np.ndarray, opts: dict) -> float:
    """FLOPs of one denoiser call / the UNet-frames in it (eager, one window, one step)."""
    from torch.utils.flop_counter import FlopCounterMode

    den = pipe.components.denoiser
    seen: dict[str, Any] = {}

    def pre(_module: Any, args: tuple) -> None:
        if "frames" not in seen:
            seen["counter"] = FlopCounterMode(display=False)
            seen["counter"].__enter__()
            seen["frames"] = args[0].shape[0] * args[0].shape[2]  # (B, C, F, h, w)

    def post(*_: Any) -> None:
        if "counter" in seen and "flops" not in seen:
            seen["counter"].__exit__(None, None, None)
            seen["flops"] = seen["counter"].get_total_flops()

    n = int(opts.get("context_frames") or pipe.inference["context_frames"])
    eager = {**opts, "compile": False} if "compile" in opts else dict(opts)
    hooks = [den.register_forward_pre_hook(pre), den.register_forward_hook(post)]
    try:
        pipe(ref, kps[:n], audio_features=feats[:n], progress=False, **{**eager, "steps": 1})
    finally:
        for h in hooks:
            h.remove()
    return seen["flops"] / seen["frames"]


def section_generate(args: argparse.Namespace, name: str) -> dict[str, Any]:
    from mmgt.stage2.export import DEFAULT_INFERENCE
    from mmgt.stage2.pipeline import Stage2Pipeline

    t_start = time.perf_counter()
    opts = CONFIGS[name]()
    dtype = opts.pop("dtype", None)
    missing = [k for k in _pipeline_levers() if k in opts or (k == "dtype" and dtype)]
    if missing:
        raise Skip(f"Stage2Pipeline has no {missing} (the speed levers of branch `levers` not merged)")
    dev = device(args)
    size, frames = (64, 16) if args.quick else (512, args.frames)
    if args.quick:  # tiny and short: the same code path, no compiler on the CPU runners
        steps = int(opts.get("steps") or DEFAULT_INFERENCE["steps"])
        opts.update(steps=max(1, steps // 10), **({"compile": False} if "compile" in opts else {}))
    with torch.device(dev):
        model = stage2_model("video", size, 12, args.quick)
    pipe = Stage2Pipeline(
        model.components, model.export_meta(), str(dev), **({"dtype": dtype} if dtype else {})
    )
    ref, kps = toy_inputs(frames, size)
    layers, dim = model.hparams.audio_layers, model.hparams.audio_dim
    feats = np.random.default_rng(0).standard_normal((frames, layers, dim)).astype(np.float32)
    flops = unet_flops_per_frame(pipe, ref, kps, feats, opts)

    def run(n: int, **over: Any) -> tuple[np.ndarray, float, dict[str, Any]]:
        sync(dev)
        t = time.perf_counter()
        video = pipe(ref, kps[:n], audio_features=feats[:n], progress=False, seed=0, **{**opts, **over})
        sync(dev)
        return video, time.perf_counter() - t, dict(pipe.last_stats)

    n_probe = min(frames, 2 * int(opts.get("context_frames") or pipe.inference["context_frames"]))
    warm = run(n_probe, steps=min(2, int(opts.get("steps") or pipe.inference["steps"])))[1]  # compile, cuDNN
    reset_peak(dev)
    probe, wall, stats = run(n_probe)
    if name in ("default", "fast_eager"):  # the same frames and seed: PSNR fast vs default (a_psnr_random)
        np.save(Path(args.out) / "tmp" / f"a_{name}.npy", probe)
    left = t_start + 0.9 * args.box - time.perf_counter()
    n = frames if frames > n_probe and wall / n_probe * frames < left else n_probe
    note = None
    if n < frames:
        note = f"s per frame from {n_probe} frames: {frames} would take about {wall / n_probe * frames:.0f} s"
    else:
        _, wall, stats = run(n)
    evals = stats["unet_frame_evals_per_frame"]
    return {
        "config": {"dtype": dtype or "pipeline default", **opts},
        "frames": n,
        "frames_requested": frames,
        **({"note": note} if note else {}),
        "size": size,
        "s_per_frame": wall / n,
        "warmup_s": warm,
        **memory(dev),
        "unet_frame_evals_per_frame": evals,
        "unet_gflop_per_frame_eval": flops / 1e9,
        "achieved_tflops": flops * evals * n / wall / 1e12,
    }


def section_peak(args: argparse.Namespace) -> dict[str, Any]:
    dev = device(args)
    n, dtype = (512, torch.float32) if args.quick else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(dev)
    reps, t0 = 5 if args.quick else 50, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(dev)
    measured = 2 * n**3 * reps / (time.perf_counter() - t0) / 1e12
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    sheet = next((v for k, v in PEAK_TFLOPS_BF16.items() if k in name), None)
    return {
        "device": name,
        "matmul": f"{n}^3 {str(dtype).removeprefix('torch.')}",
        "measured_tflops": measured,
        "datasheet_tflops": sheet,
        "peak_tflops": sheet or measured,
    }


def section_quality(args: argparse.Namespace) -> dict[str, Any]:
    """PSNR fast vs default on a trained toy export (same seed, same inputs)."""
    from mmgt.stage2.pipeline import Stage2Pipeline

    if not args.toy_export:
        raise Skip("no --toy-export given (PSNR of the random full-size outputs: a_psnr_random)")
    missing = _pipeline_levers()
    if missing:
        raise Skip(f"Stage2Pipeline has no {missing} (branch `levers` not merged)")
    dev = device(args)
    fast = CONFIGS["fast_eager"]()
    dtype = fast.pop("dtype")
    frames, default = (24, {"steps": 2}) if args.quick else (50, {})
    if args.quick:
        fast["steps"] = 2
    outs = {}
    for name, kwargs, opts in (("default", {}, default), ("fast", {"dtype": dtype}, fast)):
        pipe = Stage2Pipeline.from_pretrained(args.toy_export, str(dev), **kwargs)
        ref, kps = toy_inputs(frames, pipe.size)
        proj = pipe.components.audio_proj.config  # fixed features of its shape (no extractor: no PyAV)
        feats = np.zeros((frames, proj.audio_layers, proj.audio_dim), np.float32) if pipe.use_audio else None
        outs[name] = pipe(ref, kps, audio_features=feats, progress=False, seed=0, **opts)
    return {
        "export": str(args.toy_export),
        "frames": frames,
        "fast": {"dtype": dtype, **fast},
        "psnr_fast_vs_default_db": psnr(outs["fast"], outs["default"]),
    }


# --------------------------------------------------------------------------- (b) training
def make_batch(b: int, f: int, size: int, audio: tuple[int, int, int], dev: torch.device) -> dict[str, Any]:
    """A random Stage II training batch (the layout of ``Stage2LitModule.model_step``)."""
    kps = torch.from_numpy(toy_inputs(f, 64)[1]).float().to(dev)
    return {
        "frames": torch.rand(b, f, 3, size, size, device=dev) * 2 - 1,
        "pose": torch.rand(b, f, 3, size, size, device=dev),
        "ref_image": torch.rand(b, 3, size, size, device=dev) * 2 - 1,
        "audio": torch.randn(b, f, *audio, device=dev),
        "keypoints": kps.expand(b, -1, -1, -1),
        "ref_keypoints": kps[0].expand(b, -1, -1),
    }


def _step(model: Any, opt: Any, batch: dict[str, Any], dev: torch.device) -> None:
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        loss = model.model_step(batch)["loss"]
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _largest_batch(step: Callable[[int], None], cap: int, deadline: float) -> dict[str, Any]:
    """Double the batch from 1 until out of memory, past ``deadline`` or at ``cap``."""
    fits, b, why, last = 0, 1, "cap", 0.0
    while b <= cap:
        if time.perf_counter() + 2.5 * last > deadline:  # the next step takes about twice the last
            why = "time box"
            break
        t0 = time.perf_counter()
        try:
            step(b)
        except torch.OutOfMemoryError:
            why = "out of memory"
            break
        fits, b, last = b, 2 * b, time.perf_counter() - t0
    return {"largest_batch": fits, "limited_by": why}


def _release_memory(opt: Any) -> None:
    """Gradients and cached blocks of a step that ran out of memory."""
    import gc

    opt.zero_grad(set_to_none=True)
    gc.collect()
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def section_train(args: argparse.Namespace, process: str) -> dict[str, Any]:
    dev = device(args)
    t_start = time.perf_counter()
    size = 64 if args.quick else 512
    frames = 1 if process == "image" else (4 if args.quick else 12)
    with torch.device(dev):
        model = stage2_model(process, size, frames, args.quick)
    model.train()
    opt = model.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    window = 2 * int(model.hparams.data_meta.get("audio_margin", 2)) + 1
    audio = (window, model.hparams.audio_layers, model.hparams.audio_dim)
    result: dict[str, Any] = {"size": size, "frames": frames, "trainable_tensors": len(model.trainable_names)}
    result["trainable_params_m"] = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    box = args.box
    for ckpt in (False, True):
        den, ref = model.components.denoiser, model.components.reference_net
        (den.enable_gradient_checkpointing if ckpt else den.disable_gradient_checkpointing)()
        (ref.enable_gradient_checkpointing if ckpt else ref.disable_gradient_checkpointing)()
        batch = make_batch(1, frames, size, audio, dev)
        _step(model, opt, batch, dev)  # warm-up: optimizer state, allocator
        sync(dev)
        reset_peak(dev)
        reps, t0 = 1 if args.quick else 3, time.perf_counter()
        for _ in range(reps):
            _step(model, opt, batch, dev)
        sync(dev)
        key = "ckpt" if ckpt else "no_ckpt"
        result[f"{key}_steps_per_s_b1"] = reps / (time.perf_counter() - t0)
        result[f"{key}_peak_gb_b1"] = peak_gb(dev)
        reset_peak(dev)
        deadline = t_start + box * (0.5 if not ckpt else 0.9)
        cap = 2 if args.quick else 64
        found = _largest_batch(
            lambda b: _step(model, opt, make_batch(b, frames, size, audio, dev), dev), cap, deadline
        )
        result.update({f"{key}_{k}": v for k, v in found.items()})
        result[f"{key}_peak_gb_largest"] = peak_gb(dev)
        _release_memory(opt)
    if dev.type != "cuda":
        result["peak_note"] = "no CUDA (quick run): peak memory not measured"
    return result


# --------------------------------------------------------------------------- (c) Stage I
def section_stage1(args: argparse.Namespace) -> dict[str, Any]:
    from mmgt.release import STAGE1_META
    from mmgt.stage1.diffusion import PoseDiffusion
    from mmgt.stage1.generate import generate_pose_sequence

    dev = device(args)
    seconds, steps = (4.0, 2) if args.quick else (60.0, int(STAGE1_META["sample_steps"]))
    with torch.device(dev):
        net = stage1_net(args.quick)
    n = int(seconds * 25)
    feats = np.random.default_rng(0).standard_normal((n, net.config.audio_dim)).astype(np.float32)
    ref = toy_inputs(1, 64)[1][0]
    diffusion = PoseDiffusion(**STAGE1_META["diffusion"])
    sampling = {"steps": steps, "guidance": STAGE1_META["guidance"], "eta": STAGE1_META["eta"]}
    generate_pose_sequence(net, diffusion, feats[:80], ref, **sampling)  # warm-up
    sync(dev)
    reset_peak(dev)
    t0 = time.perf_counter()
    kps = generate_pose_sequence(net, diffusion, feats, ref, **sampling)
    sync(dev)
    wall = time.perf_counter() - t0
    return {
        "params_m": param_count(net),
        "seconds_audio": seconds,
        "frames": len(kps),
        "steps": steps,
        "s_per_60s_audio": wall * 60 / seconds,
        **memory(dev),
    }


# --------------------------------------------------------------------------- (d) evaluation networks
def _rate(fn: Callable[[], Any], items: int, dev: torch.device, reps: int) -> float:
    fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync(dev)
    return items * reps / (time.perf_counter() - t0)


@torch.no_grad()
def section_eval(args: argparse.Namespace) -> dict[str, Any]:
    from mmgt_eval.metrics.fid import FIDInceptionFeatures, fid_inception_architecture
    from mmgt_eval.syncnet import SyncNet

    dev = device(args)
    q = args.quick
    reps = 1 if q else 5
    n_img, side = (2, 64) if q else (64, 512)
    fid = FIDInceptionFeatures(fid_inception_architecture()).to(dev)
    images = torch.randint(0, 256, (n_img, 3, side, side), dtype=torch.uint8, device=dev)
    n_clip, t, res = (1, 8, 64) if q else (8, 16, 224)
    i3d = InceptionI3D().to(dev).eval()
    clips = torch.rand(n_clip, 3, t, res, res, device=dev) * 2 - 1
    n_win = 2 if q else 128
    sync_net = SyncNet().to(dev)
    lips = torch.rand(n_win, 3, 5, 224, 224, device=dev) * 255
    mfcc = torch.randn(n_win, 1, 13, 20, device=dev)
    return {
        "fid_images_per_s": _rate(lambda: fid(images), n_img, dev, reps),
        "fid_input": f"{side}^2 uint8 -> 299^2, batch {n_img}",
        "fvd_clips_per_s": _rate(lambda: i3d(clips), n_clip, dev, reps),
        "fvd_input": f"{t} x {res}^2 clips, batch {n_clip}",
        "sync_windows_per_s": _rate(lambda: sync_net(lips, mfcc), n_win, dev, reps),
        "sync_input": f"5 x 224^2 lip + 13 x 20 MFCC windows (one per video frame), batch {n_win}",
    }


# --------------------------------------------------------------------------- (e) prep scaling
def section_prep(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    try:
        from tests.benchmarks import bench_prep
        from tests.helpers.videos import loop_video
    except ImportError as e:
        raise Skip(f"needs PyAV and mediapipe ({e}); `bash tests/benchmarks/gpu_wheels.sh --prep`") from e
    missing = [v for v in bench_prep.VIDEOS if not (bench_prep.SAMPLES / v).is_file()]
    if missing:
        raise Skip(f"sample videos missing in {bench_prep.SAMPLES}: {missing}")
    cpus = os.cpu_count() or 1
    workers = (1,) if args.quick else tuple(w for w in (1, 2, 4, 8) if w <= cpus)
    size, seconds = (128, 1.0) if args.quick else (512, 2.0)
    copies = 1 if args.quick else max(1, max(workers) // len(bench_prep.VIDEOS))  # a video per worker
    with tempfile.TemporaryDirectory(prefix="bench_gpu_prep_") as tmp:
        inp = Path(tmp) / "in"
        inp.mkdir()
        paths = [
            loop_video(bench_prep.SAMPLES / v, inp / f"c{i}_{v}", seconds, start=i)
            for i in range(copies)
            for v in bench_prep.VIDEOS[: 1 if args.quick else None]
        ]
        plain, n = bench_prep.bench_plain_loop(paths[:2], size)  # a rate: two videos are enough
        result: dict[str, Any] = {
            "cpus": cpus,
            "videos": len(paths),
            "plain_frames": n,
            "plain_fps": plain.fps,
        }
        for w in workers:
            run, _ = bench_prep.bench_prep(inp, Path(tmp) / f"w{w}", size, w, None)
            result[f"workers{w}_fps"] = run.fps
            result[f"workers{w}_vs_plain"] = run.fps / plain.fps
    return result


# --------------------------------------------------------------------------- harness
SECTIONS: dict[str, tuple[Callable[[argparse.Namespace], dict[str, Any]], float]] = {
    "a_peak": (section_peak, 10),
    "a_original": (lambda a: section_generate(a, "original"), 75),
    "a_default": (lambda a: section_generate(a, "default"), 60),
    "a_fast_eager": (lambda a: section_generate(a, "fast_eager"), 60),
    "a_quality": (section_quality, 25),
    "b_train_image": (lambda a: section_train(a, "image"), 40),
    "b_train_video": (lambda a: section_train(a, "video"), 40),
    "c_stage1": (section_stage1, 30),
    "d_eval": (section_eval, 25),
    "e_prep": (section_prep, 45),
    "a_fast": (lambda a: section_generate(a, "fast"), 150),  # last: whatever of the budget is left
}
"""Section -> (function, time box in s on the GPU machine), in running order; the total is capped by
``--budget`` (475 s), so the last sections get what the earlier ones left."""


def psnr_random(out: Path) -> dict[str, Any]:
    """PSNR fast vs default of the random full-size outputs (same seed and inputs), from a_default and
    a_fast_eager (a_fast differs from it by torch.compile only)."""
    files = [out / "tmp" / f"a_{n}.npy" for n in ("default", "fast_eager")]
    if not all(f.is_file() for f in files):
        return {"status": "skipped", "reason": "a_default or a_fast_eager has no output"}
    a, b = (np.load(f) for f in files)
    for f in files:
        f.unlink()
    return {
        "status": "ok",
        "psnr_fast_vs_default_db": psnr(a, b),
        "note": "random-weight networks (full size on the GPU): a sanity figure, not a quality measure",
    }


def speedups(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """s per frame of original / default / fast relative to each other (same run)."""
    spf = {n: sections.get(f"a_{n}", {}).get("s_per_frame") for n in CONFIGS}
    out: dict[str, Any] = {"status": "ok", "s_per_frame": spf}
    for a, b in (
        ("original", "default"),
        ("default", "fast"),
        ("original", "fast"),
        ("default", "fast_eager"),
    ):
        if spf[a] and spf[b]:
            out[f"{a}_over_{b}"] = spf[a] / spf[b]
    if len(out) == 2:
        out = {
            "status": "skipped",
            "reason": "needs two of a_original, a_default, a_fast(_eager)",
            "s_per_frame": spf,
        }
    return out


def _commit() -> str:
    import subprocess

    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for bench_gpu.json / .md and the logs")
    p.add_argument("--quick", action="store_true", help="tiny sizes on CPU (the test); no CUDA needed")
    p.add_argument("--only", default="", help="comma-separated sections (default: all)")
    p.add_argument("--frames", type=int, default=250, help="frames generated in a_* (250 = 10 s)")
    p.add_argument("--toy-export", type=Path, default=None, help="a trained toy Stage II export (a_quality)")
    p.add_argument("--budget", type=float, default=475.0, help="total seconds; boxes shrink to fit")
    args = p.parse_args(argv)
    names = [s for s in args.only.split(",") if s] or list(SECTIONS)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    args.sections = names
    scale = 4.0 if args.quick else 1.0  # quick: a loaded 2-core CPU
    args.boxes = {n: box * scale for n, (_, box) in SECTIONS.items()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.quick and not torch.cuda.is_available():
        print(
            "bench_gpu: no CUDA device; this measures the GPU path. Run with --quick for the CPU smoke run."
        )
        return 2
    out = Path(args.out)
    for sub in ("logs", "tmp"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    # imported once here, so every forked section starts warm (the parent never initialises CUDA)
    import mmgt.stage2.module  # noqa: F401
    import mmgt.stage2.pipeline  # noqa: F401
    import mmgt.train  # noqa: F401
    import mmgt_eval.metrics.fid  # noqa: F401
    import mmgt_eval.syncnet  # noqa: F401

    t0 = time.perf_counter()
    sections: dict[str, dict[str, Any]] = {}
    for name in args.sections:
        left = args.budget * (4.0 if args.quick else 1.0) - (time.perf_counter() - t0)
        if left < 5:
            sections[name] = {"status": "timeout", "error": "total budget spent before it started"}
            continue
        sections[name] = run_section(name, SECTIONS[name][0], args, min(args.boxes[name], left))
        print(f"{name}: {sections[name]['status']} ({sections[name]['wall_s']} s)", flush=True)
    if "a_default" in sections and "a_fast_eager" in sections:
        sections["a_psnr_random"] = psnr_random(out)
    sections["a_speedup"] = speedups(sections)
    peak = sections.get("a_peak", {})
    for name in CONFIGS:
        res = sections.get(f"a_{name}", {})
        if res.get("status") == "ok" and peak.get("peak_tflops"):
            res["fraction_of_peak"] = res["achieved_tflops"] / peak["peak_tflops"]
    report = {
        "device": peak.get("device", "cpu" if args.quick else "cuda"),
        "quick": args.quick,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": _commit(),
        "torch": torch.__version__,
        "total_s": time.perf_counter() - t0,
        "sections": sections,
    }
    write_report(out, report)
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
