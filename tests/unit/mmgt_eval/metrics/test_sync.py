"""Sync-C / Sync-D: SyncNet layout and loading, the weight-free post-processing values of
metrics-reference.md §9, face tracking / cropping, alignment bookkeeping with a time-encoding oracle, and
the pipeline end to end on ../shared/samples with random SyncNet weights written in the original format."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from mmgt.config import CONFIG_DIR
from mmgt.io import read_video
from mmgt_eval.face import (
    FaceTrack,
    FaceTrackConfig,
    S3FDDetector,
    S3FDNet,
    _padded_crop,
    crop_track,
    face_tracks,
    make_detector,
    scene_cuts,
    track_shot,
)
from mmgt_eval.metrics.base import MetricInputError, VideoSample, VideoSkipped
from mmgt_eval.metrics.sync import SyncAdapter, SyncMetric, resample_indices, score_video
from mmgt_eval.syncnet import (
    SyncNet,
    audio_to_int16,
    audio_windows,
    crops_to_tensor,
    lip_windows,
    load_syncnet,
    mfcc_features,
    num_windows,
    save_syncnet_weights,
    sync_scores,
)
from tests.helpers.shared import samples_path

HDTF = "talking_face_hdtf_aoc_25fps.mp4"
MOORE = "talking_face_moore4_30fps.mp4"
FAST_FACE = {"min_track": 40}  # fast tests use <= 100 frames; the reference default needs > 100


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hdtf() -> VideoSample:
    v = read_video(samples_path(HDTF), max_frames=100)
    return VideoSample(HDTF, v.frames, v.fps, v.audio)


@pytest.fixture(scope="module")
def moore() -> VideoSample:
    v = read_video(samples_path(MOORE), max_frames=100)
    return VideoSample(MOORE, v.frames, v.fps, v.audio)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = SyncNet()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so loading them is observable
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return save_syncnet_weights(net, tmp_path_factory.mktemp("w") / "syncnet_v2.model")


# --------------------------------------------------------------------------- network
# Key -> shape table written from metrics-reference.md §4.4 (SyncNetModel.S), not from our module.
_CONV_AUD = {0: (64, 1, 3, 3), 4: (192, 64, 3, 3), 8: (384, 192, 3, 3), 11: (256, 384, 3, 3),
             14: (256, 256, 3, 3), 18: (512, 256, 5, 4)}  # fmt: skip
_CONV_LIP = {0: (96, 3, 5, 7, 7), 4: (256, 96, 1, 5, 5), 8: (256, 256, 1, 3, 3), 11: (256, 256, 1, 3, 3),
             14: (256, 256, 1, 3, 3), 18: (512, 256, 1, 6, 6)}  # fmt: skip


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for tower, convs in (("netcnnaud", _CONV_AUD), ("netcnnlip", _CONV_LIP)):
        for i, shape in convs.items():
            out[f"{tower}.{i}.weight"] = shape
            out[f"{tower}.{i}.bias"] = (shape[0],)
            for k in ("weight", "bias", "running_mean", "running_var"):
                out[f"{tower}.{i + 1}.{k}"] = (shape[0],)
    for head in ("netfcaud", "netfclip"):
        out[f"{head}.0.weight"], out[f"{head}.0.bias"] = (512, 512), (512,)
        for k in ("weight", "bias", "running_mean", "running_var"):
            out[f"{head}.1.{k}"] = (512,)
        out[f"{head}.3.weight"], out[f"{head}.3.bias"] = (1024, 512), (1024,)
    return out


def test_weight_file_has_original_names_and_shapes(random_weights: Path) -> None:
    state = torch.load(random_weights, weights_only=True)
    assert isinstance(state, dict)
    assert {k: tuple(v.shape) for k, v in state.items()} == _expected_shapes()
    n_trainable = sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var")))
    assert n_trainable == 13_631_616  # metrics-reference.md §4.4


def test_load_roundtrip_and_embedding_shapes(random_weights: Path) -> None:
    net = load_syncnet(random_weights)
    state = torch.load(random_weights, weights_only=True)
    own = net.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert not net.training
    net.train()
    assert not net.training  # frozen: BatchNorm statistics are part of the model

    shapes: dict[str, tuple[int, ...]] = {}
    for tower, idx in (("netcnnaud", (2, 7, 17, 20)), ("netcnnlip", (3, 7, 17, 20))):
        for i in idx:
            getattr(net, tower)[i].register_forward_hook(
                lambda _m, _i, out, key=f"{tower}.{i}": shapes.__setitem__(key, tuple(out.shape[1:]))
            )
    lip, aud = torch.rand(2, 3, 5, 224, 224) * 255, torch.randn(2, 1, 13, 20) * 10
    with torch.inference_mode():
        v, a = net(lip, aud)
        assert v.shape == a.shape == (2, 1024)
        assert shapes == {  # metrics-reference.md §4.4 tables
            "netcnnaud.2": (64, 13, 20),
            "netcnnaud.7": (192, 11, 9),
            "netcnnaud.17": (256, 5, 4),
            "netcnnaud.20": (512, 1, 1),
            "netcnnlip.3": (96, 1, 54, 54),
            "netcnnlip.7": (256, 1, 13, 13),
            "netcnnlip.17": (256, 1, 6, 6),
            "netcnnlip.20": (512, 1, 1, 1),
        }
        # eval-mode BatchNorm: a window's embedding does not depend on its batch
        assert torch.allclose(net.forward_aud(aud[1:]), a[1:], atol=1e-4)
    with pytest.raises(ValueError, match="lip windows"):
        net.forward_lip(torch.zeros(1, 3, 4, 224, 224))


def test_load_errors(tmp_path: Path, random_weights: Path) -> None:
    with pytest.raises(FileNotFoundError, match="syncnet_v2.model"):
        load_syncnet(tmp_path / "absent.model")
    state = torch.load(random_weights, weights_only=True)
    # a file that keeps num_batches_tracked (newer torch) also loads
    full = {**state, "netcnnaud.1.num_batches_tracked": torch.tensor(0)}
    torch.save(full, tmp_path / "full.model")
    load_syncnet(tmp_path / "full.model")
    missing = dict(state)
    del missing["netfclip.3.weight"]
    torch.save(missing, tmp_path / "missing.model")
    with pytest.raises(ValueError, match="missing"):
        load_syncnet(tmp_path / "missing.model")
    bad = {**state, "netfcaud.3.weight": torch.zeros(512, 512)}
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(ValueError, match="netfcaud.3.weight"):
        load_syncnet(tmp_path / "bad.model")
    torch.save(SyncNet(), tmp_path / "module.model")  # a pickled module is not the original format
    with pytest.raises(ValueError, match="not a torch-pickled"):
        load_syncnet(tmp_path / "module.model")


# --------------------------------------------------------------------------- §9 weight-free values
def test_scores_identity_shift_and_constant() -> None:
    rng = np.random.default_rng(0)
    t, d = 100, 1024
    v = rng.standard_normal((t + 10, d)).astype(np.float32)
    same = sync_scores(v[:t], v[:t], vshift=15)
    assert same["offset"] == 0
    assert same["min_dist"] == pytest.approx(32 * 1e-6, rel=1e-3)  # ||eps * 1||, D = 1024
    assert same["dists"].shape == (t, 31) and same["mean_dists"].shape == (31,)
    assert sync_scores(v[:t], v[3 : t + 3])["offset"] == 3  # a_t = v_{t+3}: audio leads by 3
    assert sync_scores(v[4 : t + 4], v[:t])["offset"] == -4  # a_t = v_{t-4}
    const = np.full((t, d), 0.5, dtype=np.float32)
    c = sync_scores(const, const, vshift=15)
    assert c["offset"] == 0
    assert c["conf"] == pytest.approx(8 * 16.0 / t, rel=1e-4)  # 8 ||v|| / T = 1.28


def test_scores_match_per_row_reference_loop() -> None:
    """The vectorised distances equal the per-row pairwise-distance loop of calc_pdist (§4.2)."""
    rng = np.random.default_rng(1)
    v = torch.from_numpy(rng.standard_normal((40, 64)).astype(np.float32))
    a = torch.from_numpy(rng.standard_normal((40, 64)).astype(np.float32))
    vshift = 10
    padded = F.pad(a, (0, 0, vshift, vshift))
    rows = [
        F.pairwise_distance(v[[i]].repeat(2 * vshift + 1, 1), padded[i : i + 2 * vshift + 1])
        for i in range(40)
    ]
    mdist = torch.stack(rows, 1).mean(1)
    out = sync_scores(v, a, vshift=vshift)
    np.testing.assert_array_equal(out["mean_dists"], mdist.numpy())  # same float32 rounding
    assert out["offset"] == vshift - int(torch.argmin(mdist))
    assert out["conf"] == float(torch.median(mdist) - mdist.min())
    assert out["min_dist"] == float(mdist.min())
    with pytest.raises(ValueError, match="equal shape"):
        sync_scores(v, a[:-1])


def test_window_count_and_mfcc() -> None:
    assert num_windows(100, 64_000) == 95
    assert num_windows(100, 32_000) == 45  # audio-limited: min(100, 50) - 5
    assert num_windows(5, 64_000) == 0
    rng = np.random.default_rng(2)
    for n, frames in ((16_000, 99), (32_000, 199), (64_000, 399)):
        assert mfcc_features(rng.integers(-3000, 3000, n).astype(np.int16)).shape == (13, frames)
    pcm = rng.integers(-20_000, 20_000, 16_000).astype(np.int16)
    raw = mfcc_features(pcm)
    scaled = mfcc_features(pcm / 32768.0)
    np.testing.assert_allclose(raw[1:], scaled[1:], atol=1e-4)  # only c0 (log energy) differs ...
    np.testing.assert_allclose(raw[0] - scaled[0], 2 * np.log(32768), atol=1e-3)  # ... by 20.794
    np.testing.assert_array_equal(audio_to_int16(pcm / 32768.0), pcm)  # float -> int16 is exact for PCM
    crops = rng.integers(0, 255, (12, 224, 224, 3), dtype=np.uint8)
    video = crops_to_tensor(crops)  # (3, T, 224, 224) BGR float, the reference's imtv[0]
    assert torch.equal(
        video[:, 3], torch.from_numpy(crops[3, ..., ::-1].transpose(2, 0, 1).astype(np.float32))
    )
    assert torch.equal(lip_windows(crops, 2, 6), torch.stack([video[:, i : i + 5] for i in range(2, 6)]))
    w = audio_windows(torch.from_numpy(raw), 2, 4)
    assert w.shape == (2, 1, 13, 20) and torch.equal(w[1, 0], torch.from_numpy(raw[:, 12:32]))


# --------------------------------------------------------------------------- metric states
def test_metric_streaming_merge_and_skips() -> None:
    rng = np.random.default_rng(3)
    c, d, o = rng.uniform(0, 8, 6), rng.uniform(5, 10, 6), rng.integers(-15, 16, 6)
    whole, a, b = SyncMetric(), SyncMetric(), SyncMetric()
    whole.update(torch.tensor(c), torch.tensor(d), torch.tensor(o))
    for i in range(6):
        (a if i < 4 else b).update(float(c[i]), float(d[i]), int(o[i]))
    a.update(skipped="no_face")
    b.update(skipped="no_audio")
    b.update(skipped="no_face")
    a.merge_state(b)
    got, ref = a.compute(), whole.compute()
    for k in ("sync_c", "sync_d", "sync_offset_abs_mean", "sync_n_scored"):
        assert float(got[k]) == pytest.approx(float(ref[k]), rel=1e-12)
    assert float(got["sync_c"]) == pytest.approx(c.mean()) and float(got["sync_d"]) == pytest.approx(d.mean())
    assert (int(got["sync_skipped_no_face"]), int(got["sync_skipped_no_audio"])) == (2, 1)
    np.testing.assert_allclose(np.sort(a.per_video()["sync_c"]), np.sort(c))

    empty = SyncMetric()
    empty.update(skipped="no_face")
    out = empty.compute()
    assert "sync_c" not in out and int(out["sync_skipped_no_face"]) == 1
    assert all(torch.isfinite(v) for v in out.values())
    with pytest.raises(ValueError, match="skipped must be"):
        empty.update(skipped="bored")


# --------------------------------------------------------------------------- face tracks
def test_track_shot_links_gaps_and_filters() -> None:
    cfg = FaceTrackConfig(min_track=5, min_face_size=20, num_failed_det=3)
    box_a, box_b = [10.0, 10.0, 60.0, 60.0], [200.0, 10.0, 240.0, 50.0]  # b: 40 px, a: 50 px
    faces = []
    for t in range(12):
        frame = [] if t in (4, 5) else [{"frame": t, "bbox": list(box_a)}]  # a 2-frame gap (<= 3)
        frame.append({"frame": t, "bbox": list(box_b)})  # a second face in every frame
        faces.append(frame)
    tracks = track_shot(faces, cfg)
    assert len(tracks) == 2
    ta = next(t for t in tracks if t.boxes[0, 0] == 10.0)
    assert (ta.start, ta.stop, len(ta)) == (0, 12, 12)  # gap bridged and interpolated
    assert not ta.detected[4] and ta.detected[3]
    np.testing.assert_allclose(ta.boxes[4], box_a)
    assert len(track_shot([[{"frame": t, "bbox": list(box_a)}] for t in range(5)], cfg)) == 0  # 5 is not > 5
    small = FaceTrackConfig(min_track=5, min_face_size=50)  # mean side must EXCEED it
    assert len(track_shot([[{"frame": t, "bbox": list(box_a)}] for t in range(8)], small)) == 0
    gap = FaceTrackConfig(min_track=2, min_face_size=1, num_failed_det=3)
    split = [[{"frame": t, "bbox": list(box_a)}] if t < 4 or t > 8 else [] for t in range(12)]
    assert sorted((t.start, t.stop) for t in track_shot(split, gap)) == [(0, 4), (9, 12)]  # gap of 5 > 3


def test_crop_geometry_matches_reference_formula() -> None:
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
    frames = np.repeat(frame[None], 20, axis=0)
    box = np.array([120.0, 100.0, 280.0, 260.0])  # s = 80, centre (200, 180): side 2.8 s = 224, no resize
    track = FaceTrack(np.arange(3, 18), np.repeat(box[None], 15, axis=0), np.ones(15, dtype=bool))
    crops = crop_track(frames, track, FaceTrackConfig())
    assert crops.shape == (15, 224, 224, 3)
    # rows [y - s, y + 1.8 s) = [100, 324), cols [x - 1.4 s, x + 1.4 s) = [88, 312); medfilt's zero padding
    # shrinks s, x, y at the track ends, so only the middle frames are exact
    np.testing.assert_array_equal(crops[7], frame[100:324, 88:312])
    low = FaceTrack(np.arange(0, 15), np.repeat([[300.0, 300.0, 400.0, 400.0]], 15, axis=0))
    assert (crop_track(frames, low, FaceTrackConfig())[7, -5:] == 110).all()  # padded below the frame


def test_padded_crop_equals_pad_then_slice() -> None:
    rng = np.random.default_rng(6)
    frame = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    for _ in range(300):
        pad = int(rng.integers(0, 30))
        r0, r1, c0, c1 = (int(v) for v in rng.integers(-20, 120, 4))
        ref = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=110)[r0:r1, c0:c1]
        np.testing.assert_array_equal(_padded_crop(frame, pad, slice(r0, r1), slice(c0, c1), 110), ref)


def test_scene_cuts_and_resampling() -> None:
    a = np.zeros((30, 64, 64, 3), dtype=np.uint8)
    b = np.full((30, 64, 64, 3), 200, dtype=np.uint8)
    assert scene_cuts(np.concatenate([a, b])) == [(0, 30), (30, 60)]
    assert scene_cuts(np.concatenate([a, b]), threshold=None) == [(0, 60)]
    np.testing.assert_array_equal(resample_indices(10, 25.0), np.arange(10))
    idx = resample_indices(30, 30.0)
    assert len(idx) == 25 and idx[0] == 0 and idx[-1] == 29 and (np.diff(idx) >= 1).all()
    assert len(resample_indices(100, 30000 / 1001)) == 83


def test_s3fd_loads_original_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = S3FDNet()
    state = net.state_dict()
    assert state["vgg.0.weight"].shape == (64, 3, 3, 3) and state["vgg.33.weight"].shape == (1024, 1024, 1, 1)
    assert state["L2Norm3_3.weight"][0] == 10 and state["L2Norm5_3.weight"].shape == (512,)
    assert state["conf.0.weight"].shape == (4, 256, 3, 3) and state["loc.5.weight"].shape == (4, 256, 3, 3)
    torch.save(state, tmp_path / "sfd_face.pth")
    det = make_detector(FaceTrackConfig(detector="s3fd", s3fd_weights=str(tmp_path / "sfd_face.pth")))
    assert isinstance(det, S3FDDetector)
    boxes = det(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and np.isfinite(boxes).all()
    with pytest.raises(ValueError, match="s3fd_weights"):
        make_detector(FaceTrackConfig(detector="s3fd"))
    with pytest.raises(FileNotFoundError, match="sfd_face.pth"):
        make_detector(FaceTrackConfig(detector="s3fd", s3fd_weights=str(tmp_path / "absent.pth")))


@pytest.mark.parametrize("name", [HDTF, MOORE])
def test_face_found_and_cropped_in_sample_videos(name: str, hdtf: VideoSample, moore: VideoSample) -> None:
    sample = hdtf if name == HDTF else moore
    frames = sample.frames[resample_indices(len(sample.frames), sample.fps)]
    result = face_tracks(frames, FaceTrackConfig(**FAST_FACE))
    assert result.detection_rate >= 0.95
    assert result.track_coverage >= 0.95
    crops = crop_track(frames, result.longest(), FaceTrackConfig(**FAST_FACE))
    assert crops.shape == (len(result.longest()), 224, 224, 3) and crops.std() > 10


class _TwoFaces:
    """Detector stub: face A in every frame, face B from frame 10 on (two tracks of different length)."""

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.t = getattr(self, "t", -1) + 1
        boxes = [[20, 20, 120, 120, 0.99]] + ([[140, 20, 240, 120, 0.98]] if self.t >= 10 else [])
        return np.asarray(boxes, dtype=np.float64)


class _PixelMeans(nn.Module):
    """Cheap deterministic towers: per-frame pixel means / per-coefficient MFCC means (both 8-d)."""

    def forward_lip(self, x: Tensor) -> Tensor:
        return F.pad(x.mean((1, 3, 4)) / 255, (0, 3))

    def forward_aud(self, x: Tensor) -> Tensor:
        return x[:, 0, :8].mean(2) / 100


def test_score_video_aggregates_tracks() -> None:
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 255, (48, 256, 256, 3), dtype=np.uint8)
    audio = rng.uniform(-0.5, 0.5, 48 * 640).astype(np.float32)
    cfg = FaceTrackConfig(min_track=20, min_face_size=50, scene_threshold=None)
    mean = score_video(_PixelMeans(), frames, 25.0, audio, cfg, detector=_TwoFaces(), aggregation="mean")
    assert mean.ok and [(t["start"], t["stop"]) for t in mean.tracks] == [(0, 48), (10, 48)]
    assert mean.tracks[0]["n_windows"] == 43 and mean.tracks[1]["n_windows"] == 33
    assert mean.sync_c == pytest.approx(np.mean([t["sync_c"] for t in mean.tracks]))
    assert mean.sync_d == pytest.approx(np.mean([t["sync_d"] for t in mean.tracks]))
    assert mean.offset == mean.tracks[0]["offset"] and mean.n_windows == 76
    longest = score_video(_PixelMeans(), frames, 25.0, audio, cfg, detector=_TwoFaces())
    assert longest.tracks == mean.tracks[:1] and longest.sync_c == mean.tracks[0]["sync_c"]


# --------------------------------------------------------------------------- alignment bookkeeping
class TimeOracle(nn.Module):
    """Stands in for SyncNet's towers: embeds a window as the one-hot of its ABSOLUTE time index.

    Video windows are looked up (exactly) among the 5-frame crop windows of the video's face tracks;
    audio windows by nearest neighbour among the MFCC windows of the original, zero-padded audio. So the
    pipeline's window / track / audio-cut bookkeeping alone decides which offset wins.
    """

    PAD = 20  # frames of silence around the original audio in the lookup table

    def __init__(
        self,
        frames: np.ndarray,
        audio: np.ndarray,
        cfg: FaceTrackConfig,
        detector: CachedDetector,
        dim: int = 512,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.video: dict[bytes, int] = {}
        for track in face_tracks(frames, cfg, detector).tracks:
            clip = crops_to_tensor(crop_track(frames, track, cfg))
            for k in range(len(track) - 4):
                self.video[self._key(clip[:, k : k + 5])] = int(track.frames[k])
        pcm = np.concatenate([np.zeros(self.PAD * 640, np.int16), audio_to_int16(audio)])
        pcm = np.concatenate([pcm, np.zeros(self.PAD * 640, np.int16)])
        mfcc = torch.from_numpy(mfcc_features(pcm))
        n = num_windows(len(pcm) // 640, len(pcm))
        self.audio = audio_windows(mfcc, 0, n).flatten(1).double()
        self.audio_time = torch.arange(n) - self.PAD

    @staticmethod
    def _key(window: Tensor) -> bytes:
        return window[:, :, ::4, ::4].to(torch.uint8).numpy().tobytes()

    def _onehot(self, t: Tensor) -> Tensor:
        return F.one_hot(t + self.PAD, self.dim).float()

    def forward_lip(self, x: Tensor) -> Tensor:
        return self._onehot(torch.tensor([self.video[self._key(w)] for w in x]))

    def forward_aud(self, x: Tensor) -> Tensor:
        nearest = torch.cdist(x.flatten(1).double(), self.audio).argmin(1)
        return self._onehot(self.audio_time[nearest])


def shift_audio(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio leading the video by k frames (a_t = original at t + k); negative k delays it."""
    n = abs(k) * 640
    pad = np.zeros(n, dtype=audio.dtype)
    return np.concatenate([audio[n:], pad]) if k >= 0 else np.concatenate([pad, audio[: len(audio) - n]])


