"""TensorBoard after a short training, read back from the event files, both stages: a sample video at the
final step although no epoch was a sampling epoch, loss curves without a stray hparams point, and the
HParams summaries listing the final metrics; with ``evaluate=`` the evaluation's ``eval/*`` scalars, and a
run whose evaluation scored nothing is failed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from mmgt.config import CONFIG_DIR
from mmgt.train import train
from tests.helpers.shared import compose_config


def _events(run: Path) -> dict:
    """Every scalar point, image step and hparams summary of a run's event files."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    images: dict[str, list[int]] = {}
    hparams: dict[str, plugin_data_pb2.HParamsPluginData] = {}
    for path in sorted((run / "tensorboard").rglob("events.out.tfevents*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["images"]:
            images.setdefault(tag, []).extend(e.step for e in acc.Images(tag))
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # no hparams in this file
            continue
        hparams.update({t: plugin_data_pb2.HParamsPluginData.FromString(c) for t, c in content.items()})
    return {"scalars": scalars, "images": images, "hparams": hparams}


def _assert_curves_and_hparams(events: dict, curves: list[str], final_metrics: dict[str, float]) -> None:
    for tag in curves:
        steps = [s for s, _ in events["scalars"][tag]]
        # log_hyperparams(params, metrics) used to add (0, final value) to each curve: a repeated step 0
        assert not [s for s, k in Counter(steps).items() if k > 1], (tag, events["scalars"][tag])
    experiment = events["hparams"]["_hparams_/experiment"].experiment
    assert {m.name.tag for m in experiment.metric_infos} == set(final_metrics)
    start = events["hparams"]["_hparams_/session_start_info"].session_start_info
    assert start.hparams["seed"].number_value == 0 and "trainer/max_steps" in start.hparams


def test_stage1_short_run_logs_a_final_sample_and_no_stray_point(tmp_path: Path) -> None:
    cfg = compose_config(
        "train",
        [
            "experiment=smga_toy",
            "data.prepare.n_speakers=2",
            "data.prepare.clips_per_speaker=3",
            "data.prepare.seconds=4",
            "data.prepare.size=32",
            "data.batch_size=8",
            "data.stride=40",
            "trainer.max_steps=3",
            "trainer.log_every_n_steps=1",
            "trainer.enable_progress_bar=false",
            "model.sample_every_n_epochs=0",  # no sampling epoch: only the end-of-training sample
            "model.sample_steps=2",
        ],
        output_dir=tmp_path,
    )
    result = train(cfg)
    events = _events(tmp_path)
    assert events["images"]["val/sample_pose"] == [3]  # once, at the final step
    assert [s for s, _ in events["scalars"]["val/lip_r_gt"]] == [3]
    _assert_curves_and_hparams(events, ["train/loss", "val/loss"], result["metrics"])
    assert len(events["scalars"]["train/loss"]) == 3  # one point per step, nothing added


def test_stage2_short_run_logs_a_final_sample_and_no_stray_point(tmp_path: Path) -> None:
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"
    generate_toy_dataset(store, 2, 2, seconds=2.0, size=64, seed=0, test_fraction=0.5, progress=False)
    cfg = compose_config(
        "train",
        [
            "experiment=stage2_image_toy",
            f"data.root={store}",
            "data.batch_size=2",
            "trainer.max_steps=2",
            "trainer.log_every_n_steps=1",
            "trainer.enable_progress_bar=false",
            "+trainer.limit_val_batches=1",
            "+trainer.num_sanity_val_steps=0",
            "model.sample_every_n_epochs=0",
            "model.sample_steps=2",
        ],
        output_dir=tmp_path / "run",
    )
    with open_dict(cfg):  # a random tiny VAE instead of fitting the toy one
        tiny = OmegaConf.load(CONFIG_DIR / "model" / "stage2" / "scale" / "tiny.yaml")
        cfg.model.vae = OmegaConf.to_container(tiny.vae)
        cfg.data.samples_per_clip = 2
        cfg.data.val_samples_per_clip = 1
    result = train(cfg)
    events = _events(tmp_path / "run")
    assert events["images"]["val/sample"] == [2]
    _assert_curves_and_hparams(events, ["train/loss", "val/loss"], result["metrics"])
    assert len(events["scalars"]["train/loss"]) == 2


STAGE1_EVAL = [  # a 3-step SMGA on 2 toy speakers, evaluated on its 2 test clips without the control
    "experiment=smga_toy",
    "evaluate=stage1",
    "data.prepare.n_speakers=2",
    "data.prepare.clips_per_speaker=3",
    "data.prepare.seconds=4",
    "data.prepare.size=32",
    "data.batch_size=8",
    "data.stride=40",
    "trainer.max_steps=3",
    "trainer.enable_progress_bar=false",
    "model.sample_every_n_epochs=0",
    "model.sample_steps=2",
    "evaluate.steps=2",
    "evaluate.size=64",
    "evaluate.shuffled_control=false",
]


def test_evaluated_run_logs_eval_scalars_and_a_missing_weight_fails_only_its_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate=stage1`` with lpips (weights absent) next to the keypoint metrics: the run is ok, lpips is
    failed in results.json with its file and command, and the scored values are ``eval/*`` scalars at the
    final step of the run's TensorBoard."""
    import json

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    empty = tmp_path / "no_weights"
    overrides = ["evaluate.metrics=[lip_audio_pose,bas,lpips]", f"evaluate.overrides=['weights_dir={empty}']"]
    cfg = compose_config("train", [*STAGE1_EVAL, *overrides], tmp_path)
    result = train(cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["run"]["status"] == "ok" and saved["failed_metrics"] == ["lpips"]
    assert "mmgt-weights fetch lpips_alexnet" in saved["metrics"]["lpips"]["error"]
    assert saved["metrics"]["lip_audio_pose"]["protocol"]["source"] == "keypoints"
    assert saved["protocol"]["resize"] == 64 and saved["generation"]["eval_size"] == 64
    assert "generated" in saved["protocol"]["size_from"]
    events = _events(tmp_path)
    expected = {f"eval/{k}" for k, v in saved["summary"].items() if isinstance(v, float)}
    assert "eval/bas/bas" in expected and expected <= set(events["scalars"])
    for tag in expected:
        assert events["scalars"][tag] == [(3, pytest.approx(saved["summary"][tag[5:]], rel=1e-5))]
    assert expected <= set(result["metrics"])  # and in the HParams view's metrics


@pytest.mark.slow
def test_run_whose_evaluation_scored_nothing_is_failed_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only lpips, without its weights: nothing is scored; results.json says failed (with the evaluation's
    results) and ``mmgt-train`` exits 1."""
    import json
    import sys

    from mmgt.train import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    empty = tmp_path / "no_weights"
    argv = [*STAGE1_EVAL, "evaluate.metrics=[lpips]", f"evaluate.overrides=['weights_dir={empty}']"]
    argv += [f"hydra.run.dir={tmp_path}", f"paths.data_dir={tmp_path / 'data'}"]
    monkeypatch.setattr(sys, "argv", ["mmgt-train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["run"]["status"] == "failed" and saved["run"]["evaluated"] is True
    assert saved["run"]["error"].startswith("evaluation scored nothing, every metric failed: lpips: missing")
    assert saved["metrics"]["lpips"]["missing_weights"]["file"] == "alexnet-owt-7be5be79.pth"
