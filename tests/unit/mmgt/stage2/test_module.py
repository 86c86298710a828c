"""Stage2LitModule + VideoDataModule from the real Hydra configs: every ablation trains a step, exports."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from mmgt.config import CONFIG_DIR
from mmgt.train import build_model
from tests.helpers.shared import compose_config

TINY_VAE = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae)


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 2 clips x 2 s at 64^2 (one train, one test clip each); shared by the Stage II tests."""
    from mmgt_prep.toy import generate_toy_dataset

    root = tmp_path_factory.getbasetemp() / "stage2_toy_store"
    generate_toy_dataset(root, 2, 2, seconds=2.0, size=64, seed=0, test_fraction=0.5, progress=False)
    return root


def stage2_config(
    tmp_path: Path, store: Path, *overrides: str, experiment: str = "stage2_video_toy"
) -> DictConfig:
    """The real experiment, on the small store, with a random tiny VAE (no toy-VAE fitting in unit tests)."""
    cfg = compose_config(
        "train",
        [f"experiment={experiment}", f"data.root={store}", "data.batch_size=2", "data.frames=4", *overrides],
        output_dir=tmp_path,
    )
    with open_dict(cfg):
        cfg.model.vae = TINY_VAE
        cfg.data.samples_per_clip = 2
        cfg.data.val_samples_per_clip = 1
    return cfg


def build(cfg: DictConfig) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    torch.manual_seed(0)
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    model = build_model(cfg.model, dm.model_kwargs)
    dm.setup("fit")
    return model, dm


def one_step(model: pl.LightningModule, dm: pl.LightningDataModule) -> torch.Tensor:
    """One optimiser step on a training batch; returns the loss."""
    batch = next(iter(dm.train_dataloader()))
    opt = model.configure_optimizers()
    loss = model.model_step(batch)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


_DEFAULT = (
    pytest.mark.slow
)  # these options are the experiment's defaults: the same run as mask_guidance=motion
ABLATIONS = [
    "model/stage2/mask_guidance=motion",
    "model/stage2/mask_guidance=static",
    "model/stage2/mask_guidance=none",
    "model/stage2/mask_guidance=no_audio",
    "model/stage2/hierarchy=full",
    "model/stage2/hierarchy=full_face",
    pytest.param("model/stage2/hierarchy=full_face_lips", marks=_DEFAULT),
    pytest.param("model/stage2/placement=down", marks=_DEFAULT),
    "model/stage2/placement=down_mid",
    "model/stage2/placement=down_mid_up",
]


