"""Benchmark ``mmgt-prep source=videos`` against its parts, in 25 fps frames per second.

On the talking-face videos of ../shared/samples (each used ``--repeat`` times as separate sources):

1. decode only (PyAV via ``mmgt.io.iter_video_frames``; source frames/s);
2. decode + 25 fps selection + crop/resize + mediapipe holistic in a plain loop (one graph);
3. ``prepare_videos`` (what ``mmgt-prep source=videos`` runs: + audio, gap filling, H.264 encoding, log-mel
   features, checksums, manifest) with ``workers=1`` and with ``workers=2`` (wall time including the
   pool start-up).

Targets: 1 worker >= 90 % of the plain loop; 2 workers >= 1.8 x 1 worker (needs 2 idle cores). The load
average is printed with every figure: numbers taken on a busy machine are not comparable.

    .venv/bin/python tests/benchmarks/bench_prep.py [--size 512] [--repeat 2] [--workers 2] [--window 3.2]

Clips are written by a background thread while the next clip is detected, so the write of each worker's
last clip is not hidden: whole-file clips (a few long clips) show that tail more than ``--window 3.2``
(MMGT's 80-frame clips).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

from mmgt.io import iter_video_frames, probe_video  # noqa: E402
from mmgt.pose_detect import HolisticDetector  # noqa: E402
from mmgt_prep.videos import VideoPrepConfig, crop_resize, fixed_crop, prepare_videos, resample_frames  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
VIDEOS = ("talking_face_hdtf_aoc_25fps.mp4", "talking_face_moore4_30fps.mp4")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def bench_decode(paths: list[Path]) -> float:
    t0, n = time.perf_counter(), 0
    for p in paths:
        for _ in iter_video_frames(p):
            n += 1
    return n / (time.perf_counter() - t0)


def bench_plain_loop(paths: list[Path], size: int) -> tuple[float, int]:
    det = HolisticDetector()
    t0, n = time.perf_counter(), 0
    for p in paths:
        info = probe_video(p)
        box = fixed_crop("center", info.width, info.height)
        det.reset()
        for _, img in resample_frames(iter_video_frames(p), info.fps):
            det(crop_resize(img, box, size))
            n += 1
    det.close()
    return n / (time.perf_counter() - t0), n


def bench_prep(inp: Path, out: Path, size: int, workers: int, window: float | None) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = VideoPrepConfig(
        input=str(inp), out=str(out), size=size, workers=workers, window=window, progress=False
    )
    t0 = time.perf_counter()
    summary = prepare_videos(cfg)
    wall = time.perf_counter() - t0
    if summary["failed"]:
        raise SystemExit(f"prep failed: {summary['failures']}")
    return summary["frames"] / wall, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2, help="use each sample video this many times")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--window", type=float, default=None, help="mmgt-prep window= in seconds (default: whole files)"
    )
    args = ap.parse_args()
    missing = [v for v in VIDEOS if not (SAMPLES / v).is_file()]
    if missing:
        print(f"sample videos missing in {SAMPLES}: {missing}; nothing to benchmark")
        return
    with tempfile.TemporaryDirectory(prefix="bench_prep_") as tmp:
        inp = Path(tmp) / "in"
        inp.mkdir()
        paths = []
        for r in range(args.repeat):
            for v in VIDEOS:
                link = inp / f"copy{r}_{v}"
                link.symlink_to(SAMPLES / v)
                paths.append(link)
        names = ", ".join(VIDEOS)
        clips = "whole files" if args.window is None else f"{args.window} s windows"
        print(f"sources: {len(paths)} ({names} x {args.repeat}), {clips}, size {args.size}")
        print(f"{os.cpu_count()} cpus, python {sys.version.split()[0]}")
        print(load())
        decode = bench_decode(paths)
        print(f"decode only                      {decode:8.1f} frames/s   ({load()})")
        plain, n = bench_plain_loop(paths, args.size)
        print(f"decode + mediapipe, plain loop   {plain:8.1f} frames/s   ({n} frames; {load()})")
        w1, s1 = bench_prep(inp, Path(tmp) / "w1", args.size, 1, args.window)
        print(f"mmgt-prep workers=1              {w1:8.1f} frames/s   ({s1['frames']} frames; {load()})")
        wn, sn = bench_prep(inp, Path(tmp) / "wn", args.size, args.workers, args.window)
        label = f"mmgt-prep workers={args.workers}"
        print(f"{label:<33}{wn:8.1f} frames/s   ({sn['frames']} frames; {load()})")
        print(f"ratio workers=1 / plain loop     {w1 / plain:8.2f}   (target >= 0.90)")
        print(
            f"ratio workers={args.workers} / workers=1       {wn / w1:8.2f}   (target >= 1.80 for 2 workers)"
        )


if __name__ == "__main__":
    main()
