"""Lip-audio correlation: envelope and r against the toy speakers' construction, lags, skips, runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgt.io import write_video
from mmgt.schema import SAMPLE_RATE
from mmgt_eval.metrics.lip_audio import LipAudioMetric, audio_envelope, lip_audio_correlation
from mmgt_eval.runner import evaluate
from mmgt_prep.toy import generate_clip, speaker_style, toy_envelope


@pytest.fixture(scope="module")
def clips():  # noqa: ANN201
    return [generate_clip(speaker_style(0, s), 4.0, 32, np.random.default_rng([0, s, 0])) for s in range(3)]


def test_envelope_is_the_per_frame_rms(clips) -> None:  # noqa: ANN001
    audio = clips[0].audio
    np.testing.assert_allclose(audio_envelope(audio), toy_envelope(audio), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(audio_envelope(np.ones(100), n_frames=3), [(100 / 640) ** 0.5, 0, 0])  # padded


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


def test_adapter_through_the_runner(clips, tmp_path: Path) -> None:  # noqa: ANN001
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for d in (gen, ref):
        d.mkdir()
    for i, c in enumerate(clips):
        write_video(ref / f"c{i}.mp4", c.frames, fps=25, audio=c.audio)
        np.save(ref / f"c{i}.npy", c.keypoints)
        # "generated": the ground-truth motion of the next clip over this clip's audio
        write_video(gen / f"c{i}.mp4", c.frames, fps=25, audio=c.audio)
        np.save(gen / f"c{i}.npy", clips[(i + 1) % 3].keypoints)
    silent = tmp_path / "gen" / "silent.mp4"
    write_video(silent, clips[0].frames, fps=25, audio=np.zeros(len(clips[0].audio), np.float32))
    np.save(gen / "silent.npy", clips[0].keypoints)
    res = evaluate(gen, ref, {"lip_audio": LipAudioMetric()}, unmatched="skip", progress=False)
    values = res["metrics"]["lip_audio"]["values"]
    own = np.mean([lip_audio_correlation(c.keypoints, c.audio)[0] for c in clips])
    assert abs(values["lip_audio_r_reference"] - own) < 1e-3  # AAC-coded audio track
    assert abs(values["lip_audio_r"]) < 0.3 and values["lip_audio_clips"] == 3
    assert res["metrics"]["lip_audio"]["n_skipped"] == 1  # the silent video: declared, not NaN
    assert res["metrics"]["lip_audio"]["value_higher_is_better"]["lip_audio_r"] is True
    assert SAMPLE_RATE == 16000
