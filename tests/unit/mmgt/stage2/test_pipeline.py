"""Stage II sampling: context windows (any length, no wrap-around), evaluation counts, reference inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgt.stage2.components import audio_windows
from mmgt.stage2.pipeline import context_windows, make_scheduler, reference_evals_per_frame, square_image


@pytest.mark.parametrize(
    ("n", "size", "overlap"), [(80, 12, 4), (718, 8, 2), (13, 12, 4), (5, 12, 4), (12, 12, 0)]
)
def test_context_windows_cover_every_frame_without_wrap_around(n: int, size: int, overlap: int) -> None:
    windows = context_windows(n, size, overlap)
    assert all(w == list(range(w[0], w[0] + len(w))) for w in windows)  # contiguous, never wraps
    assert all(len(w) == min(size, n) for w in windows)
    assert sorted({f for w in windows for f in w}) == list(range(n))
    assert windows[-1][-1] == n - 1
    for a, b in zip(windows, windows[1:], strict=False):
        assert len(set(a) & set(b)) >= overlap


def test_closed_loop_reproduces_the_reference_windows() -> None:
    windows = context_windows(80, 12, 4, closed_loop=True)
    assert len(windows) == 10 and windows[-1] == [*range(72, 80), 0, 1, 2, 3]
    # the original: 30 DDIM steps x CFG 2 x 120 window frames / 80 output frames
    assert reference_evals_per_frame() == pytest.approx(90.0)
    # without wrap-around: as many windows, the last one aligned to the end instead of wrapping round
    windows = context_windows(80, 12, 4)
    assert len(windows) == 10 and windows[-1] == list(range(68, 80))


def test_context_windows_errors() -> None:
    with pytest.raises(ValueError, match="overlap < size"):
        context_windows(10, 4, 4)
    with pytest.raises(ValueError, match="n_frames"):
        context_windows(0, 4, 1)


def test_audio_windows_clamp_at_the_edges() -> None:
    feats = torch.arange(5.0)[:, None, None].expand(5, 2, 3)
    w = audio_windows(feats, 2)
    assert w.shape == (5, 5, 2, 3)
    assert w[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2] and w[4, :, 0, 0].tolist() == [2, 3, 4, 4, 4]
    assert audio_windows(torch.zeros(7, 9), 1).shape == (7, 3, 1, 9)


def test_square_image_crops_and_resizes() -> None:
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centre square is white
    out = square_image(img, 16)
    assert out.shape == (1, 3, 16, 16) and torch.allclose(out, torch.ones_like(out))
    with pytest.raises(ValueError, match="uint8 RGB"):
        square_image(np.zeros((4, 4)), 8)


def test_inference_scheduler_matches_training_schedule() -> None:
    cfg = dict(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
    )
    sched = make_scheduler(cfg)
    sched.set_timesteps(25)
    assert int(sched.timesteps[0]) == 999  # trailing: sampling starts at the zero-SNR step
    assert sched.config.prediction_type == "v_prediction" and sched.config.rescale_betas_zero_snr
    assert float(sched.alphas_cumprod[-1]) < 1e-6
