"""FID against pytorch-fid on the same images and the same weight file (random weights, original format).

pytorch-fid is made to load our file by replacing only its download function
(``pytorch_fid.inception.load_state_dict_from_url``) with ``torch.load`` of that file; its computation is
untouched.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from pytorch_fid import fid_score
from pytorch_fid import inception as pfi

from mmgt.config import CONFIG_DIR
from mmgt_eval.metrics.base import MetricAdapter, MetricInputError, VideoSample
from mmgt_eval.metrics.fid import (
    FID_WEIGHTS_FILE,
    FIDAdapter,
    FIDInceptionFeatures,
    FIDMetric,
    fid_from_features,
    load_fid_inception,
    write_random_fid_weights,
)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init FID Inception with calibrated batch norm, saved as pytorch-fid's weight file."""
    return write_random_fid_weights(tmp_path_factory.mktemp("weights") / FID_WEIGHTS_FILE, seed=0, n_images=2)


def pytorch_fid_loads(weights: Path):
    """Patch only pytorch-fid's download so that ``fid_inception_v3`` loads ``weights``."""
    return mock.patch.object(
        pfi, "load_state_dict_from_url", side_effect=lambda *a, **k: torch.load(weights, weights_only=True)
    )


def make_images(n: int, size: int, shift: float, seed: int) -> np.ndarray:
    """(n, size, size, 3) uint8: blocky random colour fields plus noise; ``shift`` moves the distribution."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(0, 1, (n, 8, 8, 3))
    big = np.kron(cells, np.ones((1, size // 8, size // 8, 1)))
    x = big * 200 + shift + rng.normal(0, 20, big.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2)


@pytest.mark.parametrize(("dims", "n"), [(64, 4), (2048, 2)])
def test_features_equal_pytorch_fid_get_activations(weights: Path, tmp_path: Path, dims: int, n: int) -> None:
    """Same PNGs through pytorch-fid's get_activations (PIL, ToTensor, InceptionV3) and through our model."""
    images = make_images(n, 64, 0.0, seed=1)
    files = []
    for i, im in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(files[-1])
    with pytorch_fid_loads(weights):
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
    ref = fid_score.get_activations(files, model, batch_size=n, dims=dims, device="cpu", num_workers=0)
    inception = load_fid_inception(weights)
    for fast in (False, True):
        ours = FIDInceptionFeatures(copy.deepcopy(inception), dims, fast=fast)
        with torch.inference_mode():
            feats = ours(nchw(images)).double().numpy()
        assert feats.shape == (n, dims)
        scale = np.abs(ref).max()
        assert np.abs(feats - ref).max() <= 1e-4 * scale, f"fast={fast}"
    # features are input-dependent (calibrated batch norm), not a constant
    assert ref.std(axis=0).mean() > 1e-2 * np.abs(ref).mean()


@pytest.mark.slow
def test_fid_equals_pytorch_fid_full_pipeline(weights: Path, tmp_path: Path) -> None:
    """calculate_fid_given_paths on two folders of 80 PNGs (dims=64) vs FID.update on the same pixels."""
    sets = {"a": make_images(80, 64, 0.0, seed=2), "b": make_images(80, 64, 40.0, seed=3)}
    for name, arr in sets.items():
        (tmp_path / name).mkdir()
        for i, im in enumerate(arr):
            Image.fromarray(im).save(tmp_path / name / f"{i:03d}.png")
    with pytorch_fid_loads(weights):
        ref = fid_score.calculate_fid_given_paths(
            [str(tmp_path / "a"), str(tmp_path / "b")], batch_size=50, device="cpu", dims=64, num_workers=0
        )
    metric = FIDMetric(weights, dims=64)
    metric.update(nchw(sets["a"]), real=True)
    metric.update(nchw(sets["b"]), real=False)
    value = float(metric.compute())
    assert ref > 1.0  # different sets score clearly above 0 with the calibrated random weights
    assert abs(value - ref) / ref <= 1e-3


