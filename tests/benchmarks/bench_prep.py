"""Benchmark ``mmgt-prep source=videos`` against its parts, in 25 fps frames per second.

On the talking-face videos of ../shared/samples (each used ``--repeat`` times as separate sources):

1. decode only (PyAV via ``mmgt.io.iter_video_frames``; source frames/s);
2. decode + 25 fps selection + crop/resize + mediapipe holistic in a plain loop (one graph);
3. ``prepare_videos`` (what ``mmgt-prep source=videos`` runs: + audio, gap filling, H.264 encoding, log-mel
   features, checksums, manifest) with ``workers=1`` and with ``workers=2`` (wall time including the
   pool start-up).

Targets: 1 worker >= 90 % of the plain loop; 2 workers >= 1.8 x 1 worker. ``--rounds N`` interleaves
the three measurements N times and reports medians (the machine's speed drifts by 10 % and more from
minute to minute here, so one-shot figures taken minutes apart are not comparable). Every run also
reports its CPU use, and the last line the CPU ceiling for the pool: cpus / (CPU seconds per frame
of one worker). mediapipe alone keeps ~1.2 cores busy, so on 2 cores that ceiling is ~1.4 x.

    .venv/bin/python tests/benchmarks/bench_prep.py [--size 512] [--repeat 2] [--workers 2] [--window 3.2]
        [--rounds 3]

A clip's frames are encoded while they are detected and a clip is finished (audio, features,
checksums) while the next one is detected, both at a lower CPU priority; only the encoder's flush and
the finishing of each worker's last clip are not hidden.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

from mmgt.config import audio_encoder_node  # noqa: E402
from mmgt.io import iter_video_frames, probe_video  # noqa: E402
from mmgt.pose_detect import HolisticDetector  # noqa: E402
from mmgt_prep.videos import crop_resize, fixed_crop, prepare_videos, resample_frames  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.videos import video_prep_config  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
VIDEOS = ("talking_face_hdtf_aoc_25fps.mp4", "talking_face_moore4_30fps.mp4")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


class Cpu:
    """CPU seconds (user + system) of this process and its reaped children (the pool's workers)."""

    def __enter__(self) -> Cpu:
        self.t0 = time.perf_counter()
        self.c0 = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = self._now() - self.c0

    @staticmethod
    def _now() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Run:
    fps: float  # 25 fps frames per wall second
    ms_cpu: float  # CPU ms per frame
    cores: float  # CPU seconds per wall second

    def __str__(self) -> str:
        return f"{self.fps:8.1f} frames/s   ({self.ms_cpu:5.1f} CPU ms/frame, {self.cores:4.2f} cores)"


def _run(frames: int, c: Cpu) -> Run:
    return Run(frames / c.wall, 1000 * c.cpu / frames, c.cpu / c.wall)


def bench_decode(paths: list[Path]) -> float:
    t0, n = time.perf_counter(), 0
    for p in paths:
        for _ in iter_video_frames(p):
            n += 1
    return n / (time.perf_counter() - t0)


def bench_plain_loop(paths: list[Path], size: int) -> tuple[Run, int]:
    det = HolisticDetector()
    n = 0
    with Cpu() as c:
        for p in paths:
            info = probe_video(p)
            box = fixed_crop("center", info.width, info.height)
            det.reset()
            for _, img in resample_frames(iter_video_frames(p), info.fps):
                det(crop_resize(img, box, size))
                n += 1
    det.close()
    return _run(n, c), n


def bench_prep(inp: Path, out: Path, size: int, workers: int, window: float | None) -> tuple[Run, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = video_prep_config(  # log-mel features as when the figures in docs/prep.md were measured
        input=str(inp),
        out=str(out),
        size=size,
        workers=workers,
        window=window,
        features=(audio_encoder_node("logmel"),),
        progress=False,
    )
    with Cpu() as c:
        summary = prepare_videos(cfg)
    if summary["failed"]:
        raise SystemExit(f"prep failed: {summary['failures']}")
    shutil.rmtree(out, ignore_errors=True)
    return _run(summary["frames"], c), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2, help="use each sample video this many times")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--window", type=float, default=None, help="mmgt-prep window= in seconds (default: whole files)"
    )
    ap.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds (plain, 1 worker, N workers); medians"
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
        cpus = os.cpu_count() or 1
        print(f"sources: {len(paths)} ({names} x {args.repeat}), {clips}, size {args.size}")
        print(f"{cpus} cpus, python {sys.version.split()[0]}, {load()}")
        print(f"decode only                      {bench_decode(paths):8.1f} frames/s")
        rows: dict[str, list[Run]] = {"plain": [], "w1": [], "wn": []}
        wn_label = f"mmgt-prep workers={args.workers}"
        for r in range(args.rounds):
            plain, n = bench_plain_loop(paths, args.size)
            w1, s1 = bench_prep(inp, Path(tmp) / "w1", args.size, 1, args.window)
            wn, sn = bench_prep(inp, Path(tmp) / "wn", args.size, args.workers, args.window)
            if s1["frames"] != sn["frames"]:  # (windows drop each source's last partial window)
                raise SystemExit(f"frame counts differ: workers=1 {s1['frames']}, workers=N {sn['frames']}")
            for key, run in (("plain", plain), ("w1", w1), ("wn", wn)):
                rows[key].append(run)
            print(
                f"round {r + 1}/{args.rounds} ({n} / {s1['frames']} frames): plain {plain.fps:.1f}, "
                f"workers=1 {w1.fps:.1f}, "
                f"workers={args.workers} {wn.fps:.1f} frames/s ({load()})"
            )

        def med(key: str) -> Run:
            runs = rows[key]
            return Run(*(statistics.median(getattr(x, f) for x in runs) for f in ("fps", "ms_cpu", "cores")))

        r1 = statistics.median(w.fps / p.fps for w, p in zip(rows["w1"], rows["plain"], strict=True))
        rn = statistics.median(w.fps / p.fps for w, p in zip(rows["wn"], rows["w1"], strict=True))
        what = "median of " if args.rounds > 1 else ""
        print(f"decode + mediapipe, plain loop   {med('plain')}")
        print(f"mmgt-prep workers=1              {med('w1')}")
        print(f"{wn_label:<33}{med('wn')}")
        print(f"ratio workers=1 / plain loop     {r1:8.2f}   ({what}per-round ratios; target >= 0.90)")
        print(f"ratio workers={args.workers} / workers=1       {rn:8.2f}   (target >= 1.80 for 2 workers)")
        # no pool can beat the machine: cpus / (CPU s per frame) frames/s
        w1 = med("w1")
        ceiling = min(args.workers * w1.fps, cpus * 1000 / w1.ms_cpu)
        print(
            f"CPU ceiling for workers={args.workers} on {cpus} cpus: {ceiling:.1f} frames/s = "
            f"{ceiling / w1.fps:.2f} x workers=1 (one worker uses {w1.cores:.2f} cores at "
            f"{w1.ms_cpu:.1f} CPU ms/frame); the pool reaches {med('wn').fps / ceiling:.0%} of it"
        )


if __name__ == "__main__":
    main()
