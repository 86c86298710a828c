"""The contract between metric adapters and the evaluation runner.

The runner loads each video pair as :class:`VideoSample` objects and feeds every adapter in the run
(one :class:`MetricAdapter` per configured metric). Adapters wrap torchmetrics Metrics
(:class:`RunnerSyncedMetric`, whose states the runner syncs across ranks) and translate videos into those
metrics' inputs. Adding a metric is one adapter class and one ``conf/eval/metrics/<name>.yaml``.

Life cycle, per rank::

    metric = instantiate(cfg.metrics.fid, weights_path=resolved_path)  # constructor takes plain values
    for generated, reference in my_shard:
        if metric.missing_input(generated, reference):                   # e.g. no reference video: a skip
            continue
        try:
            per_video = metric.update(generated, reference)               # {} when the metric has none
        except VideoSkipped as skip:                                      # declared skip: record, go on
            ...
    # the runner syncs metric.metric_states() across ranks, then on rank 0:
    values = metric.compute()                                             # {"fid": 12.3, ...}
    settings = metric.protocol()                                          # written into results JSON
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torchmetrics

from mmgt.digest import sha256_file
from mmgt_eval.directions import declared_direction


class EvaluationError(RuntimeError):
    """The evaluation cannot produce trustworthy results (bad input under ``strict``, NaN, a rank failed)."""


class MetricInputError(ValueError):
    """Input a metric cannot score (wrong shape, dtype, channel count, too few samples)."""


class VideoSkipped(Exception):  # noqa: N818 - a declared outcome, not an error
    """Raised by :meth:`MetricAdapter.update` when the metric declines a video by configuration.

    State already updated for this call (e.g. the reference side) stays updated; the runner records
    ``(video name, metric name, reason)`` and counts the skip in the results.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass
class VideoSample:
    """One video as the runner loads it.

    Attributes:
        name: identifier used for pairing and in messages (usually the file stem).
        frames: (T, H, W, 3) uint8 RGB.
        fps: frame rate of ``frames``.
        audio: (N,) float32 mono at 16 kHz, or ``None`` when the file has no audio track.
        keypoints: (T, 134, 3) stored-layout keypoints when available.
        keypoints_error: why a keypoint file beside the video could not be used (then ``keypoints`` is None).
    """

    name: str
    frames: np.ndarray
    fps: float
    audio: np.ndarray | None
    keypoints: np.ndarray | None = None
    keypoints_error: str | None = None

    def missing_keypoints(self, metric: str) -> str:
        """Why ``metric`` cannot score this video's keypoints (for :class:`VideoSkipped`)."""
        return f"{metric}: {self.keypoints_error or 'no keypoints (keypoints .npy beside the video)'}"

    def __post_init__(self) -> None:
        validate_frames(self.frames, self.name)


