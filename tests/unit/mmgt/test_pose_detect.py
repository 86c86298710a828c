"""mediapipe holistic -> COCO-WholeBody-134: real mediapipe 0.10.21 on the real sample media."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mmgt import schema as S
from mmgt.io import read_video
from mmgt.pose_detect import (
    MP_FACE_TO_IBUG68,
    HolisticDetector,
    NoPersonError,
    holistic_to_coco134,
    interpolate_gaps,
    keypoints_from_image,
)
from tests.helpers.shared import samples_path

ibug = S.FACE_OFFSET  # iBUG point i is keypoint ibug + i


def _face(kps: np.ndarray) -> np.ndarray:
    return kps[S.FACE]


def _first_frame(name: str) -> np.ndarray:
    return read_video(samples_path(name), max_frames=1, with_audio=False).frames[0]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return keypoints_from_image(samples_path("ref_upperbody_astronaut_nasa_pd.png"))


# --------------------------------------------------------------------------- images
@pytest.mark.parametrize(
    "name", ["ref_halfbody_woman_openhands_flux.png", "ref_halfbody_man_openhands_flux.png"]
)
def test_halfbody_images_give_both_hands_next_to_their_own_wrists(name: str) -> None:
    kps = keypoints_from_image(samples_path(name), max_side=512)
    assert kps.shape == (134, 3) and kps.dtype == np.float32
    for region, own, other in (
        (S.LEFT_HAND, "left_wrist", "right_wrist"),
        (S.RIGHT_HAND, "right_wrist", "left_wrist"),
    ):
        hand = kps[region]
        assert (hand[:, 2] > 0).sum() >= 15, f"{name}: hand {region} not detected"
        own_xy = kps[S.BODY_INDEX[own], :2]
        other_xy = kps[S.BODY_INDEX[other], :2]
        d_own = np.linalg.norm(hand[0, :2] - own_xy)
        d_other = np.linalg.norm(hand[0, :2] - other_xy)
        assert d_own < 0.1 and d_own < 0.3 * d_other, (name, region, d_own, d_other)
    # subject's left is on the image right for a person facing the camera
    assert kps[S.BODY_INDEX["left_shoulder"], 0] > kps[S.BODY_INDEX["right_shoulder"], 0]
    assert (kps[S.FACE, 2] == 1).all()


def test_astronaut_photo_gives_a_plausible_face(astronaut: np.ndarray) -> None:
    face = _face(astronaut)
    assert (face[:, 2] == 1).all()
    assert ((face[:, :2] > 0) & (face[:, :2] < 1)).all()
    eyes_y = face[36:48, 1].mean()
    mouth_y = face[48:68, 1].mean()
    assert eyes_y < face[30, 1] < mouth_y  # eyes above the nose tip above the mouth
    assert face[8, 1] > face[30, 1]  # chin below the nose
    assert astronaut[S.BODY_INDEX["nose"], 2] > 0.9
    # hands are (nearly) out of the picture: mediapipe finds none
    assert astronaut[S.LEFT_HAND, 2].max() == 0 and astronaut[S.RIGHT_HAND, 2].max() == 0


@pytest.mark.parametrize(
    "source", ["astronaut", "talking_face_hdtf_aoc_25fps.mp4", "talking_face_moore4_30fps.mp4"]
)
def test_ibug68_order_on_real_faces(source: str, astronaut: np.ndarray) -> None:
    kps = astronaut if source == "astronaut" else keypoints_from_image(_first_frame(source))
    f = _face(kps)[:, :2]
    x, y = f[:, 0], f[:, 1]
    mouth = f[48:68]
    assert (mouth[:, 1] > y[30]).all(), "mouth points must lie below the nose tip"
    assert (mouth[:, 0] > x[36]).all() and (mouth[:, 0] < x[45]).all(), "mouth between outer eye corners"
    assert np.argmax(y[0:17]) == 8, "iBUG 8 (chin) is the lowest jaw point"
    assert x[0] < x[4] < x[8] < x[12] < x[16], "jaw runs from image left (subject's right) to right"
    assert x[36] < x[39] < x[42] < x[45]  # right eye (image left) then left eye, outer/inner corners
    assert x[17] < x[21] < x[22] < x[26]  # brows
    assert y[19] < y[37] and y[24] < y[44]  # brows above eyes
    assert x[48] < x[51] < x[54] and x[60] < x[62] < x[64]  # lip corners around the centre
    assert y[51] < y[62] <= y[66] < y[57]  # outer top, inner top, inner bottom, outer bottom
    assert y[27] < y[28] < y[29] < y[30] < y[33]  # nose bridge downwards, then under the nose


def test_face_mesh_table_is_68_distinct_mesh_points() -> None:
    assert len(MP_FACE_TO_IBUG68) == 68
    assert len(set(MP_FACE_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MP_FACE_TO_IBUG68)


def test_no_person_raises_naming_the_image(tmp_path: Path) -> None:
    grad = np.tile(np.linspace(0, 255, 256).astype(np.uint8)[None, :, None], (256, 1, 3))
    path = tmp_path / "gradient.png"
    cv2.imwrite(str(path), grad)
    with pytest.raises(NoPersonError, match="gradient.png"):
        keypoints_from_image(path)
    with pytest.raises(NoPersonError, match="<array>"):
        keypoints_from_image(grad)
    assert issubclass(NoPersonError, ValueError)


def test_bad_images_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not_an_image.png"):
        keypoints_from_image(bad)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        keypoints_from_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="uint8"):
        keypoints_from_image(np.zeros((64, 64, 3), dtype=np.float32))


# --------------------------------------------------------------------------- video
@pytest.mark.parametrize("name", ["talking_face_hdtf_aoc_25fps.mp4", "talking_face_moore4_30fps.mp4"])
def test_talking_face_videos_give_faces_in_95_percent_of_frames(name: str) -> None:
    frames = read_video(samples_path(name), max_frames=50, with_audio=False).frames
    with HolisticDetector() as det:
        kps = det.detect_frames(frames)
    assert kps.shape == (50, 134, 3)
    face_ok = (kps[:, S.FACE, 2] > 0.5).all(axis=1)
    assert face_ok.mean() >= 0.95, face_ok.mean()
    vis = kps[..., 2] > 0
    assert ((kps[..., :2][vis] >= 0) & (kps[..., :2][vis] <= 1)).all()
    # the lips move while she/he speaks
    assert S.lip_opening(kps[face_ok]).std() > 1e-3


def test_detector_is_deterministic_per_clip_and_picklable() -> None:
    frames = read_video(
        samples_path("talking_face_hdtf_aoc_25fps.mp4"), max_frames=6, with_audio=False
    ).frames
    with HolisticDetector() as det:
        a = det.detect_frames(frames)
        for f in frames[::-1]:  # another history: tracked over other frames
            det(f)
        b = det.detect_frames(frames)  # tracker reset: same input, same output
        clone = pickle.loads(pickle.dumps(det))  # trusted-pickle: own object (settings only)
    np.testing.assert_array_equal(a, b)
    with clone:
        assert clone.settings == det.settings
        np.testing.assert_allclose(clone.detect_frames(frames), a, atol=1e-6)
    with pytest.raises(RuntimeError, match="closed"):
        det(frames[0])
    with pytest.raises(RuntimeError, match="closed"):
        det.detect_frames(frames)


def test_unbundled_model_complexity_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="model_complexity=1"):
        HolisticDetector(model_complexity=2)


# --------------------------------------------------------------------------- mapping rules (synthetic input)
def _lms(points: list[tuple[float, float, float]]) -> SimpleNamespace:
    return SimpleNamespace(landmark=[SimpleNamespace(x=x, y=y, visibility=v) for x, y, v in points])


def test_mapping_rules_on_given_landmarks() -> None:
    rng = np.random.default_rng(0)
    pose = [(float(a), float(b), 0.9) for a, b in rng.uniform(0.1, 0.9, (33, 2))]
    pose[12] = (0.30, 0.50, 0.8)  # right shoulder
    pose[11] = (0.70, 0.52, 0.6)  # left shoulder
    pose[24] = (0.40, 1.02, 0.7)  # right hip slightly below the frame: clipped, confidence kept
    pose[23] = (0.60, 1.40, 0.7)  # left hip far below: clipped, confidence 0
    face = [(float(a), float(b), 0.0) for a, b in rng.uniform(0.3, 0.6, (478, 2))]
    left = [(float(a), float(b), 0.0) for a, b in rng.uniform(0.6, 0.8, (21, 2))]
    res = SimpleNamespace(
        pose_landmarks=_lms(pose),
        face_landmarks=_lms(face),
        left_hand_landmarks=_lms(left),
        right_hand_landmarks=None,
    )
    kps = holistic_to_coco134(res, width=640, height=480)
    assert kps.shape == (134, 3) and kps.dtype == np.float32
    neck = kps[S.BODY_INDEX["neck"]]
    np.testing.assert_allclose(neck, [0.5, 0.51, 0.6], atol=1e-6)
    np.testing.assert_allclose(kps[S.BODY_INDEX["right_shoulder"]], [0.30, 0.50, 0.8], atol=1e-6)
    np.testing.assert_allclose(kps[S.BODY_INDEX["nose"], :2], pose[0][:2], atol=1e-6)
    np.testing.assert_allclose(kps[S.BODY_INDEX["left_ear"], :2], pose[7][:2], atol=1e-6)
    np.testing.assert_allclose(kps[S.BODY_INDEX["right_hip"]], [0.40, 1.0, 0.7], atol=1e-6)
    np.testing.assert_allclose(kps[S.BODY_INDEX["left_hip"]], [0.60, 1.0, 0.0], atol=1e-6)
    feet = kps[S.FEET]
    np.testing.assert_allclose(feet[0, :2], pose[31][:2], atol=1e-6)  # left big toe <- left foot index
    np.testing.assert_allclose(feet[5, :2], pose[30][:2], atol=1e-6)  # right heel
    assert feet[1, 2] == 0 and feet[4, 2] == 0  # small toes: not in mediapipe
    np.testing.assert_allclose(kps[S.FACE][:, :2], np.asarray(face)[list(MP_FACE_TO_IBUG68), :2], atol=1e-6)
    assert (kps[S.FACE, 2] == 1).all()
    np.testing.assert_allclose(kps[S.LEFT_HAND][:, :2], np.asarray(left)[:, :2], atol=1e-6)
    assert (kps[S.LEFT_HAND, 2] == 1).all() and (kps[S.RIGHT_HAND] == 0).all()

    empty = SimpleNamespace(
        pose_landmarks=None, face_landmarks=None, left_hand_landmarks=None, right_hand_landmarks=None
    )
    assert (holistic_to_coco134(empty, 64, 64) == 0).all()


# --------------------------------------------------------------------------- gap interpolation
def _track(T: int = 20) -> np.ndarray:
    kps = np.zeros((T, 134, 3), dtype=np.float32)
    t = np.arange(T, dtype=np.float32)
    kps[:, :, 0] = 0.1 + 0.02 * t[:, None]
    kps[:, :, 1] = 0.5
    kps[:, :, 2] = 0.9
    return kps


def test_short_dropout_is_filled_linearly() -> None:
    kps = _track()
    kps[5, 7, 2] = 0.8  # left anchor confidence
    kps[6:8, 7] = 0.0  # 2-frame dropout of keypoint 7
    out = interpolate_gaps(kps, max_gap=3)
    np.testing.assert_allclose(out[6:8, 7, 0], [0.1 + 0.02 * 6, 0.1 + 0.02 * 7], atol=1e-6)
    np.testing.assert_allclose(out[6:8, 7, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[6:8, 7, 2], 0.8)  # min of the neighbours (0.8, 0.9)
    np.testing.assert_array_equal(np.delete(out, 7, axis=1), np.delete(kps, 7, axis=1))
    assert kps[6, 7, 2] == 0  # input untouched


def test_long_gaps_and_edge_gaps_stay_undetected() -> None:
    kps = _track(30)
    kps[5:15, 3] = 0.0  # 10-frame gap
    kps[0:2, 4] = 0.0  # at the start: no left anchor
    kps[28:, 4] = 0.0  # at the end
    kps[20:22, 9, 2] = 0.1  # below the visibility threshold: a gap too
    out = interpolate_gaps(kps, max_gap=3)
    assert (out[5:15, 3] == 0).all()
    assert (out[0:2, 4] == 0).all() and (out[28:, 4] == 0).all()
    np.testing.assert_allclose(out[20:22, 9, 2], 0.9)
    np.testing.assert_array_equal(interpolate_gaps(kps, max_gap=0), kps)
    with pytest.raises(ValueError, match="134"):
        interpolate_gaps(np.zeros((5, 10, 3)), 2)


def test_face_landmark_detector_fills_the_face_alone_and_marks_frames_without_a_face() -> None:
    """FaceMesh on a real head-and-shoulders frame, also downsampled to 64 x 64: the iBUG face block with
    the mouth below the eyes, nothing else; a blank frame has no face."""
    import cv2

    from mmgt.pose_detect import FaceLandmarkDetector

    frame = _first_frame("talking_face_hdtf_aoc_25fps.mp4")
    small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    with FaceLandmarkDetector() as det:
        kps = det.detect_frames([frame, small, np.zeros_like(small)])
    assert kps.shape == (3, 134, 3) and kps.dtype == np.float32
    for k in kps[:2]:
        assert (k[S.FACE, 2] == 1).all() and (np.delete(k, list(S.FACE), axis=0)[:, 2] == 0).all()
        assert k[ibug + 66, 1] > k[ibug + 62, 1] > k[ibug + 36, 1]  # lower lip under upper lip under the eye
    np.testing.assert_allclose(kps[0, S.FACE, :2], kps[1, S.FACE, :2], atol=0.03)  # same face at 64 x 64
    assert (kps[2, :, 2] == 0).all()
