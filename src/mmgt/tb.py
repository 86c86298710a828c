"""TensorBoard helpers that need no extra dependency.

Videos as animated GIF image summaries, the writer and a validation batch for the stages' sample videos, and
the hyperparameters of a finished run with its final metrics (the HParams view).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 frames -> animated GIF bytes (looping)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
    )
    return buf.getvalue()


def add_video(writer, tag: str, frames: np.ndarray, fps: float, step: int) -> None:  # noqa: ANN001
    """Log a (T, H, W, 3) uint8 video to a ``SummaryWriter`` as TensorBoard does (GIF image summary).

    Unlike ``SummaryWriter.add_video`` this needs no moviepy.
    """
    t, h, w, _ = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def tensorboard_writer(loggers: Any) -> Any:
    """The ``SummaryWriter`` of the first ``TensorBoardLogger`` among ``loggers``, or None."""
    from pytorch_lightning.loggers import TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def first_val_batch(module: Any) -> Any:
    """The first batch of the DataModule's validation loader on ``module``'s device (None without one).

    For a sample at the end of training, when no validation step is running.
    """
    from pytorch_lightning.utilities import move_data_to_device

    datamodule = getattr(module.trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "val_dataloader"):
        return None
    batch = next(iter(datamodule.val_dataloader()), None)
    return None if batch is None else move_data_to_device(batch, module.device)


class SampleSchedule:
    """Mixin of the stages' LightningModules: when to log sample videos.

    Every ``hparams.sample_every_n_epochs`` epochs at validation, and once at the end of training
    (``hparams.sample_at_end``) unless the last validation epoch sampled at the final step already; the
    module sets ``_sampled_step`` when it logs a sample.
    """

    _sampled_step: int | None = None

    def sampling_epoch(self: Any) -> bool:
        """Whether this validation epoch logs a sample (never during the sanity check)."""
        n = self.hparams.sample_every_n_epochs
        return n > 0 and (self.current_epoch + 1) % n == 0 and not self.trainer.sanity_checking

    def end_of_training_batch(self: Any) -> Any:
        """The validation batch to sample at the end of training, or None when no sample is due (rank > 0)."""
        if not self.hparams.sample_at_end or not self.trainer.is_global_zero:
            return None
        if self._sampled_step == self.global_step:
            return None  # the last validation epoch sampled already
        return first_val_batch(self)


def flat_hparams(params: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """Nested dict -> ``{"a/b": value}`` with values TensorBoard accepts (others, None included, as text)."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_hparams(value, f"{name}/"))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def log_final_hparams(
    writer,  # noqa: ANN001 - a SummaryWriter (TensorBoardLogger.experiment)
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    new_scalars: Mapping[str, float],
    step: int,
) -> None:
    """Hyperparameters of a finished run for TensorBoard's HParams view, without touching the curves.

    ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes every metric as a scalar at step 0 (a stray
    first point on each loss curve). Here the HParams summaries list every metric of ``metrics`` (the view
    shows the last value of each metric's scalar series); only ``new_scalars`` (values that have no series
    yet, e.g. the evaluation's ``eval/...``) are written, at ``step`` (the run's final step).
    """
    from torch.utils.tensorboard.summary import hparams

    for key, value in new_scalars.items():
        writer.add_scalar(key, float(value), step)
    exp, ssi, sei = hparams(flat_hparams(params), {k: float(v) for k, v in metrics.items()})
    for summary in (exp, ssi, sei):
        writer._get_file_writer().add_summary(summary, step)  # reopened after fit closed it
    writer.flush()
