"""Gesture metrics (mmgt_eval.metrics .onset, .bas, .diversity, .kinetic, .fgd; mmgt_eval.pose_autoencoder).

Weight-free values from metrics-reference.md §5 / §9; librosa onsets recorded from librosa 0.10.2.post1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmgt_eval.frechet import frechet_distance_from_features
from mmgt_eval.metrics.bas import BAS_PRESETS, BASAdapter, beat_align_score, beat_alignment_clip, motion_beats
from mmgt_eval.metrics.base import MetricInputError, VideoSample, VideoSkipped
from mmgt_eval.metrics.diversity import (
    DiversityAdapter,
    bailando_calc_diversity,
    bailando_calculate_avg_distance,
    bailando_normalize,
)
from mmgt_eval.metrics.diversity_sets import (
    diversity_kinetic_l2,
    diversity_latent_l1,
    diversity_pairwise_l2,
    diversity_within_l1,
)
from mmgt_eval.metrics.fgd import FGDAdapter, FGDMetric, frechet_gesture_distance
from mmgt_eval.metrics.keypoints import JOINT_SETS, pose_xy
from mmgt_eval.metrics.kinetic import bailando_kinetic_features, bailando_positions, kinetic_features
from mmgt_eval.metrics.onset import onset_detect, onset_strength, peak_pick
from mmgt_eval.pose_autoencoder import (
    PoseAutoencoderError,
    encode_windows,
    load_pose_autoencoder,
    pose_windows,
    reconstruction_loss,
    save_pose_autoencoder,
    train_pose_autoencoder,
)
from mmgt_prep.toy import speaker_style, synthesize_audio, synthesize_motion
from tests.helpers.poses import make_pose
from tests.helpers.shared import samples_path

FPS = 25
SR = 16000

# librosa 0.10.2.post1 ``onset.onset_detect(y=y, sr=16000)`` (frames), recorded with librosa installed.
LIBROSA_TOY_ONSETS = [3, 10, 11, 17, 18, 24, 25, 31, 32, 53, 54, 60, 61, 66, 67, 72, 73, 80, 81, 87, 88,
                      105, 106, 114, 115, 122, 130, 144, 145, 153, 154, 160, 168, 169, 177, 178]  # fmt: skip
LIBROSA_NOISE_ONSETS = [3, 15, 22, 27, 34, 48, 49, 67]
LIBROSA_JFK_ONSETS = [
    3, 4, 12, 13, 23, 24, 34, 39, 44, 45, 57, 62, 63, 67, 104, 105, 114, 121,
    127, 128, 133, 171, 172, 173, 179, 180, 183, 188, 189, 195, 196, 200, 204, 205, 211, 212,
    220, 221, 226, 257, 258, 264, 265, 272, 273, 280, 281, 290, 291, 297, 306, 310, 312, 317,
    318, 323, 331, 332, 336, 337, 341,
]  # fmt: skip


def toy_clip(speaker: int, seed: int, seconds: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(keypoints (T, 134, 3), audio (N,)) of one toy clip, without rendering."""
    style = speaker_style(0, speaker)
    rng = np.random.default_rng([seed, speaker])
    audio, events = synthesize_audio(style, seconds, rng)
    return synthesize_motion(style, events, events["n_frames"], rng)["keypoints"], audio


def sample(
    name: str, kps: np.ndarray | None, audio: np.ndarray | None = None, fps: float = FPS
) -> VideoSample:
    t = 4 if kps is None else kps.shape[0]
    return VideoSample(name, np.zeros((t, 8, 8, 3), np.uint8), fps, audio, kps)


