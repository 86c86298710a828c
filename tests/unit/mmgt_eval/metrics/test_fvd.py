"""FVD on the StyleGAN-V protocol with tiny TorchScript detectors written in the original file format.

The stand-in (:func:`write_stand_in_i3d`) is not I3D: it has the StyleGAN-V TorchScript call signature
``forward(x, rescale, resize, return_features)`` and is loaded through the real path (``torch.jit.load``).
A recording TorchScript (:class:`Recorder`) returns what it was called with, so that the frames, the dtype,
the shape and the keyword arguments of every detector call can be compared with StyleGAN-V's own runs
(../shared/fixtures/metrics_reference/stylegan_v_fvd_sampling.json; those tests skip without it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_fid.fid_score import calculate_frechet_distance
from torch import Tensor, nn

from mmgt.config import CONFIG_DIR
from mmgt_eval.metrics.base import MetricAdapter, MetricInputError, VideoSample, VideoSkipped
from mmgt_eval.metrics.fvd import (
    I3D_TORCHSCRIPT_FILE,
    ClipSamplingProtocol,
    FVDAdapter,
    FVDMetric,
    FVDProtocol,
    StyleGANVProtocol,
    clip_frame_indices,
    load_i3d_torchscript,
    write_stand_in_i3d,
)
from tests.helpers.shared import compose_config, metrics_reference_path

D = 16  # stand-in feature size: small, so that a few dozen clips give full-rank covariances


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in detector; its internal resize goes to 32 x 32 (I3D: 224) to keep the tests fast."""
    return write_stand_in_i3d(
        tmp_path_factory.mktemp("weights") / I3D_TORCHSCRIPT_FILE, feature_dim=D, seed=0, resize_to=32
    )


