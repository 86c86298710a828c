"""Diversity and BAS against values Bailando's own code computed (../shared/fixtures/metrics_reference),
plus self-made cases simple enough to derive by hand.

Fixture values: 1e-6 relative (most agree to the last bit); indices exact. Tests needing the fixture skip
when ../shared/fixtures/metrics_reference is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from mmgt_eval.metrics.bas import BAS_PRESETS, BASAdapter, beat_align_score, beat_alignment_clip, motion_beats
from mmgt_eval.metrics.base import VideoSample
from mmgt_eval.metrics.diversity import (
    DiversityAdapter,
    bailando_calc_diversity,
    bailando_calculate_avg_distance,
    bailando_normalize,
)
from mmgt_eval.metrics.keypoints import joint_indices, pose_xy
from mmgt_eval.metrics.kinetic import bailando_kinetic_features, bailando_positions, kinetic_features
from mmgt_eval.metrics.onset import onset_detect, onset_strength
from tests.helpers.shared import metrics_reference_path

REL = 1e-6
VARIANTS = {"ft60": 1 / 60, "ft25": 1 / 25}


def _npz(name: str) -> dict[str, np.ndarray]:
    with np.load(metrics_reference_path(name), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def div() -> dict[str, np.ndarray]:
    return _npz("bailando_diversity.npz")


@pytest.fixture(scope="module")
def bas() -> dict[str, np.ndarray]:
    return _npz("bailando_bas.npz")


def stored_keypoints(xy: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(T, 12, 2) stored x, y at the 134-layout ``joints`` -> (T, 134, 3), confidence 1 (README §1)."""
    kps = np.zeros((xy.shape[0], 134, 3))
    kps[..., 2] = 1.0
    kps[:, joints, :2] = xy
    return kps


def _sample(name: str, kps: np.ndarray, fps: float = 25.0, audio: np.ndarray | None = None) -> VideoSample:
    return VideoSample(name, np.zeros((kps.shape[0], 4, 4, 3), np.uint8), fps, audio, kps)


# =========================================================================== self-made cases
def _constant_velocity(offset: float = 0.0, n: int = 6) -> np.ndarray:
    """One joint moving at x = offset + 0.1 k (k = 0 .. n-1), y = z = 0: (n, 1, 3)."""
    p = np.zeros((n, 1, 3))
    p[:, 0, 0] = offset + 0.1 * np.arange(n)
    return p


def test_bailando_features_quirks_by_hand():
    """x = 0.1 k. KE_h = (0.1 / ft)^2; Bailando's a_k = ((p[k+1]-p[k])/ft - (p[k] - p[k-1]/ft)) / ft.

    ft = 1/60: a_k = (6 - 0.1 k + 6 (k - 1)) * 60 = 354 k; the windows of frames 1..5 cover k = {1,2,3},
    {1..4}, {1..4}, {2,3,4}, {3,4}: means 708, 885, 885, 1062, 1239 -> 955.8. Shifted by +1:
    a_k = 3540 + 354 k -> 4495.8 (translation changes it). ft = 1/25: a_k = 60 k -> 162.
    """
    assert bailando_kinetic_features(_constant_velocity()) == pytest.approx([36.0, 0.0, 955.8], rel=1e-12)
    shifted = bailando_kinetic_features(_constant_velocity(1.0))
    assert shifted == pytest.approx([36.0, 0.0, 4495.8], rel=1e-12)
    assert bailando_kinetic_features(_constant_velocity(), 1 / 25) == pytest.approx([6.25, 0, 162], rel=1e-12)
    # the corrected features: constant velocity has no acceleration, whatever the offset
    for offset in (0.0, 1.0):
        kps = stored_keypoints((_constant_velocity(offset)[:, :, :2] + 1) / 2, np.array([0]))
        assert kinetic_features(kps, fps=60, joints=[0]) == pytest.approx([36.0, 0.0, 0.0], abs=1e-9)


def test_bailando_distances_by_hand():
    pair = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert bailando_calculate_avg_distance(pair) == 5.0
    assert bailando_calc_diversity(pair) == 5.0
    three = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])  # distances 5, 8, 5
    assert bailando_calculate_avg_distance(three) == pytest.approx(6.0)
    assert bailando_calc_diversity(three) == pytest.approx(6.0)
    ref, gen = bailando_normalize(np.array([[1.0], [3.0]]), np.array([[2.0], [5.0]]))  # mean 2, std 1
    assert ref.dtype == np.float32 and ref[:, 0].tolist() == [-1.0, 1.0] and gen[:, 0].tolist() == [0.0, 3.0]


