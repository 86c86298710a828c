"""``mmgt-weights list|verify|fetch [names...] [--dir DIR] [--url URL]``: the weights registry from the shell.

Examples::

    mmgt-weights list                 # every registered weight, where it is looked for, licence, URL
    mmgt-weights list -v inception_fid
    mmgt-weights verify               # check every local file (missing files are listed, not an error)
    mmgt-weights verify inception_fid syncnet_v2   # exit 1 if one is missing or has the wrong checksum
    mmgt-weights fetch inception_fid --dir /data/weights
    mmgt-weights fetch syncnet_v2 --url file:///mnt/mirror/syncnet_v2.model
    mmgt-weights train-fgd outputs/data/pats --window 34 --epochs 50   # the FGD pose autoencoder
    mmgt-weights import-mmgt MMGT_pretrained outputs/mmgt_release --pretrained-dir pretrained_weights
                                      # the released MMGT checkpoints -> a Stage I and a Stage II export

The folder is ``--dir``, else ``$MMGT_WEIGHTS``, else ``~/.cache/mmgt/weights``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmgt.schema import AUDIO_MARGIN
from mmgt_eval.weights import (
    REGISTRY,
    WeightsError,
    candidate_paths,
    fetch,
    get_spec,
    verify,
    weights_dir,
)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table with left-aligned columns separated by two spaces."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _names(names: Sequence[str]) -> list[str]:
    for n in names:
        get_spec(n)  # KeyError listing the registered names
    return list(names) or list(REGISTRY)


def _checksum(spec) -> str:
    if spec.sha256:
        return f"sha256 {spec.sha256[:12]}…"
    if spec.sha256_prefix:
        return f"prefix {spec.sha256_prefix}"
    return "none"


def cmd_list(args: argparse.Namespace) -> int:
    """``mmgt-weights list``: print each weight and where it was found; returns 0."""
    rows = []
    for name in _names(args.names):
        spec = REGISTRY[name]
        found = next((p for p in candidate_paths(spec, args.dir) if p.is_file()), None)
        rows.append(
            [name, spec.filename, str(found) if found else "missing", _checksum(spec), spec.url or "-"]
        )
    print(f"weights folder: {weights_dir(args.dir)}")
    print(format_table(["name", "file", "local", "checksum", "url"], rows))
    if args.verbose:
        for name in _names(args.names):
            spec = REGISTRY[name]
            print(f"\n{name}:\n  {spec.description}\n  used by: {', '.join(spec.used_by)}")
            print(f"  licence: {spec.licence}")
            if spec.note:
                print(f"  note:    {spec.note}")
    else:
        print("\nlicences and notes: mmgt-weights list -v")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``mmgt-weights verify``: check checksums; returns 1 on a mismatch (or a named weight missing)."""
    rows, bad = [], False
    for name in _names(args.names):
        v = verify(name, directory=args.dir)
        rows.append([name, v.status, str(v.path), v.message])
        bad |= v.status == "mismatch" or (v.status == "missing" and bool(args.names))
    print(format_table(["name", "status", "path", "message"], rows))
    return 1 if bad else 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """``mmgt-weights fetch``: download the named weights; returns 2 on bad arguments, 1 on a failure."""
    if not args.names:
        print("mmgt-weights fetch: name at least one weight (mmgt-weights list shows them)", file=sys.stderr)
        return 2
    if args.url and len(args.names) != 1:
        print("mmgt-weights fetch: --url needs exactly one name", file=sys.stderr)
        return 2
    rows, bad = [], False
    for name in _names(args.names):
        try:
            path = fetch(name, url=args.url, directory=args.dir, force=args.force, progress=True)
            v = verify(name, path=path)
            rows.append([name, v.status, str(path), v.message])
        except WeightsError as e:
            bad = True
            rows.append([name, "failed", "-", str(e).splitlines()[0]])
            print(f"\n{e}\n", file=sys.stderr)
    print(format_table(["name", "status", "path", "message"], rows))
    return 1 if bad else 0