@pytest.mark.parametrize("override", ABLATIONS)
def test_every_ablation_instantiates_and_trains_a_step(
    override: str, tmp_path: Path, toy_store: Path
) -> None:

    model, dm = build(stage2_config(tmp_path, toy_store, override))
    den = model.components.denoiser
    group, choice = override.removeprefix("model/stage2/").split("=")
    if group == "placement":
        assert {n.split(".")[0].split("_")[0] for n in den.audio_processor_names} == set(choice.split("_"))
    if group == "hierarchy":
        expected = {"full": ["full"], "full_face": ["background", "face_hands"]}.get(
            choice, ["background", "face_hands", "lips"]
        )
        assert list(den.branches) == expected
    trained = {n for n, p in model.components.named_parameters() if p.requires_grad}
    audio_trained = any(".processor.branches." in n or n.startswith("audio_proj.") for n in trained)
    assert audio_trained == (choice != "no_audio")
    before = {n: p.detach().clone() for n, p in model.components.named_parameters()}
    loss = one_step(model, dm)
    assert torch.isfinite(loss)
    changed = {n for n, p in model.components.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trained  # frozen parameters never move
    assert any("motion_modules" in n for n in changed)


def test_processes_train_what_they_should(tmp_path: Path, toy_store: Path) -> None:
    image, _ = build(stage2_config(tmp_path, toy_store, "data.frames=1", experiment="stage2_image_toy"))
    names = set(image.trainable_names)
    assert names and not any("motion_modules" in n or ".processor.branches." in n for n in names)
    assert any(n.startswith("reference_net.") for n in names) and any(
        n.startswith("pose_guider.") for n in names
    )
    assert not any(n.startswith(("vae.", "image_encoder.", "audio_proj.")) for n in names)
    unused = {f"reference_net.{n}" for n in image.components.reference_net.unused_parameter_names()}
    assert unused and not names & unused
    video, _ = build(stage2_config(tmp_path, toy_store))
    for n in video.trainable_names:
        assert "motion_modules" in n or ".processor.branches." in n or n.startswith("audio_proj.")


def test_fit_validate_export_and_generate(tmp_path: Path, toy_store: Path) -> None:
    """A real Trainer run (one train + one val batch), the export, and the pipeline on the export."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mmgt.stage2.pipeline import Stage2Pipeline

    cfg = stage2_config(tmp_path, toy_store, "model.sample_every_n_epochs=1", "model.sample_steps=2")
    model, dm = build(cfg)
    trainer = pl.Trainer(
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=pl.loggers.TensorBoardLogger(tmp_path / "tb", name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(tmp_path / "last.ckpt")  # resuming loads it with weights_only=True
    ckpt = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 1 and ckpt["hyper_parameters"]["process"] == "video"
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "val/sample" in events.Tags()["images"]  # generated | truth | pose + masks video
    assert {"val/loss", "val/mse"} <= set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/mse"} <= set(trainer.callback_metrics)
    export = model.export(tmp_path / "export")
    pipe = Stage2Pipeline.from_pretrained(export)
    assert pipe.export.size == 64 and pipe.export.process == "video" and pipe.use_audio
    for name, p in pipe.components.named_parameters():
        torch.testing.assert_close(p, dict(model.components.named_parameters())[name], rtol=0, atol=0)
    clip = dm.split_dataset("train").clips[0]
    kps = clip.keypoints()[:11]
    opts = {"steps": 2, "guidance_scale": 2.0, "context_frames": 4, "context_overlap": 1, "progress": False}
    frames = pipe(clip.video()[0], kps, audio=clip.audio(), **opts)
    assert frames.shape == (11, 64, 64, 3) and frames.dtype == np.uint8
    assert pipe.last_stats["windows"] == 4 and pipe.last_stats["unet_frame_evals"] == 2 * 2 * 4 * 4  # CFG
    again = pipe(clip.video()[0], kps, audio=clip.audio(), pose_cache="none", **opts)
    np.testing.assert_array_equal(again, frames)  # recomputed PoseGuider features: the same video


def test_validation_loss_is_deterministic(tmp_path: Path, toy_store: Path) -> None:
    model, dm = build(stage2_config(tmp_path, toy_store))
    batch = next(iter(dm.val_dataloader()))
    gen = [torch.Generator().manual_seed(3) for _ in range(2)]
    with torch.no_grad():
        a, b = (model.model_step(batch, generator=g)["loss"] for g in gen)
    assert torch.equal(a, b)


def test_data_samples(toy_store: Path, tmp_path: Path) -> None:
    cfg = stage2_config(tmp_path, toy_store, "data.audio_margin=1")
    dm = hydra.utils.instantiate(cfg.data)
    kw = dm.model_kwargs
    assert kw["audio_layers"] == 1 and kw["audio_dim"] == 95 and kw["data_meta"]["size"] == 64
    dm.setup("fit")
    s = dm.split_dataset("train")[0]
    assert s["frames"].shape == (4, 3, 64, 64) and s["pose"].shape == (4, 3, 64, 64)
    assert s["audio"].shape == (4, 3, 1, 95) and s["keypoints"].shape == (4, 134, 3)
    assert s["ref_image"].shape == (3, 64, 64) and s["ref_keypoints"].shape == (134, 3)
    assert float(s["frames"].min()) >= -1.0 and float(s["frames"].max()) <= 1.0
    assert float(s["pose"].min()) >= 0.0 and float(s["pose"].max()) <= 1.0
    val = dm.split_dataset("val")  # no val split in the toy store: falls back to test, fixed windows
    assert [val[0]["start"], val[0]["ref"]] == [val[0]["start"], val[0]["ref"]]
    assert val[0]["clip"] != s["clip"] or len(dm.split_dataset("train").clips) == 1
    with pytest.raises(FileNotFoundError, match="no clip store here"):
        hydra.utils.instantiate(cfg.data, root=str(tmp_path / "nothing"), prepare=None).setup("fit")


def test_bf16_autocast_step_and_eight_bit_optimizer_error(tmp_path: Path, toy_store: Path) -> None:
    from mmgt.stage2.module import adamw

    model, dm = build(stage2_config(tmp_path, toy_store))
    batch = next(iter(dm.train_dataloader()))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what trainer.precision=bf16-mixed does
        loss = model.model_step(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in model.components.named_parameters() if ".branches." in n and ".to_out." in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"needs bitsandbytes: pip install 'bitsandbytes>=0.50'"):
            adamw([torch.nn.Parameter(torch.zeros(1))], eight_bit=True)


@pytest.mark.parametrize(
    "trainer",
    [
        ["trainer=gpu", "trainer.accelerator=cpu"],
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1", "trainer.sync_batchnorm=false"],
    ],
    ids=["gpu", "ddp"],
)
def test_gpu_trainer_configs_train_a_step_on_cpu(trainer: list[str], tmp_path: Path, toy_store: Path) -> None:
    """conf/trainer/{gpu,ddp}.yaml as composed (bf16-mixed; DDP's NCCL group backend), on the CPU."""
    import torch.distributed as dist
    from pytorch_lightning.strategies import DDPStrategy

    cfg = stage2_config(tmp_path, toy_store, "data.frames=1", *trainer, experiment="stage2_image_toy")
    assert cfg.trainer.precision == "bf16-mixed"
    ddp = cfg.trainer.get("strategy") is not None
    if ddp:
        assert cfg.trainer.strategy.process_group_backend == "nccl"
        with open_dict(cfg):
            cfg.trainer.strategy.process_group_backend = "gloo"  # no NCCL without GPUs
    model, dm = build(cfg)
    pl_trainer = hydra.utils.instantiate(
        cfg.trainer,
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        pl_trainer.fit(model, datamodule=dm)
        assert pl_trainer.global_step == 1 and torch.isfinite(pl_trainer.callback_metrics["train/loss"])
        assert isinstance(pl_trainer.strategy, DDPStrategy) == ddp
        if ddp:
            assert dist.get_backend() == "gloo"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_adamw8bit_config_trains_a_step(tmp_path: Path, toy_store: Path) -> None:
    """model/stage2/optimizer=adamw8bit: bitsandbytes' AdamW8bit (its CPU backend here), 8-bit states."""
    bnb = pytest.importorskip("bitsandbytes")
    cfg = stage2_config(
        tmp_path,
        toy_store,
        "data.frames=1",
        "model/stage2/optimizer=adamw8bit",
        experiment="stage2_image_toy",
    )
    model, dm = build(cfg)
    opt = model.configure_optimizers()
    assert isinstance(opt, bnb.optim.AdamW8bit)
    loss = model.model_step(next(iter(dm.train_dataloader())))["loss"]
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    states = [s for s in opt.state.values() if "state1" in s]
    assert states and any(s["state1"].dtype == torch.uint8 for s in states)  # 8-bit moments
