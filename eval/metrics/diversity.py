"""Gesture Diversity under one named definition (metrics-reference.md §5.3), each a class chosen by config.

Definitions (:data:`DIVERSITY_DEFINITIONS`, selected with ``definition: <name>`` in
``conf/eval/metrics/diversity.yaml``; the name is the results' ``variant``):

* ``bailando`` (**default**: the definition the published tables used; S2G-MDD and ANGIE-style "Div" come
  from Bailando's code): ``lisiyao21/Bailando@cc90b98`` Div_k exactly, quirks included. Per-clip kinetic
  features as ``extract_kinetic_features`` computes them
  (:func:`~mmgt_eval.metrics.kinetic.bailando_kinetic_features`: the ``p[k] - p[k-1] / frame_time``
  operator-precedence acceleration, the fixed frame time 1/60 s whatever the fps, float32 output),
  z-normalised in float32 with the **reference** set's mean and std (``metrics_new.normalize(gt, pred)``,
  ddof 0, + 1e-10), then ``calculate_avg_distance``: the mean Euclidean distance over the i < j pairs
  (float32 norms summed in float64, as numpy 1.26 runs Bailando's loop).
  ``diversity_reference`` is Div_k_gt (the reference set normalised with itself).
* ``bailando_calc_diversity``: Bailando's ``metrics_new.calc_diversity`` (mean distance over the n(n-1)
  ordered pairs) on the raw Bailando features of each side. Defined in Bailando but never called there.
* ``kinetic_l2_corrected``: the corrected kinetic features
  (:func:`~mmgt_eval.metrics.kinetic.kinetic_features`: true second difference, frame time 1/fps, float64),
  z-normalised with the reference set, mean pairwise Euclidean distance (float64). Not comparable with
  published numbers (Div_k 32.08 vs Bailando's 32.80 on the fixture clips).
* ``pairwise_l2_corrected``: ``calc_diversity``'s formula on the raw corrected features (float64).
* ``latent_l1`` (HA2G / ANGIE lineage): mean L1 between FGD-encoder latents of the generated windows and a
  seeded random permutation of them (first ``n_pairs`` rows).
* ``within_l1`` (EMAGE ``L1div``): sum over frames and dimensions of |x - clip mean| / total frames.

The set statistics (functional forms and torchmetrics accumulators) are in
:mod:`mmgt_eval.metrics.diversity_sets`; the per-clip rows are kept in list states sorted by video-name hash,
so values do not depend on sharding.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torchmetrics

from mmgt_eval.metrics import diversity_sets
from mmgt_eval.metrics.base import MetricAdapter, VideoSample, VideoSkipped, weights_record
from mmgt_eval.metrics.diversity_sets import *  # noqa: F403 - the definitions, re-exported (__all__)
from mmgt_eval.metrics.diversity_sets import (
    BailandoCalcDiversityMetric,
    BailandoDiversityMetric,
    KineticDiversityMetric,
    LatentL1DiversityMetric,
    PairwiseL2DiversityMetric,
    WithinClipL1DiversityMetric,
    diversity_within_l1,
)
from mmgt_eval.metrics.keypoints import _keypoints_of, joint_indices, pose_xy
from mmgt_eval.metrics.kinetic import (
    BAILANDO_FRAME_TIME,
    bailando_kinetic_features,
    bailando_positions,
    kinetic_features,
)
from mmgt_eval.pose_autoencoder import (
    PoseAutoencoder,
    PoseAutoencoderError,
    encode_windows,
    load_pose_autoencoder,
    pose_windows,
)

__all__ = [
    "DEFAULT_DIVERSITY",
    "DIVERSITY_DEFINITIONS",
    "DiversityAdapter",
    *diversity_sets.__all__,  # the definitions' Metrics and functional cores, importable from here
]


# =========================================================================== definitions
class _Definition:
    """One Diversity definition: per-clip rows, the set accumulator and the protocol entries."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    quirks: ClassVar[tuple[str, ...]] = ()
    """Reference behaviour reproduced on purpose although it is arguably a bug."""
    deviations: ClassVar[tuple[str, ...]] = ()
    """Where this implementation departs from the reference, and the effect."""
    comparable_with_published: ClassVar[bool] = False

    def rows(self, keypoints: np.ndarray, fps: float, name: str) -> np.ndarray:
        """Feature rows of one clip (T, 134, 3)."""
        raise NotImplementedError

    def state(self) -> torchmetrics.Metric:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {}

    def protocol(self) -> dict[str, Any]:
        p: dict[str, Any] = {"definition": self.name, "description": self.description}
        p["reference_implementation"] = self.reference
        p["comparable_with_published_tables"] = self.comparable_with_published
        if self.quirks:
            p["reference_quirks_reproduced"] = list(self.quirks)
        if self.deviations:
            p["deviations"] = list(self.deviations)
        return {**p, **self.settings()}


