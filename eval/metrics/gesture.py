"""Old home of the gesture metrics: every name that lived here still resolves from its new module.

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

from mmgt_eval import pose_autoencoder
from mmgt_eval.metrics import bas, fgd, keypoints, onset

_MOVED: dict[str, str] = {
    **{
        name: module.__name__
        for module in (keypoints, onset, bas, pose_autoencoder, fgd)
        for name in module.__all__
    },
    **{name: keypoints.__name__ for name in ("_check_keypoints", "_keypoints_of")},
    "_as_2d": "mmgt_eval.metrics.base",
    **{
        n: "mmgt_eval.metrics.diversity_sets"
        for n in (
            "KineticDiversityMetric",
            "LatentL1DiversityMetric",
            "PairwiseL2DiversityMetric",
            "WithinClipL1DiversityMetric",
            "diversity_kinetic_l2",
            "diversity_latent_l1",
            "diversity_pairwise_l2",
            "diversity_within_l1",
        )
    },
    "DIVERSITY_DEFINITIONS": "mmgt_eval.metrics.diversity",
    "DiversityAdapter": "mmgt_eval.metrics.diversity",
    "kinetic_features": "mmgt_eval.metrics.kinetic",
}
"""Names that moved to their own modules (name -> module), still importable from this one."""

__all__ = sorted(n for n in _MOVED if not n.startswith("_"))  # resolved lazily by __getattr__


def __getattr__(name: str) -> Any:
    """Re-export of :data:`_MOVED` (the Diversity modules are imported on first use)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's own names plus the moved ones."""
    return sorted({*globals(), *_MOVED})
