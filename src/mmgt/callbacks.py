"""Lightning callbacks shared by the stages (no Hydra; configs in ``conf/callbacks``)."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning.callbacks import EMAWeightAveraging


class EMAWarmupUpdate:
    """EMA update with warm-up: after ``n`` updates the decay is ``min(decay, (1 + n) / (10 + n))``.

    Early averages therefore follow the trained weights instead of staying near the initialisation
    (with a fixed 0.999 a 500-step toy run would export ~60 % initial weights). The signature is
    ``torch.optim.swa_utils.AveragedModel``'s ``avg_fn``; a class so that it pickles.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMAWarmupUpdate: decay must be in (0, 1), got {decay}")
        self.decay, self.warmup = float(decay), bool(warmup)

    def decay_at(self, num_averaged: int) -> float:
        """The decay used for the update after ``num_averaged`` previous updates."""
        return min(self.decay, (1.0 + num_averaged) / (10.0 + num_averaged)) if self.warmup else self.decay

    def __call__(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: Any) -> torch.Tensor:
        """The new average of one parameter tensor (any shape), at the decay for ``num_averaged``."""
        d = self.decay_at(int(num_averaged))
        return averaged * d + current * (1.0 - d)


class WarmupEMA(EMAWeightAveraging):
    """Lightning's :class:`~pytorch_lightning.callbacks.EMAWeightAveraging` with a warm-up decay.

    The averaged weights are used for validation and are in place after ``fit`` (so an export holds the
    EMA network); they are saved in checkpoints and restored on resume by the parent class.

    Args:
        decay: final EMA decay (0.9999 in the reference's long runs; 0.999 suits toy runs).
        warmup: use :class:`EMAWarmupUpdate`'s warm-up.
        **kwargs: passed to ``EMAWeightAveraging`` (``update_every_n_steps``, ``update_starting_at_step``).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, **kwargs: Any) -> None:
        super().__init__(decay=decay, **kwargs)
        self._kwargs["avg_fn"] = EMAWarmupUpdate(decay, warmup)