def cmd_train_fgd(args: argparse.Namespace) -> int:
    """Train the FGD pose autoencoder on the keypoints of a clip store (or any folder of keypoints.npy)."""
    import numpy as np

    from mmgt.clipstore import MANIFEST, ClipStore
    from mmgt_eval.pose_autoencoder import (
        load_keypoint_files,
        pose_windows,
        save_pose_autoencoder,
        train_pose_autoencoder,
    )
    from mmgt_eval.weights import get_spec

    root = Path(args.store)
    if args.split and (root / MANIFEST).is_file():  # a clip store: its last manifest row per clip decides
        keypoints = [clip.keypoints() for clip in ClipStore(root).clips(split=args.split)]
    else:
        keypoints = load_keypoint_files(root)
    if not keypoints:
        print(f"mmgt-weights train-fgd: {root}: no keypoints (split {args.split!r})", file=sys.stderr)
        return 2
    windows = np.concatenate([pose_windows(k, args.window, args.stride, args.joints) for k in keypoints])
    if len(windows) < 2:
        print(
            f"mmgt-weights train-fgd: {root}: fewer than 2 windows of {args.window} frames", file=sys.stderr
        )
        return 2
    model, history = train_pose_autoencoder(
        windows, epochs=args.epochs, joints=args.joints, seed=args.seed, max_seconds=args.max_seconds
    )
    out = Path(args.out) if args.out else weights_dir(args.dir) / get_spec("fgd_autoencoder").filename
    history.update(source=str(root), split=args.split, windows=int(len(windows)), clips=len(keypoints))
    path = save_pose_autoencoder(model, out, history)
    print(
        f"fgd_autoencoder: {len(windows)} windows of {args.window} frames from {len(keypoints)} clips; "
        f"loss {history['initial_loss']:.4f} -> {history['final_loss']:.4f}\nwrote {path} (+ .json)"
    )
    return 0


def cmd_import_mmgt(args: argparse.Namespace) -> int:
    """The released MMGT folder -> ``<out>/stage1`` and ``<out>/stage2`` exports (:mod:`mmgt.release`)."""
    from mmgt.release import import_release

    folders = {
        "unet": args.unet,
        "vae": args.vae,
        "image_encoder": args.image_encoder,
        "speech_encoder": args.wav2vec2,
        "motion_adapter": args.motion_adapter,
        "wavlm": args.wavlm,
    }
    audio_proj = {"hidden_dim": args.audio_hidden, "tokens": args.audio_tokens, "token_dim": args.audio_dim}
    try:
        written = import_release(
            args.src,
            args.out,
            pretrained_dir=args.pretrained_dir,
            folders=folders,
            process=args.process,
            stage1="stage1" in args.parts,
            stage2="stage2" in args.parts,
            stage1_heads=args.stage1_heads,
            stage1_audio_features=_stage1_audio(args.stage1_audio_features, args.wavlm, args.pretrained_dir),
            motion_heads=args.motion_heads,
            size=args.size,
            audio_margin=args.audio_margin,
            audio_proj=audio_proj,
            inference=args.inference,
        )
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"mmgt-weights import-mmgt: {e}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _stage1_audio(choice: str, wavlm: str | None, pretrained_dir: str) -> dict:
    """--stage1-audio-features: ``exact`` / ``standin`` (:func:`mmgt.release.stage1_audio_spec`) or JSON."""
    import json

    from mmgt.release import stage1_audio_spec

    if choice in ("exact", "standin"):
        return stage1_audio_spec(wavlm or Path(pretrained_dir).expanduser() / "wavlm-large", choice)
    return json.loads(choice)


