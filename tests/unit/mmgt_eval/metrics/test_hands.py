"""Hand following (mmgt_eval.metrics.hands) on real toy frames: the floor on a clip's own frames, the
still-frame control, a known shift, the calibration (a shirt near the skin, a colour drift), bad inputs and
the Stage II config. The metric_tester checks (batched = one pass, 2 gloo processes = one) are in
test_metric_tester.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mmgt.schema import BODY_INDEX, LEFT_HAND
from mmgt_eval.metrics.base import MetricInputError, VideoSample, VideoSkipped
from mmgt_eval.metrics.hands import HandFollowAdapter, match_costs, skin_colour
from mmgt_prep.toy import generate_clip, speaker_style

SIZE = 64


@pytest.fixture(scope="module")
def clip():
    """A 2 s, 64 px clip of toy speaker 1 (seed 0) in long sleeves, whose wrists travel > 0.05."""
    style = dataclasses.replace(speaker_style(0, 1), long_sleeves=True)
    made = generate_clip(style, 2.0, SIZE, np.random.default_rng([0, 1, 0]))
    wrists = made.keypoints[:, [BODY_INDEX["right_wrist"], BODY_INDEX["left_wrist"]], :2]
    assert np.linalg.norm(wrists - wrists[0], axis=-1).max() > 0.05
    return made


def _score(frames: np.ndarray, clip, **kwargs) -> dict[str, float]:
    reference = VideoSample("ref", clip.frames, 25.0, None, keypoints=clip.keypoints)
    return HandFollowAdapter(**kwargs).update(VideoSample("gen", frames, 25.0, None), reference)


def test_own_frames_are_the_floor_and_a_still_frame_does_not_follow(clip) -> None:
    """On its own frames the detector finds every driving hand within a fraction of a pixel (the floor,
    also reported as hand_error_reference); frame 0 held still misses the moving hands."""
    own = _score(clip.frames, clip)
    assert own["hand_error"] < 0.015 and own["hand_detect"] > 0.95  # measured 0.0050 (0.32 px), 1.00
    assert (
        own["hand_error"] == own["hand_error_reference"] and own["hand_error_px"] == own["hand_error"] * SIZE
    )
    skin, source = skin_colour(clip.frames[0], clip.keypoints[0])
    assert source == "palms" and np.abs(skin - speaker_style(0, 1).skin).max() < 10
    still = _score(np.repeat(clip.frames[:1], len(clip.frames), axis=0), clip)
    assert still["hand_error"] > 5 * own["hand_error"] and still["hand_error"] > 0.03  # measured 0.051
    assert still["hand_detect"] < 0.8 and still["hand_error_reference"] == own["hand_error"]


@pytest.mark.parametrize(("dx", "dy"), [(2, 0), (0, 3)])
def test_frames_shifted_by_k_pixels_cost_about_k_over_the_size(clip, dx: int, dy: int) -> None:
    shifted = np.roll(clip.frames, (dy, dx), axis=(1, 2))
    error = _score(shifted, clip)["hand_error"]
    assert abs(error - np.hypot(dx, dy) / SIZE) < 0.008, error  # measured 0.035 for 2 px (0.031)


def test_a_shirt_near_the_skin_colour_lowers_the_tolerance() -> None:
    """A shirt 26 RGB units from the skin: at the fixed tolerance the hands merge with it into one blob too
    large for a hand (every hand missed); calibrated on the first frame, the tolerance drops below it."""
    style = speaker_style(0, 1)
    shirt = tuple(c - 15 for c in style.skin)
    near = generate_clip(
        dataclasses.replace(style, long_sleeves=True, shirt=shirt),
        2.0,
        SIZE,
        np.random.default_rng([0, 1, 0]),
    )
    calibrated = _score(near.frames, near)
    assert calibrated["hand_error"] < 0.015 and calibrated["hand_colour_tol"] < 26  # measured 0.0058, 19.5
    fixed = _score(near.frames, near, background_margin=None)
    assert fixed["hand_detect"] == 0 and fixed["hand_error"] == 0.25 and fixed["hand_colour_tol"] == 40


def test_a_generators_colour_drift_is_not_a_miss(clip) -> None:
    """Frames darkened by (40, 30, 30) RGB (as a VAE may): calibrated on their own first frame the hands are
    found where the pose puts them; with the reference's skin colour every hand is missed."""
    drifted = np.clip(clip.frames.astype(int) - (40, 30, 30), 0, 255).astype(np.uint8)
    own = _score(drifted, clip)
    assert own["hand_error"] < 0.015 and own["hand_detect"] > 0.95  # measured 0.0050, 1.00
    assert _score(drifted, clip, calibrate_on="reference")["hand_detect"] == 0


