"""Benchmark ``mmgt-prep ... preview=true``: wall time and peak RSS of one clip's preview, by clip length.

Makes (or reuses, ``--store``) a clip store of the sample talking face looped to 4 s and 16 s at 512^2
(``mmgt-prep source=videos``), then writes each clip's preview in a fresh process (so that its peak RSS
is the preview's alone) with :func:`mmgt_prep.preview.write_clip_preview`. Streaming keeps the peak flat
in the clip's length; the time grows linearly.

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_preview.py [--store DIR] [--size 512]
        [--preset veryfast] [--chunk 16]

Reference (before streaming, commit 268f2e1, whole clips in memory, preset medium): the 16 s clip took
175.8 s and 8.24 GB peak RSS on the 2-core machine; streamed: 47.5 s and 1.15 GB (4 s clip: 11.4 s, 1.14 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT.parent / "shared" / "samples"

CHILD = """
import json, resource, sys, time
from mmgt.clipstore import ClipStore
from mmgt_prep.preview import write_clip_preview
store, clip_id, out, preset, chunk = sys.argv[1:6]
clip = ClipStore(store).clip(clip_id)
t0 = time.perf_counter()
write_clip_preview(clip, out, preset=preset, chunk=int(chunk))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def make_store(work: Path, size: int) -> Path:
    from mmgt_prep.videos import prepare_videos
    from tests.helpers.videos import AOC, make_video_folder, video_prep_config

    videos = make_video_folder(
        work / "videos", SAMPLES, [("aoc/a04.mp4", AOC, 4.0, 0.0), ("aoc/a16.mp4", AOC, 16.0, 0.0)]
    )
    store = work / "store"
    cfg = video_prep_config(
        input=str(videos), out=str(store), size=size, split="train", features=(), progress=False
    )
    summary = prepare_videos(cfg)
    assert summary["ok"] == 2, summary
    return store


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", type=Path, default=None, help="reuse a store (every ok clip is previewed)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--chunk", type=int, default=16)
    args = parser.parse_args()
    from mmgt.clipstore import ClipStore

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or make_store(Path(tmp), args.size)
        print(f"load {os.getloadavg()[0]:.2f}; preset {args.preset}, chunk {args.chunk}")
        for clip in sorted(ClipStore(store).clips(), key=lambda c: c.record.n_frames):
            out = Path(tmp) / f"{clip.record.id}.mp4"
            cmd = [
                sys.executable,
                "-c",
                CHILD,
                str(store),
                clip.record.id,
                str(out),
                args.preset,
                str(args.chunk),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            seconds = clip.record.n_frames / 25
            print(
                f"{clip.record.n_frames:4d} frames ({seconds:4.1f} s, {clip.record.size}^2): "
                f"{r['seconds']:6.1f} s ({r['seconds'] / seconds:.2f} s per clip second), "
                f"peak RSS {r['peak_gb']:.2f} GB"
            )


if __name__ == "__main__":
    main()