# =========================================================================== Bailando diversity fixture
def test_positions_are_what_bailando_was_given(div):
    for c in range(6):
        kps = stored_keypoints(div["keypoints_stored_xy"][c], div["joint_indices_134"])
        assert np.array_equal(bailando_positions(kps, "upper_body"), div["positions"][c])
    assert joint_indices("upper_body") == tuple(div["joint_indices_134"].tolist())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bailando_features_and_statistics_reproduce_the_fixture(div, variant):
    ft = VARIANTS[variant]
    for side, idx in (("gen", div["gen_index"]), ("ref", div["ref_index"])):
        f64 = np.stack([bailando_kinetic_features(div["positions"][c], ft) for c in idx])
        np.testing.assert_allclose(f64, div[f"{variant}_f64_features_{side}"], rtol=REL)
        np.testing.assert_allclose(f64.astype(np.float32), div[f"{variant}_features_{side}"], rtol=REL)
    gen, ref = div[f"{variant}_features_gen"], div[f"{variant}_features_ref"]
    ref_n, gen_n = bailando_normalize(ref, gen)
    np.testing.assert_allclose(gen_n, div[f"{variant}_features_gen_normalized"], rtol=REL, atol=1e-6)
    np.testing.assert_allclose(ref_n, div[f"{variant}_features_ref_normalized"], rtol=REL, atol=1e-6)
    for key, value in (
        ("div_k", bailando_calculate_avg_distance(gen_n)),
        ("div_k_gt", bailando_calculate_avg_distance(ref_n)),
        ("calc_diversity_gen", bailando_calc_diversity(gen)),
        ("calc_diversity_ref", bailando_calc_diversity(ref)),
        ("calc_diversity_gen_normalized", bailando_calc_diversity(gen_n)),
    ):
        assert value == pytest.approx(float(div[f"{variant}_{key}"]), rel=REL), key
        assert value == pytest.approx(float(div[f"{variant}_{key}"]), rel=1e-15), key  # bit for bit here


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_diversity_adapter_bailando_reproduces_div_k(div, variant):
    """The runner adapter from keypoints of 25 fps videos: Div_k and Div_k_gt, calc_diversity."""
    frame_time = None if variant == "ft60" else VARIANTS[variant]  # None: Bailando's fixed 1/60
    kps = [stored_keypoints(xy, div["joint_indices_134"]) for xy in div["keypoints_stored_xy"]]
    for definition, keys in (
        ("bailando", ("div_k", "div_k_gt")),
        ("bailando_calc_diversity", ("calc_diversity_gen", "calc_diversity_ref")),
    ):
        metric = DiversityAdapter(definition=definition, frame_time=frame_time)
        for i, (g, r) in enumerate(zip(div["gen_index"], div["ref_index"], strict=True)):
            metric.update(_sample(f"clip{i}", kps[g]), _sample(f"clip{i}", kps[r]))
        out = metric.compute()
        assert out["diversity"] == pytest.approx(float(div[f"{variant}_{keys[0]}"]), rel=REL)
        assert out["diversity_reference"] == pytest.approx(float(div[f"{variant}_{keys[1]}"]), rel=REL)
        assert metric.protocol()["frame_time"] == (frame_time or 1 / 60)


def test_corrected_definition_is_not_bailandos(div):
    """kinetic_l2_corrected on the same clips: the energy term differs, so Div_k does (32.08 vs 32.80)."""
    kps = [stored_keypoints(xy, div["joint_indices_134"]) for xy in div["keypoints_stored_xy"]]
    metric = DiversityAdapter(definition="kinetic_l2_corrected")
    for i, (g, r) in enumerate(zip(div["gen_index"], div["ref_index"], strict=True)):
        metric.update(_sample(f"clip{i}", kps[g]), _sample(f"clip{i}", kps[r]))
    corrected = metric.compute()["diversity"]
    assert corrected == pytest.approx(32.08, abs=0.01)
    assert abs(corrected - float(div["ft60_div_k"])) > 0.5
    # the kinetic energies agree with Bailando's at the same frame time; only the energy term differs
    f = kinetic_features(kps[0], fps=25)
    b = div["ft25_f64_features_gen"][0]
    np.testing.assert_allclose(f.reshape(-1, 3)[:, :2], b.reshape(-1, 3)[:, :2], rtol=1e-10)
    assert not np.allclose(f.reshape(-1, 3)[:, 2], b.reshape(-1, 3)[:, 2], rtol=1e-3)


# =========================================================================== Bailando BAS fixture
def test_onsets_equal_librosa_on_the_fixture_audio(bas):
    audio = bas["audio"]
    assert onset_detect(audio, sr=int(bas["sr"]), units="frames").tolist() == bas["onset_frames"].tolist()
    np.testing.assert_allclose(onset_detect(audio, sr=16000), bas["onset_times_s"], rtol=1e-12)
    np.testing.assert_allclose(onset_strength(audio, sr=16000), bas["onset_envelope"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["aligned", "mismatched"])
def test_motion_beats_and_ba_reproduce_calc_db_and_ba(bas, case):
    fps = float(bas["fps"])
    joints = joint_indices("upper_body")
    kps = stored_keypoints(bas[f"{case}_keypoints_stored_xy"], np.array(joints))
    xy = pose_xy(kps, "upper_body")
    # calc_db's curve over 24 joints (12 zero-padded) is exactly half the 12-joint mean speed
    speed = np.linalg.norm(xy[1:] - xy[:-1], axis=-1).mean(axis=1)
    curve = gaussian_filter1d(speed, 5) / 2
    np.testing.assert_allclose(curve, bas[f"{case}_calc_db_kinetic_vel"], rtol=1e-12)
    config = BAS_PRESETS["bailando"]
    beats_s = motion_beats(kps, fps, config)
    assert np.round(beats_s * fps).astype(int).tolist() == bas[f"{case}_motion_beats"].tolist()
    assert xy.shape[0] - 1 == int(bas[f"{case}_length"])
    # BA in Bailando's frame units, and ours in seconds (sigma 3 frames = 0.12 s at 25 fps)
    music = bas["music_beats_motion_frames"]
    in_frames = beat_align_score(music, bas[f"{case}_motion_beats"].astype(float), sigma=3.0)
    assert in_frames == pytest.approx(float(bas[f"{case}_ba"]), rel=REL)
    clip = beat_alignment_clip(kps, bas["audio"], fps, config)
    assert clip.n_audio_beats == 33 and clip.score == pytest.approx(float(bas[f"{case}_ba"]), rel=REL)
    metric = BASAdapter(preset="bailando", score_reference=False)
    metric.update(_sample(case, kps, fps, bas["audio"]), None)
    assert metric.compute()["bas"] == pytest.approx(float(bas[f"{case}_ba"]), rel=REL)
    assert metric.variant == "bailando"
