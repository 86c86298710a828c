"""Sync-C/D throughput: seconds of compute per minute of video, on the ../shared/samples talking faces.

SyncNet weights are random but written in the original ``syncnet_v2.model`` format: the compute is the
same as with the real weights. Reported per video and stage (face detection + tracking + cropping, SyncNet
embeddings + scoring), then overall.

    .venv/bin/python tests/benchmarks/bench_eval.py sync [--frames N] [--device cpu|cuda] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmgt.io import read_video  # noqa: E402
from mmgt_eval.face import FaceTrackConfig, crop_track, face_tracks, make_detector  # noqa: E402
from mmgt_eval.metrics.sync import resample_indices  # noqa: E402
from mmgt_eval.syncnet import SyncNet, load_syncnet, save_syncnet_weights, score_crops  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
VIDEOS = ("talking_face_hdtf_aoc_25fps.mp4", "talking_face_moore4_30fps.mp4")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=None, help="decode only the first N frames")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="runs per video; the fastest is reported")
    args = ap.parse_args(argv)

    cfg = FaceTrackConfig(min_track=50)  # 50 so that --frames 100 still gives a track; default 100
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = save_syncnet_weights(SyncNet(), Path(tmp) / "syncnet_v2.model")
        net = load_syncnet(weights, args.device)
    detector = make_detector(cfg, args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    print(
        f"{'video':34s} {'seconds':>8s} {'windows':>8s} {'face s':>8s} {'syncnet s':>9s} {'s/video-min':>11s}"
    )
    total_video = total_face = total_sync = 0.0
    for name in VIDEOS:
        path = SAMPLES / name
        if not path.exists():
            print(f"{name}: missing, skipped")
            continue
        v = read_video(path, max_frames=args.frames)
        duration = len(v.frames) / v.fps
        best: tuple[float, float, int] | None = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            frames = v.frames[resample_indices(len(v.frames), v.fps)] if abs(v.fps - 25) > 1e-3 else v.frames
            result = face_tracks(frames, cfg, detector)
            track = result.longest()
            crops = crop_track(frames, track, cfg)
            t1 = time.perf_counter()
            audio = v.audio[track.start * 640 : track.stop * 640]
            out = score_crops(net, crops, audio, batch_size=args.batch_size, device=args.device)
            t2 = time.perf_counter()
            assert np.isfinite([out["conf"], out["min_dist"]]).all()
            if best is None or (t2 - t0) < best[0] + best[1]:
                best = (t1 - t0, t2 - t1, out["n_windows"])
        face_s, sync_s, n_windows = best
        per_min = (face_s + sync_s) / (duration / 60)
        print(f"{name:34s} {duration:8.2f} {n_windows:8d} {face_s:8.2f} {sync_s:9.2f} {per_min:11.1f}")
        total_video += duration
        total_face += face_s
        total_sync += sync_s
    if total_video:
        print(
            f"Sync-C/D: {(total_face + total_sync) / (total_video / 60):.1f} s per video minute "
            f"(face {total_face / (total_video / 60):.1f} + SyncNet {total_sync / (total_video / 60):.1f})"
        )


if __name__ == "__main__":
    main()