class CachedDetector:
    """The real mediapipe detector, run once per distinct frame (oracle tests re-detect the same frames)."""

    def __init__(self, cfg: FaceTrackConfig) -> None:
        self.detector = make_detector(cfg)
        self.cache: dict[bytes, np.ndarray] = {}

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        key = frame.tobytes()
        if key not in self.cache:
            self.cache[key] = self.detector(frame)
        return self.cache[key]


def _oracle_offsets(sample: VideoSample, shifts: tuple[int, ...], cfg: FaceTrackConfig) -> dict[int, tuple]:
    """Reported offset and first scored track for the video with its audio shifted by each k."""
    detector = CachedDetector(cfg)
    frames25 = sample.frames[resample_indices(len(sample.frames), sample.fps)]
    oracle = TimeOracle(frames25, sample.audio, cfg, detector)
    out = {}
    for k in shifts:
        r = score_video(
            oracle, sample.frames, sample.fps, shift_audio(sample.audio, k), cfg, detector=detector
        )
        assert r.ok, r.detail
        out[k] = (r.offset, r.tracks[0])
    return out


def test_oracle_offset_moves_with_audio_shift(hdtf: VideoSample) -> None:
    cfg = FaceTrackConfig(**FAST_FACE)
    sample = VideoSample("hdtf60", hdtf.frames[:60], hdtf.fps, hdtf.audio[: 60 * 640])
    got = _oracle_offsets(sample, (-4, 0, 3, 7), cfg)
    assert {k: offset for k, (offset, _) in got.items()} == {-4: -4, 0: 0, 3: 3, 7: 7}


