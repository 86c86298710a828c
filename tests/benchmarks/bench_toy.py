"""Benchmark the toy-speaker store: clips made in memory against the store written (mp4 + wav + checksums).

1. ``generate_clip`` only: audio synthesis, motion and rendering of every clip (the baseline);
2. ``generate_toy_dataset``: the same clips written as a clip store (H.264, wav, keypoints, manifest).

The ratio is the cost of the store on top of making the clips. Acceptance for the default demo size
(4 speakers x 2 clips x 4 s at 128²): the store in <= 60 s on 2 CPU cores. It also prints the relations
the toy holds by construction, per clip of the written store: lip opening vs audio envelope r
(``lip_envelope_r``) and the share of hand-speed peaks within 2 frames of a stressed syllable
(``beat_alignment``).

    .venv/bin/python tests/benchmarks/bench_toy.py [--speakers 4] [--clips 2] [--seconds 4] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from mmgt.clipstore import ClipStore
from mmgt_prep.toy import (
    EVENTS_FILE,
    beat_alignment,
    generate_clip,
    generate_toy_dataset,
    lip_envelope_r,
    speaker_style,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--clips", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()

    t0 = time.perf_counter()
    for spk in range(args.speakers):
        style = speaker_style(0, spk)
        for k in range(args.clips):
            generate_clip(style, args.seconds, args.size, np.random.default_rng([0, spk, k]))
    in_memory = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = generate_toy_dataset(
            Path(tmp) / "toy",
            n_speakers=args.speakers,
            clips_per_speaker=args.clips,
            seconds=args.seconds,
            size=args.size,
            progress=False,
        )
        store = time.perf_counter() - t0
        rs, aligned = [], []
        for clip in ClipStore(Path(tmp) / "toy").clips():
            events = json.loads((clip.dir / EVENTS_FILE).read_text())
            rs.append(lip_envelope_r(clip.keypoints(), clip.audio()))
            aligned.append(beat_alignment(clip.keypoints(), events))
    n = args.speakers * args.clips
    if summary["ok"] != n:
        raise SystemExit(f"the store has {summary['ok']} ok clips of {n}: {summary}")
    print(f"toy speakers {args.speakers} x {args.clips} x {args.seconds:g} s at {args.size}²")
    print(f"  clips in memory (baseline)  {in_memory:7.2f} s")
    print(f"  clip store written          {store:7.2f} s  ({store / in_memory:.2f} x the baseline)")
    print("  acceptance for the defaults: the store in <= 60 s on 2 cores")
    print(f"  lip opening vs audio envelope r per clip: {min(rs):.3f}-{max(rs):.3f}")
    print(f"  hand-speed peaks within 2 frames of a stressed syllable: {min(aligned):.0%}-{max(aligned):.0%}")


if __name__ == "__main__":
    main()
