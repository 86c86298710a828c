"""End-to-end MMGT generation: the only place that chains Stage I and Stage II.

* :func:`generate_from_audio` - speech audio + reference image (+ its pose) -> Stage I keypoints (any
  length) -> Stage II video frames; :func:`stream_from_audio` yields the frames in pieces (what
  ``mmgt-generate stage=full`` runs, writing them as they come).
* :func:`generate_clip` / :func:`generate_split` - Stage II on the clips of a clip store with their own
  (ground-truth) poses and audio and a reference frame of the clip: videos named ``<speaker>/<id>.mp4``
  (audio muxed, keypoints ``.npy`` beside), paired by name with the store's ``<speaker>/<id>/video.mp4`` by
  ``mmgt-eval``. This is how a trained Stage II is scored (PSNR/SSIM/LPIPS/FID/FVD).

The two stages meet only in :mod:`mmgt.schema`'s keypoint layout: Stage I is any :class:`PoseGenerator`
(audio -> (T, 134, 3) stored keypoints; :class:`mmgt.stage1.export.PosePipeline` for this repository's
exports), Stage II renders the keypoints to the pose video and turns them into motion masks itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mmgt.schema import FPS, SAMPLE_RATE, num_frames_for_samples

log = logging.getLogger(__name__)


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB; a clear error naming the file when it cannot be read."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: reference image not found")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{p}: not a readable image (png / jpg / ...)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@runtime_checkable
class PoseGenerator(Protocol):
    """Stage I as the pipeline sees it: speech audio + a reference pose -> a keypoint sequence.

    :class:`mmgt.stage1.export.PosePipeline` implements it; another audio -> pose model is one class with
    this call (docs/stage1.md, "How to add a Stage I model").
    """

    def __call__(self, audio: np.ndarray, ref_pose: np.ndarray, n_frames: int, **options: Any) -> np.ndarray:
        """Keypoints (n_frames, 134, 3), stored layout, for audio (N,) and a reference pose (134, 3).

        Audio is float32 mono 16 kHz, the pose stored keypoints. ``options``: ``steps``, ``guidance``,
        ``eta``, ``best_of``, ``seam``, ``seed`` (:func:`stage1_keypoints` passes them all; None = the
        model's default; ignore those without use).
        """
        ...


def load_pose_generator(pose_model: str | Path | PoseGenerator, device: str = "cpu") -> PoseGenerator:
    """A :class:`PoseGenerator` as is; a Stage I export folder -> :class:`~mmgt.stage1.export.PosePipeline`.

    This is the one place naming the concrete class.
    """
    if isinstance(pose_model, PoseGenerator):
        return pose_model
    from mmgt.stage1.export import PosePipeline

    return PosePipeline.from_pretrained(pose_model, device)


def stage1_keypoints(
    pose_model: str | Path | PoseGenerator,
    audio: np.ndarray,
    ref_pose: np.ndarray,
    n_frames: int,
    device: str = "cpu",
    steps: int | None = None,
    guidance: float | None = None,
    eta: float | None = None,
    best_of: int = 1,
    seam: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Stage I: audio (N,) + reference pose (134, 3) -> keypoints (n_frames, 134, 3) in the stored layout.

    ``pose_model``: a :class:`PoseGenerator`, or a Stage I export folder (``mmgt-train experiment=smga_toy``,
    ``mmgt-weights import-mmgt``; :func:`load_pose_generator`).
    """
    options = {
        "steps": steps,
        "guidance": guidance,
        "eta": eta,
        "best_of": best_of,
        "seam": seam,
        "seed": seed,
    }
    return load_pose_generator(pose_model, device)(audio, ref_pose, n_frames, **options)


def stream_from_audio(
    audio: np.ndarray,
    ref_image: np.ndarray,
    ref_pose: np.ndarray,
    pose_model: str | Path | PoseGenerator,
    video_model: str | Path | Any,
    device: str = "cpu",
    pose_options: dict[str, Any] | None = None,
    video_options: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """Both stages: audio (N,) 16 kHz + reference image (H, W, 3) uint8 and its pose (134, 3).

    Args:
        audio: (N,) float32 mono 16 kHz.
        ref_image: (H, W, 3) uint8 RGB reference frame.
        ref_pose: (134, 3) stored keypoints of the reference frame.
        pose_model: a :class:`PoseGenerator` or a Stage I export folder.
        video_model: a Stage II export folder or a loaded :class:`~mmgt.stage2.pipeline.Stage2Pipeline`.
        device: torch device of both stages.
        pose_options: keyword arguments of :func:`stage1_keypoints`.
        video_options: keyword arguments of the Stage II pipeline call.
        seed: seed of both stages' noise.

    Returns:
        keypoints (T, 134, 3), T = round(duration x 25), and an iterator of the frames in decoded pieces
        (n, S, S, 3) uint8 (Stage II runs as it is consumed).
    """
    from mmgt.stage2.pipeline import Stage2Pipeline

    n_frames = max(1, num_frames_for_samples(len(audio)))
    kps = stage1_keypoints(pose_model, audio, ref_pose, n_frames, device, seed=seed, **(pose_options or {}))
    pipe = (
        video_model
        if isinstance(video_model, Stage2Pipeline)
        else Stage2Pipeline.from_pretrained(video_model, device)
    )
    frames = pipe.iter_frames(
        ref_image, kps, audio=audio, ref_keypoints=ref_pose, seed=seed, **(video_options or {})
    )
    return kps, frames


def generate_from_audio(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stream_from_audio`, frames collected: (frames (T, S, S, 3) uint8, keypoints (T, 134, 3))."""
    kps, frames = stream_from_audio(*args, **kwargs)
    return np.concatenate(list(frames)), kps


def generate_clip(pipe: Any, clip: Any, ref_frame: int = 0, seed: int = 0, **options: Any) -> np.ndarray:
    """Stage II for one clip-store clip: its poses and audio, frame ``ref_frame`` as the reference.

    Returns (T, S, S, 3) uint8 frames, T = the clip's frames (min of keypoints and audio length).
    """
    kps = clip.keypoints()
    audio = clip.audio()
    n = min(len(kps), num_frames_for_samples(len(audio)))
    frames = clip.video()
    ref = frames[min(ref_frame, len(frames) - 1)]
    return pipe(ref, kps[:n], audio=audio, ref_keypoints=kps[min(ref_frame, n - 1)], seed=seed, **options)


def generate_split(
    export_dir: str | Path,
    store: str | Path,
    out_dir: str | Path,
    split: str = "test",
    device: str = "cpu",
    max_clips: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> list[Path]:
    """Generate every clip of ``split`` into ``out_dir/<speaker>/<id>.mp4`` (+ ``.npy`` keypoints).

    Each clip uses its own first frame as the reference and ``seed + index``; the clip's audio is muxed in.
    Returns the written video paths (ready for ``mmgt-eval generated=out_dir reference=<store>/clips``).
    """
    from mmgt.clipstore import ClipStore
    from mmgt.io import write_video
    from mmgt.stage2.pipeline import Stage2Pipeline

    pipe = Stage2Pipeline.from_pretrained(export_dir, device)
    clips = ClipStore(store).clips(split=split)[:max_clips]
    if not clips:
        raise ValueError(f"{store}: no ok clips in split {split!r}")
    out = Path(out_dir)
    written = []
    for i, clip in enumerate(clips):
        frames = generate_clip(pipe, clip, seed=seed + i, progress=False, **(options or {}))
        path = out / clip.record.speaker / f"{clip.record.id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = clip.audio()[: len(frames) * (SAMPLE_RATE // FPS)]
        write_video(path, frames, fps=FPS, audio=audio)
        np.save(path.with_suffix(".npy"), clip.keypoints()[: len(frames)])
        written.append(path)
        log.info("generated %s (%d frames)", path, len(frames))
    return written


__all__: Sequence[str] = (
    "PoseGenerator",
    "generate_clip",
    "generate_from_audio",
    "generate_split",
    "load_pose_generator",
    "read_image",
    "stage1_keypoints",
    "stream_from_audio",
)