def test_oracle_offset_with_late_track_start(hdtf: VideoSample) -> None:
    """No face in the first 12 frames: the track (and its audio cut) starts at frame 12."""
    frames = hdtf.frames[:60].copy()
    frames[:12] = 90
    sample = VideoSample("late", frames, hdtf.fps, hdtf.audio[: 60 * 640])
    got = _oracle_offsets(sample, (0, -5), FaceTrackConfig(**FAST_FACE))
    assert {k: (offset, track["start"]) for k, (offset, track) in got.items()} == {0: (0, 12), -5: (-5, 12)}


def test_oracle_offset_after_fps_resampling(moore: VideoSample) -> None:
    sample = VideoSample("moore60", moore.frames[:60], moore.fps, moore.audio)
    got = _oracle_offsets(sample, (0, 5), FaceTrackConfig(**FAST_FACE))
    assert {k: offset for k, (offset, _) in got.items()} == {0: 0, 5: 5}


# --------------------------------------------------------------------------- adapter, end to end
def test_adapter_end_to_end_random_weights(
    random_weights: Path, hdtf: VideoSample, moore: VideoSample
) -> None:
    """1.6 s of each sample, whole pipeline (the 100-frame face test and the slow test cover longer)."""
    adapter = SyncAdapter(random_weights, face={"min_track": 30}, device="cpu")
    for full in (hdtf, moore):
        n = int(round(1.6 * full.fps))
        sample = VideoSample(full.name, full.frames[:n], full.fps, full.audio[:25_600])
        scores = adapter.update(sample, None)
        assert set(scores) == {"sync_c", "sync_d", "sync_offset"}
        assert np.isfinite([scores["sync_c"], scores["sync_d"]]).all()
        assert scores["sync_d"] > 0 and scores["sync_c"] >= 0 and -15 <= scores["sync_offset"] <= 15
    out = adapter.compute()
    assert out["sync_n_scored"] == 2 and np.isfinite(list(out.values())).all()
    proto = adapter.protocol()
    assert (
        proto["vshift"] == 15 and proto["face"]["min_track"] == 30 and len(proto["weights"]["sha256"]) == 64
    )