def validate_frames(frames: np.ndarray, name: str) -> None:
    """Raise :class:`MetricInputError` (naming ``name``) unless frames are non-empty (T, H, W, 3) uint8."""
    if not isinstance(frames, np.ndarray):
        raise MetricInputError(f"{name}: frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] == 1):
        raise MetricInputError(
            f"{name}: grayscale video of shape {frames.shape}; metrics need (T, H, W, 3) RGB "
            "(convert it to RGB first)"
        )
    if frames.ndim == 4 and frames.shape[-1] == 4:
        raise MetricInputError(
            f"{name}: RGBA video of shape {frames.shape}; metrics need (T, H, W, 3) RGB (drop or "
            "composite the alpha channel first)"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise MetricInputError(f"{name}: frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise MetricInputError(f"{name}: frames must be uint8, got {frames.dtype}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise MetricInputError(f"{name}: empty video of shape {frames.shape}")


def validate_rgb_tensor(x: Any, what: str, layout: str) -> None:
    """Raise :class:`MetricInputError` naming ``what`` unless ``x`` is a (N, 3, H, W) uint8 or [0, 1] tensor.

    ``layout`` names the first axis in the message, e.g. ``"(T, 3, H, W)"``.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise MetricInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise MetricInputError(f"{what} must be {layout} RGB, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        if not x.is_floating_point():
            raise MetricInputError(f"{what} must be uint8 or float in [0, 1], got {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            lo, hi = x.min().item(), x.max().item()
            raise MetricInputError(f"float {what} must be in [0, 1], got range [{lo:.3g}, {hi:.3g}]")


def _as_2d(features: Any, what: str, min_rows: int = 2, dtype: Any = np.float64) -> np.ndarray:
    """``features`` as an (N >= min_rows, d) ``dtype`` array, else a :class:`MetricInputError`."""
    f = np.asarray(features, dtype=dtype)
    if f.ndim != 2 or f.shape[0] < min_rows:
        raise MetricInputError(f"{what}: need a (N >= {min_rows}, d) feature matrix, got shape {f.shape}")
    return f


class RunnerSyncedMetric(torchmetrics.Metric):
    """A torchmetrics Metric whose states the runner syncs (:func:`mmgt_eval.distributed.synced_states`).

    Built with ``sync_on_compute=False``: ``compute()`` works on the states it holds, the local ones or,
    inside the runner's ``Metric.sync_context``, every rank's (so rank 0 computes alone, with no collective).
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("sync_on_compute", False)
        super().__init__(**kwargs)


class MetricAdapter:
    """Base of the runner's metric adapters: one video (pair) in, per-video scores out; values at the end.

    Subclasses set ``name`` and the flags below and implement :meth:`update`, :meth:`compute`,
    :meth:`protocol` and :meth:`metric_states`; the runner asks the adapter itself what input it needs
    (:meth:`missing_input`).
    """

    name: str = ""
    """Short metric name, e.g. ``"fid"``; prefixes the keys of :meth:`compute`."""
    higher_is_better: bool = False
    """Direction of the metric's main value; also the default for values not in ``value_higher_is_better``."""
    needs_reference: bool = False
    """True if :meth:`update` needs the reference video (the runner then skips unpaired videos)."""
    variant: str | None = None
    """The protocol variant the adapter implements (e.g. ``"stylegan_v"``, ``"bailando"``; docs/metrics.md);
    written into ``metrics.<m>.variant`` and ``metrics.<m>.protocol`` (:func:`metric_variant`)."""
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {}
    """Direction of each key of :meth:`compute` (None: no direction, e.g. counts and offsets); keys missing
    from it get ``higher_is_better``. The runner writes the resolved mapping into the results."""

    def missing_input(self, generated: VideoSample, reference: VideoSample | None) -> str | None:
        """Why this pair cannot be scored at all (recorded as an ``unpaired`` skip), or None to score it."""
        if self.needs_reference and reference is None:
            return "no reference video"
        return None

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add one video (pair); return per-video scores ({} when the metric has none)."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """Final values after the runner synced :meth:`metric_states`, e.g. ``{"fid": 12.3}``."""
        raise NotImplementedError

    def protocol(self) -> dict:
        """Settings and weight-file checksums written into the results."""
        return {}

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The ``Metric`` objects whose states the runner syncs across ranks (may be [])."""
        return []


def weights_record(path: str | os.PathLike) -> dict[str, str]:
    """``{"file": name, "sha256": digest}`` of a weight file, for :meth:`MetricAdapter.protocol`."""
    p = Path(path)
    return {"file": p.name, "sha256": sha256_file(p)}


def metric_variant(adapter: object, protocol: dict | None = None) -> str | None:
    """The adapter's protocol variant: its ``variant`` attribute, else ``protocol["variant"]``, else None."""
    variant = getattr(adapter, "variant", None)
    if variant is None and isinstance(protocol, dict):
        variant = protocol.get("variant")
    return None if variant is None else str(variant)


def value_directions(adapter: object, keys: Sequence[str]) -> dict[str, bool | None]:
    """Direction of each value key of ``adapter.compute()``: True higher is better, False lower, None neither.

    Taken from the adapter's ``value_higher_is_better`` mapping when it lists the key, else its
    ``higher_is_better`` flag (adapters without the mapping behave as before: one direction for every value);
    the rule is :func:`mmgt_eval.directions.declared_direction`, the one the table reads results with.
    """
    declared = getattr(adapter, "value_higher_is_better", None) or {}
    default = bool(getattr(adapter, "higher_is_better", False))
    return {key: declared_direction(key, declared, default) for key in keys}
