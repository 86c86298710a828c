"""Fréchet Gesture Distance (FGD) of keypoint windows: functional core, ``Metric``, runner adapter.

FGD (``../shared/docs/metrics-reference.md`` §5.2): Fréchet distance (:mod:`mmgt_eval.frechet`) between
encoder latents of reference and generated keypoint windows, from a pose autoencoder the project trains on
dataset keypoints (:mod:`mmgt_eval.pose_autoencoder`: ``train_pose_autoencoder``, ``save_pose_autoencoder``,
``load_pose_autoencoder``). No public encoder exists for 2-D DWPose keypoints, so FGD values compare only
between runs that use the same checkpoint; its sha256 is part of :meth:`FGDAdapter.protocol`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torchmetrics
from torch import Tensor

from mmgt_eval.frechet import frechet_distance, gaussian_stats, stats_from_sums
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
    _as_2d,
    weights_record,
)
from mmgt_eval.metrics.keypoints import _keypoints_of
from mmgt_eval.pose_autoencoder import (
    PoseAutoencoder,
    PoseAutoencoderError,
    encode_windows,
    load_pose_autoencoder,
    pose_windows,
)

__all__ = ["FGDAdapter", "FGDMetric", "frechet_gesture_distance"]


def frechet_gesture_distance(generated_features: Any, reference_features: Any) -> float:
    """FGD = Fréchet distance of the Gaussian statistics (``mmgt_eval.frechet``) of two latent sets (N, d)."""
    g = _as_2d(generated_features, "FGD generated features")
    r = _as_2d(reference_features, "FGD reference features")
    return float(frechet_distance(*gaussian_stats(g), *gaussian_stats(r)))


class FGDMetric(RunnerSyncedMetric):
    """FGD as float64 sums (sum x, sum x x^T, n) per side over encoder latents of keypoint windows.

    ``update(windows (B, T, D), real)`` encodes with the frozen :class:`PoseAutoencoder`; ``compute()``
    forms means and unbiased covariances (/(n-1), like ``np.cov``; ``mmgt_eval.frechet.stats_from_sums``)
    and calls ``mmgt_eval.frechet.frechet_distance``. Needs >= 2 windows per side.
    """

    higher_is_better = False
    is_differentiable = False
    full_state_update = False

    def __init__(self, model: PoseAutoencoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        d = model.config["latent_dim"]
        for side in ("gen", "ref"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_cov_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def train(self, mode: bool = True) -> FGDMetric:
        """The encoder stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def update(self, windows: Any, real: bool) -> None:
        """Add windows (B, T, D) of one side."""
        z = torch.as_tensor(encode_windows(self.model, windows), dtype=torch.float64)
        side = "ref" if real else "gen"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + z.sum(0).to(self.device))
        setattr(self, f"{side}_cov_sum", getattr(self, f"{side}_cov_sum") + (z.T @ z).to(self.device))
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + z.shape[0])

    def _stats(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        n = int(getattr(self, f"{side}_n"))
        if n < 2:
            what = "reference" if side == "ref" else "generated"
            raise MetricInputError(f"FGD needs at least 2 {what} windows, got {n}")
        return stats_from_sums(getattr(self, f"{side}_sum"), getattr(self, f"{side}_cov_sum"), n)

    def compute(self) -> Tensor:
        """FGD (float64 scalar)."""
        return torch.tensor(
            float(frechet_distance(*self._stats("gen"), *self._stats("ref"))), dtype=torch.float64
        )


class FGDAdapter(MetricAdapter):
    """Runner adapter: FGD between generated and reference keypoint windows in a trained autoencoder's space.

    ``weights_path``: checkpoint of :func:`save_pose_autoencoder` (its JSON sidecar next to it). Windows of
    the autoencoder's length, ``stride`` frames apart (default: non-overlapping); a video shorter than one
    window, or a pair without keypoints on either side, raises :class:`VideoSkipped`.
    """

    name = "fgd"
    higher_is_better = False
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "fgd": False,
        "fgd_windows_generated": None,
        "fgd_windows_reference": None,
    }
    needs_reference = True
    variant = "project_autoencoder"
    """FGD on the project's own pose autoencoder (no public 2-D encoder): compare only with equal weights."""

    def __init__(
        self, weights_path: str | os.PathLike | None = None, stride: int | None = None, device: str = "cpu"
    ) -> None:
        if weights_path is None:
            raise PoseAutoencoderError(
                "FGD needs weights_path= a pose-autoencoder checkpoint trained on your dataset's keypoints "
                "(train_pose_autoencoder + save_pose_autoencoder; registry name fgd_autoencoder)"
            )
        self.weights_path = Path(weights_path)
        self.model, self.meta = load_pose_autoencoder(self.weights_path)
        self.model.to(device)
        self.window = int(self.meta["window"])
        self.stride = stride or self.window
        self.state = FGDMetric(self.model)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the windows of both videos (both or neither)."""
        if reference is None:
            raise VideoSkipped(generated.name, "fgd: no reference video")
        wins = []
        for s in (generated, reference):
            w = pose_windows(_keypoints_of(s, "fgd"), self.window, self.stride, self.meta["joints"], s.name)
            if w.shape[0] == 0:
                raise VideoSkipped(s.name, f"fgd: shorter than one {self.window}-frame window")
            wins.append(w)
        self.state.update(wins[0], real=False)
        self.state.update(wins[1], real=True)
        return {}

    def compute(self) -> dict[str, float]:
        """``fgd`` with the window counts."""
        counts = {
            "fgd_windows_generated": int(self.state.gen_n),
            "fgd_windows_reference": int(self.state.ref_n),
        }
        return {"fgd": float(self.state.compute()), **counts}  # counts first: compute() may unsync

    def protocol(self) -> dict:
        """Encoder config and checksum, windows, statistics convention."""
        return {
            "metric": "fgd",
            "variant": self.variant,
            "definition": "Fréchet distance (mmgt_eval.frechet) of pose-autoencoder latents of reference vs "
            "generated keypoint windows (Yoon et al. 2020; HA2G/DiffTED convention: np.cov /(n-1))",
            "window": self.window,
            "stride": self.stride,
            "autoencoder": {k: v for k, v in self.meta.items() if k != "training"},
            "weights": weights_record(self.weights_path),
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The float64 sum states."""
        return [self.state]
