"""DWPose importers: MMGT (T, 402) arrays and EchoMimicV2 pose folders -> stored keypoints / clip store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mmgt import schema as S
from mmgt.clipstore import KEYPOINTS_FILE, POSE_VIDEO_FILE, ClipStore
from mmgt.io import read_video
from mmgt.render import OPENPOSE_COLORS, draw_pose
from mmgt_prep.cli import run as prep_run
from mmgt_prep.importers import (
    ImportFormatError,
    echomimic_frame_to_coco134,
    load_echomimic_dir,
    load_mmgt_402,
    resample_keypoints,
)
from tests.helpers.poses import make_pose
from tests.helpers.shared import compose_config, samples_path

ECHO = "pose_echomimicv2_good"


@pytest.fixture(scope="module")
def echo_kps() -> np.ndarray:
    return load_echomimic_dir(samples_path(ECHO))


# --------------------------------------------------------------------------- EchoMimicV2
def test_echomimic_sample_imports_and_resamples(echo_kps: np.ndarray) -> None:
    assert echo_kps.shape == (102, 134, 3) and echo_kps.dtype == np.float32
    kps = resample_keypoints(echo_kps, src_fps=24)
    assert abs(kps.shape[0] - round(102 / 24 * 25)) <= 1
    vis = kps[..., 2] > 0
    assert ((kps[..., :2][vis] >= 0) & (kps[..., :2][vis] <= 1)).all(), "keypoints stay in frame"
    assert ((kps[..., 2] >= 0) & (kps[..., 2] <= 1)).all()
    # face and upper body everywhere, legs/feet absent
    assert (kps[:, S.FACE, 2] >= S.VISIBILITY_THRESHOLD).all()
    for name in ("nose", "neck", "right_shoulder", "left_shoulder", "right_elbow", "left_elbow"):
        assert (kps[:, S.BODY_INDEX[name], 2] >= S.VISIBILITY_THRESHOLD).all(), name
    assert (kps[:, S.FEET, 2] == 0).all()
    # both hands present (the lower one partly leaves the frame at times) and next to their own wrist
    for region, wrist in ((S.LEFT_HAND, "left_wrist"), (S.RIGHT_HAND, "right_wrist")):
        n_vis = (kps[:, region, 2] >= S.VISIBILITY_THRESHOLD).sum(axis=1)
        assert (n_vis >= 1).all() and np.median(n_vis) >= 15, (region, n_vis.min(), np.median(n_vis))
        ok = (kps[:, region.start, 2] > 0) & (kps[:, S.BODY_INDEX[wrist], 2] > 0)
        d = np.linalg.norm(kps[ok, region.start, :2] - kps[ok, S.BODY_INDEX[wrist], :2], axis=-1)
        assert ok.mean() > 0.9 and d.max() < 0.06, (region, d.max())
    # the hands move (the right hand gives a thumbs-up)
    for region in (S.LEFT_HAND, S.RIGHT_HAND):
        assert kps[:, region.start, :2].std(axis=0).max() > 0.01


def test_pose_rendering_has_openpose_sides(echo_kps: np.ndarray, tmp_path: Path) -> None:
    frame = draw_pose(echo_kps[50], 256)
    import cv2

    cv2.imwrite(str(tmp_path / "echo_pose_50.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert frame.shape == (256, 256, 3) and frame.any()

    def limb_pixels_x(limb: int) -> np.ndarray:  # limbs are dimmed by 0.6 before joints are drawn
        colour = np.array(OPENPOSE_COLORS[limb]) * 0.6
        mask = (np.abs(frame.astype(np.float64) - colour) <= 3).all(axis=-1)
        return np.nonzero(mask)[1]

    right_upper_arm = limb_pixels_x(S.BODY_EDGES.index((2, 3)))
    left_upper_arm = limb_pixels_x(S.BODY_EDGES.index((5, 6)))
    assert right_upper_arm.size > 20 and left_upper_arm.size > 20
    # the subject's right arm is drawn on the image left, in OpenPose's right-arm colour
    assert right_upper_arm.mean() < 128 < left_upper_arm.mean()


def _frame_dict(offset: float = 0.0) -> dict:
    """A minimal DWPose-style frame dict for 2 people (person 1 has the higher body scores)."""
    cand = np.full((36, 2), 0.5)
    cand[:18, 0] = 0.2 + offset
    cand[18:, 0] = 0.7 + offset
    subset = np.array([np.arange(18), np.arange(18, 36)], dtype=np.float64)
    subset[1, 9] = -1  # person 1's right knee invisible
    score = np.vstack([np.full(18, 0.4), np.full(18, 1.1)])
    hands = np.full((4, 21, 2), 0.5)
    hands[2, :, 0], hands[3, :, 0] = 0.8, 0.6  # person 1: left hand, right hand
    hands[3, 20] = -1  # blanked by DWPose
    faces = np.full((2, 68, 2), 0.4)
    faces[1, :, 0] = 0.71
    return {
        "bodies": {"candidate": cand, "subset": subset, "score": score},
        "hands": hands,
        "hands_score": np.full((4, 21), 0.9),
        "faces": faces,
        "faces_score": np.full((2, 68), 0.95),
        "num": 0,
    }


def test_frame_dict_mapping_rules() -> None:
    kps = echomimic_frame_to_coco134(_frame_dict())
    assert kps.shape == (134, 3)
    np.testing.assert_allclose(kps[:18, 0][kps[:18, 2] > 0], 0.7)  # person 1 chosen
    assert kps[S.BODY_INDEX["right_knee"], 2] == 0  # subset -1
    assert kps[S.BODY_INDEX["nose"], 2] == 1.0  # score 1.1 clipped
    np.testing.assert_allclose(kps[S.LEFT_HAND.start, :2], [0.8, 0.5])
    np.testing.assert_allclose(kps[S.RIGHT_HAND.start, :2], [0.6, 0.5])
    assert kps[S.RIGHT_HAND.stop - 1, 2] == 0 and kps[S.RIGHT_HAND.start, 2] == pytest.approx(0.9)
    np.testing.assert_allclose(kps[S.FACE, 0], 0.71, atol=1e-6)
    assert (kps[S.FEET, 2] == 0).all()

    # draw_pose_params: drawn on imh x imw, pasted at [rb:re, cb:ce] of a side x side canvas
    d = _frame_dict()
    d["draw_pose_params"] = [768, 384, 0, 768, 192, 576]
    kps2 = echomimic_frame_to_coco134(d)
    np.testing.assert_allclose(kps2[S.LEFT_HAND.start, :2], [(192 + 0.8 * 384) / 768, 0.5], atol=1e-6)

    d = _frame_dict()
    d["bodies"]["subset"] = np.zeros((0, 18))
    assert (echomimic_frame_to_coco134(d) == 0).all()  # nobody
    with pytest.raises(ImportFormatError, match="hands"):
        echomimic_frame_to_coco134({"bodies": _frame_dict()["bodies"]}, "x.npy")


# --------------------------------------------------------------------------- MMGT (T, 402)
def test_mmgt_402_round_trip(tmp_path: Path) -> None:
    kps = make_pose(12, seed=3)
    path = tmp_path / "clip.npy"
    np.save(path, S.to_reference_402(kps).astype(np.float32))
    back = load_mmgt_402(path)
    assert back.shape == (12, 134, 3)
    np.testing.assert_allclose(back[..., 2], kps[..., 2], atol=1e-4)
    vis = kps[..., 2] > 0
    np.testing.assert_allclose(back[..., :2][vis], kps[..., :2][vis], atol=1e-4)
    # another canvas: same keypoints when written with the same canvas
    np.save(path, S.to_reference_402(kps, canvas=256))
    np.testing.assert_allclose(load_mmgt_402(path, canvas=256)[..., :2][vis], kps[..., :2][vis], atol=1e-4)


def test_mmgt_402_bad_files_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "text.npy"
    text.write_text("not numpy")
    with pytest.raises(ImportFormatError, match="text.npy"):
        load_mmgt_402(text)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((5, 268), dtype=np.float32))
    with pytest.raises(ImportFormatError, match=r"wrong.npy.*\(T, 402\)"):
        load_mmgt_402(wrong)
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        load_mmgt_402(tmp_path / "absent.npy")


# --------------------------------------------------------------------------- resampling
def test_resample_is_linear_in_time_and_keeps_detections_unblended() -> None:
    T = 24
    kps = np.zeros((T, 134, 3), dtype=np.float32)
    kps[..., 0] = np.linspace(0.0, 1.0, T)[:, None]
    kps[..., 2] = 1.0
    kps[10, 5, 2] = 0.0  # one undetected frame of keypoint 5
    kps[10, 5, :2] = 0.0
    out = resample_keypoints(kps, src_fps=24, dst_fps=25)
    assert out.shape == (25, 134, 3)
    t_src = np.arange(25) * 24 / 25
    np.testing.assert_allclose(out[:, 0, 0], np.interp(t_src, np.arange(T), kps[:, 0, 0]), atol=1e-6)
    # frames next to the dropout copy the nearer source frame: never a blend with (0, 0)
    k5 = out[:, 5]
    true_x = np.interp(t_src, np.arange(T), kps[:, 0, 0])
    det = k5[:, 2] > 0
    assert np.abs(k5[det, 0] - true_x[det]).max() < 0.03  # at most half a source frame off
    assert (~det).sum() >= 1
    np.testing.assert_array_equal(resample_keypoints(kps, 25, 25), kps)
    assert resample_keypoints(kps[:30], 30, 25).shape[0] == round(24 / 30 * 25)


# --------------------------------------------------------------------------- runner
def test_runner_writes_a_store_and_records_bad_files(tmp_path: Path) -> None:
    inp = tmp_path / "spk"
    inp.mkdir()
    shutil.copytree(samples_path(ECHO), inp / "good")
    np.save(inp / "clip_a.npy", S.to_reference_402(make_pose(30, seed=1)))
    (inp / "corrupt.npy").write_text("this is text, not an array")
    broken = inp / "gappy"
    shutil.copytree(samples_path(ECHO), broken)
    (broken / "7.npy").unlink()
    out = tmp_path / "store"
    cfg = compose_config("prep", ["source=dwpose", f"out={out}", f"input={inp}", "size=64", "progress=false"])
    summary = prep_run(cfg)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (2, 2, 0), summary

    store = ClipStore(out)
    rows = store.records
    assert rows["corrupt"].status == "failed" and "corrupt.npy" in rows["corrupt"].error
    assert rows["gappy"].status == "failed" and "[7]" in rows["gappy"].error
    good = store.clip("good")
    assert good.record.speaker == "spk" and good.record.extra["has_video"] is False
    assert good.record.fps == 25 and abs(good.record.n_frames - round(102 / 24 * 25)) <= 1
    kps = good.keypoints()
    assert kps.shape == (good.record.n_frames, 134, 3)
    pose = read_video(good.dir / POSE_VIDEO_FILE, with_audio=False)
    assert pose.frames.shape == (good.record.n_frames, 64, 64, 3) and pose.fps == pytest.approx(25)
    assert pose.frames.max() > 100
    assert store.clip("clip_a").record.n_frames == 30  # (T, 402) files are 25 fps by default
    assert set(good.record.checksums) >= {KEYPOINTS_FILE, POSE_VIDEO_FILE}
    assert not any((out / ".tmp").iterdir())
    assert sorted(r.split for r in rows.values()) == ["test", "train", "train", "val"]  # split=auto, 4 inputs

    again = prep_run(cfg)  # rerun: finished and failed clips are skipped
    assert (again["ok"], again["failed"], again["skipped"]) == (0, 0, 4)


def test_runner_needs_an_input(tmp_path: Path) -> None:
    cfg = compose_config("prep", ["source=dwpose", f"out={tmp_path / 's'}", "progress=false"])
    with pytest.raises(ValueError, match="input="):
        prep_run(cfg)
    cfg = compose_config("prep", ["source=dwpose", f"out={tmp_path / 's'}", f"input={tmp_path / 'nope'}"])
    with pytest.raises(FileNotFoundError, match="nope"):
        prep_run(cfg)
