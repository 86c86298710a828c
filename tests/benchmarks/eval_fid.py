"""FID feature extraction speed: mmgt_eval's FID vs the pytorch-fid CLI path, same images, same weight file.

    .venv/bin/python tests/benchmarks/bench_eval.py fid                 # random weights written to a temp dir
    .venv/bin/python tests/benchmarks/bench_eval.py fid --weights /path/pt_inception-2015-12-05-6726825d.pth

Two folders of PNGs (``--n-images`` each, ``--size`` square, like dumped PATS frames) are scored by

* pytorch-fid: ``InceptionV3([block])`` + ``calculate_activation_statistics`` (PIL decode, ``ToTensor``,
  DataLoader with the CLI's default ``min(8, cpus)`` workers, batch 50, ``torch.no_grad``) and
  ``calculate_frechet_distance``; pytorch-fid loads the same file (only its download function is replaced);
* mmgt_eval: ``FID.update`` on the decoded uint8 frames, as the evaluation runner feeds it (batched uint8 ->
  float on the fly, batch norm folded into the convolutions, channels_last, ``torch.inference_mode``), and the
  same with the PNG decoding (cv2) included in the timing.

Each path runs ``--repeats`` times, alternating, and the fastest run counts (the machine may be shared).
Printed: images/s of each path, their ratio, both FID values and the largest feature difference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as pfi

from mmgt_eval.frechet import frechet_distance
from mmgt_eval.metrics.fid import BLOCK_INDEX_BY_DIM, FID_WEIGHTS_FILE, FIDMetric, write_random_fid_weights


def make_folder(folder: Path, n: int, size: int, shift: float, seed: int) -> list[Path]:
    """``n`` PNGs of blocky random colour fields plus noise (a stand-in for dumped video frames)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        cells = rng.uniform(0, 1, (16, 16, 3))
        img = (
            np.kron(cells, np.ones((size // 16, size // 16, 1))) * 200
            + shift
            + rng.normal(0, 20, (size, size, 3))
        )
        files.append(folder / f"{i:05d}.png")
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(files[-1])
    return files


def decode(files: list[Path]) -> torch.Tensor:
    """PNG files -> (N, 3, H, W) uint8 (cv2 decode, BGR -> RGB)."""
    frames = np.stack([cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in files])
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, help=f"{FID_WEIGHTS_FILE} (default: random weights, temp dir)")
    ap.add_argument("--n-images", type=int, default=100, help="images per side")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dims", type=int, default=2048, choices=sorted(BLOCK_INDEX_BY_DIM))
    ap.add_argument("--batch-size", type=int, default=32, help="mmgt_eval batch size (pytorch-fid: 50)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pfid-workers", type=int, default=min(8, len(os.sched_getaffinity(0))))
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench_fid_"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> int:
    weights = args.weights or write_random_fid_weights(tmp / FID_WEIGHTS_FILE, seed=0)
    files = {
        "a": make_folder(tmp / "a", args.n_images, args.size, 0.0, seed=1),
        "b": make_folder(tmp / "b", args.n_images, args.size, 40.0, seed=2),
    }
    n_total = 2 * args.n_images
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus; "
        f"{n_total} PNGs {args.size}x{args.size}, dims={args.dims}, weights={weights}"
    )

    with mock.patch.object(
        pfi, "load_state_dict_from_url", side_effect=lambda *a, **k: torch.load(weights, weights_only=True)
    ):
        pfid_model = pfi.InceptionV3([BLOCK_INDEX_BY_DIM[args.dims]])
    ours = FIDMetric(weights, dims=args.dims, batch_size=args.batch_size)

    def run_pfid() -> tuple[float, dict]:
        t = time.perf_counter()
        acts = {
            k: fid_score.get_activations(fs, pfid_model, 50, args.dims, "cpu", args.pfid_workers)
            for k, fs in files.items()
        }
        # = calculate_activation_statistics (kept apart to keep the activations)
        stats = {k: (a.mean(0), np.cov(a, rowvar=False)) for k, a in acts.items()}
        return time.perf_counter() - t, {"acts": acts, "stats": stats}

    decoded = {k: decode(fs) for k, fs in files.items()}

    def run_ours(include_decode: bool) -> tuple[float, dict]:
        ours.reset()
        t = time.perf_counter()
        for k, fs in files.items():
            images = decode(fs) if include_decode else decoded[k]
            ours.update(images, real=(k == "a"))
        return time.perf_counter() - t, {}

    timings: dict[str, list[float]] = {"pytorch-fid": [], "mmgt_eval": [], "mmgt_eval+decode": []}
    pfid_out: dict = {}
    for _ in range(args.repeats):
        dt, pfid_out = run_pfid()
        timings["pytorch-fid"].append(dt)
        timings["mmgt_eval"].append(run_ours(False)[0])
        timings["mmgt_eval+decode"].append(run_ours(True)[0])
    best = {k: min(v) for k, v in timings.items()}

    (mu_a, s_a), (mu_b, s_b) = pfid_out["stats"]["a"], pfid_out["stats"]["b"]
    try:
        pfid_value = f"{fid_score.calculate_frechet_distance(mu_b, s_b, mu_a, s_a):.6f}"
    except ValueError as err:  # fewer images than dims: sqrtm turns complex
        pfid_value = f"error ({err}); our Fréchet on its stats: {frechet_distance(mu_b, s_b, mu_a, s_a):.6f}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "fewer samples than dims" warning is printed as a note below
        ours_value = float(ours.compute())
    feats = ours.features(decoded["a"][:8]).double().numpy()
    feat_diff = np.abs(feats - pfid_out["acts"]["a"][:8]).max() / np.abs(pfid_out["acts"]["a"][:8]).max()

    print(f"{'path':<20}{'best s':>10}{'images/s':>12}   runs (s)")
    for k, v in timings.items():
        print(f"{k:<20}{best[k]:>10.2f}{n_total / best[k]:>12.1f}   {', '.join(f'{x:.2f}' for x in v)}")
    print(f"speed-up mmgt_eval / pytorch-fid:          {best['pytorch-fid'] / best['mmgt_eval']:.2f}x")
    print(f"speed-up mmgt_eval+decode / pytorch-fid:   {best['pytorch-fid'] / best['mmgt_eval+decode']:.2f}x")
    print(f"FID pytorch-fid: {pfid_value}")
    print(f"FID mmgt_eval:   {ours_value:.6f}")
    print(f"max feature difference (relative to max |feature|): {feat_diff:.2e}")
    if args.n_images <= args.dims:
        print(f"note: {args.n_images} images per side <= dims {args.dims}: singular covariances, FID biased")
    return 0


if __name__ == "__main__":
    sys.exit(main())