def make_videos(n: int, t: int, size: int, shift: float, seed: int) -> torch.Tensor:
    """(n, t, 3, size, size) uint8: smooth random motion plus noise; ``shift`` moves the distribution."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, t // 4 + 2, 4, 4, generator=g)
    v = F.interpolate(coarse, size=(t, size, size), mode="trilinear", align_corners=False)
    v = v * 180 + shift + 15 * torch.randn(v.shape, generator=g)
    return v.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 1, 3, 4).contiguous()


def _offset(name: str, length: int, n: int = 16, sf: int = 1, seed: int = 0) -> int:
    """The stylegan_v reference offset, written out: randint(0, L - n*sf + sf - 1) per video name."""
    return random.Random((seed << 32) + zlib.crc32(name.encode())).randint(0, length - n * sf + sf - 1)


# --------------------------------------------------------------------------- protocols
def test_protocol_defaults_are_stylegan_v_and_validated() -> None:
    p = FVDProtocol.from_any(None)
    assert isinstance(p, StyleGANVProtocol) and p == StyleGANVProtocol()
    assert (p.variant, p.n_frames, p.frame_stride, p.max_videos, p.covariance_ddof) == (
        "stylegan_v",
        16,
        1,
        2048,
        0,
    )
    assert p.internal_detector_call and p.short_generated_fails() and p.metric_name == "fvd2048_16f"
    assert StyleGANVProtocol(n_frames=16, frame_stride=8).metric_name == "fvd2048_128f_subsample8f"
    assert StyleGANVProtocol(n_frames=128).metric_name == "fvd2048_128f"
    assert StyleGANVProtocol(max_videos=100).metric_name == "custom"
    d = {k: v for k, v in p.as_dict().items() if k in ("variant", "n_frames", "frame_stride", "seed")}
    assert FVDProtocol.from_any(d) == p
    c = FVDProtocol.from_any({"variant": "clip_sampling", "n_frames": 128, "frame_stride": 8})
    assert isinstance(c, ClipSamplingProtocol) and c.clip_span == 127 * 8 + 1 and c.max_videos is None
    assert not c.internal_detector_call and c.as_dict()["differs_from_stylegan_v"]
    for bad in ({"reference_sampling": "middle"}, {"covariance_ddof": 2}, {"i3d": "tfhub"}, {"n_frames": 0}):
        with pytest.raises(ValueError):
            ClipSamplingProtocol(**bad)
    with pytest.raises(ValueError, match="unknown FVD protocol variant 'tf'"):
        FVDProtocol.from_any({"variant": "tf"})
    with pytest.raises(ValueError, match="stylegan_v.*clips_per_video"):
        FVDProtocol.from_any({"clips_per_video": 2})  # not a StyleGAN-V setting


def test_stylegan_v_sampling_rules_by_hand() -> None:
    """Keep iff L >= n*sf; one clip; reference offset in [0, L - n*sf + sf - 1]; generated from 0."""
    p = StyleGANVProtocol()
    assert clip_frame_indices(40, p, real=False, key="a").tolist() == [list(range(16))]
    first = p.clip_frame_indices(100, real=True, key="a")
    assert first.tolist() == [list(range(_offset("a", 100), _offset("a", 100) + 16))]
    assert np.array_equal(first, p.clip_frame_indices(100, real=True, key="a"))
    starts = {int(p.clip_frame_indices(100, True, f"v{i}")[0, 0]) for i in range(20)}
    by_seed = {int(StyleGANVProtocol(seed=s).clip_frame_indices(100, True, "a")[0, 0]) for s in range(20)}
    assert len(starts) > 5 and len(by_seed) > 5
    assert p.clip_frame_indices(15, real=True, key="a").shape == (0, 16)
    sub = StyleGANVProtocol(frame_stride=8)
    assert sub.clip_frame_indices(127, real=True, key="a").shape == (0, 16)  # span 121 fits, still dropped
    assert sub.clip_frame_indices(128, real=False, key="a").tolist() == [list(range(0, 121, 8))]
    assert max(int(sub.clip_frame_indices(128, True, f"v{i}")[0, -1]) for i in range(40)) == 127


def test_clip_sampling_is_deterministic_per_seed_and_name() -> None:
    p = ClipSamplingProtocol()
    assert clip_frame_indices(40, p, real=False, key="a").tolist() == [list(range(16))]
    first = clip_frame_indices(100, p, real=True, key="a")
    assert first.shape == (1, 16) and np.all(np.diff(first) == 1) and 0 <= first[0, 0] <= 84
    assert np.array_equal(first, clip_frame_indices(100, p, real=True, key="a"))
    starts_by_name = {int(clip_frame_indices(100, p, True, f"v{i}")[0, 0]) for i in range(20)}
    starts_by_seed = {
        int(clip_frame_indices(100, ClipSamplingProtocol(seed=s), True, "a")[0, 0]) for s in range(20)
    }
    assert len(starts_by_name) > 5 and len(starts_by_seed) > 5
    assert clip_frame_indices(15, p, real=True, key="a").shape == (0, 16)
    assert clip_frame_indices(16, p, real=True, key="a").tolist() == [list(range(16))]
    sub = ClipSamplingProtocol(
        n_frames=4, frame_stride=3, generated_sampling="non_overlapping", clips_per_video=0
    )
    assert clip_frame_indices(25, sub, real=False, key="a").tolist() == [[0, 3, 6, 9], [10, 13, 16, 19]]
    several = clip_frame_indices(30, ClipSamplingProtocol(clips_per_video=3), real=True, key="b")
    assert several.shape == (3, 16) and len(set(several[:, 0])) == 3


# --------------------------------------------------------------------------- the stand-in detector
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
    """Default protocol: one 16-frame clip per video (reference at the per-name offset, generated from frame
    0), uint8 into the detector with rescale=True, resize=True, float32 features, ÷N covariance."""
    ref_videos, gen_videos = make_videos(24, 20, 32, 0.0, seed=1), make_videos(24, 16, 32, 50.0, seed=2)
    names = [f"clip{i:02d}" for i in range(24)]
    metric = FVDMetric(detector_path, feature_dim=D, batch_size=10)
    metric.update(ref_videos, real=True, names=names)
    metric.update(gen_videos, real=False, names=names)
    value = float(metric.compute())

    det = load_i3d_torchscript(detector_path)

    def features(videos: torch.Tensor, real: bool) -> np.ndarray:
        out = []
        for video, name in zip(videos, names, strict=True):
            start = _offset(name, video.shape[0]) if real else 0
            x = video[start : start + 16].permute(1, 0, 2, 3)[None]  # (1, 3, 16, 32, 32) uint8
            with torch.no_grad():
                f = det(x, rescale=True, resize=True, return_features=True)[0]
            out.append(f.float().double().numpy())
        return np.stack(out)

    fr, fg = features(ref_videos, True), features(gen_videos, False)
    expected = calculate_frechet_distance(
        fr.mean(0), np.cov(fr, rowvar=False, bias=True), fg.mean(0), np.cov(fg, rowvar=False, bias=True)
    )
    assert expected > 1e-3
    assert value == pytest.approx(expected, rel=1e-6)
    assert metric.clip_rows(True).shape == (24, D) and metric.clip_rows(True).dtype == torch.float64
    assert metric.selected_videos(True) == (names, 0)


def test_identical_sets_zero_different_sets_positive(detector_path: Path) -> None:
    a, b = make_videos(20, 16, 32, 0.0, seed=3), make_videos(20, 16, 32, 60.0, seed=4)
    same = FVDMetric(detector_path, feature_dim=D)
    same.update(a, real=True)
    same.update(a, real=False)
    diff = FVDMetric(detector_path, feature_dim=D)
    diff.update(a, real=True)
    diff.update(b, real=False)
    zero, positive = float(same.compute()), float(diff.compute())
    assert abs(zero) < 1e-9
    assert positive > 1e4 * max(abs(zero), 1e-12) and positive > 1e-3


def test_clip_sampling_external_call_matches_internal(tmp_path: Path) -> None:
    """Our resize and [-1, 1] scaling outside the TorchScript = the stand-in's own (trilinear keeping T)."""
    det = write_stand_in_i3d(tmp_path / "i3d.pt", feature_dim=D, seed=0, resize_to=64)
    videos = make_videos(3, 16, 40, 0.0, seed=5)
    ext = FVDMetric(det, protocol=ClipSamplingProtocol(resolution=64), feature_dim=D).clip_features(videos)
    internal = ClipSamplingProtocol(detector_call="internal")
    assert torch.allclose(
        ext, FVDMetric(det, protocol=internal, feature_dim=D).clip_features(videos), atol=1e-5
    )
    default = FVDMetric(det, feature_dim=D).clip_features(videos)  # stylegan_v: the internal call
    assert torch.allclose(ext, default, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:FVD with:UserWarning")
def test_two_ranks_merged_equal_one_instance(detector_path: Path) -> None:
    ref, gen = make_videos(8, 24, 32, 0.0, seed=6), make_videos(8, 16, 32, 30.0, seed=7)
    names = [f"v{i}" for i in range(8)]
    for proto in (StyleGANVProtocol(max_videos=6), ClipSamplingProtocol(resolution=32, clips_per_video=2)):
        whole = FVDMetric(detector_path, protocol=proto, feature_dim=D)
        whole.update(ref, real=True, names=names)
        whole.update(gen, real=False, names=names)
        ranks = [FVDMetric(detector_path, protocol=proto, feature_dim=D) for _ in range(2)]
        for r, m in enumerate(ranks):  # rank r takes videos r::2 and sees them in reverse order
            m.update(ref[r::2].flip(0), real=True, names=names[r::2][::-1])
            m.update(gen[r::2], real=False, names=names[r::2])
        ranks[0].merge_state(ranks[1])
        for real in (True, False):
            assert ranks[0].selected_videos(real) == whole.selected_videos(real)
            assert torch.equal(ranks[0].clip_rows(real), whole.clip_rows(real))
        assert float(ranks[0].compute()) == pytest.approx(float(whole.compute()), rel=1e-12)
    assert whole.selected_videos(True)[0] == names[:8] and ranks[0].selected_videos(True)[1] == 0
    capped = FVDMetric(detector_path, protocol=StyleGANVProtocol(max_videos=6), feature_dim=D)
    capped.update(ref, real=True, names=names)
    assert capped.selected_videos(True) == (names[:6], 2)


def test_short_videos_by_protocol(detector_path: Path) -> None:
    """stylegan_v: short references are dropped and counted, a short generated video fails the metric;
    clip_sampling: skipped on both sides, or an error at once."""
    m = FVDMetric(detector_path, feature_dim=D)
    m.update([make_videos(1, 20, 32, 0.0, 1)[0], make_videos(1, 10, 32, 0.0, 2)[0]], real=True)
    m.update(make_videos(3, 16, 32, 0.0, 3), real=False)
    assert m.clip_rows(True).shape[0] == 1 and int(m.real_skipped) == 1 and m.clip_rows(False).shape[0] == 3
    with pytest.raises(MetricInputError, match=r"2 reference and 2 generated clips, got 1 reference.*1 / 0"):
        m.compute()
    m.update(make_videos(1, 12, 32, 0.0, 4), real=False, names=["short"])
    with pytest.raises(MetricInputError, match="1 generated video.*shorter than 16 frames; StyleGAN-V's run"):
        m.compute()
    proto = {"variant": "clip_sampling", "resolution": 32}
    lenient = FVDMetric(detector_path, protocol=proto, feature_dim=D)
    lenient.update(make_videos(2, 20, 32, 0.0, 5), real=True)
    lenient.update(make_videos(3, 16, 32, 0.0, 6), real=False)
    lenient.update(make_videos(1, 12, 32, 0.0, 7), real=False)
    assert int(lenient.fake_skipped) == 1 and np.isfinite(float(lenient.compute()))
    strict = FVDMetric(detector_path, protocol={**proto, "short_videos": "error"}, feature_dim=D)
    with pytest.raises(MetricInputError, match="short: 10 frames, shorter than the 16"):
        strict.update(make_videos(1, 10, 32, 0.0, 2), real=True, names=["short"])
    wrong_dim = FVDMetric(detector_path, feature_dim=400)
    with pytest.raises(MetricInputError, match=r"features of shape \(1, 16\), expected \(N, 400\)"):
        wrong_dim.update(make_videos(1, 16, 32, 0.0, 3), real=True)
    with pytest.raises(MetricInputError, match=r"\(T, 3, H, W\)"):
        m.update([torch.zeros(16, 4, 8, 8, dtype=torch.uint8)], real=True)


def test_adapter_from_config(detector_path: Path) -> None:
    """conf/eval/metrics/fvd.yaml instantiates the adapter as the runner does (registry key -> path)."""
    cfg = OmegaConf.load(CONFIG_DIR / "eval" / "metrics" / "fvd.yaml")
    assert cfg.weights == "i3d_styleganv" and cfg.protocol.variant == "stylegan_v"
    del cfg["weights"]
    cfg.weights_path = str(detector_path)
    cfg.feature_dim = D
    adapter = instantiate(cfg)
    assert isinstance(adapter, FVDAdapter) and isinstance(adapter, MetricAdapter)
    assert adapter.metric.protocol == StyleGANVProtocol() and adapter.variant == "stylegan_v"

    def sample(name: str, t: int, seed: int) -> VideoSample:
        frames = make_videos(1, t, 32, 0.0, seed)[0].permute(0, 2, 3, 1).numpy()
        return VideoSample(name, frames, fps=25.0, audio=None)

    for i in range(3):
        assert adapter.update(sample(f"v{i}", 16, i), sample(f"v{i}", 30, 10 + i)) == {}
    with pytest.raises(VideoSkipped, match="reference video has 12 frames, fewer than 16"):
        adapter.update(sample("v3", 16, 3), sample("v3", 12, 13))
    with pytest.warns(UserWarning, match="fewer clips than dimensions"):
        result = adapter.compute()
    assert result["fvd_n_real_clips"] == 3 and result["fvd_n_generated_clips"] == 4
    assert result["fvd_skipped_real"] == 1 and result["fvd_skipped_generated"] == 0
    assert result["fvd_capped_real"] == result["fvd_capped_generated"] == 0
    assert np.isfinite(result["fvd"]) and result["fvd"] > 0
    with pytest.raises(VideoSkipped, match="generated video has 12 frames, fewer than 16 .StyleGAN-V fails"):
        adapter.update(sample("v4", 12, 4), sample("v4", 30, 14))
    with pytest.raises(MetricInputError, match="StyleGAN-V's run fails"):
        adapter.compute()
    proto = adapter.protocol()
    assert proto["variant"] == proto["default_variant"] == "stylegan_v"
    assert proto["n_frames"] == 16 and proto["max_videos"] == 2048 and proto["covariance_ddof"] == 0
    assert "fvd2048_16f" in proto["reference_implementation"] and "rescale=True" in proto["preprocessing"]
    assert proto["weights"] == {
        "file": I3D_TORCHSCRIPT_FILE,
        "sha256": hashlib.sha256(detector_path.read_bytes()).hexdigest(),
    }
    json.dumps(proto)
    assert adapter.metric_states() == [adapter.metric]


# --------------------------------------------------------------------------- StyleGAN-V's own runs
class Recorder(nn.Module):
    """A TorchScript 'detector' that returns how it was called: per clip [rescale, resize, return_features,
    input is uint8, H, W, video number, frame index of each of the T frames]. Frames encode (video, frame
    index) in their pixels as in the fixture: pixel (0, 0) = (i // 256, i % 256, 0), (0, 1) = (v // 256,
    v % 256, 0)."""

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        b = x.shape[0]
        v = x.to(torch.float32)
        frame = v[:, 0, :, 0, 0] * 256 + v[:, 1, :, 0, 0]  # (B, T)
        video = v[:, 0, :1, 0, 1] * 256 + v[:, 1, :1, 0, 1]  # (B, 1)
        flags = [float(rescale), float(resize), float(return_features), float(x.dtype == torch.uint8)]
        meta = torch.tensor(flags + [float(x.shape[3]), float(x.shape[4])]).expand(b, 6)
        return torch.cat([meta, video, frame], dim=1)


@pytest.fixture(scope="module")
def recorder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recorder") / "recorder.pt"
    torch.jit.script(Recorder()).save(str(path))
    return path


@pytest.fixture(scope="module")
def reference_rules() -> dict:
    return json.loads(metrics_reference_path("stylegan_v_fvd_sampling.json").read_text())


def coded_video(v: int, length: int, size: int = 8) -> np.ndarray:
    """(length, size, size, 3) uint8 whose pixels encode the video number and each frame's index."""
    frames = np.zeros((length, size, size, 3), np.uint8)
    i = np.arange(length)
    frames[:, 0, 0, 0], frames[:, 0, 0, 1] = i // 256, i % 256
    frames[:, 0, 1, 0], frames[:, 0, 1, 1] = v // 256, v % 256
    return frames


class Forced(random.Random):
    """Records the bounds of ``randint``, returns the lowest or highest (as the fixture's harness did)."""

    def __init__(self, highest: bool) -> None:
        super().__init__(0)
        self.highest, self.bounds = highest, []

    def randint(self, a: int, b: int) -> int:
        self.bounds.append((a, b))
        return b if self.highest else a


METRICS = {"fvd2048_16f": (16, 1), "fvd2048_128f": (128, 1), "fvd2048_128f_subsample8f": (16, 8)}


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_kept_videos_and_frame_indices_equal_stylegan_v(reference_rules: dict, metric: str) -> None:
    n, sf = METRICS[metric]
    table = reference_rules["per_length"][metric]
    assert (table["num_frames"], table["subsample_factor"]) == (n, sf)
    p = StyleGANVProtocol(n_frames=n, frame_stride=sf)
    assert p.min_video_frames(True) == p.min_video_frames(False) == table["min_video_frames_kept"]
    for length, row in table["rows"].items():
        length = int(length)
        low, high = Forced(highest=False), Forced(highest=True)
        at_min = p.clip_frame_indices(length, True, "v", rng=low)
        at_max = p.clip_frame_indices(length, True, "v", rng=high)
        assert (at_min.shape[0] == 1) is row["real_kept"], length
        gen = p.clip_frame_indices(length, False, "v")
        if not row["real_kept"]:
            assert at_min.shape == (0, n) and low.bounds == []
            assert "generated_error" in row and gen.shape == (0, n)
            continue
        assert low.bounds == [(row["real_offset_min"], row["real_offset_max"])]
        assert row["real_offset_max"] - row["real_offset_min"] + 1 == row["real_n_possible_offsets"]
        assert at_min[0].tolist() == row["real_indices_at_offset_min"]
        assert at_max[0].tolist() == row["real_indices_at_offset_max"]
        assert gen[0].tolist() == row["generated_indices"]
        drawn = p.clip_frame_indices(length, True, f"v{length}")[0]  # the default generator: within bounds
        assert row["real_offset_min"] <= drawn[0] <= row["real_offset_max"]


def test_offsets_reproduce_stylegan_v_dataloader_draws(reference_rules: dict) -> None:
    """Given StyleGAN-V's DataLoader seeding (worker w: random.Random(base_seed + w), batch b on worker
    b % 3, items of a batch in order), our randint call reproduces its observed offsets."""
    for metric, check in reference_rules["seed_check"].items():
        p = StyleGANVProtocol(*METRICS[metric])
        lengths = {r["video"]: r["n_video_frames"] for r in reference_rules["runs"][metric]["real_clips"]}
        workers = [random.Random(check["dataloader_base_seed"] + w) for w in range(3)]
        offsets = []
        for k, video in enumerate(check["videos"]):
            rng = workers[(k // check["batch_size"]) % 3]
            offsets.append(int(p.clip_frame_indices(lengths[video], True, video, rng=rng)[0, 0]))
        assert offsets == check["observed_offsets"], metric


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_detector_calls_and_clips_equal_stylegan_v_runs(
    reference_rules: dict, recorder_path: Path, metric: str
) -> None:
    """The adapter on 9 videos of the fixture's lengths, with a recording detector: which videos are used,
    the frames of every clip, and the call (uint8 [B, 3, T, 8, 8], rescale/resize/return_features True)."""
    n, sf = METRICS[metric]
    run = reference_rules["runs"][metric]
    lengths = reference_rules["lengths"]
    adapter = FVDAdapter(recorder_path, protocol={"n_frames": n, "frame_stride": sf}, feature_dim=7 + n)
    for v, length in enumerate(lengths):
        name = f"len{length:04d}"
        sample = VideoSample(name, coded_video(v, length), 25.0, None)
        with contextlib.suppress(VideoSkipped):  # the short ones
            adapter.update(sample, sample)
    m = adapter.metric
    kept = [c["video"] for c in run["real_clips"]]
    assert m.selected_videos(True) == (kept, 0)
    rows = m.clip_rows(True).numpy()
    for row, clip in zip(rows, run["real_clips"], strict=True):
        call = run["detector_call_real"]
        assert row[:6].tolist() == [1, 1, 1, call["dtype"] == "torch.uint8", *call["shape"][3:]]
        length = clip["n_video_frames"]
        assert row[6] == lengths.index(length)
        expected = m.protocol.clip_frame_indices(length, True, clip["video"])[0]
        assert row[7:].tolist() == expected.tolist()
        assert expected[0] + sf * (n - 1) <= length - 1
    gen = m.clip_rows(False).numpy()  # generated clips: the same videos, frames 0, sf, ..., (n-1) sf
    assert [lengths[int(r[6])] for r in gen] == [c["n_video_frames"] for c in run["generated_clips"]]
    assert all(r[7:].tolist() == list(range(0, n * sf, sf)) for r in gen)
    assert all(c["offset"] == 0 for c in run["generated_clips"])
    assert int(m.fake_skipped) == len(run["generated_set_with_short_videos"]["short_videos"])
    with pytest.raises(MetricInputError, match="StyleGAN-V's run fails"):  # the short ones fail the metric
        adapter.compute()


@pytest.mark.filterwarnings("ignore:FVD with:UserWarning")
def test_cap_takes_the_first_2048_in_sorted_name_order(reference_rules: dict, recorder_path: Path) -> None:
    check = reference_rules["cap_check"]
    adapter = FVDAdapter(recorder_path, feature_dim=7 + 16)
    for v in range(check["n_videos"]):
        sample = VideoSample(f"v{v}", coded_video(v, 16), 25.0, None)
        adapter.update(sample, sample)
    result = adapter.compute()
    for real, side in ((True, "real"), (False, "generated")):
        used, left_out = adapter.metric.selected_videos(real)
        assert len(used) == check[side]["n_clips"] == check[side]["n_distinct_videos"] and left_out == 2
        assert sorted(set(f"v{v}" for v in range(check["n_videos"])) - set(used)) == check[side]["excluded"]
        assert used[:5] == check[side]["first_five"]
    assert result["fvd_n_real_clips"] == result["fvd_n_generated_clips"] == 2048
    assert result["fvd_capped_real"] == result["fvd_capped_generated"] == 2
    assert result["fvd"] == pytest.approx(0.0, abs=1e-6)  # the same clips on both sides


def test_project_protocol_files_map_to_stylegan_v_metrics(reference_rules: dict, tmp_path: Path) -> None:
    """conf/eval/protocol/<name>.yaml + conf/eval/metrics/fvd.yaml give the StyleGAN-V metric the fixture
    names for that protocol."""
    from mmgt_eval.cli import metric_node

    for name in ("default", "stylegan_v_128f_subsample8f", "smoke"):
        entry = reference_rules["project_protocols"][name]
        cfg = compose_config(
            "eval", ["generated=x", f"protocol={name}", "metrics=[fvd]"], output_dir=tmp_path
        )
        node = OmegaConf.to_container(metric_node(cfg, "fvd").protocol, resolve=True)
        proto = FVDProtocol.from_any(node)
        assert isinstance(proto, StyleGANVProtocol)
        assert entry["reference_metric"].startswith(proto.metric_name)
