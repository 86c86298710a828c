"""PoseAudioDataModule on a tiny real toy store: windows, conditioning frame, splits, statistics, prepare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmgt.config import audio_encoder
from mmgt.data.pose_audio import PoseAudioDataModule, window_starts
from mmgt.schema import SAMPLES_PER_FRAME, to_model_space
from mmgt.stage1 import SMGATransformer
from mmgt_prep.toy import generate_toy_dataset

BASELINE = audio_encoder("baseline")  # data.audio_features of conf/data/*.yaml


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy") / "store"
    generate_toy_dataset(root, n_speakers=2, clips_per_speaker=2, seconds=4.0, size=32, progress=False)
    return root


def test_window_starts_keep_first_and_tail() -> None:
    assert window_starts(100, 80, 10) == [0, 10, 20]
    assert window_starts(95, 80, 10) == [0, 10, 15]  # tail window ends exactly at the clip end
    assert window_starts(80, 80, 10) == [0] and window_starts(79, 80, 10) == []


def test_items_are_aligned_windows_with_the_previous_frame(store: Path) -> None:
    dm = PoseAudioDataModule(store, BASELINE, window=40, stride=20, batch_size=4)
    ds = dm.split_dataset("train")
    assert len(ds.clips) == 2 and len(ds) == 2 * len(window_starts(100, 40, 20))
    item = ds[1]  # second window of the first clip: starts at frame 20
    kps = to_model_space(ds.clips[0].keypoints())
    assert item["start"] == 20 and item["pose"].shape == (40, 134, 3) and item["audio"].shape == (40, 95)
    torch.testing.assert_close(item["pose"], torch.from_numpy(kps[20:60]))
    torch.testing.assert_close(item["cond_pose"], torch.from_numpy(kps[19]))  # the frame before the window
    torch.testing.assert_close(ds[0]["cond_pose"], torch.from_numpy(kps[0]))  # first window: frame 0
    assert ds.waveform(1).shape == (40 * SAMPLES_PER_FRAME,)
    np.testing.assert_array_equal(
        ds.waveform(1), ds.clips[0].audio()[20 * SAMPLES_PER_FRAME : 60 * SAMPLES_PER_FRAME]
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["pose"].shape == (4, 40, 134, 3) and batch["audio"].shape == (4, 40, 95)
    assert dm.model_kwargs == {"audio_dim": 95, "audio_features": BASELINE.node()}


def test_val_falls_back_to_test_and_missing_store_is_explained(store: Path, tmp_path: Path) -> None:
    dm = PoseAudioDataModule(store, BASELINE, window=40, stride=40)
    assert {c.record.split for c in dm.split_dataset("val").clips} == {"test"}
    with pytest.raises(FileNotFoundError, match="mmgt-prep source=toy"):
        PoseAudioDataModule(tmp_path / "nothing", BASELINE).split_dataset("train")


def test_statistics_standardise_the_training_data(store: Path) -> None:
    dm = PoseAudioDataModule(store, BASELINE, window=40, stride=20)
    mean, std = dm.pose_stats()
    poses = np.concatenate(dm.split_dataset("train").poses)
    visible = poses[..., 2] > 0.5
    j = 72 + 18  # an inner-lip point: always visible in the toy data
    assert visible[:, j].all()
    np.testing.assert_allclose(mean[j, :2], poses[:, j, :2].mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(std[j, :2], poses[:, j, :2].std(0), rtol=1e-4, atol=1e-6)
    assert (mean[:, 2] == 0).all() and (std[:, 2] == 1).all()  # visibility is not standardised
    assert (std[~visible.any(0), :2] == 1).all()  # never-visible points (legs) keep the identity
    net = SMGATransformer(audio_dim=95, width=16, layers=1, heads=2, ff_dim=16, audio_layers=1)
    net.set_pose_stats(torch.from_numpy(mean), torch.from_numpy(std))
    z = net.normalize_pose(torch.from_numpy(poses[:, None]))[:, 0]
    assert abs(float(z[:, j, :2].std(0, correction=0).mean()) - 1.0) < 1e-3  # a lip coordinate: unit variance
    torch.testing.assert_close(
        net.denormalize_pose(net.normalize_pose(torch.from_numpy(poses))), torch.from_numpy(poses)
    )
    a_mean, a_std = dm.audio_stats()
    assert a_mean.shape == a_std.shape == (95,) and (a_std > 0).all()


def test_prepare_creates_the_store_once(tmp_path: Path) -> None:
    calls: list[Path] = []

    def prepare(root: Path) -> None:
        calls.append(root)
        generate_toy_dataset(root, n_speakers=1, clips_per_speaker=2, seconds=3.5, size=32, progress=False)

    dm = PoseAudioDataModule(tmp_path / "new", BASELINE, prepare=prepare)
    assert dm.model_kwargs == {"audio_dim": 95, "audio_features": BASELINE.node()}  # pure:
    assert calls == [] and not (tmp_path / "new").exists()
    dm.prepare_data()
    dm.prepare_data()  # the store exists now: not created again
    assert calls == [tmp_path / "new"] and len(dm.split_dataset("train")) == 2  # 88 frames: windows 0, 8