def test_adapter_declared_skips(random_weights: Path, hdtf: VideoSample) -> None:
    adapter = SyncAdapter(random_weights, face={"min_track": 3}, device="cpu")
    with pytest.raises(VideoSkipped, match="no_audio"):
        adapter.update(VideoSample("mute", hdtf.frames[:10], 25.0, None), None)
    noise = np.random.default_rng(0).integers(0, 255, (10, 128, 128, 3), dtype=np.uint8)
    with pytest.raises(VideoSkipped, match="no_face"):
        adapter.update(VideoSample("noise", noise, 25.0, np.zeros(6400, np.float32)), None)
    with pytest.raises(VideoSkipped, match="too_short"):
        adapter.update(VideoSample("short", hdtf.frames[:9], 25.0, hdtf.audio[: 4 * 640]), None)
    with pytest.raises(MetricInputError, match="mono"):
        adapter.update(VideoSample("stereo", hdtf.frames[:9], 25.0, np.zeros((2, 5760), np.float32)), None)
    out = adapter.compute()
    assert out == {
        "sync_n_scored": 0.0,
        "sync_skipped_no_audio": 1.0,
        "sync_skipped_no_face": 1.0,
        "sync_skipped_too_short": 1.0,
    }


def test_metric_config_instantiates_with_reference_defaults(random_weights: Path) -> None:
    node = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "eval" / "metrics" / "sync.yaml"))
    assert node.pop("weights") == "syncnet_v2"  # the runner resolves the registry name to weights_path
    node["weights_path"] = str(random_weights)
    adapter = hydra.utils.instantiate(node, device="cpu")
    assert isinstance(adapter, SyncAdapter) and adapter.face == FaceTrackConfig()
    assert (adapter.vshift, adapter.aggregation) == (15, "longest")


def test_adapter_missing_weights_say_what_to_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMGT_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"syncnet_v2\.model(.|\n)*robots\.ox\.ac\.uk"):
        SyncAdapter(device="cpu")
    with pytest.raises(FileNotFoundError, match=r"sfd_face\.pth"):
        SyncAdapter(face={"detector": "s3fd"}, net=SyncNet(), device="cpu")


@pytest.mark.slow
def test_full_sample_videos_with_reference_defaults(random_weights: Path) -> None:
    """Whole sample videos (8 s and 10 s), reference defaults (min_track 100, min_face_size 100)."""
    adapter = SyncAdapter(random_weights, device="cpu")
    for name in (HDTF, MOORE):
        v = read_video(samples_path(name))
        r = adapter.score(VideoSample(name, v.frames, v.fps, v.audio))
        assert r.ok and r.detection_rate >= 0.95 and r.track_coverage >= 0.95
        assert r.n_windows >= r.n_frames - 10  # one track over (nearly) the whole video
        assert np.isfinite([r.sync_c, r.sync_d]).all() and abs(r.offset) <= 15
