"""Diversity set statistics: functional forms (Bailando's float32 ports and float64 ones) and accumulators.

The definitions that combine per-clip features with these statistics, and the runner adapter, are in
:mod:`mmgt_eval.metrics.diversity` (metrics-reference.md §5.3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from mmgt_eval.metrics.base import MetricInputError, RunnerSyncedMetric, _as_2d

__all__ = [
    "BailandoCalcDiversityMetric",
    "BailandoDiversityMetric",
    "KineticDiversityMetric",
    "LatentL1DiversityMetric",
    "PairwiseL2DiversityMetric",
    "WithinClipL1DiversityMetric",
    "bailando_calc_diversity",
    "bailando_calculate_avg_distance",
    "bailando_normalize",
    "diversity_kinetic_l2",
    "diversity_latent_l1",
    "diversity_pairwise_l2",
    "diversity_within_l1",
]


# =========================================================================== functional forms
def bailando_normalize(gt: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Bailando ``metrics_new.normalize(feat, feat2)`` in float32: both z-scored with ``gt``'s mean and std.

    (N, d) and (M, d) float32 -> ``((gt - mean) / (std + 1e-10), (pred - mean) / (std + 1e-10))``, ddof 0.
    """
    g = _as_2d(gt, "bailando_normalize (reference)", 1, np.float32)
    p = _as_2d(pred, "bailando_normalize", 1, np.float32)
    if g.shape[1] != p.shape[1]:
        raise MetricInputError(f"reference features have {g.shape[1]} dims, generated {p.shape[1]}")
    mean, std = g.mean(axis=0), g.std(axis=0)
    return (g - mean) / (std + 1e-10), (p - mean) / (std + 1e-10)


def bailando_calculate_avg_distance(features: Any) -> float:
    """Bailando ``metrics_new.calculate_avg_distance``: mean Euclidean distance over the i < j pairs.

    Bailando's loop, kept as written so that values match it bit for bit: per pair ``np.linalg.norm`` of the
    float32 difference (a float32 dot product), added to a Python ``0`` (numpy 1.26 promotes the sum to
    float64) and divided by n(n-1)/2. O(n^2) Python steps: ~1 s for 600 clips.
    """
    f = _as_2d(features, "calculate_avg_distance", 2, np.float32)
    n = f.shape[0]
    dist = 0
    for i in range(n - 1):
        for diff in f[i + 1 :] - f[i]:
            dist += np.linalg.norm(diff)
    return float(dist / ((n * n - n) / 2))


def bailando_calc_diversity(features: Any) -> float:
    """Bailando ``metrics_new.calc_diversity``: sum over all n^2 ordered pairs of ||f_i - f_j|| / (n (n-1)).

    float32 features: the (n, n) float32 distance matrix is built row by row (the reference broadcasts an
    (n, n, d) array) and summed as numpy sums it.
    """
    f = _as_2d(features, "calc_diversity", 2, np.float32)
    n = f.shape[0]
    dist = np.stack([np.sqrt(np.sum((f - f[i]) ** 2, axis=1)) for i in range(n)])
    return float(dist.sum() / n / (n - 1))


def diversity_latent_l1(latents: Any, n_pairs: int = 500, seed: int = 0) -> float:
    """HA2G ``get_diversity_scores``: mean_i sum_d |F1[i, d] - F2[i, d]|.

    F1 = the first ``n_pairs`` rows of ``latents`` (N, d) (FGD-encoder latents of generated windows), F2 =
    rows ``torch.randperm(N)[:n_pairs]`` drawn with a ``torch.Generator`` seeded with ``seed`` (a row may be
    paired with itself, as in the reference). HA2G uses 500, DiffTED 250.
    """
    f = _as_2d(latents, "diversity_latent_l1", 1)
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(f.shape[0], generator=g)[:n_pairs].numpy()
    return float(np.abs(f[:n_pairs] - f[idx]).sum(axis=-1).mean())


def _mean_pair_distance(f: np.ndarray) -> float:
    """Mean Euclidean distance over the i < j pairs (float64, chunked)."""
    n = f.shape[0]
    total = 0.0
    for i in range(n - 1):
        total += float(np.linalg.norm(f[i + 1 :] - f[i], axis=1).sum())
    return total / (n * (n - 1) / 2)


