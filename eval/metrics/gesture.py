"""Old home of the gesture metrics: every name that lived here still resolves, lazily, from its new module.

The gesture metrics on 2-D keypoints are split into one module each (``../shared/docs/metrics-reference.md``
§5):

* :mod:`mmgt_eval.metrics.keypoints`: joint sets and model-space positions shared by the metrics below;
* :mod:`mmgt_eval.metrics.onset`: librosa 0.10.2's audio onset detection in numpy (the audio beats of BAS);
* :mod:`mmgt_eval.metrics.bas`: beat alignment (BAS / BC), its presets, ``Metric`` and adapter;
* :mod:`mmgt_eval.pose_autoencoder`: the pose autoencoder FGD and Diversity ``latent_l1`` encode with;
* :mod:`mmgt_eval.metrics.fgd`: FGD, its ``Metric`` and adapter;
* :mod:`mmgt_eval.metrics.diversity` (+ ``diversity_sets``) and :mod:`mmgt_eval.metrics.kinetic`: Diversity.

New code imports from those modules; ``from mmgt_eval.metrics.gesture import X`` keeps working for every
public name that used to live here (:data:`_MOVED`, resolved by the module ``__getattr__``).
"""

from __future__ import annotations

from typing import Any

_MOVED: dict[str, str] = {
    **{
        n: "mmgt_eval.metrics.keypoints"
        for n in ("JOINT_SETS", "joint_indices", "pose_xy", "_check_keypoints", "_keypoints_of")
    },
    **{
        n: "mmgt_eval.metrics.onset"
        for n in ("ONSET_HOP", "ONSET_N_FFT", "ONSET_N_MELS", "onset_detect", "onset_strength", "peak_pick")
    },
    **{
        n: "mmgt_eval.metrics.bas"
        for n in (
            "BAS_PRESETS",
            "HA2G_ANGLE_BONES",
            "HA2G_ANGLE_PAIRS",
            "HA2G_CHANGE_ANGLE",
            "MIN_BEAT_FRAMES",
            "BASMetric",
            "BeatAlignConfig",
            "BeatAlignScore",
            "ClipBeatAlignment",
            "beat_align_score",
            "beat_alignment_clip",
            "motion_beats",
        )
    },
    **{
        n: "mmgt_eval.pose_autoencoder"
        for n in (
            "AE_FORMAT",
            "PoseAutoencoder",
            "PoseAutoencoderError",
            "encode_windows",
            "load_keypoint_files",
            "load_pose_autoencoder",
            "pose_windows",
            "reconstruction_loss",
            "save_pose_autoencoder",
            "train_pose_autoencoder",
        )
    },
    **{
        n: "mmgt_eval.metrics.fgd"
        for n in ("FGDMetric", "FrechetGestureDistance", "frechet_gesture_distance")
    },
    "_as_2d": "mmgt_eval.metrics.base",
    **{
        n: "mmgt_eval.metrics.diversity_sets"
        for n in (
            "KineticDiversity",
            "LatentL1Diversity",
            "PairwiseL2Diversity",
            "WithinClipL1Diversity",
            "diversity_kinetic_l2",
            "diversity_latent_l1",
            "diversity_pairwise_l2",
            "diversity_within_l1",
        )
    },
    "DIVERSITY_DEFINITIONS": "mmgt_eval.metrics.diversity",
    "DiversityMetric": "mmgt_eval.metrics.diversity",
    "kinetic_features": "mmgt_eval.metrics.kinetic",
}
"""Names that moved to their own modules (name -> module), still importable from this one."""

__all__ = sorted(n for n in _MOVED if not n.startswith("_"))  # resolved lazily by __getattr__


def __getattr__(name: str) -> Any:
    """Lazy re-export of :data:`_MOVED` (imported on first use, so importing this module loads none)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's own names plus the moved ones."""
    return sorted({*globals(), *_MOVED})
