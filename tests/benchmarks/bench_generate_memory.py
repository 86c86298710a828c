"""Peak memory of ``mmgt-generate`` against the audio's length: 120 s vs 10 s of speech (target <= 1.15 x).

Two cases, each command run in a fresh process (the real CLI, ``python -m mmgt.generate``) and its peak RSS
read from the kernel (``os.wait4``):

* ``stage=pose`` at ``size=512`` (the pose, mask and preview videos at 512 x 512, masks.npy at 64 x 64);
* ``stage=full`` (Stage I, then Stage II) at the tiny Stage II size (64 x 64, 2 DDIM steps, no CFG).

The audio is the JFK sample (44.1 kHz stereo) looped to 10 s and 120 s; the models are randomly initialised
tiny exports (memory does not depend on the weights). Outputs stream to disk as they are made, so what grows
with the length is only what must: the keypoints, the audio itself (kept at its own rate for muxing) and, for
Stage II, the latent video being denoised. Usage::

    OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_generate_memory.py [--out outputs/bench/gen_mem]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "samples"


def make_exports(out: Path) -> dict[str, Path]:
    """Tiny random Stage I and Stage II exports (the toy experiments' networks)."""
    import torch
    from omegaconf import OmegaConf, open_dict

    from mmgt.config import CONFIG_DIR, audio_encoder
    from mmgt.train import build_model
    from tests.helpers.shared import compose_config

    exports = {"pose": out / "stage1", "video": out / "stage2"}
    if all((p / "config.json").is_file() or (p / "mmgt_stage2.json").is_file() for p in exports.values()):
        return exports
    torch.manual_seed(0)
    baseline = audio_encoder("baseline").node()
    stage1_cfg = compose_config("train", ["experiment=smga_toy"]).model
    build_model(stage1_cfg, {"audio_dim": 95, "audio_features": baseline}).export(exports["pose"])
    cfg = compose_config("train", ["experiment=stage2_video_toy"])
    with open_dict(cfg):
        cfg.model.vae = OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae
        cfg.model.inference.steps = 2
        cfg.model.inference.guidance_scale = 1.0
    meta = {"size": 64, "frames": 8, "audio_features": baseline, "audio_margin": 2, "pose_render": {}}
    build_model(cfg.model, {"audio_layers": 1, "audio_dim": 95, "data_meta": meta}).export(exports["video"])
    return exports


def looped_audio(seconds: float, out: Path) -> Path:
    import soundfile as sf

    data, rate = sf.read(str(SAMPLES / "speech_en_jfk_11s.flac"), dtype="float32", always_2d=True)
    n = int(seconds * rate)
    path = out / f"speech_{seconds:g}s.wav"
    sf.write(path, np.concatenate([data] * (n // len(data) + 1))[:n], rate)
    return path


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall s) of a command run to completion."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    log = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log[-3000:]}")
    return usage.ru_maxrss / 1024, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "gen_mem")
    p.add_argument("--short", type=float, default=10.0)
    p.add_argument("--long", type=float, default=120.0)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    exports = make_exports(args.out)
    image = SAMPLES / "ref_halfbody_woman_openhands_flux.png"
    cases = {
        "pose 512": ["stage=pose", "size=512", "mask_size=64"],
        "full tiny": ["stage=full", f"video_model={exports['video']}"],
    }
    rows = []
    for name, extra in cases.items():
        res = {}
        for seconds in (args.short, args.long):
            audio = looped_audio(seconds, args.out)
            folder = args.out / f"{name.replace(' ', '_')}_{seconds:g}s"
            out = folder if "pose" in name else folder / "video.mp4"
            cmd = [sys.executable, "-m", "mmgt.generate", f"audio={audio}", f"ref_image={image}"]
            cmd += [f"pose_model={exports['pose']}", f"out={out}", "overwrite=true", "steps=4", *extra]
            cmd += [f"hydra.run.dir={args.out / 'hydra'}"]
            res[seconds] = peak_rss(cmd)
        ratio = res[args.long][0] / res[args.short][0]
        rows.append({"case": name, "short": res[args.short], "long": res[args.long], "ratio": ratio})
    print(f"\n== mmgt-generate peak RSS, {args.long:g} s vs {args.short:g} s of audio (fresh process each)")
    print(f"{'case':10s} {'short MB':>9s} {'long MB':>9s} {'ratio':>7s} {'short s':>8s} {'long s':>8s}")
    for r in rows:
        print(
            f"{r['case']:10s} {r['short'][0]:9.0f} {r['long'][0]:9.0f} {r['ratio']:7.3f} "
            f"{r['short'][1]:8.1f} {r['long'][1]:8.1f}"
        )
    print("target: ratio <= 1.15 for both")
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