# =========================================================================== onsets
def test_onsets_match_librosa_on_toy_speech_noise_and_silence():
    audio = synthesize_audio(speaker_style(0, 0), 6.0, np.random.default_rng(0))[0]
    assert onset_detect(audio, units="frames").tolist() == LIBROSA_TOY_ONSETS
    noise = np.random.default_rng(0).normal(size=SR * 3).astype(np.float32) * 0.1
    assert onset_detect(noise, units="frames").tolist() == LIBROSA_NOISE_ONSETS
    assert onset_detect(np.zeros(SR, np.float32)).size == 0
    times = onset_detect(audio)
    np.testing.assert_allclose(times, np.array(LIBROSA_TOY_ONSETS) * 512 / SR)
    env = onset_strength(audio)
    assert env.dtype == np.float32 and env.shape == (1 + audio.size // 512,)
    assert float(env.sum()) == pytest.approx(432.34375, rel=1e-6)  # librosa onset_strength sum


def test_onsets_match_librosa_on_sample_speech():
    from mmgt.io import read_audio

    audio = read_audio(samples_path("speech_en_jfk_11s.flac"))
    assert onset_detect(audio, units="frames").tolist() == LIBROSA_JFK_ONSETS


def test_onsets_match_installed_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(3)
    for y in (rng.normal(size=20000).astype(np.float32), toy_clip(1, 0, 3.0)[1]):
        np.testing.assert_array_equal(onset_detect(y, units="frames"), librosa.onset.onset_detect(y=y, sr=SR))


def test_peak_pick_greedy_rules():
    """Expected peaks recorded from librosa 0.10.2 ``util.peak_pick`` (300 random cases also agreed)."""
    x = np.array([0.0, 1.0, 0.2, 0.9, 1.0, 0.1, 0.0, 0.0])
    kw = dict(pre_max=1, pre_avg=1, post_avg=2, delta=0.1)
    assert peak_pick(x, post_max=1, wait=1, **kw).tolist() == [1, 3]  # max over [n-1, n+1) only
    assert peak_pick(x, post_max=2, wait=1, **kw).tolist() == [1, 4]
    assert peak_pick(x, post_max=2, wait=5, **kw).tolist() == [1]
    assert peak_pick(np.zeros(0), 1, 1, 1, 1, 0.1, 0).size == 0


# =========================================================================== BAS
def test_bas_closed_forms():
    assert beat_align_score([0.5], [0.4], sigma=0.1) == pytest.approx(0.60653, abs=1e-5)
    assert beat_align_score([1.0, 2.0], [1.0, 2.2], sigma=0.1) == pytest.approx(0.56767, abs=1e-5)
    assert beat_align_score([1.0, 2.0], [0.3, 1.0, 1.7, 2.0, 2.5], sigma=0.1) == 1.0  # B_m contains B_a
    a, m = [1.0, 1.1, 3.0], [1.05, 2.0]
    assert beat_align_score(a, m, 0.1) != pytest.approx(beat_align_score(m, a, 0.1))  # directional
    assert beat_align_score([1.0], [], 0.1) == 0.0
    with pytest.raises(ValueError, match="audio beat"):
        beat_align_score([], [1.0], 0.1)


def _clicks_and_motion(shift: int, n_frames: int = 125, period: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Noise bursts every ``period`` frames from frame 10; all joints stop at frames 10 + shift + k P."""
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 1e-4, n_frames * 640).astype(np.float32)
    for f in range(10, n_frames - 5, period):
        audio[f * 640 : f * 640 + 800] += (rng.normal(0, 0.5, 800) * np.exp(-np.arange(800) / 200)).astype(
            np.float32
        )
    kps = make_pose(n_frames, seed=0, motion=0.0)
    t = np.arange(n_frames) - 10 - shift
    kps[:, :, 0] += (0.3 / n_frames * (t - period / (2 * np.pi) * np.sin(2 * np.pi * t / period)))[:, None]
    return kps.astype(np.float32), audio


def test_bas_synthetic_alignment_is_max_when_aligned_and_drops_with_shift():
    scores = []
    for shift in (0, 3, 5, 10):
        kps, audio = _clicks_and_motion(shift)
        res = beat_alignment_clip(kps, audio, FPS, BAS_PRESETS["bailando"])
        assert res.n_audio_beats >= 6 and res.n_motion_beats >= 5
        scores.append(res.score)
    assert scores[0] > 0.85
    assert scores[0] > scores[1] > scores[2] > scores[3]
    # Bailando's motion beats: forward-difference speed index t (transition t -> t+1) at t / fps
    kps, audio = _clicks_and_motion(0)
    beats = np.round(motion_beats(kps, FPS, BAS_PRESETS["bailando"]) * FPS).astype(int)
    stops = range(10, 125, 20)
    assert all(min(abs(b - f), abs(b + 1 - f)) <= 1 for b, f in zip(beats, stops, strict=True))
    # motion beats exactly on the detected onsets score the maximum, 1
    onsets = onset_detect(audio)
    assert beat_align_score(onsets, onsets, BAS_PRESETS["bailando"].sigma_seconds(FPS)) == 1.0


def test_bas_presets_on_toy_clip_and_skips():
    kps, audio = toy_clip(0, 1)
    for preset in BAS_PRESETS.values():
        res = beat_alignment_clip(kps, audio, FPS, preset)
        assert res.score is not None and 0.0 < res.score <= 1.0, preset.name
    silent = beat_alignment_clip(kps, np.zeros_like(audio), FPS)
    assert silent.score is None and silent.skip_reason == "no audio onsets"
    # pure translation changes no arm angle: HA2G finds no motion beats and skips; Bailando scores 0 if static
    moving, clicks = _clicks_and_motion(0)
    assert beat_alignment_clip(moving, clicks, FPS, BAS_PRESETS["ha2g"]).skip_reason == "no motion beats"
    static = make_pose(60, seed=0, motion=0.0)
    res = beat_alignment_clip(static, clicks[: 60 * 640], FPS, BAS_PRESETS["bailando"])
    assert res.score == 0.0 and res.n_motion_beats == 0
    assert beat_alignment_clip(static[:3], clicks, FPS).skip_reason.startswith("only 3")


def test_bas_adapter_weighted_mean_reference_and_skips():
    metric = BASAdapter(preset="ha2g")
    clips = [toy_clip(s, 2) for s in range(3)]
    expected_num = expected_den = 0.0
    for i, (kps, audio) in enumerate(clips):
        out = metric.update(sample(f"v{i}", kps, audio), sample(f"v{i}", kps, None))
        res = beat_alignment_clip(kps, audio, FPS, BAS_PRESETS["ha2g"])
        assert out["bas"] == pytest.approx(res.score) and out["bas_reference"] == pytest.approx(res.score)
        expected_num += res.score * res.n_audio_beats  # HA2G weights clips by onset count
        expected_den += res.n_audio_beats
    with pytest.raises(VideoSkipped, match="no keypoints"):
        metric.update(sample("nokp", None, clips[0][1]), None)
    with pytest.raises(VideoSkipped, match="no audio"):
        metric.update(sample("noaudio", clips[0][0], None), sample("noaudio", clips[0][0], None))
    out = metric.compute()
    assert out["bas"] == pytest.approx(expected_num / expected_den)
    assert out["bas_reference"] == pytest.approx(out["bas"]) and out["bas_clips"] == 3
    proto = metric.protocol()
    assert proto["config"]["name"] == "ha2g" and "audio beats" in proto["direction"]
    json.dumps(proto)
    assert BASAdapter(sigma=0.2).config.sigma == 0.2
    with pytest.raises(ValueError, match="unknown BAS preset"):
        BASAdapter(preset="nope")


# =========================================================================== diversity
def _kinetic_reference_loop(p: np.ndarray, ft: float, w: int = 2) -> np.ndarray:
    """Bailando utils/features (fairmotion) kinetic features, loop form, 2-D (horizontal x, vertical y)."""
    n, J = p.shape[:2]
    feats = []
    for j in range(J):
        kh = kv = ee = 0.0
        for i in range(1, n):
            v, c = np.zeros(2), 0
            for k in range(-w, w + 1):
                if i + k - 1 < 0 or i + k >= n:
                    continue
                v += p[i + k, j] - p[i + k - 1, j]
                c += 1
            kh += (v[0] / (c * ft)) ** 2
            kv += (v[1] / (c * ft)) ** 2
            a, c = np.zeros(2), 0
            for k in range(-w, w + 1):
                if i + k - 1 < 0 or i + k + 1 >= n:
                    continue
                a += ((p[i + k + 1, j] - p[i + k, j]) / ft - (p[i + k, j] - p[i + k - 1, j]) / ft) / ft
                c += 1
            ee += np.linalg.norm(a / c)
        feats += [kh / (n - 1), kv / (n - 1), ee / (n - 1)]
    return np.array(feats)


@pytest.mark.parametrize("n_frames", [3, 4, 12])
def test_kinetic_features_match_reference_loop(n_frames):
    kps = make_pose(n_frames, seed=n_frames, motion=0.03)
    p = pose_xy(kps, "upper_body")
    np.testing.assert_allclose(kinetic_features(kps, FPS, "upper_body"), _kinetic_reference_loop(p, 1 / FPS))


def test_diversity_closed_forms_and_identical_inputs():
    two = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity_pairwise_l2(two) == pytest.approx(5.0)
    assert diversity_kinetic_l2(two) == pytest.approx(5.0)
    assert diversity_within_l1([np.array([[0.0], [2.0]])]) == pytest.approx(1.0)
    same = np.tile(np.arange(6.0), (5, 1))
    assert diversity_pairwise_l2(same) == 0.0
    assert diversity_kinetic_l2(same, same) == 0.0
    assert diversity_latent_l1(same) == 0.0
    assert diversity_within_l1([np.ones((7, 4))]) == 0.0
    # GT normalisation: z-score with the reference mean / std (ddof 0) + 1e-10
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(6, 4)), rng.normal(2.0, 3.0, size=(9, 4))
    z = (gen - ref.mean(0)) / (ref.std(0) + 1e-10)
    manual = np.mean([np.linalg.norm(z[i] - z[j]) for i in range(6) for j in range(i + 1, 6)])
    assert diversity_kinetic_l2(gen, ref) == pytest.approx(manual)
    with pytest.raises(MetricInputError):
        diversity_pairwise_l2(two[:1])


def test_latent_l1_follows_ha2g_pairing():
    rng = np.random.default_rng(1)
    for n, n_pairs in ((40, 500), (40, 25)):
        f = rng.normal(size=(n, 8))
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(7))[:n_pairs].numpy()
        manual = np.mean(np.abs(f[:n_pairs] - f[idx]).sum(axis=1))
        assert diversity_latent_l1(f, n_pairs=n_pairs, seed=7) == pytest.approx(manual)


def test_diversity_adapters_streaming_equals_functional():
    clips = [toy_clip(s, 3, 3.0)[0] for s in range(4)]
    refs = [toy_clip(s, 4, 3.0)[0] for s in range(4)]
    feats = np.stack([kinetic_features(k, FPS) for k in clips])
    rfeats = np.stack([kinetic_features(k, FPS) for k in refs])
    results = {}
    definitions = ("bailando", "bailando_calc_diversity", "kinetic_l2_corrected", "pairwise_l2_corrected")
    for definition in (*definitions, "within_l1"):
        metric = DiversityAdapter(definition=definition)
        for i, (k, r) in enumerate(zip(clips, refs, strict=True)):
            metric.update(sample(f"c{i}", k), sample(f"c{i}", r))
        results[definition] = metric.compute()
        proto = metric.protocol()
        assert proto["definition"] == proto["variant"] == metric.variant == definition
        assert proto["comparable_with_published_tables"] is (definition == "bailando")
        json.dumps(proto)
    assert results["kinetic_l2_corrected"]["diversity"] == pytest.approx(diversity_kinetic_l2(feats, rfeats))
    assert results["kinetic_l2_corrected"]["diversity_reference"] == pytest.approx(
        diversity_kinetic_l2(rfeats, rfeats)
    )
    assert results["pairwise_l2_corrected"]["diversity"] == pytest.approx(diversity_pairwise_l2(feats))
    bfeats = np.stack([bailando_kinetic_features(bailando_positions(k)) for k in clips]).astype(np.float32)
    brefs = np.stack([bailando_kinetic_features(bailando_positions(k)) for k in refs]).astype(np.float32)
    ref_n, gen_n = bailando_normalize(brefs, bfeats)
    assert results["bailando"]["diversity"] == bailando_calculate_avg_distance(gen_n)
    assert results["bailando"]["diversity_reference"] == bailando_calculate_avg_distance(ref_n)
    assert results["bailando_calc_diversity"]["diversity"] == bailando_calc_diversity(bfeats)
    # the quirks change the value: Bailando's features are not the corrected ones
    assert results["bailando"]["diversity"] != pytest.approx(results["kinetic_l2_corrected"]["diversity"])
    seqs = [pose_xy(k).reshape(k.shape[0], -1) for k in clips]
    assert results["within_l1"]["diversity"] == pytest.approx(diversity_within_l1(seqs))
    # identical generated clips -> 0; no keypoints -> declared skip; kinetic_l2 without reference -> error
    metric = DiversityAdapter()
    for i in range(3):
        metric.update(sample(f"s{i}", clips[0]), sample(f"s{i}", refs[i]))
    assert metric.compute()["diversity"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(VideoSkipped, match="no keypoints"):
        metric.update(sample("x", None), None)
    lonely = DiversityAdapter()
    lonely.update(sample("a", clips[0]), None)
    lonely.update(sample("b", clips[1]), None)
    with pytest.raises(MetricInputError, match="reference"):
        lonely.compute()
    with pytest.raises(ValueError, match="unknown diversity definition"):
        DiversityAdapter(definition="l3")
    with pytest.raises(ValueError, match="now 'kinetic_l2_corrected'"):
        DiversityAdapter(definition="kinetic_l2")
    assert DiversityAdapter().variant == "bailando"  # the default: comparable with published tables


# =========================================================================== FGD
@pytest.fixture(scope="module")
def toy_sets() -> dict[str, list[np.ndarray]]:
    """Toy keypoints: training clips, two disjoint sets of the same speakers, and other speakers."""
    return {
        "train": [toy_clip(s, 10 + k)[0] for s in range(4) for k in range(2)],
        "a": [toy_clip(s, 20)[0] for s in range(4)],
        "b": [toy_clip(s, 30)[0] for s in range(4)],
        "other": [toy_clip(s, 20)[0] for s in range(4, 8)],
    }


@pytest.fixture(scope="module")
def autoencoder(toy_sets, tmp_path_factory):
    torch.set_num_threads(1)
    windows = np.concatenate([pose_windows(k, 32, stride=4) for k in toy_sets["train"]])
    model, info = train_pose_autoencoder(windows, epochs=40, latent_dim=16, seed=0)  # ~4 s CPU
    path = save_pose_autoencoder(model, tmp_path_factory.mktemp("ae") / "fgd_autoencoder.pt", info)
    return model, info, path, windows


def test_autoencoder_training_reduces_loss_and_roundtrips(autoencoder, tmp_path):
    model, info, path, windows = autoencoder
    assert info["epochs"] == 40 and info["final_loss"] < 0.6 * info["initial_loss"], info
    loaded, meta = load_pose_autoencoder(path)
    assert (
        meta["window"] == 32
        and meta["in_dim"] == 108
        and meta["joints"] == list(JOINT_SETS["upper_body_hands"])
    )
    np.testing.assert_array_equal(encode_windows(loaded, windows[:5]), encode_windows(model, windows[:5]))
    assert reconstruction_loss(loaded, windows) == pytest.approx(info["final_loss"], rel=1e-5)
    # tampered state file / missing sidecar / missing file: clear errors naming the file
    bad = tmp_path / "fgd_autoencoder.pt"
    bad.write_bytes(path.read_bytes()[:-8] + b"00000000")
    (tmp_path / "fgd_autoencoder.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(PoseAutoencoderError, match="sha256"):
        load_pose_autoencoder(bad)
    (tmp_path / "fgd_autoencoder.json").unlink()
    with pytest.raises(PoseAutoencoderError, match="config JSON"):
        load_pose_autoencoder(bad)
    with pytest.raises(PoseAutoencoderError, match="not found"):
        FGDAdapter(weights_path=tmp_path / "missing.pt")
    with pytest.raises(PoseAutoencoderError, match="weights_path"):
        FGDAdapter()


def test_fgd_identity_separation_and_streaming(toy_sets, autoencoder):
    model, _, _, _ = autoencoder

    def feats(clips, freeze=False):
        wins = [pose_windows(np.repeat(k[:1], len(k), 0) if freeze else k, 32, stride=8) for k in clips]
        return encode_windows(model, np.concatenate(wins))

    fa, fb = feats(toy_sets["a"]), feats(toy_sets["b"])
    assert frechet_gesture_distance(fa, fa) == pytest.approx(0.0, abs=1e-8)
    same = frechet_gesture_distance(fa, fb)
    other = frechet_gesture_distance(feats(toy_sets["other"]), fb)
    frozen = frechet_gesture_distance(feats(toy_sets["a"], freeze=True), fb)
    assert same < other and same < frozen, (same, other, frozen)
    # streaming float64 sums == one-shot Fréchet of the features
    metric = FGDMetric(model)
    for k in toy_sets["a"]:
        metric.update(pose_windows(k, 32, stride=8), real=False)
    for k in toy_sets["b"]:
        metric.update(pose_windows(k, 32, stride=8), real=True)
    assert float(metric.compute()) == pytest.approx(
        frechet_distance_from_features(fa, fb), rel=1e-6, abs=1e-9
    )


def test_fgd_adapter(toy_sets, autoencoder):
    _, _, path, _ = autoencoder
    metric = FGDAdapter(weights_path=path)
    for i, k in enumerate(toy_sets["a"]):
        assert metric.update(sample(f"v{i}", k), sample(f"v{i}", k)) == {}
    out = metric.compute()
    assert out["fgd"] == pytest.approx(0.0, abs=1e-5)  # identical sets: 0 up to sqrtm round-off
    assert out["fgd_windows_generated"] == out["fgd_windows_reference"] == 4 * (150 // 32)
    with pytest.raises(VideoSkipped, match="32-frame window"):
        metric.update(sample("short", toy_sets["a"][0][:20]), sample("short", toy_sets["a"][0][:20]))
    with pytest.raises(VideoSkipped, match="no keypoints"):
        metric.update(sample("nokp", toy_sets["a"][0]), sample("nokp", None))
    proto = metric.protocol()
    assert proto["weights"]["sha256"] == json.loads(path.with_suffix(".json").read_text())["sha256"]
    json.dumps(proto)
    empty = FGDAdapter(weights_path=path)
    empty.update(sample("one", toy_sets["a"][0][:40]), sample("one", toy_sets["b"][0][:40]))
    with pytest.raises(MetricInputError, match="at least 2"):
        empty.compute()


def test_latent_l1_adapter_is_independent_of_update_order(toy_sets, autoencoder):
    _, _, path, _ = autoencoder
    values = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        metric = DiversityAdapter(definition="latent_l1", weights_path=path, n_pairs=500, seed=3)
        for i in order:
            metric.update(sample(f"v{i}", toy_sets["a"][i]), None)
        values.append(metric.compute()["diversity"])
    assert values[0] == pytest.approx(values[1]) and values[0] > 0
    assert metric.protocol()["weights"]["file"] == "fgd_autoencoder.pt"
