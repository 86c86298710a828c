"""PoseDiffusion: loss terms, DDIM sampling with batched CFG, and a learning check on a tiny SMGA."""

from __future__ import annotations

import time

import hydra
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mmgt import schema as S
from mmgt.config import CONFIG_DIR
from mmgt.stage1 import PoseDiffusion, SMGATransformer
from mmgt.stage1.diffusion import LOSS_KEYS
from tests.helpers.poses import make_pose

AUDIO_DIM = 4
TINY = dict(audio_dim=AUDIO_DIM, width=32, layers=2, heads=4, ff_dim=64, audio_layers=1)


def _batch(
    batch: int = 3, frames: int = 24, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x0 (B, T, 134, 3) model space with the legs invisible, audio (B, T, 4), cond pose (B, 134, 3)."""
    poses = np.stack([make_pose(frames + 1, seed=seed + b) for b in range(batch)])
    poses = torch.from_numpy(S.to_model_space(poses))
    audio = torch.randn(batch, frames, AUDIO_DIM, generator=torch.Generator().manual_seed(seed))
    return poses[:, 1:], audio, poses[:, 0]


def _net(seed: int = 0, **kw: object) -> SMGATransformer:
    torch.manual_seed(seed)
    return SMGATransformer(**{**TINY, **kw}).eval()


def test_schedule_is_cosine_x0_prediction() -> None:
    diffusion = PoseDiffusion()
    cfg = diffusion.scheduler.config
    assert (cfg.beta_schedule, cfg.prediction_type, cfg.num_train_timesteps) == (
        "squaredcos_cap_v2",
        "sample",
        1000,
    )
    ddim = diffusion.ddim_scheduler(50)
    assert ddim.timesteps[0] == 999 and ddim.timesteps[-1] == 19 and len(ddim.timesteps) == 50
    # the same betas; the DDIM copy is float64 so eta = 1 cannot take sqrt of a negative round-off
    assert ddim.alphas_cumprod.dtype == torch.float64
    torch.testing.assert_close(ddim.alphas_cumprod.float(), diffusion.scheduler.alphas_cumprod)


def test_training_losses_are_finite_scalars_with_documented_keys() -> None:
    x0, audio, cond = _batch()
    net = _net().train()
    losses = PoseDiffusion().training_losses(net, x0, audio, cond, generator=torch.Generator().manual_seed(0))
    assert tuple(losses) == LOSS_KEYS
    for key, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value), key
    assert losses["loss"].requires_grad
    losses["loss"].backward()
    assert all(p.grad is not None for p in net.parameters())
    expected = sum(losses[k] * w for k, w in zip(LOSS_KEYS[1:], (1, 1, 1, 3, 1), strict=True))
    torch.testing.assert_close(losses["loss"], expected)


def test_face_weight_changes_only_the_face_contribution() -> None:
    x0, audio, cond = _batch()
    net = _net()
    runs = {}
    for face_weight in (0.0, 3.0):
        diffusion = PoseDiffusion(loss_weights={"face": face_weight})
        runs[face_weight] = diffusion.training_losses(
            net, x0, audio, cond, generator=torch.Generator().manual_seed(5)
        )
    for key in LOSS_KEYS[1:]:
        torch.testing.assert_close(runs[0.0][key], runs[3.0][key], rtol=0, atol=0)
    assert runs[3.0]["face"] > 0
    torch.testing.assert_close(runs[3.0]["loss"] - runs[0.0]["loss"], 3.0 * runs[3.0]["face"])


def test_invisible_points_do_not_count_in_position_terms() -> None:
    x0, _, _ = _batch(frames=10)
    assert (x0[..., 2] == 0).any()  # legs and feet are invisible in make_pose
    diffusion = PoseDiffusion()
    pred = x0.clone()
    pred[..., list(S.LEG_INDICES), :2] += 0.7  # wrong (x, y) on invisible points only
    losses = diffusion.pose_losses(pred, x0)
    for key in ("position", "velocity", "acceleration", "face", "visibility"):
        assert losses[key] == 0, key
    pred[:, 4, S.LIP_TOP_INNER, 1] += 0.5  # a visible face point, one frame
    losses = diffusion.pose_losses(pred, x0)
    assert losses["position"] > 0 and losses["velocity"] > 0 and losses["acceleration"] > 0
    assert losses["face"] > losses["position"]  # same error, fewer points
    pred[..., 2] = 0.5
    assert diffusion.pose_losses(pred, x0)["visibility"] == pytest.approx(0.25)


def test_reference402_losses_are_plain_mse() -> None:
    target = torch.from_numpy(S.to_reference_402(make_pose(12)))[None]
    pred = target + 0.1
    losses = PoseDiffusion().pose_losses(pred, target)
    assert losses["position"] == pytest.approx(0.01) and losses["velocity"] == pytest.approx(0.0, abs=1e-12)
    assert losses["face"] == pytest.approx(0.01) and losses["visibility"] == 0


def test_sample_shape_determinism_and_output_space() -> None:
    _, audio, cond = _batch(batch=2, frames=30)
    net, diffusion = _net(), PoseDiffusion()
    run = lambda seed, **kw: diffusion.sample(  # noqa: E731
        net, audio, cond, steps=8, generator=torch.Generator().manual_seed(seed), **kw
    )
    a, b, c = run(0), run(0), run(1)
    assert a.shape == (2, 30, 134, 3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    assert set(a[..., 2].unique().tolist()) <= {0.0, 1.0}
    assert a[..., :2].abs().max() <= 1.0 and (a[..., :2][a[..., 2] == 0] == 0).all()
    assert run(0, n_frames=11).shape == (2, 11, 134, 3)
    with pytest.raises(ValueError, match="n_frames=31"):
        run(0, n_frames=31)


def _manual_ddim(net, diffusion, audio, cond, steps, guidance, seed, separate: bool):  # noqa: ANN001, ANN202
    """DDIM written out with separate conditional / unconditional forwards (no batching)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((*audio.shape[:2], 134, 3), generator=generator)
    scheduler = diffusion.ddim_scheduler(steps)
    batch = audio.shape[0]
    for t in scheduler.timesteps:
        ts = t.expand(batch)
        cond_x0 = net(x, ts, audio, cond)
        if separate:
            uncond_x0 = net(x, ts, audio, cond, drop_audio=torch.ones(batch, dtype=torch.bool))
            x0 = uncond_x0 + guidance * (cond_x0 - uncond_x0)
        else:
            x0 = cond_x0
        x0 = x0.clamp(-1, 1)  # clipped x0, the noise direction re-derived from it
        x = scheduler.step(x0, t, x, eta=1.0, use_clipped_model_output=True, generator=generator).prev_sample
    visible = (x[..., 2:3] > 0.5).float()
    return torch.cat([x[..., :2].clamp(-1, 1) * visible, visible], dim=-1)


@torch.no_grad()
@pytest.mark.parametrize("steps", [2, 3, 5, 7, 20, 50])
def test_stochastic_ddim_stays_finite_for_any_step_count(steps: int) -> None:
    """eta = 1 from t = 999 of the cosine schedule: float32 round-off used to give sqrt(<0) = NaN."""
    _, audio, cond = _batch(batch=2, frames=12)
    out = PoseDiffusion().sample(
        _net(), audio, cond, steps=steps, eta=1.0, guidance=2.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(out).all() and out.dtype == torch.float32


@torch.no_grad()
def test_guidance_one_is_the_conditional_path() -> None:
    _, audio, cond = _batch(batch=2, frames=20)
    net, diffusion = _net(), PoseDiffusion()
    got = diffusion.sample(
        net, audio, cond, steps=6, guidance=1.0, generator=torch.Generator().manual_seed(3)
    )
    expected = _manual_ddim(net, diffusion, audio, cond, 6, 1.0, seed=3, separate=False)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@torch.no_grad()
def test_batched_cfg_equals_two_separate_forwards() -> None:
    _, audio, cond = _batch(batch=2, frames=20)
    net, diffusion = _net(), PoseDiffusion()
    got = diffusion.sample(
        net, audio, cond, steps=6, guidance=2.5, generator=torch.Generator().manual_seed(4)
    )
    expected = _manual_ddim(net, diffusion, audio, cond, 6, 2.5, seed=4, separate=True)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    cond_only = _manual_ddim(net, diffusion, audio, cond, 6, 1.0, seed=4, separate=False)
    assert not torch.allclose(got, cond_only, atol=1e-3)  # guidance does something


def _lip_window(frames: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """One window whose lower lip drops with a syllable-like envelope (audio = [envelope, 1])."""
    t = np.arange(frames) / S.FPS
    envelope = np.clip(np.sin(2 * np.pi * 2.3 * t) * np.sin(2 * np.pi * 0.55 * t + 0.4), 0, None) ** 0.7
    poses = make_pose(frames + 1, seed=0, motion=0.0)
    lower_lip = [S.FACE_OFFSET + i for i in (*range(55, 60), *range(65, 68))]  # outer 55-59, inner 65-67
    poses[1:, lower_lip, 1] += 0.15 * envelope[:, None].astype(np.float32)  # cartoon-size mouth
    model = torch.from_numpy(S.to_model_space(poses))
    audio = torch.from_numpy(np.stack([envelope, np.ones_like(envelope)], -1).astype(np.float32))
    return model[None, 1:], audio[None], model[None, 0], envelope


def _overfit(steps: int, seed: int = 0, batch: int = 8) -> dict[str, object]:
    """Train the shipped tiny SMGA (conf/model/stage1/tiny.yaml) on one window; loss and sampled lip r."""
    start = time.perf_counter()
    x0, audio, cond, envelope = _lip_window()
    x0, audio, cond = x0.expand(batch, -1, -1, -1), audio.expand(batch, -1, -1), cond.expand(batch, -1, -1)
    cfg = OmegaConf.load(CONFIG_DIR / "model" / "stage1" / "tiny.yaml").net
    cfg.audio_dim, cfg.dropout = 2, 0.0
    torch.manual_seed(seed)
    net = hydra.utils.instantiate(cfg)
    diffusion = PoseDiffusion()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)

    def eval_loss() -> float:
        net.eval()
        gen = torch.Generator().manual_seed(123)
        with torch.no_grad():
            losses = [diffusion.training_losses(net, x0, audio, cond, gen)["loss"].item() for _ in range(4)]
        net.train()
        return float(np.mean(losses))

    before = eval_loss()
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = diffusion.training_losses(net, x0, audio, cond, generator=generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    net.eval()
    sample = diffusion.sample(
        net, audio[:2], cond[:2], steps=25, guidance=2.0, generator=torch.Generator().manual_seed(1)
    )
    opening = S.lip_opening(S.from_model_space(sample).numpy())  # (2, T)
    r = [float(np.corrcoef(o, envelope)[0, 1]) for o in opening]
    elapsed = time.perf_counter() - start
    print(
        f"\nlearning check ({steps} steps, seed {seed}): "
        f"loss {before:.4f} -> {after:.4f} ({before / after:.0f}x), "
        f"lip r = {[round(v, 3) for v in r]}, {elapsed:.1f} s"
    )
    return {"before": before, "after": after, "r": r}


def test_tiny_smga_loss_drops_when_overfitting_one_window() -> None:
    result = _overfit(steps=60)
    assert result["before"] / result["after"] > 5.0


@pytest.mark.slow
def test_tiny_smga_learns_lip_opening_from_audio() -> None:
    """Audio -> frame alignment through cross-attention needs a few hundred steps (~150 are not enough)."""
    for seed in (0, 1):
        result = _overfit(steps=400, seed=seed)
        assert result["before"] / result["after"] > 5.0
        assert min(result["r"]) > 0.8, f"seed {seed}"
