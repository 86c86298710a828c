"""Stage II data: clips of F video frames with their poses, audio windows and a reference frame.

A sample (all tensors; S = ``size``, F = ``frames``, W = 2 ``audio_margin`` + 1, (L, D) = feature shape)::

    frames         (F, 3, S, S) float in [-1, 1]     the target frames
    pose           (F, 3, S, S) float in [0, 1]      OpenPose-style rendering of their keypoints
    keypoints      (F, 134, 3)                       stored layout (motion masks are computed from them)
    ref_image      (3, S, S) float in [-1, 1]        the reference frame of the same clip
    ref_keypoints  (134, 3)
    audio          (F, W, L, D) float32              features of frames t-m .. t+m (clamped to the clip)
    clip, start, ref                                 clip id, first frame, reference frame index

``frames = 1`` is the image-level process (the reference is at least ``ref_margin`` frames away when the
clip allows it, as Moore-AnimateAnyone's 25); video-level uses F > 1 and any reference frame. Training
draws a random window and reference per item (``samples_per_clip`` items per clip and epoch); validation
and test use fixed, evenly spaced windows and references, so their losses are comparable across epochs.
Frames are resized to S as they are decoded when the store's size differs (area interpolation), so a
512^2 store trains at ``data.size=64`` without holding full-size clips; the real-data experiments default
``data.size`` to the store's size (``conf/data/video.yaml``). Audio features come from the
clip store's feature cache (:func:`mmgt.audio.load_or_compute_features`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmgt.audio import AudioFeatureExtractor, load_or_compute_features
from mmgt.clipstore import Clip
from mmgt.data.store import StoreDataModule
from mmgt.io import iter_video_frames
from mmgt.render import draw_pose
from mmgt.schema import AUDIO_MARGIN

log = logging.getLogger(__name__)


def _resize(frame: np.ndarray, size: int, source: Path) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3): area interpolation (a copy-free pass-through at the same size)."""
    if frame.shape[:2] == (size, size):
        return frame
    if frame.shape[0] != frame.shape[1]:
        raise ValueError(f"{source}: clip frames must be square, got {frame.shape[:2]}")
    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)


class VideoClips(Dataset):
    """Windows of F frames from a list of clips (see the module docstring).

    Args:
        clips: clips of one split (with video).
        extractor: audio features (cached in the store under ``extractor.name``).
        frames: frames per sample F.
        size: frame side S.
        audio_margin: m, the audio window is +-m frames.
        ref_margin: minimum distance of the reference frame from the window (when possible).
        pose_render: keyword arguments of :func:`mmgt.render.draw_pose` (e.g. ``draw_face``).
        train: random windows (True) or fixed ones (False).
        samples_per_clip: items per clip and epoch.
        cache_videos: keep decoded (resized) videos in memory.
        seed: fixed windows / references of the non-training splits.
    """

    def __init__(
        self,
        clips: list[Clip],
        extractor: AudioFeatureExtractor,
        frames: int,
        size: int,
        audio_margin: int = AUDIO_MARGIN,
        ref_margin: int = 0,
        pose_render: dict[str, Any] | None = None,
        train: bool = True,
        samples_per_clip: int = 8,
        cache_videos: bool = True,
        cache_features: bool = True,
        seed: int = 0,
    ) -> None:
        self.frames, self.size, self.margin, self.ref_margin = frames, size, audio_margin, ref_margin
        self.pose_render = dict(pose_render or {})
        self.train, self.samples_per_clip, self.cache_videos = train, samples_per_clip, cache_videos
        self.clips: list[Clip] = []
        self.keypoints: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        self.lengths: list[int] = []
        self._videos: dict[int, np.ndarray] = {}
        for clip in clips:
            if not clip.has_video:
                continue
            kps = clip.keypoints()
            feats = load_or_compute_features(clip, extractor, cache=cache_features)
            n = min(len(kps), len(feats), int(clip.record.n_frames or len(kps)))
            if n < frames:
                log.warning("%s: %d frames < %d per sample, skipped", clip.dir, n, frames)
                continue
            self.clips.append(clip)
            self.keypoints.append(kps[:n].astype(np.float32))
            f = feats[:n].astype(np.float32)
            self.features.append(f[:, None, :] if f.ndim == 2 else f)  # (T, L, D)
            self.lengths.append(n)
        if not self.clips:
            raise ValueError(f"no clip has >= {frames} frames with video")
        self.items = [(c, k) for c in range(len(self.clips)) for k in range(samples_per_clip)]
        rng = np.random.default_rng(seed)
        self.fixed = [self._draw(c, k, rng, fixed=True) for c, k in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _draw(self, c: int, k: int, rng: np.random.Generator, fixed: bool) -> tuple[int, int]:
        n, f = self.lengths[c], self.frames
        if fixed:
            start = int(round(k * (n - f) / max(self.samples_per_clip - 1, 1)))
        else:
            start = int(rng.integers(0, n - f + 1))
        far = [i for i in range(n) if i < start - self.ref_margin or i >= start + f + self.ref_margin]
        ref = int(rng.choice(far)) if far else int(rng.integers(0, n))
        return start, ref

    def video(self, c: int) -> np.ndarray:
        """(T, S, S, 3) uint8 frames of clip ``c`` (decoded once when ``cache_videos``)."""
        if c in self._videos:
            return self._videos[c]
        path, n = self.clips[c].video_path, self.lengths[c]
        with contextlib.closing(iter_video_frames(path)) as decoded:  # resized as decoded: no full-size copy
            frames = [_resize(frame, self.size, path) for _, frame in islice(decoded, n)]
        if len(frames) < n:
            raise ValueError(f"{path}: {len(frames)} frames, expected {n}")
        frames = np.stack(frames)
        if self.cache_videos:
            self._videos[c] = frames
        return frames

    def __getitem__(self, i: int) -> dict[str, Any]:
        c, k = self.items[i]
        if self.train:  # torch's RNG: seeded per worker by Lightning's seed_everything(workers=True)
            start, ref = self._draw(
                c, k, np.random.default_rng(int(torch.randint(0, 2**31, ()))), fixed=False
            )
        else:
            start, ref = self.fixed[i]
        video = self.video(c)
        window = slice(start, start + self.frames)
        kps = self.keypoints[c][window]
        pose = draw_pose(kps, self.size, **self.pose_render)
        n = self.lengths[c]
        index = np.clip(
            np.arange(start, start + self.frames)[:, None] + np.arange(-self.margin, self.margin + 1),
            0,
            n - 1,
        )

        def to_float(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x)).movedim(-1, -3).float() / 127.5 - 1.0

        return {
            "frames": to_float(video[window]),
            "pose": torch.from_numpy(np.ascontiguousarray(pose)).movedim(-1, -3).float() / 255.0,
            "keypoints": torch.from_numpy(kps),
            "ref_image": to_float(video[ref]),
            "ref_keypoints": torch.from_numpy(self.keypoints[c][ref]),
            "audio": torch.from_numpy(self.features[c][index]),
            "clip": self.clips[c].record.id,
            "start": start,
            "ref": ref,
        }


