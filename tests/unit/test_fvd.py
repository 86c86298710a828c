"""FVD on the StyleGAN-V protocol with a tiny TorchScript detector written in the original file format.

The stand-in (:func:`write_stand_in_i3d`) is not I3D: it has the StyleGAN-V TorchScript call signature
``forward(x, rescale, resize, return_features)`` and is loaded through the real path (``torch.jit.load``).
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_fid.fid_score import calculate_frechet_distance

from mmgt.config import CONFIG_DIR
from mmgt_eval.metrics.base import MetricInputError, VideoMetric, VideoSample, VideoSkipped
from mmgt_eval.metrics.fvd import (
    FVD,
    I3D_TORCHSCRIPT_FILE,
    FVDAdapter,
    FVDProtocol,
    clip_frame_indices,
    load_i3d_torchscript,
    write_stand_in_i3d,
)

D = 16  # stand-in feature size: small, so that a few dozen clips give full-rank covariances


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stand_in_i3d(
        tmp_path_factory.mktemp("weights") / I3D_TORCHSCRIPT_FILE, feature_dim=D, seed=0
    )


def make_videos(n: int, t: int, size: int, shift: float, seed: int) -> torch.Tensor:
    """(n, t, 3, size, size) uint8: smooth random motion plus noise; ``shift`` moves the distribution."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, t // 4 + 2, 4, 4, generator=g)
    v = F.interpolate(coarse, size=(t, size, size), mode="trilinear", align_corners=False)
    v = v * 180 + shift + 15 * torch.randn(v.shape, generator=g)
    return v.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 1, 3, 4).contiguous()


def test_protocol_defaults_are_stylegan_v_and_validated() -> None:
    p = FVDProtocol()
    assert (p.n_frames, p.frame_stride, p.resolution, p.clips_per_video, p.covariance_ddof) == (
        16,
        1,
        224,
        1,
        0,
    )
    assert (p.reference_sampling, p.generated_sampling) == ("random", "start")
    assert p.i3d == "stylegan-v-torchscript" and p.detector_call == "external"
    assert FVDProtocol.from_any(p.as_dict()) == p
    assert FVDProtocol.from_any({"n_frames": 128, "frame_stride": 8}).clip_span == 127 * 8 + 1
    for bad in ({"reference_sampling": "middle"}, {"covariance_ddof": 2}, {"i3d": "tfhub"}, {"n_frames": 0}):
        with pytest.raises(ValueError):
            FVDProtocol(**bad)


def test_clip_sampling_is_deterministic_per_seed_and_name() -> None:
    p = FVDProtocol()
    assert clip_frame_indices(40, p, real=False, key="a").tolist() == [list(range(16))]
    first = clip_frame_indices(100, p, real=True, key="a")
    assert first.shape == (1, 16) and np.all(np.diff(first) == 1) and 0 <= first[0, 0] <= 84
    assert np.array_equal(first, clip_frame_indices(100, p, real=True, key="a"))
    starts_by_name = {int(clip_frame_indices(100, p, True, f"v{i}")[0, 0]) for i in range(20)}
    starts_by_seed = {int(clip_frame_indices(100, FVDProtocol(seed=s), True, "a")[0, 0]) for s in range(20)}
    assert len(starts_by_name) > 5 and len(starts_by_seed) > 5
    assert clip_frame_indices(15, p, real=True, key="a").shape == (0, 16)
    assert clip_frame_indices(16, p, real=True, key="a").tolist() == [list(range(16))]
    sub = FVDProtocol(n_frames=4, frame_stride=3, generated_sampling="non_overlapping", clips_per_video=0)
    assert clip_frame_indices(25, sub, real=False, key="a").tolist() == [[0, 3, 6, 9], [10, 13, 16, 19]]
    several = clip_frame_indices(30, FVDProtocol(clips_per_video=3), real=True, key="b")
    assert several.shape == (3, 16) and len(set(several[:, 0])) == 3


