"""WarmupEMA: the EMA of a real Lightning fit follows the warm-up decay and is in place after fit."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from mmgt.callbacks import EMAWarmupUpdate, WarmupEMA


class _Line(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.trajectory: list[float] = []

    def training_step(self, batch, _):  # noqa: ANN001, ANN201
        return ((self.w - 1.0) ** 2).sum()

    def on_train_batch_end(self, *_) -> None:  # noqa: ANN002
        self.trajectory.append(float(self.w.detach()))

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_warmup_decay_schedule() -> None:
    upd = EMAWarmupUpdate(decay=0.999)
    assert upd.decay_at(0) == 0.1 and abs(upd.decay_at(90) - 0.91) < 1e-12 and upd.decay_at(10**6) == 0.999
    assert EMAWarmupUpdate(0.9, warmup=False).decay_at(0) == 0.9


def test_ema_after_fit_equals_the_warmup_average(tmp_path: Path) -> None:
    model = _Line()
    data = torch.utils.data.DataLoader(torch.zeros(20, 1), batch_size=1)
    trainer = pl.Trainer(
        max_epochs=1, callbacks=[WarmupEMA(decay=0.99)], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, data)
    upd, ema = EMAWarmupUpdate(0.99), 0.0  # the average starts from the initial weights (w = 0)
    for n, w in enumerate(model.trajectory):
        d = upd.decay_at(n)
        ema = ema * d + w * (1 - d)
    assert abs(float(model.w) - ema) < 1e-5  # the exported weights are the averaged ones
    assert abs(float(model.w) - model.trajectory[-1]) > 1e-3  # ... not the last trained ones