def diversity_kinetic_l2(features: Any, reference_features: Any | None = None) -> float:
    """Mean Euclidean distance over i < j pairs of ``features`` (N, d), float64.

    With ``reference_features`` the rows are first z-normalised with their mean and std (ddof 0, + 1e-10),
    Bailando's ``normalize(gt, pred)`` formula in float64 (``kinetic_l2_corrected``).
    """
    f = _as_2d(features, "diversity_kinetic_l2")
    if reference_features is not None:
        r = _as_2d(reference_features, "diversity_kinetic_l2 (reference)", 1)
        if r.shape[1] != f.shape[1]:
            raise MetricInputError(f"reference features have {r.shape[1]} dims, generated {f.shape[1]}")
        f = (f - r.mean(axis=0)) / (r.std(axis=0) + 1e-10)
    return _mean_pair_distance(f)


def diversity_within_l1(sequences: Sequence[Any]) -> float:
    """EMAGE ``L1div``: sum_clips sum_t sum_d |x[t, d] - mean_t x[:, d]| / total frames.

    ``sequences``: (T_i, D) arrays (joint positions flattened per frame). Measures motion inside clips.
    """
    total, frames = 0.0, 0
    for seq in sequences:
        x = np.asarray(seq, dtype=np.float64)
        x = x.reshape(x.shape[0], -1)
        total += float(np.abs(x - x.mean(axis=0)).sum())
        frames += x.shape[0]
    if frames == 0:
        raise MetricInputError("diversity_within_l1: no frames")
    return total / frames


def diversity_pairwise_l2(features: Any) -> float:
    """``calc_diversity``'s value in float64: mean distance over ordered pairs i != j (= over i < j)."""
    return _mean_pair_distance(_as_2d(features, "diversity_pairwise_l2"))