def test_detector_loads_with_torchscript_signature(detector_path: Path, tmp_path: Path) -> None:
    det = load_i3d_torchscript(detector_path)
    assert isinstance(det, torch.jit.ScriptModule)
    x = torch.zeros(2, 3, 16, 224, 224)
    assert det(x, rescale=False, resize=False, return_features=True).shape == (2, D)
    probs = det(x, rescale=False, resize=False, return_features=False)
    assert torch.allclose(probs.sum(1), torch.ones(2))
    with pytest.raises(FileNotFoundError, match="dropbox.com"):
        load_i3d_torchscript(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(MetricInputError, match="junk.pt: not a TorchScript"):
        load_i3d_torchscript(tmp_path / "junk.pt")


def test_fvd_follows_the_formula_on_the_stylegan_v_protocol(detector_path: Path) -> None:
    """Default protocol: one 16-frame clip per video (reference at a seeded random offset, generated from
    frame 0), squash-resize to 224, [-1, 1], detector features, ÷N covariance, Fréchet distance."""
    ref_videos, gen_videos = make_videos(24, 20, 32, 0.0, seed=1), make_videos(24, 16, 32, 50.0, seed=2)
    names = [f"clip{i:02d}" for i in range(24)]
    metric = FVD(detector_path, feature_dim=D, batch_size=10)
    metric.update(ref_videos, real=True, names=names)
    metric.update(gen_videos, real=False, names=names)
    value = float(metric.compute())

    det = load_i3d_torchscript(detector_path)

    def features(videos: torch.Tensor, real: bool) -> np.ndarray:
        out = []
        for video, name in zip(videos, names, strict=True):
            rng = np.random.default_rng([0, zlib.crc32(name.encode())])  # seed 0, keyed by the video name
            start = int(rng.choice(video.shape[0] - 15)) if real else 0
            frames = video[start : start + 16].float() / 255  # (16, 3, 32, 32)
            resized = [F.interpolate(f[None], size=(224, 224), mode="bilinear")[0] for f in frames]
            frames = torch.stack(resized)
            x = (frames * 2 - 1).permute(1, 0, 2, 3)[None]  # (1, 3, 16, 224, 224)
            with torch.no_grad():
                out.append(det(x, rescale=False, resize=False, return_features=True)[0].double().numpy())
        return np.stack(out)

    fr, fg = features(ref_videos, True), features(gen_videos, False)
    expected = calculate_frechet_distance(
        fr.mean(0), np.cov(fr, rowvar=False, bias=True), fg.mean(0), np.cov(fg, rowvar=False, bias=True)
    )
    assert expected > 1e-3
    assert value == pytest.approx(expected, rel=1e-5)
    assert int(metric.real_n) == int(metric.fake_n) == 24
    assert metric.real_cov_sum.dtype == torch.float64


def test_identical_sets_zero_different_sets_positive(detector_path: Path) -> None:
    proto = {"resolution": 64}  # the stand-in pools globally; a smaller side keeps the test fast
    a, b = make_videos(20, 16, 32, 0.0, seed=3), make_videos(20, 16, 32, 60.0, seed=4)
    same = FVD(detector_path, protocol=proto, feature_dim=D)
    same.update(a, real=True)
    same.update(a, real=False)
    diff = FVD(detector_path, protocol=proto, feature_dim=D)
    diff.update(a, real=True)
    diff.update(b, real=False)
    zero, positive = float(same.compute()), float(diff.compute())
    assert abs(zero) < 1e-9
    assert positive > 1e4 * max(abs(zero), 1e-12) and positive > 1e-3


def test_internal_detector_call_matches_external(detector_path: Path) -> None:
    """uint8 with rescale=True, resize=True (inside the TorchScript) = our resize and [-1, 1] scaling."""
    videos = make_videos(3, 16, 40, 0.0, seed=5)
    ext = FVD(detector_path, feature_dim=D).clip_features(videos)
    internal = FVD(detector_path, protocol={"detector_call": "internal"}, feature_dim=D).clip_features(videos)
    assert torch.allclose(ext, internal, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:FVD with:UserWarning")
def test_two_ranks_merged_equal_one_instance(detector_path: Path) -> None:
    proto = {"resolution": 64, "reference_sampling": "random"}
    ref, gen = make_videos(8, 24, 32, 0.0, seed=6), make_videos(8, 16, 32, 30.0, seed=7)
    names = [f"v{i}" for i in range(8)]
    whole = FVD(detector_path, protocol=proto, feature_dim=D)
    whole.update(ref, real=True, names=names)
    whole.update(gen, real=False, names=names)
    ranks = [FVD(detector_path, protocol=proto, feature_dim=D) for _ in range(2)]
    for r, m in enumerate(ranks):  # rank r takes videos r::2 and sees them in reverse order
        m.update(ref[r::2].flip(0), real=True, names=names[r::2][::-1])
        m.update(gen[r::2], real=False, names=names[r::2])
    ranks[0].merge_state(ranks[1])
    for name in ranks[0]._defaults:
        assert torch.allclose(getattr(ranks[0], name), getattr(whole, name), rtol=1e-9, atol=1e-9), name
    assert float(ranks[0].compute()) == pytest.approx(float(whole.compute()), rel=1e-9)


def test_short_videos_skip_or_error_and_too_few_clips(detector_path: Path) -> None:
    proto = {"resolution": 32}
    m = FVD(detector_path, protocol=proto, feature_dim=D)
    m.update([make_videos(1, 20, 32, 0.0, 1)[0], make_videos(1, 10, 32, 0.0, 2)[0]], real=True)
    m.update(make_videos(3, 16, 32, 0.0, 3), real=False)
    assert int(m.real_n) == 1 and int(m.real_skipped) == 1 and int(m.fake_n) == 3
    with pytest.raises(MetricInputError, match=r"2 reference and 2 generated clips, got 1 reference.*1 / 0"):
        m.compute()
    strict = FVD(detector_path, protocol={**proto, "short_videos": "error"}, feature_dim=D)
    with pytest.raises(MetricInputError, match="short: 10 frames, shorter than the 16-frame"):
        strict.update(make_videos(1, 10, 32, 0.0, 2), real=True, names=["short"])
    wrong_dim = FVD(detector_path, protocol=proto, feature_dim=400)
    with pytest.raises(MetricInputError, match=r"features of shape \(1, 16\), expected \(N, 400\)"):
        wrong_dim.update(make_videos(1, 16, 32, 0.0, 3), real=True)
    with pytest.raises(MetricInputError, match=r"\(T, 3, H, W\)"):
        m.update([torch.zeros(16, 4, 8, 8, dtype=torch.uint8)], real=True)


def test_adapter_from_config(detector_path: Path) -> None:
    """conf/eval/metric/fvd.yaml instantiates the adapter as the runner does (registry key -> path)."""
    cfg = OmegaConf.load(CONFIG_DIR / "eval" / "metric" / "fvd.yaml")
    assert cfg.weights == "i3d_styleganv"
    del cfg["weights"]
    cfg.weights_path = str(detector_path)
    cfg.feature_dim = D
    cfg.protocol.resolution = 32
    adapter = instantiate(cfg)
    assert isinstance(adapter, FVDAdapter) and isinstance(adapter, VideoMetric)
    assert adapter.metric.protocol == FVDProtocol(resolution=32)

    def sample(name: str, t: int, seed: int) -> VideoSample:
        frames = make_videos(1, t, 32, 0.0, seed)[0].permute(0, 2, 3, 1).numpy()
        return VideoSample(name, frames, fps=25.0, audio=None)

    for i in range(3):
        assert adapter.update(sample(f"v{i}", 16, i), sample(f"v{i}", 30, 10 + i)) == {}
    with pytest.raises(VideoSkipped, match="generated video has 12 frames, fewer than the 16-frame clip"):
        adapter.update(sample("v3", 12, 3), sample("v3", 30, 13))
    with pytest.warns(UserWarning, match="fewer clips than dimensions"):
        result = adapter.compute()
    assert result["fvd_n_real_clips"] == 4 and result["fvd_n_generated_clips"] == 3
    assert result["fvd_skipped_generated"] == 1 and result["fvd_skipped_real"] == 0
    assert np.isfinite(result["fvd"]) and result["fvd"] > 0
    proto = adapter.protocol()
    assert proto["n_frames"] == 16 and proto["reference_sampling"] == "random"
    assert proto["covariance_ddof"] == 0 and proto["resolution"] == 32
    assert proto["weights"] == {
        "file": I3D_TORCHSCRIPT_FILE,
        "sha256": hashlib.sha256(detector_path.read_bytes()).hexdigest(),
    }
    assert adapter.metric_states() == [adapter.metric]
