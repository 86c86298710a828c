"""``make demo``: the main job on the embedded default (toy speakers).

Generates the toy-speaker clip store, writes a preview video per clip (keypoints, motion masks and
pose beside the frames, audio muxed) and a montage PNG, then prints the measured audio-motion
relations the later stages must learn. Run: ``python -m mmgt_prep.demo [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mmgt.clipstore import Clip, ClipStore
from mmgt.config import PROJECT_ROOT
from mmgt.render import overlay_keypoints
from mmgt_prep.cli import write_previews
from mmgt_prep.toy import EVENTS_FILE, beat_alignment, generate_toy_dataset, hand_speed_peaks, lip_envelope_r


def clip_measures(clip: Clip) -> dict[str, float]:
    """Lip-envelope Pearson r and the share of hand-speed peaks within 2 frames of a stressed syllable."""
    kps = clip.keypoints()
    events = json.loads((clip.dir / EVENTS_FILE).read_text())
    return {
        "lip_r": lip_envelope_r(kps, clip.audio()),
        "hand_peaks": len(hand_speed_peaks(kps)),
        "peaks_on_stress": beat_alignment(kps, events),
    }


def montage(store: ClipStore, out_png: Path, n_frames: int = 4) -> Path:
    """One row per speaker: frames of its first clip with the ground-truth keypoints drawn over them."""
    rows = []
    for speaker in store.speakers():
        clip = store.clips(speakers=[speaker])[0]
        frames = clip.video()
        idx = np.linspace(0, len(frames) - 1, n_frames).astype(int)
        drawn = overlay_keypoints(frames[idx], clip.keypoints()[idx])
        rows.append(np.concatenate(list(np.concatenate([frames[idx], drawn], axis=2)), axis=1))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return out_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "demo")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    print("[1/3] toy speakers -> clip store", flush=True)
    summary = generate_toy_dataset(
        args.out / "toy_speakers", n_speakers=4, clips_per_speaker=2, seconds=args.seconds
    )
    store = ClipStore(args.out / "toy_speakers")
    print("[2/3] preview videos + montage", flush=True)
    previews = write_previews(store.root, args.out / "previews")
    png = montage(store, args.out / "toy_montage.png")
    print("[3/3] measured audio-motion relations (by construction; the models must learn them)", flush=True)
    print("\n| clip | split | lip-envelope r | hand-speed peaks | peaks within 2 frames of stress |")
    print("|---|---|---|---|---|")
    for clip in store.clips():
        m = clip_measures(clip)
        print(
            f"| {clip.record.id} | {clip.record.split} | {m['lip_r']:.3f} | {m['hand_peaks']} "
            f"| {100 * m['peaks_on_stress']:.0f}% |"
        )
    print(
        f"\nclips ok={summary['ok']} failed={summary['failed']} skipped={summary['skipped']} "
        f"in {time.perf_counter() - t0:.1f} s\n"
        f"clip store: {store.root}\npreviews:   {previews[0].parent} ({len(previews)} mp4 with audio)\n"
        f"montage:    {png}"
    )


if __name__ == "__main__":
    main()