_BAILANDO_REF = (
    "lisiyao21/Bailando@cc90b98bff81c9709570db413c9610c2562e27ca utils/features/kinetic.py, "
    "utils/features/utils.py, utils/metrics_new.py"
)
_BAILANDO_QUIRKS = (
    "acceleration operator precedence (utils/features/utils.py calc_average_acceleration): "
    "v1 = p[k] - p[k-1] / frame_time, so the energy-expenditure feature is not a second difference and "
    "depends on absolute position",
    "fixed frame time 1/60 s (extract_kinetic_features never passes one), whatever the video fps",
    "float32 features (extract_kinetic_features returns float32; normalize and the distances run on them)",
)
_BAILANDO_DEVIATIONS = (
    "positions are 2-D model-space keypoints handed over as (x, y, 0) with up = y "
    "(Bailando: 3-D SMPL joints)",
    "no 1200-frame cut and no frame-0 root subtraction (calc_and_save_feats; 2-D keypoints have no SMPL "
    "root): translation changes the energy term, so this matters for values, as for Bailando's own data",
    "invisible keypoints are interpolated over time before the features",
)


class _BailandoFeatures(_Definition):
    reference = _BAILANDO_REF
    quirks = _BAILANDO_QUIRKS
    deviations = _BAILANDO_DEVIATIONS

    def __init__(self, joints: str | Sequence[int] = "upper_body", frame_time: float | None = None) -> None:
        self.joints = joints if isinstance(joints, str) else tuple(joints)
        self.frame_time = BAILANDO_FRAME_TIME if frame_time is None else float(frame_time)
        if self.frame_time <= 0:
            raise ValueError(f"frame_time must be positive, got {self.frame_time}")

    def rows(self, keypoints: np.ndarray, fps: float, name: str) -> np.ndarray:
        positions = bailando_positions(keypoints, self.joints)
        return bailando_kinetic_features(positions, self.frame_time).astype(np.float32)

    def settings(self) -> dict[str, Any]:
        return {
            "joints": list(joint_indices(self.joints)),
            "frame_time": self.frame_time,
            "frame_time_is_bailandos": self.frame_time == BAILANDO_FRAME_TIME,
            "features": "Bailando extract_kinetic_features as written (per joint: KE horizontal (x, z), KE "
            "vertical (y), energy expenditure; sliding window 2), float32",
        }


class _Bailando(_BailandoFeatures):
    name = "bailando"
    description = (
        "Bailando Div_k: calculate_avg_distance (mean Euclidean distance over i<j pairs) of kinetic features "
        "z-normalised with the reference (GT) set's mean and std (normalize(gt, pred)); the default, "
        "comparable with published tables computed with Bailando's code"
    )
    comparable_with_published = True

    def state(self) -> torchmetrics.Metric:
        return BailandoDiversityMetric()

    def settings(self) -> dict[str, Any]:
        norm = "float32 z-score with the reference set (ddof 0) + 1e-10"
        return {**super().settings(), "normalisation": norm}


class _BailandoCalcDiversity(_BailandoFeatures):
    name = "bailando_calc_diversity"
    description = (
        "Bailando calc_diversity: mean Euclidean distance over ordered pairs of raw kinetic features, "
        "per side"
    )

    def state(self) -> torchmetrics.Metric:
        return BailandoCalcDiversityMetric()


_CORRECTED = (
    "corrected kinetic features: true second difference (p[k+1] - 2 p[k] + p[k-1]) / ft^2 and frame time "
    "1/fps, float64, 2-D (horizontal x, vertical y); not Bailando's numbers"
)


