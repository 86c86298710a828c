"""mmgt.audio: weight-free extractors, pretrained encoders from tiny local models, the feature cache."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import hydra
import numpy as np
import pytest
import python_speech_features as psf
import torch
import torch.nn.functional as F

from mmgt.audio import (
    AudioFeatureExtractor,
    ConcatExtractor,
    EnergyExtractor,
    LogMelExtractor,
    MFCCExtractor,
    OnsetExtractor,
    PretrainedSpeechEncoder,
    extractor_from_node,
    load_or_compute_features,
)
from mmgt.clipstore import AUDIO_FILE, ClipRecord, ClipStore
from mmgt.config import audio_encoder
from mmgt.dsp import mel_filterbank
from mmgt.factory import to_node
from mmgt.io import write_audio
from mmgt.schema import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from mmgt.untrusted import UntrustedFileError
from mmgt_prep.store import ClipStoreWriter
from mmgt_prep.toy import _syllable_envelope, generate_clip, speaker_style, toy_envelope
from tests.helpers.shared import compose_config, samples_path

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def _noise(n: int, amp: float = 0.1, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# =========================================================================== weight-free extractors
WEIGHT_FREE = {
    "logmel80": LogMelExtractor,
    "logmel40-hop640": lambda: LogMelExtractor(n_mels=40, hop_length=640),
    "mfcc13": MFCCExtractor,
    "mfcc13-d2": lambda: MFCCExtractor(deltas=2),
    "energy": EnergyExtractor,
    "rms": lambda: EnergyExtractor(log=False),
    "onset": OnsetExtractor,
    "logmel80+energy+onset+mfcc13": lambda: audio_encoder("baseline"),
}
DIMS = {"logmel80": 80, "logmel40-hop640": 40, "mfcc13": 13, "mfcc13-d2": 39, "energy": 1, "rms": 1}
DIMS |= {"onset": 1, "logmel80+energy+onset+mfcc13": 95}


@pytest.mark.parametrize("name", sorted(WEIGHT_FREE))
@pytest.mark.parametrize("n_samples", [0, 100, 320, 400, 640, 16_000, int(2.3 * SAMPLE_RATE) + 7])
def test_weight_free_shape_rate_and_finite(name: str, n_samples: int) -> None:
    ext = WEIGHT_FREE[name]()
    assert ext.name == name and ext.feature_shape() == (DIMS[name],)
    t = int(round(n_samples / SAMPLES_PER_FRAME))  # round(seconds * 25)
    for audio in (_noise(n_samples), np.zeros(n_samples, np.float32)):  # speech-like noise and silence
        f = ext(audio)
        assert f.shape == (t, DIMS[name]) and f.dtype == np.float32
        assert np.isfinite(f).all()


@pytest.mark.parametrize("name", sorted(WEIGHT_FREE))
def test_weight_free_pad_and_trim_to_n_frames(name: str) -> None:
    ext = WEIGHT_FREE[name]()
    audio = _noise(50 * SAMPLES_PER_FRAME + 123, seed=1)
    full = ext(audio)
    assert full.shape[0] == 50
    trimmed = ext(audio, n_frames=30)
    assert trimmed.shape == (30, DIMS[name])
    np.testing.assert_array_equal(trimmed, ext(audio[: 30 * SAMPLES_PER_FRAME]))  # trim = cut the audio first
    padded = ext(audio, n_frames=60)
    assert padded.shape == (60, DIMS[name]) and np.isfinite(padded).all()
    np.testing.assert_allclose(padded[:48], full[:48], rtol=1e-5, atol=1e-5)  # same frames away from the end
    silence = ext(np.zeros(10 * SAMPLES_PER_FRAME, np.float32))
    np.testing.assert_allclose(padded[-1], silence[5], rtol=1e-5, atol=1e-5)  # padding is silence
    assert ext(audio, n_frames=0).shape == (0, DIMS[name])


def test_bad_audio_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="mono"):
        EnergyExtractor()(np.zeros((100, 2), np.float32))
    bad = np.zeros(1000, np.float32)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LogMelExtractor()(bad)
    with pytest.raises(ValueError, match="hop_length"):
        LogMelExtractor(hop_length=300)


def _burst_signal(start: int, stop: int, n_frames: int = 60) -> np.ndarray:
    """Quiet noise with a loud noise burst over samples [start, stop)."""
    audio = _noise(n_frames * SAMPLES_PER_FRAME, amp=1e-3, seed=2)
    audio[start:stop] += _noise(stop - start, amp=0.3, seed=3)
    return audio


def test_energy_and_logmel_peak_on_a_burst() -> None:
    audio = _burst_signal(20 * SAMPLES_PER_FRAME, 25 * SAMPLES_PER_FRAME)  # frames 20..24 loud
    for ext in (EnergyExtractor(), EnergyExtractor(log=False)):
        e = ext(audio)[:, 0]
        loud = set(np.flatnonzero(e > (e.max() + e.min()) / 2))
        assert loud == set(range(20, 25))  # energy is exact per frame
    lm = LogMelExtractor()(audio).mean(axis=1)
    top5 = set(np.argsort(lm)[-5:])
    assert top5 <= set(range(19, 26))  # +-1: the analysis window reaches 200 samples into neighbours
    assert set(range(20, 25)) <= set(np.flatnonzero(lm > (lm.max() + lm.min()) / 2))


@pytest.mark.parametrize("start_frame, offset", [(20, 0), (30, 320), (41, 600)])
def test_onset_peaks_at_the_burst_onset(start_frame: int, offset: int) -> None:
    start = start_frame * SAMPLES_PER_FRAME + offset
    onset = OnsetExtractor()(_burst_signal(start, start + 4 * SAMPLES_PER_FRAME))[:, 0]
    assert abs(int(np.argmax(onset)) - start_frame) <= 1
    if offset == 320:  # mid-frame onset: every window that sees the burst starts in its frame
        assert int(np.argmax(onset)) == start_frame
    quiet = np.r_[onset[: start_frame - 2], onset[start_frame + 7 :]]
    assert onset.max() > 5 * quiet.max()


def test_mfcc_is_psf_mfcc_averaged_per_video_frame() -> None:
    """Documented resampling: 120 zeros in front, psf.mfcc at 100 Hz (4 T frames), mean of frames 4t..4t+3."""
    audio = _noise(SAMPLE_RATE, seed=4) * np.sin(np.linspace(0, 6 * np.pi, SAMPLE_RATE)).astype(np.float32)
    ref100 = psf.mfcc(np.concatenate([np.zeros(120), audio.astype(np.float64)]), SAMPLE_RATE)
    assert ref100.shape == (100, 13)
    np.testing.assert_allclose(
        MFCCExtractor()(audio), ref100.reshape(25, 4, 13).mean(1), rtol=1e-4, atol=1e-4
    )
    ref_d = np.concatenate([ref100, psf.delta(ref100, 2)], axis=1).reshape(25, 4, 26).mean(1)
    np.testing.assert_allclose(MFCCExtractor(deltas=1)(audio), ref_d, rtol=1e-4, atol=1e-4)
    # the plain psf call (no padding) at 100 Hz lands in the same place, up to its 120-sample shift
    plain = psf.mfcc(audio, SAMPLE_RATE)[:96].reshape(24, 4, 13).mean(1)
    assert np.corrcoef(plain[:, 0], MFCCExtractor()(audio)[:24, 0])[0, 1] > 0.95


def test_mel_filterbank_covers_the_spectrum() -> None:
    fb = mel_filterbank(80, 512)
    assert fb.shape == (80, 257) and (fb >= 0).all()
    assert (fb.sum(axis=1) > 0).all()  # no empty band
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 240


def test_logmel_tracks_a_tone_frequency() -> None:
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    low = LogMelExtractor()((0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    high = LogMelExtractor()((0.5 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32))
    assert np.median(low.argmax(1)) < np.median(high.argmax(1))


def test_energy_follows_the_toy_speakers_envelope() -> None:
    for index in range(3):
        clip = generate_clip(speaker_style(0, index), 4.0, 64, np.random.default_rng(index))
        rms = EnergyExtractor(log=False)(clip.audio)[:, 0]
        env = toy_envelope(clip.audio)
        assert rms.shape == env.shape == (100,)
        assert np.corrcoef(rms, env)[0, 1] > 0.99
        logenergy = EnergyExtractor()(clip.audio)[:, 0]
        assert np.corrcoef(logenergy, np.log(env.astype(np.float64) ** 2 + 1e-8))[0, 1] > 0.99
        # and the generator's own syllable envelope (the ground truth the audio was synthesised from)
        truth = _syllable_envelope(clip.events["syllables"], clip.audio.size)
        truth = truth.reshape(-1, SAMPLES_PER_FRAME).mean(axis=1)
        assert np.corrcoef(rms, truth)[0, 1] > 0.9


def rebuilt(ext: AudioFeatureExtractor) -> AudioFeatureExtractor:
    """``ext`` through its stored node (what an export holds)."""
    return extractor_from_node(ext.node(), "test")


def test_concat_and_stored_nodes() -> None:
    base = audio_encoder("baseline")
    assert isinstance(base, ConcatExtractor) and base.name == "logmel80+energy+onset+mfcc13"
    audio = _noise(3 * SAMPLE_RATE, seed=5)
    parts = [
        LogMelExtractor()(audio),
        EnergyExtractor()(audio),
        OnsetExtractor()(audio),
        MFCCExtractor()(audio),
    ]
    np.testing.assert_array_equal(base(audio), np.concatenate(parts, axis=1))
    np.testing.assert_array_equal(rebuilt(base)(audio), base(audio))
    assert rebuilt(LogMelExtractor(n_mels=40, n_fft=1024)).name == "logmel40-nfft1024"
    assert rebuilt(ConcatExtractor([EnergyExtractor(), MFCCExtractor(deltas=1)])).name == "energy+mfcc13-d1"
    assert rebuilt(ConcatExtractor([EnergyExtractor(log=False)], name="r")).name == "r"
    bad = to_node(ConcatExtractor, extractors=[{"_target_": "os.system", "command": "true"}])
    with pytest.raises(UntrustedFileError, match="os.system"):
        extractor_from_node(bad, "meta.json")
    with pytest.raises(UntrustedFileError, match="old.json: 'baseline' is not an audio encoder node"):
        extractor_from_node("baseline", "old.json")  # an export from before nodes were stored
    with pytest.raises(ValueError, match="no conf/audio_encoder/melgan.yaml"):
        audio_encoder("melgan")
    names = [f().name for f in WEIGHT_FREE.values()]
    assert len(set(names)) == len(names)  # unique cache keys


WEIGHT_FREE_GROUPS = {
    "logmel": "logmel80",
    "mfcc": "mfcc13",
    "energy": "energy",
    "rms": "rms",
    "onset": "onset",
}


@pytest.mark.parametrize("group", [*WEIGHT_FREE_GROUPS, "baseline"])
def test_hydra_audio_configs_instantiate(group: str, tmp_path: Path) -> None:
    cfg = compose_config("prep", [f"+audio_encoder={group}"], output_dir=tmp_path)
    ext = hydra.utils.instantiate(cfg.audio_encoder)
    assert isinstance(ext, AudioFeatureExtractor)
    assert ext.name == {**WEIGHT_FREE_GROUPS, "baseline": "logmel80+energy+onset+mfcc13"}[group]
    assert audio_encoder(group).node() == ext.node() and rebuilt(ext).name == ext.name
    assert ext(_noise(SAMPLE_RATE)).shape == (25, *ext.feature_shape())


# =========================================================================== pretrained encoders (tiny)
TINY = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32, 32, 32),
    conv_kernel=(10, 7, 10),  # receptive field 400 samples and stride 320, like the real CNN: 50 Hz
    conv_stride=(5, 8, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=8,
)
ODD_CNN = dict(conv_dim=(32, 32), conv_kernel=(10, 3), conv_stride=(5, 4))  # 800 Hz, receptive field 20
MODELS = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
    "hubert": ("HubertConfig", "HubertModel"),
}


def _save_tiny(folder: Path, kind: str, preprocessor: bool = True, **overrides: object) -> Path:
    config_cls, model_cls = (getattr(transformers, n) for n in MODELS[kind])
    torch.manual_seed(0)
    model = model_cls(config_cls(**{**TINY, **overrides}))
    model.save_pretrained(folder)
    if preprocessor:
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SAMPLE_RATE).save_pretrained(
            folder
        )
    return folder


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrained")
    dirs = {kind: _save_tiny(root / f"tiny-{kind}", kind) for kind in MODELS}
    dirs["wav2vec2-layernorm"] = _save_tiny(root / "tiny-w2v-ln", "wav2vec2", feat_extract_norm="layer")
    dirs["wav2vec2-odd"] = _save_tiny(root / "tiny-w2v-odd", "wav2vec2", **ODD_CNN)
    dirs["wav2vec2-noprep"] = _save_tiny(root / "tiny-w2v-noprep", "wav2vec2", preprocessor=False)
    return dirs


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("mode", ["features", "hidden"])
def test_pretrained_shapes_25fps_and_determinism(tiny_dirs: dict[str, Path], kind: str, mode: str) -> None:
    ext = PretrainedSpeechEncoder(tiny_dirs[kind], kind=kind, interpolate=mode)
    assert ext.name == f"{kind}-tiny-{kind}-all" + ("-hidden" if mode == "hidden" else "")
    assert ext.feature_shape() == (2, 32)  # (L transformer layers, D)
    for seconds in (0.04, 1.0, 2.3):
        audio = _noise(int(seconds * SAMPLE_RATE), seed=6)
        f = ext(audio)
        assert (
            f.shape == (round(audio.size / SAMPLES_PER_FRAME), 2, 32)
            and f.dtype == np.float32
            and np.isfinite(f).all()
        )
    audio = _noise(2 * SAMPLE_RATE, seed=7)
    a, b = ext(audio), ext(audio)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        a, PretrainedSpeechEncoder(tiny_dirs[kind], kind=kind, interpolate=mode)(audio)
    )
    assert ext(audio, n_frames=60).shape == (60, 2, 32) and ext(audio, n_frames=0).shape == (0, 2, 32)
    assert not np.allclose(a[:, 0], a[:, 1])  # two different layers


def test_features_mode_is_the_hallo_computation(tiny_dirs: dict[str, Path]) -> None:
    """CNN -> F.interpolate(size=T, align_corners=True) -> projection -> encoder, as Hallo's Wav2VecModel."""
    d = tiny_dirs["wav2vec2"]
    audio = _noise(2 * SAMPLE_RATE + 5 * SAMPLES_PER_FRAME, seed=8)  # 55 frames
    model = transformers.Wav2Vec2Model.from_pretrained(d, local_files_only=True).eval()
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(d, local_files_only=True)
    x = torch.from_numpy(fe(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_values)
    with torch.no_grad():
        cnn = model.feature_extractor(x)  # (1, C, 2T - 1)
        assert cnn.shape[-1] == 2 * 55 - 1
        feats = F.interpolate(cnn, size=55, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = model.feature_projection(feats)
        ref = model.encoder(hidden).last_hidden_state[0].numpy()
    ours = PretrainedSpeechEncoder(d, layers="last")(audio)
    assert ours.shape == (55, 32)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)


def test_hidden_mode_interpolates_native_hidden_states(tiny_dirs: dict[str, Path]) -> None:
    d = tiny_dirs["wavlm"]
    audio = _noise(SAMPLE_RATE, seed=9)
    model = transformers.WavLMModel.from_pretrained(d, local_files_only=True).eval()
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(d, local_files_only=True)
    x = torch.from_numpy(fe(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_values)
    with torch.no_grad():
        hs = model(x, output_hidden_states=True).hidden_states  # 50 Hz: 2T - 1 = 49 frames
    assert hs[0].shape[1] == 49
    ref = torch.stack(
        [F.interpolate(h.transpose(1, 2), size=25, mode="linear", align_corners=True)[0].T for h in hs]
    )
    ours = PretrainedSpeechEncoder(d, kind="wavlm", layers=[0, 1, 2], interpolate="hidden")(audio)
    assert ours.shape == (25, 3, 32)
    np.testing.assert_allclose(ours, ref.permute(1, 0, 2).numpy(), rtol=1e-4, atol=1e-5)


def test_any_cnn_rate_becomes_25fps(tiny_dirs: dict[str, Path]) -> None:
    d = tiny_dirs["wav2vec2-odd"]  # 800 Hz native
    audio = _noise(int(1.5 * SAMPLE_RATE), seed=10)
    for mode in ("features", "hidden"):
        ext = PretrainedSpeechEncoder(d, interpolate=mode, layers=[2])
        assert ext.native_per_frame == 32
        assert ext(audio).shape == (38, 1, 32)


@pytest.mark.parametrize(
    "which, mode",
    [
        ("wav2vec2-layernorm", "features"),
        ("wav2vec2", "features"),
        ("wav2vec2", "hidden"),
        ("wavlm", "features"),
    ],
)
def test_chunked_long_audio_matches_one_pass(tiny_dirs: dict[str, Path], which: str, mode: str) -> None:
    """Chunks of 3 s with 1.5 s context vs one pass over 9 s of audio whose loudness varies: equal up to the
    effect of global self-attention (the group-norm CNN uses whole-audio statistics in both)."""
    kind = "wavlm" if which == "wavlm" else "wav2vec2"
    n = 9 * SAMPLE_RATE
    audio = _noise(n, seed=11) * (1.05 + np.sin(np.arange(n) / 2000)).astype(np.float32)
    kw = dict(kind=kind, interpolate=mode, layers=[0, 1, 2])
    one = PretrainedSpeechEncoder(tiny_dirs[which], **kw)(audio)
    chunked_ext = PretrainedSpeechEncoder(tiny_dirs[which], chunk_seconds=3, context_seconds=1.5, **kw)
    assert chunked_ext.name == PretrainedSpeechEncoder(tiny_dirs[which], **kw).name
    chunked = chunked_ext(audio)
    assert chunked.shape == one.shape == (225, 3, 32)
    rel = np.linalg.norm(chunked - one) / np.linalg.norm(one)
    assert rel < 0.01, rel
    # the transformer input (CNN -> projection -> positional conv, receptive field < context) is the same
    np.testing.assert_allclose(chunked[:, 0], one[:, 0], rtol=1e-3, atol=1e-3)
    # chunking without the whole-audio group-norm statistics would be visibly worse on this audio
    if which == "wav2vec2":
        chunked_ext._global_norm_stats = lambda x: None  # type: ignore[method-assign]
        naive = np.linalg.norm(chunked_ext(audio) - one) / np.linalg.norm(one)
        assert naive > 5 * rel


def test_layers_last_list_and_names(tiny_dirs: dict[str, Path]) -> None:
    d = tiny_dirs["hubert"]
    assert PretrainedSpeechEncoder(d, kind="hubert", layers="last").feature_shape() == (32,)
    ext = PretrainedSpeechEncoder(d, kind="hubert", layers=[0, 2])
    assert ext.name == "hubert-tiny-hubert-l0.2" and ext.feature_shape() == (2, 32)
    with pytest.raises(ValueError, match="indices"):
        PretrainedSpeechEncoder(d, kind="hubert", layers=[3])
    assert rebuilt(PretrainedSpeechEncoder(d, kind="hubert")).name == "hubert-tiny-hubert-all"
    assert rebuilt(ext).node() == ext.node()


def test_without_preprocessor_config_and_pickling(tiny_dirs: dict[str, Path]) -> None:
    audio = _noise(SAMPLE_RATE, seed=12)
    no_prep = PretrainedSpeechEncoder(tiny_dirs["wav2vec2-noprep"])(audio)  # group-norm CNN: not normalised
    ext = PretrainedSpeechEncoder(tiny_dirs["wav2vec2"])
    assert ext.normalize(audio).std() == pytest.approx(1.0, abs=1e-3)
    with_prep = ext(audio)
    assert no_prep.shape == with_prep.shape and not np.allclose(no_prep, with_prep)  # input scale matters
    blob = pickle.dumps(ext)  # as to worker processes, without the loaded model
    clone = pickle.loads(blob)  # trusted-pickle: this test's own object
    assert clone._model is None
    np.testing.assert_array_equal(clone(audio), with_prep)


def test_missing_or_broken_model_folder(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    missing = tmp_path / "pretrained" / "wav2vec2-base-960h"
    with pytest.raises(FileNotFoundError) as err:
        PretrainedSpeechEncoder(missing)
    msg = str(err.value)
    assert str(missing) in msg and "config.json" in msg and "preprocessor_config.json" in msg
    assert "model.safetensors" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(FileNotFoundError, match="missing model weights"):
        PretrainedSpeechEncoder(empty)
    with pytest.raises(ValueError, match="model_type is 'wav2vec2' but kind='wavlm'"):
        PretrainedSpeechEncoder(tiny_dirs["wav2vec2"], kind="wavlm")
    with pytest.raises(FileNotFoundError, match=str(missing)):
        extractor_from_node(to_node(PretrainedSpeechEncoder, model_dir=str(missing)), "meta.json")


def test_weights_that_do_not_fit_are_refused(tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    from safetensors.torch import load_file, save_file

    d = tmp_path / "broken"
    d.mkdir()
    for f in tiny_dirs["wav2vec2"].iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    state = load_file(d / "model.safetensors")
    key = next(k for k in state if "encoder.layers.1" in k)
    del state[key]
    save_file(state, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="refusing"):
        PretrainedSpeechEncoder(d)(_noise(SAMPLE_RATE))


@pytest.mark.parametrize("group, kind", [("wav2vec2", "wav2vec2"), ("wavlm", "wavlm"), ("hubert", "hubert")])
def test_hydra_pretrained_configs(group: str, kind: str, tmp_path: Path, tiny_dirs: dict[str, Path]) -> None:
    cfg = compose_config("prep", [f"+audio_encoder={group}"], output_dir=tmp_path)
    assert cfg.audio_encoder.model_dir.endswith("/pretrained/" + Path(cfg.audio_encoder.model_dir).name)
    if not Path(cfg.audio_encoder.model_dir).is_dir():  # Hydra wraps the FileNotFoundError
        with pytest.raises(Exception, match="not found") as err:
            hydra.utils.instantiate(cfg.audio_encoder)
        assert cfg.audio_encoder.model_dir in str(err.value) and "config.json" in str(err.value)
    ext = hydra.utils.instantiate(cfg.audio_encoder, model_dir=str(tiny_dirs[kind]))
    assert isinstance(ext, PretrainedSpeechEncoder) and ext.kind == kind
    assert ext(_noise(SAMPLE_RATE)).shape == (25, *ext.feature_shape())


# =========================================================================== cache
def _store_with_clip(root: Path, seconds: float = 2.0) -> tuple[ClipStore, np.ndarray]:
    audio = _noise(int(seconds * SAMPLE_RATE), seed=13)
    n_frames = int(round(seconds * FPS))
    ClipStoreWriter(root).write_clip(
        ClipRecord(id="c1", speaker="s1", n_frames=n_frames), lambda d: write_audio(d / AUDIO_FILE, audio)
    )
    return ClipStore(root), audio


def test_load_or_compute_features_cache(tmp_path: Path) -> None:
    store, _ = _store_with_clip(tmp_path)
    clip = store.clip("c1")
    ext = audio_encoder("baseline")
    path = clip.feature_path(ext.name)
    assert not path.exists()
    first = load_or_compute_features(clip, ext)
    assert path.is_file() and first.shape == (50, 95)
    np.testing.assert_array_equal(np.load(path), first)
    np.testing.assert_array_equal(first, ext(clip.audio(), n_frames=50))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left

    np.save(path, first + 1.0)  # a second call reads the cache, not the audio
    np.testing.assert_array_equal(load_or_compute_features(clip, ext), first + 1.0)

    np.save(path, first[:40])  # stale: wrong T -> recomputed and rewritten
    np.testing.assert_array_equal(load_or_compute_features(clip, ext), first)
    assert np.load(path).shape == (50, 95)

    path.write_bytes(b"not a numpy file")  # corrupt -> recomputed
    np.testing.assert_array_equal(load_or_compute_features(clip, ext), first)

    other = EnergyExtractor()
    out = load_or_compute_features(clip, other, cache=False)
    assert out.shape == (50, 1) and not clip.feature_path(other.name).exists()
    assert clip.features(ext.name).shape == (50, 95)  # the reader of the clip store sees the cache


def test_cache_uses_the_record_frame_count_and_pretrained_names(
    tmp_path: Path, tiny_dirs: dict[str, Path]
) -> None:
    audio = _noise(int(2.01 * SAMPLE_RATE), seed=14)  # 50.25 frames of audio; the record says 48
    ClipStoreWriter(tmp_path).write_clip(
        ClipRecord(id="c2", speaker="s2", n_frames=48), lambda d: write_audio(d / AUDIO_FILE, audio)
    )
    clip = ClipStore(tmp_path).clip("c2")
    ext = PretrainedSpeechEncoder(tiny_dirs["wav2vec2"])
    feats = load_or_compute_features(clip, ext)
    assert feats.shape == (48, 2, 32)
    assert clip.feature_path("wav2vec2-tiny-wav2vec2-all").is_file()
    mtime = os.stat(clip.feature_path(ext.name)).st_mtime_ns
    np.testing.assert_array_equal(load_or_compute_features(clip, ext), feats)
    assert os.stat(clip.feature_path(ext.name)).st_mtime_ns == mtime


def test_the_released_mmgt_librosa_features_have_the_original_layout() -> None:
    """35-d at 25 fps: onset envelope, MFCC 20, chroma_cens 12 (in [0, 1]), onset-peak and beat one-hots."""
    pytest.importorskip("librosa")
    from mmgt.audio import ReleaseLibrosaFeatures
    from mmgt.io import read_audio

    audio = read_audio(samples_path("speech_en_jfk_11s.flac"))[: 4 * 16000]
    ext = rebuilt(ReleaseLibrosaFeatures())
    feats = ext(audio)
    assert feats.shape == (100, 35) and np.isfinite(feats).all()
    assert (feats[:, 0] >= 0).all() and (feats[:, 21:33] >= 0).all() and (feats[:, 21:33] <= 1).all()
    for col in (33, 34):  # one-hots: some frames, not all
        assert set(np.unique(feats[:, col])) == {0.0, 1.0} and 0 < feats[:, col].sum() < 50
    window = ext(audio[: 80 * 640], n_frames=80)
    assert window.shape == (80, 35)  # the original's 80-frame window
