"""Every metric adapter, torchmetrics-style (tests/helpers/metric_tester.py): sharded updates synced through
``Metric.sync`` equal one pass, and a 2-process gloo run equals one process.

FID, FVD and LPIPS run on random-weight networks (``write_random_fid_weights``, ``write_stand_in_i3d``, a
random SqueezeNet backbone); sync and lip_audio need real faces (face detection) and are covered by their own
tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from mmgt_eval.metrics.bas import BASAdapter
from mmgt_eval.metrics.diversity import DiversityAdapter
from mmgt_eval.metrics.fid import FID_WEIGHTS_FILE, FIDAdapter, write_random_fid_weights
from mmgt_eval.metrics.fvd import FVDAdapter, write_stand_in_i3d
from mmgt_eval.metrics.hands import HandFollowAdapter
from mmgt_eval.metrics.image import LPIPSAdapter, PSNRAdapter, SSIMAdapter
from mmgt_eval.metrics.lip_audio import LipAudioPoseAdapter
from mmgt_eval.metrics.region import RegionErrorAdapter
from tests.helpers.metric_tester import assert_batched_equals_one_shot, make_pairs, one_shot, spawn_gloo


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    write_random_fid_weights(folder / FID_WEIGHTS_FILE, seed=0, n_images=2)
    write_stand_in_i3d(folder / "i3d.pt", feature_dim=8, resize_to=32)
    return folder


def _lpips() -> LPIPSAdapter:
    torch.manual_seed(0)  # the same random backbone in every instance
    return LPIPSAdapter(net="squeeze", random_backbone=True)


def factories(weights: Path) -> dict:
    """{metric name: adapter factory} of every adapter that runs without real networks."""
    return {
        "psnr": PSNRAdapter,
        "ssim": functools.partial(SSIMAdapter, kernel_size=7),
        "lpips": _lpips,
        "mouth": functools.partial(RegionErrorAdapter, name="mouth"),
        "hands": HandFollowAdapter,
        "lip_audio_pose": functools.partial(LipAudioPoseAdapter, min_frames=5),
        "bas": BASAdapter,
        "diversity": DiversityAdapter,
        "diversity_within_l1": functools.partial(DiversityAdapter, definition="within_l1"),
        "fid": functools.partial(
            FIDAdapter, weights / FID_WEIGHTS_FILE, dims=64, max_frames_per_video=1, batch_size=8
        ),
        "fvd": functools.partial(
            FVDAdapter, weights / "i3d.pt", protocol={"variant": "stylegan_v", "n_frames": 8}, feature_dim=8
        ),
    }


def build(weights: Path) -> tuple[dict, list]:
    """What each spawned rank builds (module level: picklable)."""
    return factories(weights), make_pairs()


@pytest.mark.parametrize("name", list(factories(Path("."))))
def test_batched_updates_equal_one_shot(name, weights):
    assert_batched_equals_one_shot(factories(weights)[name], make_pairs(), name)


@pytest.mark.slow  # two spawned processes import torch and build every network: ~25 s on 2 cores
def test_two_gloo_processes_equal_one(weights, tmp_path):
    made, pairs = build(weights)
    two = spawn_gloo(functools.partial(build, weights), tmp_path / "two.json")
    for name, make in made.items():
        expected = one_shot(make, pairs, name)
        assert two[name].keys() == expected.keys(), name
        for k, v in expected.items():
            assert two[name][k] == pytest.approx(v, rel=1e-6, abs=1e-9), f"{name}/{k}"