@pytest.fixture(scope="module")
def feature_sets(weights: Path) -> dict[str, torch.Tensor]:
    """66 + 66 images (more than dims=64) and their dims=64 features, shared by the tests below."""
    a, b = make_images(66, 32, 0.0, seed=4), make_images(66, 32, 40.0, seed=5)
    metric = FIDMetric(weights, dims=64, batch_size=33)
    return {"a": nchw(a), "b": nchw(b), "fa": metric.features(nchw(a)), "fb": metric.features(nchw(b))}


def test_fid_equals_calculate_frechet_distance(weights: Path, feature_sets: dict) -> None:
    """FID of the streamed float64 states = pytorch-fid's formula on np.mean / np.cov of the same features."""
    metric = FIDMetric(weights, dims=64, batch_size=33)
    metric.update_features(feature_sets["fa"], real=True)
    metric.update_features(feature_sets["fb"], real=False)
    fa, fb = feature_sets["fa"].double().numpy(), feature_sets["fb"].double().numpy()
    ref = fid_score.calculate_frechet_distance(
        fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False)
    )
    value = float(metric.compute())
    assert ref > 1.0
    assert value == pytest.approx(ref, rel=1e-6)
    assert fid_from_features(fa, fb) == pytest.approx(ref, rel=1e-6)
    assert metric.real_sum.dtype == torch.float64 and metric.real_cov_sum.dtype == torch.float64


def test_identical_sets_give_zero(weights: Path, feature_sets: dict) -> None:
    metric = FIDMetric(weights, dims=64, batch_size=33)
    metric.update_features(feature_sets["fa"], real=True)
    metric.update_features(feature_sets["fa"], real=False)
    assert abs(float(metric.compute())) < 1e-8


@pytest.mark.filterwarnings("ignore:FID with:UserWarning")
def test_streaming_equals_one_shot(weights: Path, feature_sets: dict) -> None:
    """Images in several update calls and Inception batches give the states of one call in one batch."""
    a, b = feature_sets["a"][:9], feature_sets["b"][:7]
    one = FIDMetric(weights, dims=64, batch_size=16)
    one.update(torch.cat([a, b]), real=True)
    one.update(b, real=False)
    streamed = FIDMetric(weights, dims=64, batch_size=3)
    for chunk in torch.cat([a, b]).split(5):
        streamed.update(chunk, real=True)
    for chunk in b.split(4):
        streamed.update(chunk, real=False)
    for name in ("real_sum", "real_cov_sum", "fake_sum", "fake_cov_sum"):
        assert torch.allclose(getattr(one, name), getattr(streamed, name), rtol=1e-6, atol=1e-9), name
    assert int(one.real_n) == int(streamed.real_n) == 16
    assert float(streamed.compute()) == pytest.approx(float(one.compute()), rel=1e-6)
    # and the images' features are those of the shared fixture (computed in batches of 35)
    assert torch.allclose(one.features(a), feature_sets["fa"][:9], rtol=1e-5, atol=1e-6)


def test_two_ranks_merged_equal_one_instance(weights: Path, feature_sets: dict) -> None:
    """States of two 'ranks' combined (merge_state; summing, as the sum reduction does) = one instance."""
    fa, fb = feature_sets["fa"], feature_sets["fb"]
    whole = FIDMetric(weights, dims=64)
    whole.update_features(fa, real=True)
    whole.update_features(fb, real=False)
    rank0, rank1 = FIDMetric(weights, dims=64), FIDMetric(weights, dims=64)
    rank0.update_features(fa[:30], real=True)
    rank0.update_features(fb[:50], real=False)
    rank1.update_features(fa[30:], real=True)
    rank1.update_features(fb[50:], real=False)
    summed = {name: getattr(rank0, name) + getattr(rank1, name) for name in rank0._defaults}
    rank0.merge_state(rank1)
    for name in rank0._defaults:
        assert torch.allclose(getattr(rank0, name), getattr(whole, name), rtol=1e-12, atol=1e-9), name
        assert torch.equal(summed[name], getattr(rank0, name)), name
        assert rank0._reductions[name] is not None
    assert float(rank0.compute()) == pytest.approx(float(whole.compute()), rel=1e-9)


