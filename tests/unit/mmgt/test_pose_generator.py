"""mmgt.pipeline's Stage I contract: any PoseGenerator; export folders load the network class they name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mmgt.pipeline import PoseGenerator, load_pose_generator, stage1_keypoints
from mmgt.stage1 import PosePipeline, SMGAReferenceTransformer, SMGATransformer, Stage1Export
from mmgt.stage1.reference import REFERENCE_VARIANT
from tests.helpers.poses import make_pose

TINY = dict(audio_dim=6, width=16, layers=1, heads=2, ff_dim=32, audio_layers=1, window=16)


class StillPose:
    """The simplest audio -> pose model: the reference pose held for every frame (a baseline)."""

    def __call__(self, audio: np.ndarray, ref_pose: np.ndarray, n_frames: int, **options: Any) -> np.ndarray:
        return np.repeat(np.asarray(ref_pose, np.float32)[None], n_frames, axis=0)


def test_the_pipeline_takes_any_pose_generator() -> None:
    ref = make_pose(1)[0]
    generator = StillPose()
    assert isinstance(generator, PoseGenerator) and load_pose_generator(generator) is generator
    kps = stage1_keypoints(generator, np.zeros(16_000, np.float32), ref, n_frames=7, seed=3)
    assert kps.shape == (7, 134, 3) and np.array_equal(kps[-1], ref)


@pytest.mark.parametrize(
    ("network", "variant"), [(SMGATransformer, {}), (SMGAReferenceTransformer, REFERENCE_VARIANT)]
)
def test_an_export_folder_loads_as_the_pose_pipeline_of_its_network_class(
    tmp_path: Path, network: type[SMGATransformer], variant: dict
) -> None:
    torch.manual_seed(0)
    Stage1Export(audio_features="baseline", sample_steps=2).save(network(**TINY, **variant), tmp_path)
    pipe = load_pose_generator(tmp_path)
    assert isinstance(pipe, PosePipeline) and isinstance(pipe, PoseGenerator)
    assert (
        type(pipe.net) is network
        and pipe.net.config.positional == network(**TINY, **variant).config.positional
    )
    feats = np.random.default_rng(0).standard_normal((20, 6)).astype(np.float32)
    kps = pipe.from_features(feats, make_pose(1)[0], n_frames=20, window=16, seam=0)
    assert kps.shape == (20, 134, 3) and np.isfinite(kps).all()