def build_parser() -> argparse.ArgumentParser:
    """The ``mmgt-weights`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="mmgt-weights",
        description="Registry of the feature-network weights used by mmgt_eval metrics.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("names", nargs="*", help="registry names (default: all)")
    common.add_argument(
        "--dir", default=None, help="weights folder (default: $MMGT_WEIGHTS or ~/.cache/mmgt/weights)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", parents=[common], help="list registered weights and where they are")
    p.add_argument("-v", "--verbose", action="store_true", help="also print descriptions, licences and notes")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("verify", parents=[common], help="check local files against their checksums")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("fetch", parents=[common], help="download weights from their upstream URL")
    p.add_argument(
        "--url", default=None, help="download from this URL instead (one name only; file:// works)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("train-fgd", help="train the FGD pose autoencoder on a clip store's keypoints")
    p.add_argument("store", help="a clip store (its split is used) or a folder of keypoints.npy files")
    p.add_argument("--split", default="train", help="clip-store split to train on ('' = every file)")
    p.add_argument("--window", type=int, default=34, help="frames per window (HA2G: 34)")
    p.add_argument("--stride", type=int, default=None, help="frames between windows (default: window)")
    p.add_argument("--joints", default="upper_body_hands", help="joint set (mmgt_eval.metrics.keypoints)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=None, help="stop training after this long")
    p.add_argument("--out", default=None, help="output file (default: <weights folder>/fgd_autoencoder.pt)")
    p.add_argument(
        "--dir", default=None, help="weights folder (default: $MMGT_WEIGHTS or ~/.cache/mmgt/weights)"
    )
    p.set_defaults(func=cmd_train_fgd)
    p = sub.add_parser(
        "import-mmgt",
        help="convert the released MMGT checkpoints into a Stage I and a Stage II export",
        description="Reads SRC/stage_1/audio2pose_best_model.pt and SRC/stage_2/process_{1,2}/*.pth (the "
        "MMGT_pretrained release) strictly, takes what the release lacks from local pretrained folders and "
        "writes OUT/stage1 (mmgt-generate pose_model=) and OUT/stage2 (video_model=, model.init_from=). "
        "See docs/reproduce-mmgt.md.",
    )
    p.add_argument("src", help="the release folder (MMGT_pretrained)")
    p.add_argument("out", help="output folder: <out>/stage1 and <out>/stage2")
    p.add_argument(
        "--pretrained-dir",
        default="pretrained_weights",
        help="folder with stable-diffusion-v1-5/unet, sd-vae-ft-mse, "
        "sd-image-variations-diffusers/image_encoder, wav2vec2-base-960h, wavlm-large (and optionally "
        "animatediff-motion-adapter-v1-5-2)",
    )
    for flag, what in (
        ("--unet", "SD-1.5 UNet folder"),
        ("--vae", "VAE folder"),
        ("--image-encoder", "CLIP image encoder folder"),
        ("--wav2vec2", "wav2vec2 folder (Stage II audio features)"),
        ("--wavlm", "WavLM folder (Stage I audio features)"),
        ("--motion-adapter", "AnimateDiff MotionAdapter folder (process 1 only: initial motion modules)"),
    ):
        p.add_argument(flag, default=None, help=f"{what} (default: the usual name under --pretrained-dir)")
    p.add_argument("--process", default="auto", choices=["auto", "1", "2"], help="Stage II weights to import")
    p.add_argument("--parts", nargs="+", default=["stage1", "stage2"], choices=["stage1", "stage2"])
    p.add_argument("--inference", default="original", choices=["original", "corrected"],
                   help="generation settings written into the Stage II export")  # fmt: skip
    p.add_argument("--size", type=int, default=512, help="frame side the release was trained at")
    p.add_argument("--audio-margin", type=int, default=AUDIO_MARGIN, help="audio window +-m frames")
    p.add_argument("--motion-heads", type=int, default=8, help="motion-module heads (mm_sd_v15_v2: 8)")
    p.add_argument("--stage1-heads", type=int, default=8, help="SMGA attention heads (release: 8)")
    p.add_argument(
        "--stage1-audio-features",
        default="exact",
        help="Stage I audio features: exact (WavLM + the original's 35 librosa features; needs librosa), "
        "standin (WavLM + weight-free features of the same width) or a JSON audio encoder node "
        '({"_target_": ...}: mmgt.audio)',
    )
    p.add_argument(
        "--audio-hidden", type=int, default=512, help="process 1 only: fresh AudioProj hidden width"
    )
    p.add_argument("--audio-tokens", type=int, default=32, help="process 1 only: fresh AudioProj tokens")
    p.add_argument("--audio-dim", type=int, default=768, help="process 1 only: audio token width")
    p.set_defaults(func=cmd_import_mmgt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``mmgt-weights``."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as e:
        print(f"mmgt-weights: {e.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
