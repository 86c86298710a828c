"""mmgt.dsp: the mel filterbank and per-frame energy that prep, training and evaluation share.

(librosa's own onset envelope, which runs through the float32 filterbank, is matched in
``test_metrics_reference.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from mmgt.dsp import frame_mean_square, frame_rms, hz_to_mel, mel_filterbank, mel_to_hz


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_frame_rms_is_the_rms_of_each_frames_samples(fps: float) -> None:
    audio = np.random.default_rng(0).standard_normal(16000 * 3 + 123).astype(np.float32)
    hop = 16000 / fps
    t = int(np.ceil(len(audio) / hop))
    edges = [round(k * hop) for k in range(t + 1)]
    padded = np.pad(audio.astype(np.float64), (0, edges[-1] - len(audio)))
    direct = [np.sqrt(np.mean(padded[a:b] ** 2)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_allclose(frame_rms(audio, fps=fps), direct, rtol=1e-12)


def test_frames_past_the_end_are_silent() -> None:
    np.testing.assert_allclose(frame_rms(np.ones(100), n_frames=3), [(100 / 640) ** 0.5, 0, 0])
    np.testing.assert_allclose(frame_mean_square(np.full(1280, 0.5), n_frames=1), [0.25])
    assert frame_rms(np.zeros(0)).shape == (0,)


def test_the_slaney_mel_scale() -> None:
    assert hz_to_mel(1000.0) == pytest.approx(15.0) and hz_to_mel(200.0) == pytest.approx(3.0)
    f = np.array([0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


def test_float32_filterbank_is_the_float64_one_rounded() -> None:
    f64, f32 = mel_filterbank(128, 2048), mel_filterbank(128, 2048, dtype=np.float32)
    assert f32.dtype == np.float32 and f64.dtype == np.float64 and f32.shape == f64.shape == (128, 1025)
    np.testing.assert_allclose(f32, f64, rtol=2e-7, atol=0)
    # Slaney normalisation: every triangle has unit area over Hz (up to the bin discretisation of the
    # narrow low bands)
    area = f64.sum(axis=1) * (16000 / 2048)
    assert np.allclose(area[10:], 1.0, atol=0.05)
