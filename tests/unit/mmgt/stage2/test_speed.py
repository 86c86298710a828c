"""Stage II speed levers (mmgt.stage2.speed): each one against the plain path on a random tiny model."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from mmgt.stage2.export import DEFAULT_INFERENCE
from mmgt.stage2.pipeline import Stage2Pipeline, square_image
from mmgt.stage2.speed import SCHEDULERS, make_scheduler, resolve_dtype
from tests.benchmarks.bench_stage2_perf import tiny_model, toy_inputs

FRAMES = 6
BASE: dict[str, Any] = {
    "steps": 3,
    "guidance_scale": 2.0,
    "context_frames": 4,
    "context_overlap": 2,
    "progress": False,
}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A random tiny video-level Stage2LitModule (64^2 frames, 16^2 latents)."""
    torch.manual_seed(0)
    return tiny_model(tmp_path_factory.mktemp("speed"), frames=4).eval()


@pytest.fixture(scope="module")
def inputs(model: Any) -> dict[str, Any]:
    """denoise's tensor inputs for FRAMES frames of a toy clip (with audio features)."""
    ref, kps, audio = toy_inputs(FRAMES / 25)
    pipe = model.pipeline()
    feats = torch.as_tensor(pipe.audio_features(audio, FRAMES))
    kps = torch.from_numpy(kps[:FRAMES]).float()
    return {
        "ref_image": square_image(ref, pipe.size),
        "audio_features": feats,
        "keypoints": kps,
        "ref_keypoints": kps[0],
    }


def latents(pipe: Stage2Pipeline, inputs: dict[str, Any], **options: Any) -> torch.Tensor:
    return pipe.denoise(**inputs, **{**BASE, **options})


@pytest.fixture(scope="module")
def plain(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """The default path's latents (DDIM, batched CFG, contiguous, torch's SDPA choice, eager, fp32)."""
    return latents(model.pipeline(), inputs)


def test_levers_are_generation_defaults() -> None:
    expected = {
        "scheduler": "ddim",
        "cfg_mode": "batched",
        "channels_last": False,
        "sdpa_backend": None,
        "compile": False,
        "compile_mode": None,
        "compile_backend": None,
        "compile_fullgraph": True,
        "vae_slicing": False,
        "vae_tiling": False,
    }
    assert {k: DEFAULT_INFERENCE[k] for k in expected} == expected


@pytest.mark.parametrize(
    "options",
    [{"cfg_mode": "sequential"}, {"channels_last": True}, {"sdpa_backend": "math"}],
    ids=["cfg_sequential", "channels_last", "sdpa_math"],
)
def test_lever_keeps_the_output(
    model: Any, inputs: dict[str, Any], plain: torch.Tensor, options: dict[str, Any]
) -> None:
    pipe = model.pipeline()
    out = latents(pipe, inputs, **options)
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-4)
    weight = pipe.components.denoiser.unet.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) == options.get("channels_last", False)
    assert pipe.last_stats["cfg_mode"] == options.get("cfg_mode", "batched")
    assert pipe.last_stats["scheduler"] == "ddim"
    assert pipe.last_stats["unet_frame_evals_per_frame"] == 3 * 2 * (4 + 4) / FRAMES  # 2 windows of 4


def test_every_scheduler_runs_on_the_training_schedule(model: Any, inputs: dict[str, Any]) -> None:
    config = model.export_meta().noise_scheduler
    for name in SCHEDULERS:
        sched = make_scheduler(config, name)
        assert sched.config.prediction_type == "v_prediction" and sched.config.rescale_betas_zero_snr
        assert sched.config.timestep_spacing == "trailing"
        pipe = model.pipeline()
        out = latents(pipe, inputs, scheduler=name, steps=2)
        assert out.shape == (1, 4, FRAMES, 16, 16) and torch.isfinite(out).all(), name
        assert pipe.last_stats["scheduler"] == name
    with pytest.raises(ValueError, match="scheduler must be one of"):
        make_scheduler(config, "plms")


