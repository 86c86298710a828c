"""mmgt.schema: layout, regions, edges and conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgt import schema as S


def test_constants_are_consistent() -> None:
    assert S.FPS == 25 and S.SAMPLE_RATE == 16_000 and S.SAMPLES_PER_FRAME == 640
    assert S.num_frames_for_samples(4 * S.SAMPLE_RATE) == 100


def test_layout_partitions_134_points() -> None:
    parts = [S.BODY, S.FEET, S.FACE, S.LEFT_HAND, S.RIGHT_HAND]
    covered = sorted(i for r in parts for i in r)
    assert covered == list(range(S.NUM_KEYPOINTS))
    assert len(S.BODY) == 18 and len(S.FACE) == 68 and len(S.LEFT_HAND) == 21 == len(S.RIGHT_HAND)
    assert tuple(S.LIPS) == tuple(range(72, 92))  # iBUG 48-67
    assert set(S.LIPS) <= set(S.FACE)
    assert S.BODY_NAMES[1] == "neck" and S.BODY_NAMES[0] == "nose"
    assert len(S.KEYPOINT_NAMES) == len(set(S.KEYPOINT_NAMES)) == 134
    assert S.KEYPOINT_NAMES[S.LIP_TOP_INNER] == "face_62"


def test_skeleton_edges_are_valid() -> None:
    assert len(S.BODY_EDGES) == 17 and len(S.HAND_EDGES) == 20
    for a, b in S.SKELETON_EDGES:
        assert 0 <= a < 134 and 0 <= b < 134 and a != b
    # each hand is a tree over its 21 points
    nodes = {b for _, b in S.HAND_EDGES} | {0}
    assert nodes == set(range(21))
    assert all(a < b for a, b in S.HAND_EDGES)
    for region in S.MASK_REGIONS:
        assert region in S.MASK_REGION_KEYPOINTS


def _random_kps(t: int = 7) -> np.ndarray:
    rng = np.random.default_rng(0)
    kps = rng.uniform(0, 1, (t, 134, 3)).astype(np.float32)
    kps[..., 2] = (rng.uniform(0, 1, (t, 134)) > 0.3).astype(np.float32)
    return kps


def test_model_space_round_trip_numpy_and_torch() -> None:
    kps = _random_kps()
    m = S.to_model_space(kps)
    assert m.shape == kps.shape and m.dtype == np.float32
    vis = kps[..., 2] >= S.VISIBILITY_THRESHOLD
    assert np.all(np.abs(m[..., :2]) <= 1.0)
    assert np.all(m[~vis][:, :2] == 0.0)  # invisible points carry no position
    back = S.from_model_space(m)
    np.testing.assert_allclose(back[vis][:, :2], kps[vis][:, :2], atol=1e-6)
    np.testing.assert_array_equal(back[..., 2], vis.astype(np.float32))
    mt = S.to_model_space(torch.from_numpy(kps))
    assert isinstance(mt, torch.Tensor)
    np.testing.assert_allclose(mt.numpy(), m, atol=1e-6)


def test_reference_402_round_trip_and_values() -> None:
    kps = _random_kps(3)
    vec = S.to_reference_402(kps)
    assert vec.shape == (3, 402)
    # pixel 0 -> -0.6, pixel 512 -> 0.424, score 1 -> about -0.598 (mmgt-reference.md §b.1)
    z = np.zeros((1, 134, 3), np.float32)
    z[0, 0] = (1.0, 0.0, 1.0)
    v = S.to_reference_402(z)[0]
    assert v[0] == pytest.approx(0.424) and v[1] == pytest.approx(-0.6) and v[2] == pytest.approx(-0.598)
    np.testing.assert_allclose(S.from_reference_402(vec), kps, atol=1e-4)  # float32


def test_validate_keypoints_names_the_source() -> None:
    S.validate_keypoints(np.zeros((4, 134, 3)))
    with pytest.raises(S.KeypointLayoutError, match="my.npy.*134"):
        S.validate_keypoints(np.zeros((4, 133, 3)), "my.npy")
    bad = np.zeros((2, 134, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(S.KeypointLayoutError, match="NaN"):
        S.validate_keypoints(bad, "x")


def test_lip_opening() -> None:
    kps = np.zeros((2, 134, 3), np.float32)
    kps[1, S.LIP_BOTTOM_INNER, 1] = 0.1
    np.testing.assert_allclose(S.lip_opening(kps), [0.0, 0.1], atol=1e-7)
