"""Where training data comes from: the real-data experiments never create a store, the toy ones only at their
own place, every missing / empty store or split fails at start-up with the fix, and the Stage II size follows
the store (or is resized to on load)."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest
from omegaconf import open_dict

from mmgt.clipstore import ClipStore, ensure_store, open_store, split_clips, store_size
from mmgt.config import audio_encoder
from mmgt.data.pose_audio import PoseAudioDataModule
from mmgt.train import train
from mmgt_prep.store import ClipStoreWriter
from mmgt_prep.toy import ToyStore, generate_toy_dataset
from tests.helpers.shared import compose_config

PREP = "mmgt-prep source=videos input=<folder of videos> out="

BASELINE = audio_encoder("baseline")  # data.audio_features of conf/data/*.yaml


@pytest.fixture(scope="module")
def toy32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 2 clips x 2 s at 32^2 (1 train + 1 test each)."""
    root = tmp_path_factory.mktemp("toy32") / "store"
    generate_toy_dataset(root, 2, 2, seconds=2.0, size=32, seed=0, test_fraction=0.5, progress=False)
    return root


def _train_cfg(tmp_path: Path, *overrides: str):  # noqa: ANN202
    cfg = compose_config("train", ["trainer.max_steps=1", *overrides], output_dir=tmp_path / "run")
    with open_dict(cfg):
        cfg.trainer.enable_progress_bar = False
    return cfg


def test_real_experiments_need_a_root_and_name_the_prep_command(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"data\.root is not set.*mmgt-prep source=videos"):
        train(_train_cfg(tmp_path, "experiment=smga"))
    missing = tmp_path / "no_store"
    with pytest.raises(FileNotFoundError, match=f"{missing}: no clip store here.*{PREP}{missing}"):
        train(_train_cfg(tmp_path, "experiment=smga", f"data.root={missing}"))
    assert not missing.exists()  # never created
    with pytest.raises(Exception, match=f"{missing}: no clip store here.*{PREP}{missing}"):  # at config time
        train(_train_cfg(tmp_path, "experiment=stage2_image", f"data.root={missing}"))
    assert not missing.exists()


def test_a_toy_experiment_makes_its_store_only_at_its_own_place(tmp_path: Path) -> None:
    typo = tmp_path / "stroe"
    with pytest.raises(FileNotFoundError, match=r"makes its toy store only at .*data\.prepare\.out=.*stroe"):
        train(_train_cfg(tmp_path, "experiment=smga_toy", f"data.root={typo}"))
    assert not typo.exists()  # no folder left behind
    home = tmp_path / "home"
    recipe = ToyStore(home, 1, 2, seconds=1.0, size=16, seed=0, test_fraction=0.25, progress=False)
    with pytest.raises(FileNotFoundError, match="toy store only at"):
        ensure_store(typo, recipe)
    ensure_store(home, recipe)  # its own place: created
    assert len(ClipStore(home).clips()) == 2
    cfg = _train_cfg(tmp_path, "experiment=smga_toy", f"data.prepare.out={typo}")  # asked for there
    assert cfg.data.root == str(typo)


def test_empty_stores_and_splits_explain_the_fix(tmp_path: Path, toy32: Path) -> None:
    failed = tmp_path / "failed"
    from mmgt.clipstore import ClipRecord

    ClipStoreWriter(failed).record_failure(
        ClipRecord(id="a", speaker="s"), "MediaError: a.mp4: file is empty"
    )
    with pytest.raises(ValueError, match="no ok clips.*a: MediaError.*retry_failed=true"):
        PoseAudioDataModule(failed, BASELINE).prepare_data()
    train_only = tmp_path / "train_only"
    generate_toy_dataset(train_only, 1, 2, seconds=1.0, size=16, test_fraction=0.0, progress=False)
    with pytest.raises(
        ValueError, match=r"no ok clips in split 'val' \(nor in 'test'.*train 2.*resplit=true"
    ):
        split_clips(open_store(train_only), "val", fallback="test")
    with pytest.raises(ValueError, match=r"data\.val_split=<split>"):
        PoseAudioDataModule(train_only, BASELINE, window=10).split_dataset("val")
    assert {c.record.split for c in split_clips(open_store(toy32), "val", fallback="test")} == {"test"}


def test_stage2_size_follows_the_store_or_is_resized_on_load(tmp_path: Path, toy32: Path) -> None:
    cfg = _train_cfg(tmp_path, "experiment=stage2_image", f"data.root={toy32}")
    assert cfg.data.size == 32 == store_size(toy32)  # the manifest's size
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.model_kwargs["data_meta"]["size"] == 32
    small = hydra.utils.instantiate(
        _train_cfg(tmp_path, "experiment=stage2_image", f"data.root={toy32}", "data.size=16").data
    )
    sample = small.split_dataset("train")[0]
    assert sample["frames"].shape == (1, 3, 16, 16) and sample["ref_image"].shape == (3, 16, 16)
    clip = ClipStore(toy32).clip(small.split_dataset("train").clips[0].record.id)
    import cv2

    expected = np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in clip.video()])
    np.testing.assert_array_equal(small.split_dataset("train").video(0), expected)  # streamed = whole-clip
    # a store whose clips differ in size needs data.size
    mixed = tmp_path / "mixed"
    generate_toy_dataset(mixed, 1, 1, seconds=0.5, size=16, progress=False)
    (row,) = [json.loads(line) for line in (mixed / "manifest.jsonl").read_text().splitlines()]
    with (mixed / "manifest.jsonl").open("a") as f:  # a second clip, made at another size
        f.write(json.dumps({**row, "id": "other", "size": 24}) + "\n")
    with pytest.raises(ValueError, match=r"several sizes \[16, 24\].*data\.size=<S>"):
        store_size(mixed)


def test_video_level_trains_at_its_exports_size_and_a_mismatch_fails(tmp_path: Path, toy32: Path) -> None:
    from mmgt.stage2.module import _check_init_size

    export = tmp_path / "export"
    export.mkdir()
    (export / "mmgt_stage2.json").write_text(json.dumps({"size": 64}))
    video = ["experiment=stage2_video", f"data.root={toy32}"]
    assert _train_cfg(tmp_path, *video, f"model.init_from={export}").data.size == 64  # the export's
    assert _train_cfg(tmp_path, *video).data.size == 32  # no export: the store's
    _check_init_size(export, 64)
    with pytest.raises(ValueError, match=r"trained at 64x64 frames.*data\.size is 128: pass data\.size=64"):
        _check_init_size(export, 128)
