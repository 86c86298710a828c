"""PSNR / SSIM / LPIPS (mmgt_eval.metrics.image) against torchmetrics, numpy and the lpips package."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torchvision
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from mmgt_eval.metrics import image as I
from mmgt_eval.metrics.base import MetricInputError, VideoSample


def videos(seed: int, t: int = 4, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A random uint8 video (T, H, W, 3) and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    gen = np.clip(ref.astype(int) + rng.integers(-40, 41, ref.shape), 0, 255).astype(np.uint8)
    return gen, ref


def tchw(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype) / 255.0


def vs(name: str, frames: np.ndarray) -> VideoSample:
    return VideoSample(name, frames, 25.0, None)


# =========================================================================== PSNR
def test_psnr_per_frame_equals_torchmetrics_and_numpy():
    gen, ref = videos(0)
    vals = I.psnr_frames(tchw(gen, torch.float64), tchw(ref, torch.float64))
    assert torch.equal(vals, I.psnr_frames(I.to_rgb(gen), I.to_rgb(ref)))  # uint8: converted in float64
    g, r = gen.astype(np.float64) / 255, ref.astype(np.float64) / 255
    numpy_psnr = [10 * np.log10(1.0 / np.mean((g[i] - r[i]) ** 2)) for i in range(len(g))]
    # torchmetrics scales by 10 / log(10) taken in float32: ~5e-8 relative from the float64 formula
    np.testing.assert_allclose(vals.numpy(), numpy_psnr, rtol=1e-7)
    tm = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="none")
    tm_vals = tm(tchw(gen, torch.float64), tchw(ref, torch.float64)).numpy()
    np.testing.assert_allclose(vals.numpy(), tm_vals, rtol=1e-12)
    zeros, ones = np.zeros((2, 8, 8, 3), np.uint8), np.full((2, 8, 8, 3), 255, np.uint8)
    assert I.psnr_frames(tchw(zeros), tchw(ones)).tolist() == [0.0, 0.0]  # 0 vs 1, L = 1 -> 0 dB
    assert I.psnr_frames(tchw(ones), tchw(ones)).tolist() == [100.0, 100.0]  # capped (declared)
    assert torch.isinf(I.psnr_frames(tchw(ones), tchw(ones), max_db=None)).all()  # torchmetrics: +inf


def test_psnr_adapter_averages_frames_then_videos():
    metric = I.PSNRAdapter()
    (g1, r1), (g2, r2) = videos(1, t=3), videos(2, t=6)
    per = []
    for i, (g, r) in enumerate(((g1, r1), (g2, r2))):
        out = metric.update(vs(f"g{i}", g), vs(f"r{i}", r))
        per.append(float(I.psnr_frames(tchw(g), tchw(r)).mean()))
        assert out["psnr"] == pytest.approx(per[-1])
    res = metric.compute()
    assert res["psnr"] == pytest.approx(np.mean(per)) and res["psnr_videos"] == 2 and res["psnr_frames"] == 9
    proto = metric.protocol()
    assert (
        proto["data_range"] == 1.0
        and proto["max_db"] == 100.0
        and "then mean over videos" in proto["averaging"]
    )
    json.dumps(proto)


# =========================================================================== SSIM
def test_ssim_equals_torchmetrics_and_closed_forms():
    (g1, r1), (g2, r2) = videos(3), videos(4)
    metric = I.SSIMAdapter()
    metric.update(vs("a", g1), vs("a", r1))
    metric.update(vs("b", g2), vs("b", r2))
    # equal-length videos: mean of per-video means == torchmetrics' mean over all frames
    tm = StructuralSimilarityIndexMeasure(data_range=1.0)
    tm.update(tchw(g1), tchw(r1))
    tm.update(tchw(g2), tchw(r2))
    assert metric.compute()["ssim"] == pytest.approx(float(tm.compute()), abs=1e-6)
    x = tchw(g1)
    assert I.ssim_frames(x, x).numpy() == pytest.approx(1.0, abs=1e-6)
    zeros, ones = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    assert float(I.ssim_frames(zeros, ones)[0]) == pytest.approx(9.999e-5, rel=1e-3)
    assert metric.protocol()["kernel_size"] == 11


# =========================================================================== LPIPS
@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random AlexNet's backbone in torchvision's state-dict format (``features.*`` keys)."""
    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None)
    state = {k: v for k, v in tv.state_dict().items() if k.startswith("features.")}
    path = tmp_path_factory.mktemp("w") / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path, state


def reference_lpips(state: dict[str, torch.Tensor]):
    """lpips.LPIPS with the same backbone, transplanted module by module (independent of key mapping)."""
    ref = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    for k in range(1, 6):
        for idx, module in getattr(ref.net, f"slice{k}")._modules.items():
            if hasattr(module, "weight"):
                module.weight.data.copy_(state[f"features.{idx}.weight"])
                module.bias.data.copy_(state[f"features.{idx}.bias"])
    return ref