class _CorrectedFeatures(_Definition):
    reference = _BAILANDO_REF + " (formulas, with its quirks corrected)"
    deviations = (_CORRECTED,)

    def __init__(self, joints: str | Sequence[int] = "upper_body") -> None:
        self.joints = joints if isinstance(joints, str) else tuple(joints)

    def rows(self, keypoints: np.ndarray, fps: float, name: str) -> np.ndarray:
        return kinetic_features(keypoints, fps, self.joints)

    def settings(self) -> dict[str, Any]:
        return {"joints": list(joint_indices(self.joints)), "features": _CORRECTED}


class _KineticL2Corrected(_CorrectedFeatures):
    name = "kinetic_l2_corrected"
    description = (
        "mean pairwise Euclidean distance (i<j) of corrected kinetic features z-normalised with the "
        "reference set (float64)"
    )

    def state(self) -> torchmetrics.Metric:
        return KineticDiversityMetric()

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "normalisation": "z-score with the reference set (ddof 0) + 1e-10"}


class _PairwiseL2Corrected(_CorrectedFeatures):
    name = "pairwise_l2_corrected"
    description = "mean pairwise Euclidean distance of raw corrected kinetic features, per side (float64)"

    def state(self) -> torchmetrics.Metric:
        return PairwiseL2DiversityMetric()


class _WithinL1(_Definition):
    name = "within_l1"
    description = "EMAGE L1div: sum of |x - clip mean| over frames and dims / total frames"
    reference = "PantoMatrix EMAGE utils/metric.py L1div"
    deviations = ("2-D model-space x, y of the joint set instead of SMPL-X joint positions",)

    def __init__(self, joints: str | Sequence[int] = "upper_body") -> None:
        self.joints = joints if isinstance(joints, str) else tuple(joints)

    def rows(self, keypoints: np.ndarray, fps: float, name: str) -> np.ndarray:
        return pose_xy(keypoints, self.joints, name).reshape(keypoints.shape[0], -1)

    def state(self) -> torchmetrics.Metric:
        return WithinClipL1DiversityMetric()

    def settings(self) -> dict[str, Any]:
        return {"joints": list(joint_indices(self.joints))}


class _LatentL1(_Definition):
    name = "latent_l1"
    description = (
        "HA2G/ANGIE diversity: mean L1 between FGD-encoder latents of generated windows and a seeded random "
        "permutation of them"
    )
    reference = "alvinliu0/HA2G scripts/model/embedding_space_evaluator.py get_diversity_scores"
    deviations = ("the project's own pose autoencoder (no public encoder exists for 2-D keypoints)",)

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        n_pairs: int = 500,
        seed: int = 0,
        stride: int | None = None,
    ) -> None:
        if weights_path is None:
            raise PoseAutoencoderError(
                "diversity latent_l1 needs weights_path= a pose-autoencoder checkpoint"
            )
        self.weights_path = Path(weights_path)
        self.model: PoseAutoencoder
        self.model, self.meta = load_pose_autoencoder(self.weights_path)
        self.n_pairs, self.seed, self.stride = n_pairs, seed, stride

    def rows(self, keypoints: np.ndarray, fps: float, name: str) -> np.ndarray:
        window = self.model.config["window"]
        w = pose_windows(keypoints, window, self.stride, self.model.config["joints"], name)
        if w.shape[0] == 0:
            raise VideoSkipped(name, f"diversity: shorter than one {window}-frame window")
        return encode_windows(self.model, w)

    def state(self) -> torchmetrics.Metric:
        return LatentL1DiversityMetric(n_pairs=self.n_pairs, seed=self.seed)

    def settings(self) -> dict[str, Any]:
        return {
            "n_pairs": self.n_pairs,
            "seed": self.seed,
            "stride": self.stride or self.meta["window"],
            "rows": "windows sorted by (video name hash, window index)",
            "autoencoder": self.meta,
            "weights": weights_record(self.weights_path),
        }


DIVERSITY_DEFINITIONS: dict[str, type[_Definition]] = {
    d.name: d
    for d in (
        _Bailando,
        _BailandoCalcDiversity,
        _KineticL2Corrected,
        _PairwiseL2Corrected,
        _LatentL1,
        _WithinL1,
    )
}
"""Diversity definitions by name (metrics-reference.md §5.3); :data:`DEFAULT_DIVERSITY` is the default."""
DEFAULT_DIVERSITY = "bailando"
_RENAMED = {"kinetic_l2": "kinetic_l2_corrected", "pairwise_l2": "pairwise_l2_corrected"}


