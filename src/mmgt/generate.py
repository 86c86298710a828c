"""``mmgt-generate``: speech audio + a reference person -> pose sequence, motion masks and video.

Both stages (``stage=full``, the default; Stage I poses, then the Stage II video with the audio muxed in)::

    mmgt-generate audio=speech.flac ref_image=person.png pose_model=<smga run>/export \
        video_model=<stage2 run>/export out=video.mp4

Stage II from given poses (``keypoints`` (T, 134, 3) .npy, e.g. a Stage I ``keypoints.npy``)::

    mmgt-generate stage=video audio=speech.flac ref_image=person.png keypoints=poses.npy \
        video_model=<stage2 run>/export out=video.mp4

Both write ``out`` (T = round(duration x 25) frames at 25 fps, the input audio muxed in at its own rate and
channels) and the poses beside it (``<out stem>.keypoints.npy``).

Stage I only::

    mmgt-generate stage=pose audio=speech.flac ref_image=person.png pose_model=<run>/export out=outputs/gen

Writes into ``out``: ``keypoints.npy`` (T, 134, 3), ``pose.mp4`` (with the audio), one
``mask_<region>.mp4`` per motion-mask region, ``masks.npy`` (T, R, h, w) at ``mask_size`` and ``preview.mp4``
(pose with mask overlay, audio muxed). T = round(duration x 25).

Outputs are written as they are made (memory flat in the audio's length) and appear complete or not at
all: a failed run leaves nothing. An existing output file or non-empty folder is refused unless
``overwrite=true``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmgt.config import CONFIG_DIR

log = logging.getLogger("mmgt.generate")


def reference_pose(ref_image: str | None, ref_keypoints: str | None) -> np.ndarray:
    """(134, 3) reference keypoints from a keypoints file ((134, 3) or (T, 134, 3): first frame) or an image.

    An image goes through :func:`mmgt.pose_detect.keypoints_from_image` (mediapipe holistic, the mapping of
    the preprocessing); an image with no person is a ``NoPersonError`` naming the file.
    """
    from mmgt.schema import validate_keypoints
    from mmgt.untrusted import load_npy

    if (ref_image is None) == (ref_keypoints is None):
        raise ValueError("mmgt-generate: give exactly one of ref_image=FILE or ref_keypoints=FILE")
    if ref_keypoints is not None:
        kps = load_npy(ref_keypoints, "reference keypoints (134, 3) or (T, 134, 3)")
        validate_keypoints(kps, ref_keypoints)
        return (kps[0] if kps.ndim == 3 else kps).astype(np.float32)
    from mmgt.pose_detect import keypoints_from_image

    return keypoints_from_image(ref_image)


def _audio(cfg: DictConfig) -> tuple[np.ndarray, np.ndarray, int]:
    """The input audio: (N,) 16 kHz mono for the models, and (N', C) at its own rate for the outputs."""
    from mmgt.io import read_audio, read_audio_native

    native, rate = read_audio_native(cfg.audio)
    return read_audio(cfg.audio), native, rate


def generate_pose(cfg: DictConfig) -> dict[str, Any]:
    """Stage I: audio file + reference -> keypoints, pose video, masks, preview in the folder ``cfg.out``.

    Everything is written as it is made (pose frames, masks and overlays in pieces of 16 frames: memory is
    flat in the audio's length) into a folder beside ``out`` that becomes ``out`` when complete.
    """
    from mmgt.atomic import NpyStreamWriter, save_npy, staged_folder
    from mmgt.io import VideoWriter
    from mmgt.masks import MaskConfig, iter_motion_masks
    from mmgt.pipeline import stage1_keypoints
    from mmgt.render import draw_pose, mask_to_video, overlay_masks
    from mmgt.schema import FPS, SAMPLE_RATE, num_frames_for_samples

    out = Path(cfg.out)
    audio, native, rate = _audio(cfg)
    n_frames = max(1, num_frames_for_samples(len(audio)))
    ref = reference_pose(cfg.ref_image, cfg.ref_keypoints)
    kps = stage1_keypoints(
        cfg.pose_model, audio, ref, n_frames, cfg.device, seed=cfg.seed, **_pose_options(cfg)
    )
    mask_cfg = MaskConfig(**cfg.masks)
    regions = mask_cfg.regions
    with staged_folder(out, bool(cfg.overwrite)) as tmp, contextlib.ExitStack() as stack:
        save_npy(tmp / "keypoints.npy", kps)
        masks_file = stack.enter_context(
            NpyStreamWriter(tmp / "masks.npy", (len(kps), len(regions), cfg.mask_size, cfg.mask_size))
        )
        preset = str(cfg.video_preset)
        pose_video = stack.enter_context(VideoWriter(tmp / "pose.mp4", FPS, native, rate, preset=preset))
        preview = stack.enter_context(VideoWriter(tmp / "preview.mp4", FPS, native, rate, preset=preset))
        mask_videos = [
            stack.enter_context(VideoWriter(tmp / f"mask_{r}.mp4", FPS, preset=preset)) for r in regions
        ]
        pieces = zip(
            iter_motion_masks(kps, cfg.size, mask_cfg, PIECE),
            iter_motion_masks(kps, cfg.mask_size, mask_cfg, PIECE),
            strict=True,
        )
        for i, (big, small) in enumerate(pieces):
            masks_file.write(small.numpy())
            big = big.numpy()  # (n, R, S, S)
            pose = draw_pose(kps[i * PIECE : i * PIECE + len(big)], cfg.size)
            for frame, over in zip(pose, overlay_masks(pose, big, regions), strict=True):
                pose_video.write(frame)
                preview.write(over)
            for r, writer in enumerate(mask_videos):
                for frame in mask_to_video(big[:, r : r + 1]):
                    writer.write(frame)
    return {"frames": int(len(kps)), "seconds": len(audio) / SAMPLE_RATE, "out": str(out)}


PIECE = 16
"""Frames per piece of the streamed outputs (pose, masks, overlays; Stage II decodes in its decode_chunk)."""


def _pose_options(cfg: DictConfig) -> dict[str, Any]:
    """Stage I sampling overrides (null keys keep the export's defaults)."""
    return {k: cfg.get(k) for k in ("steps", "guidance", "eta", "best_of", "seam")}


def _video_path(out: str | Path) -> Path:
    """``out=FILE.mp4`` -> that file; a folder -> ``<folder>/video.mp4``."""
    p = Path(out)
    return p if p.suffix.lower() == ".mp4" else p / "video.mp4"


def _video_options(cfg: DictConfig) -> dict[str, Any]:
    """Stage II sampling overrides of the config (null keys keep the export's defaults).

    The named keys (``video_steps``, ``context_frames``, ...) and the ``video_options`` map (any generation
    option, e.g. the speed levers ``scheduler``, ``cfg_mode``); a key given both ways is an error.
    """
    keys = ("video_steps", "video_guidance", "context_frames", "context_overlap", "context_batch")
    names = ("steps", "guidance_scale", "context_frames", "context_overlap", "context_batch")
    named = {n: cfg.get(k) for k, n in zip(keys, names, strict=True) if cfg.get(k) is not None}
    given = cfg.get("video_options")
    extra = dict(
        OmegaConf.to_container(given, resolve=True) if isinstance(given, DictConfig) else given or {}
    )
    both = sorted(set(named) & set(extra))
    if both:
        raise ValueError(f"mmgt-generate: {both} given both as video_options and as their own keys")
    return {**named, **{k: v for k, v in extra.items() if v is not None}}


def _video_pipeline(cfg: DictConfig) -> Any:
    """The Stage II pipeline of ``video_model`` on ``device``, in ``video_dtype`` (null: the export's)."""
    from mmgt.stage2.pipeline import Stage2Pipeline

    return Stage2Pipeline.from_pretrained(cfg.video_model, cfg.device, cfg.get("video_dtype"))


def _write_stage2(
    cfg: DictConfig, frames: Iterable[np.ndarray], kps: np.ndarray, native: np.ndarray, rate: int
) -> dict[str, Any]:
    """Write the video and its poses (``<out stem>.keypoints.npy``); both appear complete or not at all.

    The frames are written as they come, with the input audio at its own rate and channels.
    """
    from mmgt.atomic import atomic_file, save_npy
    from mmgt.io import VideoWriter
    from mmgt.schema import FPS

    path = _video_path(cfg.out)
    kps_path = path.with_suffix(".keypoints.npy")
    with atomic_file(kps_path) as kps_tmp:
        save_npy(kps_tmp, kps)
        n = 0
        with VideoWriter(path, FPS, native, rate, preset=str(cfg.video_preset)) as writer:
            for piece in frames:
                for frame in piece:
                    writer.write(frame)
                n += len(piece)
    return {"frames": n, "seconds": native.shape[0] / rate, "out": str(path), "keypoints": str(kps_path)}


def generate_video(cfg: DictConfig) -> dict[str, Any]:
    """Stage II with given poses: ``keypoints=FILE.npy`` (T, 134, 3) + audio + reference image -> mp4.

    The output has T = round(duration x 25) frames: poses are trimmed, or their last frame repeated, to
    the audio's length; the input audio is muxed in.
    """
    from mmgt.pipeline import read_image
    from mmgt.schema import num_frames_for_samples, validate_keypoints
    from mmgt.untrusted import load_npy

    if not cfg.get("keypoints"):
        raise ValueError(
            "mmgt-generate stage=video: give keypoints=FILE.npy ((T, 134, 3) poses, e.g. Stage I's)"
        )
    kps = load_npy(cfg.keypoints, "poses (T, 134, 3)")
    validate_keypoints(kps, cfg.keypoints)
    if kps.ndim != 3:
        raise ValueError(f"{cfg.keypoints}: expected (T, 134, 3) poses, got {kps.shape}")
    audio, native, rate = _audio(cfg)
    n = max(1, num_frames_for_samples(len(audio)))
    kps = np.concatenate([kps[:n], np.repeat(kps[-1:], max(0, n - len(kps)), axis=0)]).astype(np.float32)
    ref_pose = reference_pose(None, cfg.ref_keypoints) if cfg.get("ref_keypoints") else kps[0]
    pipe = _video_pipeline(cfg)
    frames = pipe.iter_frames(
        read_image(cfg.ref_image),
        kps,
        audio=audio,
        ref_keypoints=ref_pose,
        seed=cfg.seed,
        **_video_options(cfg),
    )
    return {**_write_stage2(cfg, frames, kps, native, rate), "stats": pipe.last_stats}


def generate_full(cfg: DictConfig) -> dict[str, Any]:
    """Both stages: audio + reference image -> Stage I poses (``pose_model``) -> video (``video_model``)."""
    from mmgt.pipeline import read_image, stream_from_audio

    audio, native, rate = _audio(cfg)
    ref_pose = reference_pose(cfg.ref_image, cfg.ref_keypoints)
    pipe = _video_pipeline(cfg)
    kps, frames = stream_from_audio(
        audio,
        read_image(cfg.ref_image),
        ref_pose,
        cfg.pose_model,
        pipe,
        device=cfg.device,
        pose_options=_pose_options(cfg),
        video_options=_video_options(cfg),
        seed=cfg.seed,
    )
    return {**_write_stage2(cfg, frames, kps, native, rate), "stats": pipe.last_stats}


STAGES: dict[str, Callable[[DictConfig], dict[str, Any]]] = {
    "pose": generate_pose,
    "video": generate_video,
    "full": generate_full,
}
"""``stage=<name>`` -> the function that runs it on the composed config."""


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured stage; returns its summary (frames, paths)."""
    if cfg.stage not in STAGES:
        raise ValueError(
            f"mmgt-generate: stage={cfg.stage!r} is not available (available: {', '.join(STAGES)})"
        )
    from mmgt.atomic import check_new_output

    if cfg.stage == "pose":  # refuse a taken output before any work
        check_new_output(cfg.out, bool(cfg.overwrite), "folder")
    else:
        video = _video_path(cfg.out)
        for p in (video, video.with_suffix(".keypoints.npy")):
            check_new_output(p, bool(cfg.overwrite))
    return STAGES[cfg.stage](cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    print(json.dumps(generate(cfg), indent=2))


def main() -> None:
    """Console entry point ``mmgt-generate``."""
    _hydra_main()


if __name__ == "__main__":
    main()
