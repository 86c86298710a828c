"""Toy speakers: determinism, clip-store output, and the audio -> motion relations built into the data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmgt.clipstore import AUDIO_FILE, KEYPOINTS_FILE, META_FILE, VIDEO_FILE, ClipStore
from mmgt.io import probe_video, read_audio
from mmgt.schema import (
    BODY_INDEX,
    FACE_OFFSET,
    FEET,
    LEFT_HAND,
    LEG_INDICES,
    RIGHT_HAND,
    lip_opening,
)
from mmgt_prep.toy import (
    EVENTS_FILE,
    GENERATOR,
    beat_alignment,
    generate_clip,
    generate_toy_dataset,
    hand_speed_peaks,
    speaker_style,
    split_for,
    stress_frames,
    synthesize_audio,
    synthesize_motion,
    toy_envelope,
)
from mmgt_prep.toy_audio import VOWELS
from mmgt_prep.toy_motion import MOUTH_DARK

SECONDS, SIZE = 4.0, 64


def synthesize_clip_motion(style, rng: np.random.Generator) -> dict:
    """The motion dict of a 4 s clip of ``style`` (+ its audio events under ``events``)."""
    _, events = synthesize_audio(style, 4.0, rng)
    motion = synthesize_motion(style, events, events["n_frames"], rng)
    return {**motion, "events": events}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ClipStore:
    """2 speakers x 2 clips x 4 s at 64 px, seed 0, generated once for the module."""
    root = tmp_path_factory.mktemp("toy") / "store"
    summary = generate_toy_dataset(
        root, n_speakers=2, clips_per_speaker=2, seconds=SECONDS, size=SIZE, seed=0, progress=False
    )
    assert summary["ok"] == 4 and summary["failed"] == 0 and summary["skipped"] == 0
    return ClipStore(root)


def _events(clip) -> dict:  # noqa: ANN001 - mmgt.clipstore.Clip
    return json.loads((clip.dir / EVENTS_FILE).read_text())


# --------------------------------------------------------------------------- store & determinism
def test_manifest_files_and_shapes(store: ClipStore) -> None:
    assert all(r.status == "ok" for r in store.records.values())
    clips = store.clips()
    assert [c.record.id for c in clips] == ["toy_spk0_000", "toy_spk0_001", "toy_spk1_000", "toy_spk1_001"]
    assert [c.record.split for c in clips] == ["train", "test", "train", "test"]
    for clip in clips:
        rec = clip.record
        assert (rec.source, rec.start, rec.end, rec.n_frames, rec.fps, rec.size) == (
            "toy",
            0.0,
            4.0,
            100,
            25.0,
            64,
        )
        assert rec.extra["seed"] == 0 and rec.extra["generator"] == GENERATOR == "mmgt_prep.toy v2"
        for name in (VIDEO_FILE, AUDIO_FILE, KEYPOINTS_FILE, EVENTS_FILE, META_FILE):
            assert (clip.dir / name).is_file(), name
        kps = clip.keypoints()
        assert kps.shape == (100, 134, 3) and kps.dtype == np.float32
        assert clip.audio().shape == (64000,)
        info = probe_video(clip.video_path)
        assert (info.n_frames, info.width, info.height, info.fps) == (100, 64, 64, 25.0)
        ev = _events(clip)
        assert ev["n_frames"] == 100 and len(ev["syllables"]) > 5 and len(ev["phrases"]) >= 1
        assert ev["blink_frames"] == sorted(ev["blink_frames"])


def test_same_seed_is_byte_identical_other_seed_differs(store: ClipStore, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_toy_dataset(
        again, n_speakers=2, clips_per_speaker=2, seconds=SECONDS, size=32, seed=0, progress=False
    )
    for clip in store.clips():
        other = again / clip.dir.relative_to(store.root)
        for name in (KEYPOINTS_FILE, AUDIO_FILE, EVENTS_FILE):  # keypoints do not depend on the size
            assert (clip.dir / name).read_bytes() == (other / name).read_bytes(), (clip.record.id, name)
    seed1 = tmp_path / "seed1"
    generate_toy_dataset(
        seed1, n_speakers=1, clips_per_speaker=1, seconds=SECONDS, size=32, seed=1, progress=False
    )
    first = store.clip("toy_spk0_000").dir
    for name in (KEYPOINTS_FILE, AUDIO_FILE):
        assert (first / name).read_bytes() != (seed1 / "clips/toy_spk0/toy_spk0_000" / name).read_bytes()


def test_resume_skips_done_clips(store: ClipStore) -> None:
    summary = generate_toy_dataset(
        store.root, n_speakers=2, clips_per_speaker=2, seconds=SECONDS, size=SIZE, seed=0, progress=False
    )
    assert (summary["ok"], summary["skipped"]) == (0, 4)


def test_split_rule() -> None:
    splits = lambda n, f: [split_for(k, n, f) for k in range(n)]  # noqa: E731
    assert splits(2, 0.25) == ["train", "test"]
    assert splits(1, 0.25) == ["train"]
    assert splits(8, 0.25) == ["train"] * 6 + ["test"] * 2
    assert splits(4, 0.0) == ["train"] * 4


def test_speaker_style_depends_on_seed_and_index_only() -> None:
    assert speaker_style(3, 1) == speaker_style(3, 1)
    assert speaker_style(3, 1) != speaker_style(4, 1)
    styles = [speaker_style(0, i) for i in range(4)]
    assert len({s.background for s in styles}) == 4 and len({s.gesture_hands for s in styles}) == 4
    assert all(100.0 <= s.f0 <= 250.0 for s in styles)


# --------------------------------------------------------------------------- relations by construction
def test_lip_opening_follows_audio_envelope(store: ClipStore) -> None:
    for clip in store.clips():
        lips = lip_opening(clip.keypoints())
        env = toy_envelope(read_audio(clip.audio_path))
        assert env.shape == lips.shape == (100,)
        r = float(np.corrcoef(lips, env)[0, 1])
        assert r >= 0.8, (clip.record.id, r)


def test_hand_speed_peaks_fall_on_stressed_syllables(store: ClipStore) -> None:
    for clip in store.clips():
        kps, ev = clip.keypoints(), _events(clip)
        peaks, stresses = hand_speed_peaks(kps), stress_frames(ev)
        assert len(peaks) >= 2 and len(stresses) >= 2
        near = np.abs(peaks[:, None] - stresses[None, :]).min(axis=1) <= 2
        assert near.mean() >= 0.8, (clip.record.id, peaks, stresses)
        assert beat_alignment(kps, ev) == pytest.approx(near.mean())
        assert np.diff(stresses).min() >= 14  # ~1-2 Hz, never closer than 0.56 s


def test_stress_timing_and_speed_helper() -> None:
    ev = {"fps": 25, "syllables": [{"peak": 0.5, "stressed": True}, {"peak": 0.9, "stressed": False},
                                   {"peak": 1.21, "stressed": True}]}  # fmt: skip
    assert stress_frames(ev).tolist() == [12, 30]
    kps = np.zeros((40, 134, 3), np.float32)
    kps[..., 2] = 1.0
    kps[:, BODY_INDEX["right_wrist"], 0] = 0.5 + 0.1 * np.tanh(np.arange(40) - 20.0)  # one fast move at 20
    assert hand_speed_peaks(kps).tolist() == [20]
    assert toy_envelope(np.ones(1000, np.float32)).tolist() == pytest.approx([1.0, np.sqrt(360 / 640)])


# --------------------------------------------------------------------------- geometry & rendering
def test_keypoint_layout_and_visibility(store: ClipStore) -> None:
    for clip in store.clips():
        kps = clip.keypoints()
        assert ((kps[..., :2] >= 0) & (kps[..., :2] <= 1)).all()
        conf = kps[..., 2]
        assert (conf[:, list(FEET)] == 0).all() and (conf[:, list(LEG_INDICES)] == 0).all()
        assert (conf[:, [BODY_INDEX["right_hip"], BODY_INDEX["left_hip"]]] == 0).all()
        assert (conf[:, FACE_OFFSET : FACE_OFFSET + 68] == 1).all()
        neck = kps[:, BODY_INDEX["neck"], :2]
        shoulders = kps[:, [BODY_INDEX["right_shoulder"], BODY_INDEX["left_shoulder"]], :2].mean(axis=1)
        np.testing.assert_allclose(neck, shoulders, atol=1e-6)
        # body wrists = hand wrists; the person's right side is on the image left
        np.testing.assert_allclose(kps[:, BODY_INDEX["right_wrist"]], kps[:, RIGHT_HAND.start])
        np.testing.assert_allclose(kps[:, BODY_INDEX["left_wrist"]], kps[:, LEFT_HAND.start])
        assert (kps[:, BODY_INDEX["right_shoulder"], 0] < kps[:, BODY_INDEX["left_shoulder"], 0]).all()


def _near(img: np.ndarray, xy: np.ndarray, colour: tuple[int, int, int], tol: float = 30.0) -> bool:
    s = img.shape[0]
    x, y = int(xy[0] * s), int(xy[1] * s)
    return float(np.abs(img[y, x].astype(float) - colour).max()) <= tol


@pytest.mark.parametrize("version", [1, 2])
def test_rendering_matches_keypoints(version: int) -> None:
    style = speaker_style(0, 0, version)
    clip = generate_clip(style, 4.0, 128, np.random.default_rng([0, 0, 0]))
    face = clip.keypoints[:, FACE_OFFSET : FACE_OFFSET + 68, :2]
    palms = []
    for t in range(0, 100, 9):
        img = clip.frames[t]
        # skin between the eyes (iBUG 27) and on both cheeks (between jaw and mouth corners)
        for xy in (face[t, 27], 0.5 * (face[t, 3] + face[t, 48]), 0.5 * (face[t, 13] + face[t, 54])):
            assert _near(img, xy, style.skin), (t, xy, img[int(xy[1] * 128), int(xy[0] * 128)])
        for hand in (RIGHT_HAND, LEFT_HAND):  # palm centre
            palm = clip.keypoints[t, [hand.start, hand.start + 5, hand.start + 17], :2].mean(axis=0)
            palms.append(_near(img, palm, style.skin, tol=40))
    # version 2's crossing hands may cover a palm now and then
    assert np.mean(palms) >= (1.0 if version == 1 else 0.9), palms
    if version == 1:  # the drawn mouth interior grows with the lip opening of the keypoints
        dark = [(np.abs(f.astype(int) - (70, 20, 30)).max(-1) < 40).sum() for f in clip.frames]
        assert np.corrcoef(dark, lip_opening(clip.keypoints))[0, 1] > 0.8


def test_version2_moves_more_and_colours_the_mouth_by_vowel() -> None:
    """v2: hands travel and turn the head within 2 s; the mouth colour follows F2, which no keypoint holds."""
    rng = lambda: np.random.default_rng([0, 1, 4])  # noqa: E731
    v1, v2 = (synthesize_clip_motion(speaker_style(0, 1, v), rng()) for v in (1, 2))
    wrists = [BODY_INDEX["right_wrist"], BODY_INDEX["left_wrist"]]
    travel = [np.abs(m["keypoints"][:50, wrists, :2] - m["keypoints"][0, wrists, :2]).max() for m in (v1, v2)]
    assert travel[1] > 0.15 > 2 * travel[0], travel
    assert np.abs(v1["yaw"]).max() == 0 and np.abs(v2["yaw"][:50]).max() > 0.05
    assert (v1["mouth_colour"] == MOUTH_DARK).all()
    events = v2["events"]
    lo = min(f[1] for f in VOWELS.values())
    per_vowel = {}  # the colour at each syllable's peak frame, by the vowel's F2
    for syl in events["syllables"]:
        frame = min(int(syl["peak"] * 25), len(v2["mouth_colour"]) - 1)
        per_vowel.setdefault(VOWELS[syl["vowel"]][1] - lo, []).append(v2["mouth_colour"][frame].mean())
    f2 = sorted(per_vowel)
    assert len(f2) >= 3
    assert np.corrcoef(f2, [np.mean(per_vowel[k]) for k in f2])[0, 1] > 0.9  # brighter with F2


def test_speakers_look_different(store: ClipStore) -> None:
    means = [c.video().astype(np.float32).mean(axis=0) for c in store.clips()]
    same_speaker = np.abs(means[0] - means[1]).mean()
    other_speaker = np.abs(means[0] - means[2]).mean()
    assert other_speaker > 10.0 and other_speaker > 3 * same_speaker