def test_costs_assignment_cap_and_touching_hands() -> None:
    driving = np.array([[0.3, 0.5], [0.7, 0.5]])
    assert match_costs(driving, np.array([[0.7, 0.6], [0.3, 0.5]]), 0.25) == pytest.approx([0.0, 0.1])
    assert match_costs(driving, np.zeros((0, 2)), 0.25).tolist() == [0.25, 0.25]
    assert match_costs(driving, np.array([[0.3, 0.9]]), 0.25) == pytest.approx([0.25, 0.25])  # capped
    assert match_costs(driving[:1], np.array([[0.9, 0.5], [0.3, 0.45]]), 0.25) == pytest.approx([0.05])


@pytest.mark.filterwarnings("ignore:The ``compute`` method")  # compute with no update: the error tested
def test_bad_inputs_are_declared_or_clear_errors(clip) -> None:
    gen = VideoSample("gen_clip", clip.frames, 25.0, None)
    adapter = HandFollowAdapter()
    with pytest.raises(VideoSkipped, match=r"gen_clip: hands \(reference\): no keypoints"):
        adapter.update(gen, VideoSample("ref_clip", clip.frames, 25.0, None))
    flat = VideoSample("ref_clip", clip.frames, 25.0, None, keypoints=clip.keypoints[:, :, :2])
    with pytest.raises(MetricInputError, match=r"ref_clip: reference keypoints must be \(T, 134, 3\)"):
        adapter.update(gen, flat)
    short = VideoSample("gen_clip", clip.frames[:10], 25.0, None)
    reference = VideoSample("ref_clip", clip.frames, 25.0, None, keypoints=clip.keypoints)
    with pytest.raises(MetricInputError, match="gen_clip: 10 generated, 50 reference frames"):
        adapter.update(short, reference)
    assert HandFollowAdapter(frame_policy="truncate").update(short, reference)["hand_error"] < 0.02
    no_hands = clip.keypoints.copy()
    no_hands[:, LEFT_HAND.start :, 2] = 0
    with pytest.raises(VideoSkipped, match="no driving hand visible"):
        adapter.update(gen, VideoSample("ref_clip", clip.frames, 25.0, None, keypoints=no_hands))
    with pytest.raises(MetricInputError, match="hands: no video could be scored"):
        adapter.compute()
    with pytest.raises(ValueError, match="hit_radius < miss_penalty"):
        HandFollowAdapter(hit_radius=0.3)
    with pytest.raises(ValueError, match="calibrate_on must be own|reference"):
        HandFollowAdapter(calibrate_on="generated")
    with pytest.raises(ValueError, match="min_area < max_area"):
        HandFollowAdapter(min_area=0.05)


def test_directions_for_tables() -> None:
    """mmgt-table reads the adapter's declaration: errors lower-is-better, the reference floor context."""
    from mmgt_eval.directions import library_declarations, value_direction

    declared, flag = library_declarations()["hands"]
    assert flag is False and declared == HandFollowAdapter.value_higher_is_better
    assert value_direction("hand_error", None, True, "hands") is False
    assert value_direction("hand_detect", None, True, "hands") is True
    assert value_direction("hand_error_reference", None, True, "hands") is None


def test_selectable_in_the_stage2_evaluation() -> None:
    """``evaluate=stage2 evaluate.metrics=[psnr,hands]`` builds the Stage II evaluator with the metric, and a
    ``max_frames`` evaluation truncates its references like the other frame-policy metrics."""
    import hydra.utils

    from mmgt.stage2.evaluate import VideoEvaluation
    from tests.helpers.shared import compose_config

    overrides = ["experiment=stage2_video_toy", "evaluate=stage2", "evaluate.metrics=[psnr,hands]"]
    cfg = compose_config("train", [*overrides, "evaluate.max_frames=50"])
    evaluator = hydra.utils.instantiate(cfg.evaluate)
    assert isinstance(evaluator, VideoEvaluation) and evaluator.metrics == ["psnr", "hands"]
    assert "+metric_args.hands.frame_policy=truncate" in evaluator.overrides