# =========================================================================== set accumulators
def _name_key(name: str) -> int:
    """A stable 56-bit integer for a video name (orders list states independently of sharding)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:7], "big")


class _FeatureSetsMetric(RunnerSyncedMetric):
    """Shared states: generated / reference feature rows and sort keys (list states, ``cat`` over ranks)."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for side in ("gen", "ref"):
            self.add_state(f"{side}_features", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_keys", default=[], dist_reduce_fx="cat")

    def update(self, features: Any, real: bool, name: str = "", index: int = 0) -> None:
        """Add feature rows (n, d) (or one row (d,)) of one video; ``name`` and ``index`` order the rows."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float64)).reshape(-1, np.shape(features)[-1])
        keys = torch.tensor([[_name_key(name), index + i] for i in range(f.shape[0])], dtype=torch.int64)
        side = "ref" if real else "gen"
        getattr(self, f"{side}_features").append(f)
        getattr(self, f"{side}_keys").append(keys)

    def _rows(self, side: str) -> np.ndarray | None:
        feats = getattr(self, f"{side}_features")
        if isinstance(feats, list) and len(feats) == 0:
            return None
        f = dim_zero_cat(feats).double().cpu().numpy()
        k = dim_zero_cat(getattr(self, f"{side}_keys")).cpu().numpy()
        order = np.lexsort((k[:, 1], k[:, 0]))
        return f[order]

    def _both(self, what: str) -> tuple[np.ndarray, np.ndarray]:
        gen, ref = self._rows("gen"), self._rows("ref")
        if gen is None:
            raise MetricInputError(f"{what} diversity: no generated clip was added")
        if ref is None:
            raise MetricInputError(
                f"{what} diversity normalises with the reference (GT) set's statistics, but no reference "
                "keypoints were given; provide reference videos with keypoints or use a definition without "
                "normalisation (bailando_calc_diversity, pairwise_l2_corrected, within_l1)"
            )
        return gen, ref

    def _per_side(self, fn: Any, what: str) -> dict[str, Tensor]:
        out = {}
        for side, key in (("gen", "generated"), ("ref", "reference")):
            rows = self._rows(side)
            if rows is not None and rows.shape[0] >= 2:
                out[key] = torch.tensor(fn(rows), dtype=torch.float64)
        if "generated" not in out:
            raise MetricInputError(f"{what} diversity needs at least 2 generated clips")
        return out


class BailandoDiversityMetric(_FeatureSetsMetric):
    """Bailando Div_k / Div_k_gt on float32 features.

    Computed by :func:`bailando_normalize`, then :func:`bailando_calculate_avg_distance`.
    """

    def compute(self) -> dict[str, Tensor]:
        """``{"generated": Div_k, "reference": Div_k_gt}`` (the latter with >= 2 reference clips)."""
        gen, ref = self._both("bailando")
        ref_n, gen_n = bailando_normalize(ref, gen)
        out = {"generated": torch.tensor(bailando_calculate_avg_distance(gen_n), dtype=torch.float64)}
        if ref.shape[0] >= 2:
            out["reference"] = torch.tensor(bailando_calculate_avg_distance(ref_n), dtype=torch.float64)
        return out


class BailandoCalcDiversityMetric(_FeatureSetsMetric):
    """Bailando ``calc_diversity`` (:func:`bailando_calc_diversity`) of each side's raw features."""

    def compute(self) -> dict[str, Tensor]:
        """Diversity of each side with at least 2 clips."""
        return self._per_side(bailando_calc_diversity, "bailando_calc_diversity")


class LatentL1DiversityMetric(_FeatureSetsMetric):
    """:func:`diversity_latent_l1` on encoder latents; compute -> {generated, reference}."""

    def __init__(self, n_pairs: int = 500, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_pairs, self.seed = n_pairs, seed

    def compute(self) -> dict[str, Tensor]:
        """Diversity of each side that has rows (sorted by video name, so sharding does not change it)."""
        out = {}
        for side, key in (("gen", "generated"), ("ref", "reference")):
            rows = self._rows(side)
            if rows is not None:
                value = diversity_latent_l1(rows, self.n_pairs, self.seed)
                out[key] = torch.tensor(value, dtype=torch.float64)
        return out


class KineticDiversityMetric(_FeatureSetsMetric):
    """:func:`diversity_kinetic_l2` (float64) of the generated and the reference set.

    The generated set is normalised with the reference set's stats; the reference set's own diversity is
    normalised with itself.
    """

    def compute(self) -> dict[str, Tensor]:
        """``{"generated": ..., "reference": ...}`` (generated needs >= 1 reference row to normalise)."""
        gen, ref = self._both("kinetic_l2_corrected")
        out = {"generated": torch.tensor(diversity_kinetic_l2(gen, ref), dtype=torch.float64)}
        if ref.shape[0] >= 2:
            out["reference"] = torch.tensor(diversity_kinetic_l2(ref, ref), dtype=torch.float64)
        return out


class PairwiseL2DiversityMetric(_FeatureSetsMetric):
    """:func:`diversity_pairwise_l2` on raw features, per side."""

    def compute(self) -> dict[str, Tensor]:
        """Diversity of each side with at least 2 clips."""
        return self._per_side(diversity_pairwise_l2, "pairwise_l2_corrected")


class WithinClipL1DiversityMetric(RunnerSyncedMetric):
    """:func:`diversity_within_l1` as float64 sums per side."""

    is_differentiable = False
    full_state_update = False
    higher_is_better = True
    gen_sum: Tensor
    gen_frames: Tensor
    ref_sum: Tensor
    ref_frames: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for side in ("gen", "ref"):
            self.add_state(f"{side}_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_frames", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, sequence: Any, real: bool = False, name: str = "") -> None:
        """Add one clip (T, D) (``name`` is not needed: the sums do not depend on the order)."""
        x = np.asarray(sequence, dtype=np.float64)
        x = x.reshape(x.shape[0], -1)
        side = "ref" if real else "gen"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + float(np.abs(x - x.mean(axis=0)).sum()))
        setattr(self, f"{side}_frames", getattr(self, f"{side}_frames") + x.shape[0])

    def compute(self) -> dict[str, Tensor]:
        """Per side: sum / frames."""
        out = {}
        for side, key in (("gen", "generated"), ("ref", "reference")):
            if int(getattr(self, f"{side}_frames")) > 0:
                out[key] = getattr(self, f"{side}_sum") / getattr(self, f"{side}_frames")
        if "generated" not in out:
            raise MetricInputError("within_l1 diversity: no generated clip was added")
        return out