def test_float_input_equals_uint8(weights: Path, feature_sets: dict) -> None:
    metric = FIDMetric(weights, dims=64)
    a = feature_sets["a"][:4]
    assert torch.allclose(metric.features(a.float() / 255), feature_sets["fa"][:4], rtol=1e-5, atol=1e-6)


def test_bad_input_and_too_few_samples(weights: Path, tmp_path: Path) -> None:
    metric = FIDMetric(weights, dims=64)
    with pytest.raises(MetricInputError, match=r"\(N, 3, H, W\)"):
        metric.update(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), real=True)
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        metric.update(torch.full((2, 3, 8, 8), 2.0), real=True)
    metric.update(torch.zeros(1, 3, 16, 16, dtype=torch.uint8), real=True)
    metric.update(torch.zeros(3, 3, 16, 16, dtype=torch.uint8), real=False)
    with pytest.raises(MetricInputError, match="at least 2 real and 2 generated images, got 1 real"):
        metric.compute()
    with pytest.raises(FileNotFoundError, match="pytorch-fid/releases"):
        FIDMetric(tmp_path / "missing.pth")
    bogus = tmp_path / "bogus.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bogus)
    with pytest.raises(MetricInputError, match="bogus.pth: not a pytorch-fid FID Inception state dict"):
        FIDMetric(bogus)
    with pytest.raises(ValueError, match="dims must be one of"):
        FIDMetric(weights, dims=100)


@pytest.mark.filterwarnings("ignore:FID with:UserWarning")
def test_adapter_from_config_samples_frames(weights: Path) -> None:
    """conf/eval/metrics/fid.yaml instantiates the adapter as the runner does (registry key -> path)."""
    cfg = OmegaConf.load(CONFIG_DIR / "eval" / "metrics" / "fid.yaml")
    assert cfg.weights == "inception_fid"
    del cfg["weights"]
    cfg.weights_path = str(weights)
    cfg.dims = 64
    cfg.frame_stride = 2
    adapter = instantiate(cfg)
    assert isinstance(adapter, FIDAdapter) and isinstance(adapter, MetricAdapter)
    gen = VideoSample("v0", make_images(9, 32, 40.0, seed=6), fps=25.0, audio=None)
    ref = VideoSample("v0", make_images(9, 32, 0.0, seed=7), fps=25.0, audio=None)
    assert adapter.update(gen, ref) == {}
    assert int(adapter.metric.fake_n) == 5 and int(adapter.metric.real_n) == 5  # frames 0, 2, 4, 6, 8
    direct = FIDMetric(weights, dims=64)
    direct.update(nchw(gen.frames[::2]), real=False)
    direct.update(nchw(ref.frames[::2]), real=True)
    with pytest.warns(UserWarning, match="fewer samples than feature dimensions"):
        result = adapter.compute()
    assert result["fid"] == pytest.approx(float(direct.compute()), rel=1e-9)
    assert result["fid_n_real"] == 5 and result["fid_n_generated"] == 5
    proto = adapter.protocol()
    assert proto["dims"] == 64 and proto["frame_stride"] == 2
    assert proto["weights"] == {
        "file": FID_WEIGHTS_FILE,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    assert adapter.metric_states() == [adapter.metric]


def test_pytorch_fid_loads_the_same_file_strictly(weights: Path) -> None:
    """The weight file we write has exactly pytorch-fid's keys and shapes (its loader is strict)."""
    with pytorch_fid_loads(weights):
        net = pfi.fid_inception_v3()
    ours = load_fid_inception(weights).state_dict()
    theirs = net.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # a PIL round trip gives the pixels our uint8 path uses
    img = make_images(1, 16, 0.0, seed=9)[0]
    assert torch.equal((TF.to_tensor(Image.fromarray(img)) * 255).round().byte(), nchw(img[None])[0])
