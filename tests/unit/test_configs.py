"""The real Hydra configs compose, and every `_target_` in the shared groups instantiates and runs."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from mmgt.config import CONFIG_DIR
from tests.helpers.shared import compose_config


def test_prep_config_composes_with_cli_overrides(tmp_path: Path) -> None:
    cfg = compose_config("prep", [f"out={tmp_path}", "n_speakers=3", "seconds=2"])
    assert cfg.hydra.runtime.choices.source == "toy"
    assert cfg.n_speakers == 3 and cfg.seconds == 2 and cfg.out == str(tmp_path)
    assert cfg.preview_dir == f"{tmp_path}/previews"


@pytest.mark.parametrize("trainer", sorted(p.stem for p in (CONFIG_DIR / "trainer").glob("*.yaml")))
def test_every_trainer_config_composes(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"trainer={trainer}"], output_dir=tmp_path)
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    OmegaConf.resolve(cfg.trainer)


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch, _):  # noqa: ANN001
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_train_groups_instantiate_and_fit(cfg_train: DictConfig, tmp_path: Path) -> None:
    callbacks = [hydra.utils.instantiate(c) for c in cfg_train.callbacks.values()]
    loggers = [hydra.utils.instantiate(c) for c in cfg_train.logger.values()]
    trainer = hydra.utils.instantiate(cfg_train.trainer, callbacks=callbacks, logger=loggers)
    x = torch.randn(64, 2)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16
    )
    trainer.fit(_Tiny(), data)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents*"))


def test_debug_preset_overrides_trainer(tmp_path: Path) -> None:
    cfg = compose_config("train", ["debug=fdr"], output_dir=tmp_path)
    assert cfg.trainer.fast_dev_run is True and cfg.logger is None and cfg.task_name == "debug"
