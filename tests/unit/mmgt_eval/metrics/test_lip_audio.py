"""Lip-audio correlation: envelope and r against the toy speakers' construction, lags, skips, runner; the
pixel metric (lips detected by mediapipe on the frames) against the keypoint one, on toy and real video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgt.io import read_video, write_video
from mmgt.schema import SAMPLE_RATE
from mmgt_eval.metrics.base import VideoSample, VideoSkipped
from mmgt_eval.metrics.lip_audio import (
    LipAudioAdapter,
    LipAudioPoseAdapter,
    lip_audio_correlation,
)
from mmgt_eval.runner import evaluate
from mmgt_prep.toy import generate_clip, speaker_style
from tests.helpers.shared import samples_path


@pytest.fixture(scope="module")
def clips():  # noqa: ANN201
    return [generate_clip(speaker_style(0, s), 4.0, 32, np.random.default_rng([0, s, 0])) for s in range(3)]


def test_r_is_high_on_the_toy_relation_and_low_for_other_audio(clips) -> None:  # noqa: ANN001
    own = [lip_audio_correlation(c.keypoints, c.audio)[0] for c in clips]
    other = [lip_audio_correlation(c.keypoints, clips[(i + 1) % 3].audio)[0] for i, c in enumerate(clips)]
    assert min(own) > 0.9 and max(abs(r) for r in other) < 0.3


def test_lag_search_finds_a_delay(clips) -> None:  # noqa: ANN001
    c = clips[0]
    delayed = np.concatenate([np.zeros((3, 134, 3), np.float32), c.keypoints[:-3]])
    delayed[:3] = c.keypoints[0]
    r0, _ = lip_audio_correlation(delayed, c.audio)
    r, lag = lip_audio_correlation(delayed, c.audio, max_lag=5)
    assert lag == 3 and r > r0 + 0.2


def test_undefined_cases_are_none(clips) -> None:  # noqa: ANN001
    c = clips[0]
    assert lip_audio_correlation(c.keypoints, np.zeros_like(c.audio)) is None  # silence
    hidden = c.keypoints.copy()
    hidden[..., 2] = 0
    assert lip_audio_correlation(hidden, c.audio) is None  # no visible lips
    assert lip_audio_correlation(c.keypoints[:5], c.audio) is None  # too short
    with pytest.raises(ValueError, match="134, 3"):
        lip_audio_correlation(c.keypoints[:, :10], c.audio)


def _write_pairs(clips, gen: Path, ref: Path) -> None:  # noqa: ANN001
    """References: each clip with its keypoints. "Generated": the same frames and audio, but the keypoints
    file of the next clip (as a Stage II video whose companion poses do not match what it shows)."""
    for d in (gen, ref):
        d.mkdir()
    for i, c in enumerate(clips):
        write_video(ref / f"c{i}.mp4", c.frames, fps=25, audio=c.audio)
        np.save(ref / f"c{i}.npy", c.keypoints)
        write_video(gen / f"c{i}.mp4", c.frames, fps=25, audio=c.audio)
        np.save(gen / f"c{i}.npy", clips[(i + 1) % len(clips)].keypoints)


def test_pose_adapter_scores_the_keypoints_file_through_the_runner(clips, tmp_path: Path) -> None:  # noqa: ANN001
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    _write_pairs(clips, gen, ref)
    silent = tmp_path / "gen" / "silent.mp4"
    write_video(silent, clips[0].frames, fps=25, audio=np.zeros(len(clips[0].audio), np.float32))
    np.save(gen / "silent.npy", clips[0].keypoints)
    res = evaluate(gen, ref, {"lip_audio_pose": LipAudioPoseAdapter()}, unmatched="skip", progress=False)
    entry = res["metrics"]["lip_audio_pose"]
    values = entry["values"]
    own = np.mean([lip_audio_correlation(c.keypoints, c.audio)[0] for c in clips])
    assert abs(values["lip_audio_r_reference"] - own) < 1e-3  # AAC-coded audio track
    assert abs(values["lip_audio_r"]) < 0.3 and values["lip_audio_clips"] == 3  # the other clips' lips
    assert entry["n_skipped"] == 1  # the silent video: declared, not NaN
    assert entry["value_higher_is_better"]["lip_audio_r"] is True
    assert entry["protocol"]["source"] == "keypoints" and entry["name"] == "lip_audio_pose"
    assert SAMPLE_RATE == 16000


@pytest.fixture(scope="module")
def clips64():  # noqa: ANN201
    """Toy version 1 (frontal faces, one mouth colour): what these FaceMesh expectations were measured on."""
    return [
        generate_clip(speaker_style(0, s, 1), 4.0, 64, np.random.default_rng([0, s, 0])) for s in range(3)
    ]


def test_pixel_adapter_scores_what_the_video_shows_not_its_keypoints(clips64, tmp_path: Path) -> None:  # noqa: ANN001
    """Same files, two metrics: the pixels move with the audio (high r), the companion keypoints do not."""
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    _write_pairs(clips64, gen, ref)
    c = clips64[0]  # no face on these frames, same audio: skipped with the reason, never scored from its .npy
    write_video(gen / "blank.mp4", np.full_like(c.frames, 128), fps=25, audio=c.audio)
    np.save(gen / "blank.npy", c.keypoints)
    still = np.broadcast_to(c.frames[:1], c.frames.shape)  # a face whose mouth never moves: r = 0
    write_video(gen / "still.mp4", np.ascontiguousarray(still), fps=25, audio=c.audio)
    metrics = {"lip_audio": LipAudioAdapter(), "lip_audio_pose": LipAudioPoseAdapter()}
    res = evaluate(gen, ref, metrics, unmatched="skip", progress=False)
    pixels = res["metrics"]["lip_audio"]
    assert res["metrics"]["lip_audio_pose"]["protocol"]["source"] == "keypoints"
    assert pixels["protocol"]["source"] == "pixels" and "FaceMesh" in pixels["protocol"]["lips"]
    scores = {n: v["scores"] for n, v in res["per_video"].items()}
    still_scores = scores["still"]["lip_audio"]
    assert still_scores["lip_audio_r"] == 0.0 and still_scores["lip_audio_still"] == 1.0
    assert still_scores["lip_audio_face_rate"] == 1.0
    assert pixels["values"]["lip_audio_still_clips"] == 1 and pixels["values"]["lip_audio_clips"] == 4
    moving = [scores[f"c{i}"]["lip_audio"] for i in range(3)]
    # generated and reference show the same frames: the same r (the reference's lips come from its pixels)
    # FaceMesh's tracking graph did not repeat exactly on a loaded machine (seen twice), hence abs=0.1
    assert all(v["lip_audio_r"] == pytest.approx(v["lip_audio_r_reference"], abs=0.1) for v in moving)
    assert np.mean([v["lip_audio_r"] for v in moving]) > 0.4
    pose_r = np.mean([scores[f"c{i}"]["lip_audio_pose"]["lip_audio_r"] for i in range(3)])
    assert abs(pose_r) < 0.3  # the keypoints files are the other clips' lips
    assert pixels["values"]["lip_audio_face_rate"] == pytest.approx(0.8, abs=0.02)  # 4 faces, 1 blank
    skip = next(s for s in res["skips"] if s["video"] == "blank" and s["metric"] == "lip_audio")
    assert "FaceMesh found a face on 0 of 100 frames (64x64)" in skip["reason"]
    # the keypoint metric scores a blank video from its .npy: why it must not be used on Stage II videos
    assert scores["blank"]["lip_audio_pose"]["lip_audio_r"] > 0.9


def test_pixel_lip_audio_on_a_real_talking_face_beats_another_files_audio() -> None:
    """8 s of a real talking face (512x512, downsampled to 128 as an evaluation protocol would): the lips
    detected on its frames give a finite r with its own audio, and a lower one with another video's audio."""
    import cv2

    face = read_video(samples_path("talking_face_hdtf_aoc_25fps.mp4"), sample_rate=SAMPLE_RATE)
    other = read_video(samples_path("talking_face_moore4_30fps.mp4"), sample_rate=SAMPLE_RATE).audio
    assert face.audio is not None and other is not None
    frames = np.stack([cv2.resize(f, (128, 128), interpolation=cv2.INTER_AREA) for f in face.frames])
    metric = LipAudioAdapter()
    own = metric.update(VideoSample("own", frames, face.fps, face.audio), None)
    control = metric.update(VideoSample("other", frames, face.fps, other[: len(face.audio)]), None)
    assert own["lip_audio_face_rate"] == 1.0
    assert np.isfinite(own["lip_audio_r"]) and own["lip_audio_r"] > control["lip_audio_r"] + 0.05
    with pytest.raises(VideoSkipped, match="found a face on 0 of"):  # a face-less frame is no lip
        blank = np.zeros((20, 64, 64, 3), np.uint8)
        metric.update(VideoSample("blank", blank, 25.0, face.audio[:12800]), None)
