"""``mmgt-generate``: speech audio + a reference person -> pose sequence, motion masks and video.

Both stages (``stage=full``, the default; Stage I poses, then the Stage II video with the audio muxed in)::

    mmgt-generate audio=speech.flac ref_image=person.png pose_model=<smga run>/export \
        video_model=<stage2 run>/export out=video.mp4

Stage II from given poses (``keypoints`` (T, 134, 3) .npy, e.g. a Stage I ``keypoints.npy``)::

    mmgt-generate stage=video audio=speech.flac ref_image=person.png keypoints=poses.npy \
        video_model=<stage2 run>/export out=video.mp4

Both write ``out`` (T = round(duration x 25) frames at 25 fps, the input audio muxed in) and the poses
beside it (``<out stem>.keypoints.npy``).

Stage I only::

    mmgt-generate stage=pose audio=speech.flac ref_image=person.png pose_model=<run>/export out=outputs/gen

Writes into ``out``: ``keypoints.npy`` (T, 134, 3), ``pose.mp4`` (with the audio), one
``mask_<region>.mp4`` per motion-mask region, ``masks.npy`` (T, R, h, w) at ``mask_size`` and ``preview.mp4``
(pose with mask overlay, audio muxed). T = round(duration x 25).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from mmgt.config import CONFIG_DIR

log = logging.getLogger("mmgt.generate")


def reference_pose(ref_image: str | None, ref_keypoints: str | None) -> np.ndarray:
    """(134, 3) reference keypoints from a keypoints file ((134, 3) or (T, 134, 3): first frame) or an image.

    An image goes through :func:`mmgt.pose_detect.keypoints_from_image` (mediapipe holistic, the mapping of
    the preprocessing); an image with no person is a ``NoPersonError`` naming the file.
    """
    from mmgt.schema import validate_keypoints

    if (ref_image is None) == (ref_keypoints is None):
        raise ValueError("mmgt-generate: give exactly one of ref_image=FILE or ref_keypoints=FILE")
    if ref_keypoints is not None:
        kps = np.load(ref_keypoints)
        validate_keypoints(kps, ref_keypoints)
        return (kps[0] if kps.ndim == 3 else kps).astype(np.float32)
    from mmgt.pose_detect import keypoints_from_image

    return keypoints_from_image(ref_image)


def generate_pose(cfg: DictConfig) -> dict[str, Any]:
    """Stage I: audio file + reference -> keypoints, pose video, masks, preview in ``cfg.out``."""
    from mmgt.audio import build_extractor
    from mmgt.io import read_audio, write_video
    from mmgt.masks import MaskConfig, motion_masks
    from mmgt.render import draw_pose, mask_to_video, overlay_masks
    from mmgt.schema import FPS, SAMPLE_RATE, num_frames_for_samples
    from mmgt.stage1.generate import generate_pose_sequence, load_exported

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    net, diffusion, meta = load_exported(cfg.pose_model, cfg.device)
    audio = read_audio(cfg.audio)
    n_frames = max(1, num_frames_for_samples(len(audio)))
    feats = build_extractor(meta["audio_features"])(audio, n_frames=n_frames)
    ref = reference_pose(cfg.ref_image, cfg.ref_keypoints)
    kps = generate_pose_sequence(
        net,
        diffusion,
        feats,
        ref,
        n_frames=n_frames,
        steps=cfg.steps or meta.get("sample_steps", 50),
        guidance=cfg.guidance if cfg.guidance is not None else meta.get("guidance", 2.0),
        eta=cfg.eta if cfg.eta is not None else meta.get("eta", 1.0),
        best_of=cfg.best_of,
        seam=cfg.seam,
        seed=cfg.seed,
    )
    np.save(out / "keypoints.npy", kps)
    mask_cfg = MaskConfig(**cfg.masks)
    masks = motion_masks(torch.from_numpy(kps), cfg.size, mask_cfg).numpy()  # (T, R, S, S)
    np.save(out / "masks.npy", motion_masks(torch.from_numpy(kps), cfg.mask_size, mask_cfg).numpy())
    pose = draw_pose(kps, cfg.size)
    write_video(out / "pose.mp4", pose, fps=FPS, audio=audio)
    for r, region in enumerate(mask_cfg.regions):
        write_video(out / f"mask_{region}.mp4", mask_to_video(masks[:, r : r + 1]), fps=FPS)
    write_video(out / "preview.mp4", overlay_masks(pose, masks, mask_cfg.regions), fps=FPS, audio=audio)
    return {"frames": int(len(kps)), "seconds": len(audio) / SAMPLE_RATE, "out": str(out)}


def _video_path(out: str | Path) -> Path:
    """``out=FILE.mp4`` -> that file; a folder -> ``<folder>/video.mp4``."""
    p = Path(out)
    if p.suffix.lower() != ".mp4":
        p = p / "video.mp4"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _video_options(cfg: DictConfig) -> dict[str, Any]:
    """Stage II sampling overrides of the config (null keys keep the export's defaults)."""
    keys = ("video_steps", "video_guidance", "context_frames", "context_overlap", "context_batch")
    names = ("steps", "guidance_scale", "context_frames", "context_overlap", "context_batch")
    return {n: cfg.get(k) for k, n in zip(keys, names, strict=True) if cfg.get(k) is not None}


def _write_stage2(cfg: DictConfig, frames: np.ndarray, kps: np.ndarray, audio: np.ndarray) -> dict[str, Any]:
    from mmgt.io import write_video
    from mmgt.schema import FPS, SAMPLE_RATE

    path = _video_path(cfg.out)
    write_video(path, frames, fps=FPS, audio=audio)
    np.save(path.with_suffix(".keypoints.npy"), kps)
    return {
        "frames": int(len(frames)),
        "seconds": len(audio) / SAMPLE_RATE,
        "out": str(path),
        "keypoints": str(path.with_suffix(".keypoints.npy")),
    }


def generate_video(cfg: DictConfig) -> dict[str, Any]:
    """Stage II with given poses: ``keypoints=FILE.npy`` (T, 134, 3) + audio + reference image -> mp4.

    The output has T = round(duration x 25) frames: poses are trimmed, or their last frame repeated, to
    the audio's length; the input audio is muxed in.
    """
    from mmgt.io import read_audio
    from mmgt.pipeline import read_image
    from mmgt.schema import num_frames_for_samples, validate_keypoints
    from mmgt.stage2.pipeline import Stage2Pipeline

    if not cfg.get("keypoints"):
        raise ValueError(
            "mmgt-generate stage=video: give keypoints=FILE.npy ((T, 134, 3) poses, e.g. Stage I's)"
        )
    kps = np.load(cfg.keypoints)
    validate_keypoints(kps, cfg.keypoints)
    if kps.ndim != 3:
        raise ValueError(f"{cfg.keypoints}: expected (T, 134, 3) poses, got {kps.shape}")
    audio = read_audio(cfg.audio)
    n = max(1, num_frames_for_samples(len(audio)))
    kps = np.concatenate([kps[:n], np.repeat(kps[-1:], max(0, n - len(kps)), axis=0)]).astype(np.float32)
    ref_pose = reference_pose(None, cfg.ref_keypoints) if cfg.get("ref_keypoints") else kps[0]
    pipe = Stage2Pipeline.from_pretrained(cfg.video_model, cfg.device)
    frames = pipe(
        read_image(cfg.ref_image),
        kps,
        audio=audio,
        ref_keypoints=ref_pose,
        seed=cfg.seed,
        **_video_options(cfg),
    )
    return {**_write_stage2(cfg, frames, kps, audio), "stats": pipe.last_stats}


def generate_full(cfg: DictConfig) -> dict[str, Any]:
    """Both stages: audio + reference image -> Stage I poses (``pose_model``) -> video (``video_model``)."""
    from mmgt.io import read_audio
    from mmgt.pipeline import generate_from_audio, read_image
    from mmgt.stage2.pipeline import Stage2Pipeline

    audio = read_audio(cfg.audio)
    ref_pose = reference_pose(cfg.ref_image, cfg.ref_keypoints)
    pipe = Stage2Pipeline.from_pretrained(cfg.video_model, cfg.device)
    frames, kps = generate_from_audio(
        audio,
        read_image(cfg.ref_image),
        ref_pose,
        cfg.pose_model,
        pipe,
        device=cfg.device,
        pose_options={
            "steps": cfg.steps,
            "guidance": cfg.guidance,
            "eta": cfg.eta,
            "best_of": cfg.best_of,
            "seam": cfg.seam,
        },
        video_options=_video_options(cfg),
        seed=cfg.seed,
    )
    return {**_write_stage2(cfg, frames, kps, audio), "stats": pipe.last_stats}


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
    return STAGES[cfg.stage](cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    print(json.dumps(generate(cfg), indent=2))


def main() -> None:
    """Console entry point ``mmgt-generate``."""
    _hydra_main()


if __name__ == "__main__":
    main()