def test_dpmsolver_at_few_steps_is_near_ddim_at_many(model: Any, inputs: dict[str, Any]) -> None:
    """Same noise: DPM-Solver++ with 8 steps lands nearer DDIM-50's latents than DDIM-8 and the noise do."""
    pipe = model.pipeline()
    quick = {"guidance_scale": 1.0, "context_frames": FRAMES}
    target = latents(pipe, inputs, steps=25, **quick)
    dpm = latents(pipe, inputs, steps=8, scheduler="dpmsolver++", **quick)
    ddim = latents(pipe, inputs, steps=8, **quick)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))

    def err(x: torch.Tensor) -> float:
        return float((x - target).norm() / target.norm())

    print(f"error vs DDIM-25: dpmsolver++-8 {err(dpm):.4f}, ddim-8 {err(ddim):.4f}, noise {err(noise):.4f}")
    assert err(dpm) < 0.5 * err(noise) and err(dpm) < err(ddim), (err(dpm), err(ddim), err(noise))


def test_vae_slicing_exact_and_tiling_close(model: Any) -> None:
    from mmgt.stage2.components import decode_latents

    pipe = model.pipeline()
    vae = pipe.components.vae
    lat = torch.randn(3, 4, 16, 16, generator=torch.Generator().manual_seed(1))  # 3 frames of 64^2

    def decoded(slicing: bool = False, tiling: bool = False) -> torch.Tensor:
        pipe._prepare(False, slicing, tiling)
        return decode_latents(vae, lat)

    plain = decoded()
    torch.testing.assert_close(decoded(slicing=True), plain, rtol=0, atol=1e-5)  # frame by frame
    assert vae.tile_sample_min_size < 64  # the tiny VAE's 32^2 tiles: 64^2 frames are decoded in tiles
    try:
        tiled = decoded(tiling=True)
    finally:
        pipe._prepare(False, False, False)
    control = decode_latents(vae, torch.randn(lat.shape, generator=torch.Generator().manual_seed(2)))
    err, control_err = float((tiled - plain).abs().mean()), float((control - plain).abs().mean())
    assert 0 < err < 0.5 * control_err, (err, control_err)  # blended tiles: near the plain decode


def test_bf16_stays_close_to_fp32(model: Any, inputs: dict[str, Any], plain: torch.Tensor) -> None:
    export = model.export_meta()
    pipe = Stage2Pipeline(copy.deepcopy(model.components), export, "cpu", dtype="bf16")
    assert pipe.dtype == torch.bfloat16 and pipe.components.denoiser.unet.dtype == torch.bfloat16
    out = latents(pipe, inputs)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()  # the latents stay fp32
    assert float((out - plain).norm() / plain.norm()) < 0.05
    assert pipe.last_stats["dtype"] == "bfloat16"
    assert resolve_dtype(torch.float16) == torch.float16 and resolve_dtype(None) is None
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8")


@pytest.mark.slow
def test_compiled_denoiser_is_one_graph_equal_to_eager(
    model: Any, inputs: dict[str, Any], plain: torch.Tensor
) -> None:
    """torch.compile(fullgraph=True) at the pipeline's inputs (batched CFG with a reference keep mask, audio
    tokens, region masks, reference states): no graph break, one graph for every step and window, eager's
    output (backend eager: dynamo's graph capture only; inductor's C++ build takes minutes on a CPU)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # nothing compiled by an earlier test is reused
    counters.clear()
    pipe = model.pipeline()
    with torch._dynamo.config.patch(error_on_recompile=True):
        out = latents(pipe, inputs, compile=True, compile_backend="eager")  # compile_fullgraph: True
    torch.testing.assert_close(out, plain, rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    compiled = pipe._compiled[(None, "eager", True)]
    assert pipe._denoiser(True, None, "eager") is compiled  # compiled once per pipeline, mode, backend


def test_unknown_option_is_refused(model: Any, inputs: dict[str, Any]) -> None:
    ref, kps = np.zeros((8, 8, 3), np.uint8), np.zeros((2, 134, 3))
    with pytest.raises(TypeError, match="unknown options"):
        next(model.pipeline().iter_frames(ref, kps, sched="x"))
    with pytest.raises(ValueError, match="cfg_mode must be"):
        latents(model.pipeline(), inputs, cfg_mode="interleaved")
    with pytest.raises(ValueError, match="sdpa_backend must be"):
        latents(model.pipeline(), inputs, sdpa_backend="xformers")
