"""``SMGALitModule``: training of the Stage I network (SMGA) with Lightning.

Owns the losses (through :class:`mmgt.stage1.diffusion.PoseDiffusion`), the optimiser, logging and
export. The network is injected as a partial (``net(audio_dim=...)``) so that the audio feature size
comes from the DataModule. EMA is Lightning's ``EMAWeightAveraging`` callback (``conf/callbacks/ema.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from mmgt.masks import MaskConfig, motion_masks
from mmgt.render import add_caption, draw_pose, overlay_masks, side_by_side
from mmgt.schema import FPS, SAMPLE_RATE, from_model_space, lip_opening
from mmgt.stage1.diffusion import PoseDiffusion
from mmgt.stage1.export import Stage1Export
from mmgt.stage1.network import SMGATransformer
from mmgt.tb import SampleSchedule, add_video, tensorboard_writer


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two 1-d arrays; 0 when either is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


class SMGALitModule(SampleSchedule, pl.LightningModule):
    """Stage I diffusion training.

    Args:
        net: partial building the :class:`SMGATransformer` given ``audio_dim``.
        audio_dim: flattened per-frame audio feature size (from the DataModule).
        diffusion: keyword arguments of :class:`PoseDiffusion`.
        optimizer: partial taking ``params``.
        scheduler: optional partial taking ``optimizer`` (stepped per step).
        sample_every_n_epochs: sample a validation window, log lip sync and a video every N epochs.
        sample_at_end: do the same once at the end of every training (short runs have no sampling epoch).
        sample_steps, guidance, eta: DDIM settings of those samples.
        audio_features: the extractor's node (``AudioFeatureExtractor.node()``, from the DataModule), recorded
            in the export for generation.
        standardize_audio, standardize_pose: set the network's standardisation from the training data
            before fitting (off = identity, the original's behaviour; the reference layout needs
            ``standardize_pose=False`` to stay exportable in the original format).
    """

    def __init__(
        self,
        net: Callable[..., SMGATransformer],
        audio_dim: int,
        audio_features: dict[str, Any],
        diffusion: dict[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        sample_every_n_epochs: int = 5,
        sample_at_end: bool = True,
        sample_steps: int = Stage1Export.sample_steps,
        guidance: float = Stage1Export.guidance,
        eta: float = Stage1Export.eta,
        standardize_audio: bool = True,
        standardize_pose: bool = True,
    ) -> None:
        super().__init__()
        # plain values only: the optimiser partials would make the checkpoint need weights_only=False
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        fixed = getattr(net, "keywords", {}).get("audio_dim")
        if fixed is not None and int(fixed) != int(audio_dim):
            raise ValueError(
                f"SMGALitModule: the network is configured for audio_dim={fixed} but the audio features "
                f"({audio_features}) have {audio_dim} dims per frame; pick matching model/stage1 and data"
            )
        self.net = net(audio_dim=audio_dim)
        self.diffusion = PoseDiffusion(**(diffusion or {}))
        self.optimizer_factory = optimizer or (lambda params: torch.optim.AdamW(params, lr=2e-4))
        self.scheduler_factory = scheduler
        self._sampled_step: int | None = None  # global step of the last logged sample

    def setup(self, stage: str) -> None:
        """Before fitting: standardise audio and poses with the training set's statistics.

        They are saved in the network, so the export carries them; a resumed checkpoint restores the same
        buffers.
        """
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage != "fit" or datamodule is None:
            return
        if self.hparams.standardize_audio and hasattr(datamodule, "audio_stats"):
            self.net.set_audio_stats(*map(torch.from_numpy, datamodule.audio_stats()))
        if self.hparams.standardize_pose and hasattr(datamodule, "pose_stats"):
            self.net.set_pose_stats(*map(torch.from_numpy, datamodule.pose_stats()))

    # ------------------------------------------------------------------ steps
    def _losses(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        return self.diffusion.training_losses(
            self.net, batch["pose"], batch["audio"], batch["cond_pose"], generator=generator
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The diffusion loss of one batch (its parts logged as ``train/*``)."""
        losses = self._losses(batch)
        bs = batch["pose"].shape[0]
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=bs)
        self.log("train/loss", losses["loss"], batch_size=bs, prog_bar=True)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Log ``val/*`` losses with a noise generator fixed per batch."""
        # a fixed generator per batch: the validation loss is comparable across epochs
        gen = torch.Generator(device=self.device).manual_seed(1000 + batch_idx)
        losses = self._losses(batch, generator=gen)
        self.log_dict(
            {f"val/{k}": v for k, v in losses.items()}, batch_size=batch["pose"].shape[0], sync_dist=True
        )
        if batch_idx == 0 and self.sampling_epoch():
            r = self._log_samples(batch)
            self.log("val/lip_r_gt", r, batch_size=batch["pose"].shape[0])

    def on_train_end(self) -> None:
        """A sample of the first validation batch at the final step (with the EMA weights, when used)."""
        batch = self.end_of_training_batch()
        if batch is None:
            return
        r = self._log_samples(batch)
        writer = tensorboard_writer(self.loggers)
        if writer is not None:  # self.log is not allowed here
            writer.add_scalar("val/lip_r_gt", r, self.global_step)

    @torch.no_grad()
    def _log_samples(self, batch: dict[str, Any]) -> float:
        """Sample the batch; log one pose video with mask overlay; returns lip sync r vs ground truth."""
        gen = torch.Generator(device=self.device).manual_seed(0)
        pred = self.diffusion.sample(
            self.net,
            batch["audio"],
            batch["cond_pose"],
            steps=self.hparams.sample_steps,
            guidance=self.hparams.guidance,
            eta=self.hparams.eta,
            generator=gen,
        )
        pred_kps = from_model_space(pred.float().cpu()).numpy()
        true_kps = from_model_space(batch["pose"].float().cpu()).numpy()
        r = float(
            np.mean(
                [pearson(lip_opening(p), lip_opening(t)) for p, t in zip(pred_kps, true_kps, strict=True)]
            )
        )
        self._sampled_step = self.global_step
        writer = tensorboard_writer(self.loggers)
        if writer is None:
            return r
        size = 128
        panels = []
        for name, kps in (("generated", pred_kps[0]), ("ground truth", true_kps[0])):
            pose = draw_pose(kps, size)
            masks = motion_masks(torch.from_numpy(kps), size, MaskConfig()).numpy()
            panels.append(add_caption(overlay_masks(pose, masks), name))
        add_video(writer, "val/sample_pose", side_by_side(*panels), FPS, self.global_step)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "split_dataset"):
            wave = datamodule.split_dataset(datamodule.hparams.val_split).waveform(0)
            writer.add_audio("val/sample_audio", torch.from_numpy(wave)[None], self.global_step, SAMPLE_RATE)
        return r

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """The optimiser of the trainable parameters, and the scheduler when one is configured."""
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ export
    def export(self, out_dir: str | Path) -> Path:
        """``save_pretrained`` the network and write what generation needs (``mmgt_stage1.json``)."""
        return Stage1Export(
            audio_features=self.hparams.audio_features,
            diffusion=self.hparams.diffusion or {},
            sample_steps=self.hparams.sample_steps,
            guidance=self.hparams.guidance,
            eta=self.hparams.eta,
        ).save(self.net, out_dir)
