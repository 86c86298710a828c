"""Stage I data: 80-frame windows of keypoints with their audio features, from a clip store.

A sample is ``{"pose": (T, 134, 3) model space, "cond_pose": (134, 3) model space, "audio": (T, D) float32,
"clip": id, "start": frame}`` with T = ``window``. The conditioning pose is the frame before the window
(frame 0 itself for the first window, which is kept: the reference skipped it). Windows start every
``stride`` frames; a tail window ending exactly at the clip end is added when the stride misses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmgt.audio import AudioFeatureExtractor, load_or_compute_features
from mmgt.clipstore import Clip
from mmgt.data.store import StoreDataModule
from mmgt.schema import SAMPLES_PER_FRAME, to_model_space

log = logging.getLogger(__name__)


def window_starts(n_frames: int, window: int, stride: int) -> list[int]:
    """Start frames of the windows of a clip: every ``stride`` frames, plus the tail window."""
    if n_frames < window:
        return []
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return starts


class PoseAudioWindows(Dataset):
    """All windows of a list of clips, held in memory (keypoints and features are small).

    Args:
        clips: clips of one split.
        extractor: audio features (cached in the clip store under ``extractor.name``).
        window: frames per window (80 = 3.2 s).
        stride: frames between window starts (10 = 0.4 s).
        cache_features: write computed features into the store.
    """

    def __init__(
        self,
        clips: list[Clip],
        extractor: AudioFeatureExtractor,
        window: int = 80,
        stride: int = 10,
        cache_features: bool = True,
    ) -> None:
        self.window = window
        self.items: list[tuple[int, int]] = []
        self.poses: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.ids: list[str] = []
        self.clips: list[Clip] = []
        for clip in clips:
            kps = clip.keypoints()
            feats = load_or_compute_features(clip, extractor, cache=cache_features)
            n = min(len(kps), len(feats))
            starts = window_starts(n, window, stride)
            if not starts:
                log.warning("%s: %d frames < window %d, skipped", clip.dir, n, window)
                continue
            k = len(self.poses)
            self.poses.append(to_model_space(kps[:n]).astype(np.float32))
            self.audio.append(feats[:n].reshape(n, -1).astype(np.float32))
            self.ids.append(clip.record.id)
            self.clips.append(clip)
            self.items += [(k, s) for s in starts]

    def waveform(self, i: int) -> np.ndarray:
        """The 16 kHz audio (window x 640,) of item ``i`` (read from the clip; for logging)."""
        k, s = self.items[i]
        audio = self.clips[k].audio()
        return audio[s * SAMPLES_PER_FRAME : (s + self.window) * SAMPLES_PER_FRAME]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k, s = self.items[i]
        pose, audio = self.poses[k], self.audio[k]
        return {
            "pose": torch.from_numpy(pose[s : s + self.window]),
            "cond_pose": torch.from_numpy(pose[max(s - 1, 0)]),
            "audio": torch.from_numpy(audio[s : s + self.window]),
            "clip": self.ids[k],
            "start": s,
        }


class PoseAudioDataModule(StoreDataModule):
    """Windows of pose + audio features from a clip store, split by the manifest.

    Args:
        root: clip-store folder (``mmgt-prep`` output); required (None: an error saying how to make one).
        audio_features: the audio feature extractor (``conf/audio_encoder``, built by Hydra); its ``name`` is
            the feature-cache key, its :meth:`~mmgt.audio.AudioFeatureExtractor.node` goes to the model.
        window, stride: in frames (defaults 80 and 10: 3.2 s windows every 0.4 s at 25 fps).
        val_split: manifest split used for validation; falls back to ``"test"`` when the store has none.
        speakers: restrict to these speakers (None = all).
        prepare: optional callable ``prepare(root)`` that creates the store when ``root`` has none
            (``prepare_data``), e.g. ``mmgt_prep.toy.generate_toy_dataset`` as a Hydra partial: an
            experiment file is then the whole recipe, data included.
    """

    def __init__(
        self,
        root: str | Path | None,
        audio_features: AudioFeatureExtractor,
        window: int = 80,
        stride: int = 10,
        batch_size: int = 16,
        num_workers: int = 0,
        val_split: str = "val",
        speakers: list[str] | None = None,
        cache_features: bool = True,
        prepare: Callable[[Path], Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["prepare", "audio_features"])
        self.attach(root, audio_features, prepare)

    @property
    def audio_dim(self) -> int:
        """Flattened per-frame audio feature size (the network's ``audio_dim``)."""
        return int(np.prod(self.extractor.feature_shape()))

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """What the LightningModule needs from the data (``mmgt-train`` passes it to the model).

        Pure: reads nothing from disk (``mmgt-train`` runs :meth:`prepare_data` first, so a missing store
        fails before the model is built).
        """
        return {"audio_dim": self.audio_dim, "audio_features": self.extractor.node()}

    def build(self, split: str, clips: list[Clip]) -> PoseAudioWindows:
        """The windows of ``split``'s clips."""
        h = self.hparams
        return PoseAudioWindows(clips, self.extractor, h.window, h.stride, h.cache_features)

    def audio_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std (D,) of the training features (every frame of every train clip)."""
        feats = np.concatenate(self.split_dataset("train").audio).astype(np.float64)
        return feats.mean(axis=0).astype(np.float32), feats.std(axis=0).astype(np.float32)

    def pose_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-coordinate mean and std (134, 3) of the training poses in model space.

        x, y over the frames where the point is visible (0 and 1 for points never visible); the visibility
        channel is not standardised (mean 0, std 1): it stays a {0, 1} target thresholded at 0.5.
        """
        poses = np.concatenate(self.split_dataset("train").poses).astype(np.float64)  # (N, 134, 3)
        visible = poses[..., 2:3] > 0.5
        count = visible.sum(axis=0)
        mean = np.where(count > 0, (poses[..., :2] * visible).sum(axis=0) / np.maximum(count, 1), 0.0)
        var = (((poses[..., :2] - mean) ** 2) * visible).sum(axis=0) / np.maximum(count, 1)
        std = np.where(count > 1, np.sqrt(var), 1.0)
        mean3 = np.concatenate([mean, np.zeros_like(mean[:, :1])], axis=-1)
        std3 = np.concatenate([std, np.ones_like(std[:, :1])], axis=-1)
        return mean3.astype(np.float32), std3.astype(np.float32)

    def train_dataloader(self) -> DataLoader:
        """Shuffled train batches: pose (B, T, 134, 3), cond_pose (B, 134, 3), audio (B, T, D), clip, start.

        T = ``window``, D = :attr:`audio_dim`; poses in model space.
        """
        return self.loader("train", shuffle=True)