def test_lpips_equals_lpips_package_with_the_same_weights(alexnet_file):
    path, state = alexnet_file
    metric = I.LPIPSAdapter(net="alex", weights_path=path)
    ref = reference_lpips(state)
    per_video = []
    for seed in (5, 6):
        gen, tgt = videos(seed, t=3, size=64)
        out = metric.update(vs(f"g{seed}", gen), vs(f"r{seed}", tgt))
        with torch.no_grad():
            frames = ref(tchw(gen) * 2 - 1, tchw(tgt) * 2 - 1).reshape(-1)
        np.testing.assert_allclose(metric.state.last_frames.numpy(), frames.numpy(), atol=1e-5)
        per_video.append(float(frames.mean()))
        assert out["lpips"] == pytest.approx(per_video[-1], abs=1e-5)
    assert metric.compute()["lpips"] == pytest.approx(np.mean(per_video), abs=1e-5)
    assert metric.protocol()["backbone"]["file"] == "alexnet-owt-7be5be79.pth"
    # torchmetrics' LPIPS implementation with the same backbone and its vendored linear layers
    from torchmetrics.functional.image.lpips import _LPIPS

    tm = _LPIPS(net="alex", pnet_rand=True).eval()
    tm.net.load_state_dict(metric.state.model.net.state_dict())
    gen, tgt = videos(5, t=3, size=64)
    with torch.no_grad():
        tm_vals = tm(tchw(gen), tchw(tgt), normalize=True).reshape(-1)
    np.testing.assert_allclose(
        I.lpips_frames(metric.state.model, tchw(gen), tchw(tgt)).numpy(), tm_vals, atol=1e-5
    )


def test_lpips_identity_symmetry_and_weight_errors(alexnet_file, tmp_path):
    path, state = alexnet_file
    model = I.build_lpips("alex", path)
    gen, tgt = videos(7, t=2, size=48)
    x, y = tchw(gen), tchw(tgt)
    assert I.lpips_frames(model, x, x).abs().max() == 0.0
    np.testing.assert_allclose(I.lpips_frames(model, x, y), I.lpips_frames(model, y, x), atol=1e-6)
    # a full torchvision state dict (classifier included) loads too; the classifier is ignored
    full = torchvision.models.alexnet(weights=None).state_dict()
    I.load_lpips_backbone(model, full)
    assert torch.equal(model.net.slice2._modules["3"].weight, full["features.3.weight"])
    with pytest.raises(I.LPIPSWeightsError, match="alexnet-owt-7be5be79.pth"):
        I.build_lpips("alex")
    with pytest.raises(I.LPIPSWeightsError, match="not found"):
        I.build_lpips("alex", tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({k.replace("features", "backbone"): v for k, v in state.items()}, wrong)
    with pytest.raises(I.LPIPSWeightsError, match="missing"):
        I.build_lpips("alex", wrong)
    torch.save({k: v[..., :1] if v.ndim == 4 else v for k, v in state.items()}, wrong)
    with pytest.raises(I.LPIPSWeightsError, match="wrong shapes"):
        I.build_lpips("alex", wrong)


def test_lpips_known_value_with_real_alexnet_weights():
    """zeros vs ones 64x64 in [0, 1] -> 0.8140 (alex v0.1); needs the real torchvision weights locally."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    candidates = [Path(os.environ.get("MMGT_WEIGHTS", "~/.cache/mmgt/weights")).expanduser(), hub]
    path = next(
        (d / "alexnet-owt-7be5be79.pth" for d in candidates if (d / "alexnet-owt-7be5be79.pth").is_file()),
        None,
    )
    if path is None:
        pytest.skip("alexnet-owt-7be5be79.pth not available locally")
    model = I.build_lpips("alex", path)
    val = I.lpips_frames(model, torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64))
    assert float(val[0]) == pytest.approx(0.8140, abs=1e-4)


# =========================================================================== inputs and policies
def test_frame_conversion_and_mismatch_policies():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    assert torch.equal(I.to_rgb(gray), I.to_rgb(np.repeat(gray[..., None], 3, axis=-1)))
    assert torch.equal(I.to_rgb(gray[..., None]), I.to_rgb(gray))
    rgba = np.concatenate([rgb, np.zeros_like(rgb[..., :1])], axis=-1)
    assert torch.equal(I.to_rgb(rgba), I.to_rgb(rgb))  # alpha dropped
    assert I.to_rgb(rgb).shape == (2, 3, 8, 8) and I.to_rgb(rgb).dtype == torch.uint8
    assert torch.equal(I.as_float(I.to_rgb(rgb)), tchw(rgb))
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        I.to_rgb(rgb.astype(np.float32))

    metric = I.SSIMAdapter()
    gen, ref = videos(8, t=5, size=24)
    with pytest.raises(MetricInputError, match="generated genA has 5 frames but reference refB has 4"):
        metric.update(vs("genA", gen), vs("refB", ref[:4]))
    with pytest.raises(MetricInputError, match=r"generated genA is \(24, 24\).*reference refB is \(16, 16\)"):
        metric.update(vs("genA", gen), vs("refB", ref[:, :16, :16]))
    truncating = I.PSNRAdapter(frame_policy="truncate")
    out = truncating.update(vs("g", gen), vs("r", ref[:4]))
    assert out["psnr"] == pytest.approx(float(I.psnr_frames(tchw(gen[:4]), tchw(ref[:4])).mean()))
    resizing = I.PSNRAdapter(size_policy="resize_generated")
    ramp = np.linspace(0, 255, 48).astype(np.uint8)
    big = np.broadcast_to(ramp[None, :, None, None], (4, 48, 48, 3)).copy()  # smooth 48x48 frames
    small = np.ascontiguousarray(big[:, ::2, ::2])  # 24x24
    assert resizing.update(vs("big", big), vs("small", small))["psnr"] > 35.0
    assert resizing.protocol()["size_policy"] == "resize_generated"
    with pytest.raises(MetricInputError, match="needs the reference"):
        truncating.update(vs("g", gen), None)
    with pytest.raises(MetricInputError, match="no video pair"):
        I.PSNRAdapter().compute()