# =========================================================================== runner adapter
class DiversityAdapter(MetricAdapter):
    """Runner adapter for Diversity under one named definition (:data:`DIVERSITY_DEFINITIONS`).

    Reference videos with keypoints feed the reference side (GT normalisation for ``bailando`` and
    ``kinetic_l2_corrected``; the reference set's diversity is reported as ``diversity_reference``).
    Parameters a definition does not use are ignored (and not written into the protocol).

    Args:
        definition: the definition's name (the results' ``variant``).
        joints: joint set (kinetic and within_l1 definitions).
        frame_time: Bailando definitions: seconds per frame; None = Bailando's fixed 1/60 (a quirk).
        n_pairs, seed, weights_path, stride: ``latent_l1`` (HA2G pairs, permutation seed, autoencoder
            checkpoint, window stride).
        min_frames: videos with fewer keypoint frames are skipped (at least 3).
    """

    name = "diversity"
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "diversity": True,
        "diversity_reference": None,  # the reference set's diversity: context, not a score
    }
    needs_reference = False

    def __init__(
        self,
        definition: str = DEFAULT_DIVERSITY,
        joints: str | Sequence[int] = "upper_body",
        frame_time: float | None = None,
        n_pairs: int = 500,
        seed: int = 0,
        weights_path: str | os.PathLike | None = None,
        stride: int | None = None,
        min_frames: int = 3,
    ) -> None:
        if definition in _RENAMED:
            raise ValueError(
                f"diversity definition {definition!r} is now {_RENAMED[definition]!r} (corrected kinetic "
                f"features, not Bailando's numbers); {DEFAULT_DIVERSITY!r} reproduces Bailando's"
            )
        if definition not in DIVERSITY_DEFINITIONS:
            raise ValueError(
                f"unknown diversity definition {definition!r}; known: {', '.join(DIVERSITY_DEFINITIONS)}"
            )
        cls = DIVERSITY_DEFINITIONS[definition]
        given = {
            "joints": joints,
            "frame_time": frame_time,
            "n_pairs": n_pairs,
            "seed": seed,
            "weights_path": weights_path,
            "stride": stride,
        }
        accepted = inspect.signature(cls.__init__).parameters
        self.definition: _Definition = cls(**{k: v for k, v in given.items() if k in accepted})
        if "joints" in accepted:
            joint_indices(joints)
        self.min_frames = max(3, min_frames)
        self.state = self.definition.state()

    @property
    def variant(self) -> str:
        """The definition's name."""
        return self.definition.name

    def _add(self, sample: VideoSample, real: bool) -> float | None:
        kps = _keypoints_of(sample, "diversity")
        if not isinstance(self.definition, _LatentL1) and kps.shape[0] < self.min_frames:
            raise VideoSkipped(
                sample.name, f"diversity: {kps.shape[0]} keypoint frames (< {self.min_frames})"
            )
        rows = self.definition.rows(kps, sample.fps, sample.name)
        self.state.update(rows, real=real, name=sample.name)
        return diversity_within_l1([rows]) if isinstance(self.definition, _WithinL1) else None

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Add the generated video (and the reference when it has keypoints)."""
        if reference is not None and reference.keypoints is not None:
            self._add(reference, real=True)
        value = self._add(generated, real=False)
        return {} if value is None else {"diversity": value}

    def compute(self) -> dict[str, float]:
        """``diversity`` of the generated set and ``diversity_reference`` of the reference set when scored."""
        vals = self.state.compute()
        out = {"diversity": float(vals["generated"])}
        if "reference" in vals:
            out["diversity_reference"] = float(vals["reference"])
        return out

    def protocol(self) -> dict:
        """The variant, its reference, reproduced quirks, deviations and settings."""
        return {
            "metric": "diversity",
            "variant": self.variant,
            "default_variant": DEFAULT_DIVERSITY,
            **self.definition.protocol(),
            "coordinates": "model space x, y; invisible points interpolated over time",
            "min_frames": self.min_frames,
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The definition's accumulator."""
        return [self.state]
