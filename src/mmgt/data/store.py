"""What both stages' DataModules share: the clip store (created, checked), its splits, the loaders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from mmgt.audio import AudioFeatureExtractor
from mmgt.clipstore import Clip, ensure_store, open_store, split_clips
from mmgt.schema import FPS


class StoreDataModule(pl.LightningDataModule):
    """Base of the DataModules over a clip store; a subclass builds one split's dataset (:meth:`build`).

    Subclasses call ``save_hyperparameters`` (with ``root``, ``batch_size``, ``num_workers``, ``val_split``
    and ``speakers`` among their arguments), then :meth:`attach`.
    """

    def attach(
        self,
        root: str | Path | None,
        audio_features: AudioFeatureExtractor,
        prepare: Callable[[Path], Any] | None,
    ) -> None:
        """Record the store, the extractor (its node in the hparams: plain values) and the preparation."""
        self.hparams["audio_features"] = audio_features.node()  # plain values (resume with weights_only)
        self.root = None if root is None or str(root) == "" else Path(root)
        self.prepare = prepare
        self.extractor = audio_features
        self.datasets: dict[str, Dataset] = {}

    @property
    def fps(self) -> int:
        """Frame rate of the samples (25)."""
        return FPS

    def prepare_data(self) -> None:
        """Create the clip store with ``prepare`` unless it exists, then check it.

        Creating is safe from concurrent processes. No store at ``root``, or one without ok clips, is an error
        naming it and the ``mmgt-prep`` command.
        """
        if self.root is not None:
            ensure_store(self.root, self.prepare)
        open_store(self.root)

    def build(self, split: str, clips: list[Clip]) -> Dataset:
        """The dataset of ``split`` over its ``clips``."""
        raise NotImplementedError

    def split_dataset(self, split: str) -> Dataset:
        """The dataset of one manifest split (built once, then reused; ``val_split`` falls back to test)."""
        if split not in self.datasets:
            h = self.hparams
            fallback = "test" if split == h.val_split else None
            clips = split_clips(open_store(self.root), split, h.speakers, fallback)
            self.datasets[split] = self.build(split, clips)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage``: fit = train and ``val_split``, test = test, None = all three."""
        if stage in (None, "fit"):
            self.split_dataset("train")
            self.split_dataset(self.hparams.val_split)
        if stage in (None, "test"):
            self.split_dataset("test")

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        """Batches of ``split`` (``batch_size``, ``num_workers`` of the hparams)."""
        return DataLoader(
            self.split_dataset(split),
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=False,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled train batches (the subclass documents their keys and shapes)."""
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Batches of the ``val_split`` samples in order, as :meth:`train_dataloader`'s."""
        return self.loader(self.hparams.val_split, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of the test samples in order, as :meth:`train_dataloader`'s."""
        return self.loader("test", shuffle=False)


__all__ = ["StoreDataModule"]