def _plain(value: Any) -> Any:
    """Config values as plain Python (a Hydra DictConfig would make checkpoints need weights_only=False)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


class VideoDataModule(StoreDataModule):
    """Stage II samples from a clip store, split by the manifest.

    Args:
        root: clip-store folder (``mmgt-prep`` output); required (None: an error saying how to make one).
        audio_features: the audio feature extractor (``conf/audio_encoder``, built by Hydra: ``baseline`` for
            the toy, ``wav2vec2`` for the original's (T, 12, 768)); its node is recorded in the export.
        size: frame side S of the model (frames are resized to it on load).
        frames: frames per sample (1 = image-level process).
        audio_margin: audio window +-m frames (2 in the original).
        ref_margin: minimum distance of the reference from the window (25 for image-level in Moore).
        pose_render: :func:`mmgt.render.draw_pose` options of the pose video (recorded in the export).
        samples_per_clip / val_samples_per_clip: items per clip and epoch.
        val_split: manifest split for validation; falls back to ``test`` when the store has none.
        prepare: optional callable ``prepare(root)`` creating the store when it does not exist
            (``prepare_data``; ``mmgt-train`` calls it before it builds the model, whose toy VAE may read it).
    """

    def __init__(
        self,
        root: str | Path | None,
        audio_features: AudioFeatureExtractor,
        size: int = 64,
        frames: int = 1,
        audio_margin: int = AUDIO_MARGIN,
        ref_margin: int = 0,
        pose_render: dict[str, Any] | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        samples_per_clip: int = 8,
        val_samples_per_clip: int = 2,
        val_split: str = "val",
        speakers: list[str] | None = None,
        cache_videos: bool = True,
        cache_features: bool = True,
        seed: int = 0,
        prepare: Callable[[Path], Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["prepare", "audio_features"])
        for key, value in self.hparams.items():  # checkpoints hold plain values (resume with weights_only)
            self.hparams[key] = _plain(value)
        self.attach(root, audio_features, prepare)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """Feature shape (L, D) and the data facts generation needs (``mmgt-train`` passes them on).

        Pure: reads nothing from disk.
        """
        shape = self.extractor.feature_shape()
        layers, dim = (1, shape[0]) if len(shape) == 1 else shape
        h = self.hparams
        return {
            "audio_layers": int(layers),
            "audio_dim": int(dim),
            "data_meta": {
                "size": int(h.size),
                "frames": int(h.frames),
                "audio_features": h.audio_features,
                "audio_margin": int(h.audio_margin),
                "pose_render": dict(h.pose_render or {}),
            },
        }

    def build(self, split: str, clips: list[Clip]) -> VideoClips:
        """The samples of ``split``'s clips (random windows for train, fixed ones otherwise)."""
        h = self.hparams
        train = split == "train"
        return VideoClips(
            clips,
            self.extractor,
            frames=h.frames,
            size=h.size,
            audio_margin=h.audio_margin,
            ref_margin=h.ref_margin,
            pose_render=h.pose_render,
            train=train,
            samples_per_clip=h.samples_per_clip if train else h.val_samples_per_clip,
            cache_videos=h.cache_videos,
            cache_features=h.cache_features,
            seed=h.seed,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of random train windows, e.g. frames (B, F, 3, S, S), audio (B, F, W, L, D).

        Every key and shape of a sample is in the module docstring.
        """
        return self.loader("train", shuffle=True)
