"""``mmgt-weights import-mmgt``: the release layout (the reference fixtures laid out as the release) becomes a
Stage I and a Stage II export that generation and fine-tuning use unchanged; docs/reproduce-mmgt.md's tiny
walk-through runs as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hydra
import pytest
import torch

from mmgt.train import build_model
from mmgt_eval.weights_cli import main as weights_main
from tests.helpers.shared import REFERENCE_FIXTURES, SAMPLES_DIR, compose_config, reference_fixture

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reproduce-mmgt.md"


STANDIN = ["--stage1-audio-features", "standin"]  # librosa is an optional extra (the exact features need it)


def _configs() -> dict:
    from tests.helpers.tiny_pretrained import fixture_configs

    return fixture_configs(reference_fixture())


def _import_flags(cfg: dict) -> list[str]:
    """The fixtures' sizes the weights cannot tell: frame side, motion heads, SMGA heads."""
    io = torch.load(reference_fixture("stage2_tiny", "stage2_tiny_orig_io.pt"), weights_only=True)
    motion = cfg["stage2"]["unet_additional_kwargs"]["motion_module_kwargs"]
    return [
        "--size",
        str(io["pose_vid"].shape[-1]),
        "--motion-heads",
        str(motion["num_attention_heads"]),
        "--stage1-heads",
        str(cfg["stage1"]["num_heads"]),
    ]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fixtures as a release folder + tiny pretrained stand-ins at their sizes."""
    from tests.helpers.tiny_pretrained import write_tiny_pretrained

    root = tmp_path_factory.mktemp("mmgt_release")
    src = root / "MMGT_pretrained"
    (src / "stage_1").mkdir(parents=True)
    shutil.copyfile(
        reference_fixture("stage1_tiny", "smga_tiny_orig_ckpt.pth"),
        src / "stage_1" / "audio2pose_best_model.pt",
    )
    shutil.copytree(reference_fixture("stage2_tiny", "stage_2"), src / "stage_2")
    for p in src.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return {
        "src": src,
        "pretrained": write_tiny_pretrained(reference_fixture(), root / "pretrained"),
        "root": root,
    }


@pytest.fixture(scope="module")
def imported(release: dict[str, Path]) -> Path:
    out = release["root"] / "out"
    args = [
        "import-mmgt",
        str(release["src"]),
        str(out),
        "--pretrained-dir",
        str(release["pretrained"]),
        *STANDIN,
    ]
    assert weights_main([*args, *_import_flags(_configs())]) == 0
    return out


def test_import_writes_exports_that_compute_the_original(imported: Path) -> None:
    from mmgt.stage1.export import Stage1Export
    from mmgt.stage1.reference import load_reference_checkpoint
    from mmgt.stage2.attention import RegionMasks, Stage2AttentionContext
    from mmgt.stage2.pipeline import Stage2Pipeline

    cfg = _configs()
    net, diffusion, meta1 = Stage1Export.load(imported / "stage1")
    ref = load_reference_checkpoint(
        reference_fixture("stage1_tiny", "smga_tiny_orig_ckpt.pth"), cfg["stage1"]["num_heads"]
    )
    assert all(
        torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True)
    )
    assert meta1.sampling() == {"steps": 50, "guidance": 2.0, "eta": 1.0}

    pipe = Stage2Pipeline.from_pretrained(imported / "stage2")
    meta = pipe.export
    assert meta.process == "video" and meta.use_audio and meta.noise_scheduler["beta_schedule"] == "linear"
    assert meta.inference["motion_scale"] == [1.0, 1.0, 2.0] and meta.inference["closed_loop"]
    # the exported denoiser (fp16 bank) with the export's inference branches = the original inference path
    io = torch.load(reference_fixture("stage2_tiny", "stage2_tiny_orig_io.pt"), weights_only=True)
    comps = pipe.components
    with torch.no_grad():
        states = comps.reference_net.write_states(io["ref_image_latents"], io["clip_image_embeds"])
        levels = [
            torch.stack([f, fa, li], 1).reshape(len(f), 3, int(f.shape[1] ** 0.5), -1)
            for f, fa, li in zip(io["full_mask"], io["face_mask"], io["lip_mask"], strict=True)
        ]
        context = Stage2AttentionContext(
            reference_states=states,
            audio_tokens=comps.audio_proj(io["audio_emb"]).flatten(0, 1),
            region_masks=RegionMasks(comps.denoiser.branches, levels),  # the fixture's masks, in order
            branch_weights=meta.inference["motion_scale"],
        )
        pose = comps.pose_guider(io["pose_vid"])
        out = comps.denoiser(io["noisy_latents"], io["timesteps"], io["clip_image_embeds"], pose, context)
    err = (out - io["pred_inference_path_scale_112_fp16_bank"]).abs().max().item()
    assert err <= 2e-5  # float32 round-off: up to 1.05e-5 measured with one thread


def test_import_process1_alone_is_an_image_level_export(release: dict[str, Path], tmp_path: Path) -> None:
    from mmgt.stage2.export import Stage2Export

    args = [
        "import-mmgt",
        str(release["src"]),
        str(tmp_path),
        "--pretrained-dir",
        str(release["pretrained"]),
        *STANDIN,
    ]
    cfg = _configs()["stage2"]
    audio = ["--audio-dim", str(cfg["unet_additional_kwargs"]["audio_attention_dim"]), "--audio-tokens", "4"]
    assert (
        weights_main([*args, "--process", "1", "--parts", "stage2", *audio, *_import_flags(_configs())]) == 0
    )
    comps, meta = Stage2Export.load(tmp_path / "stage2")
    assert meta.process == "image" and not meta.use_audio and not (tmp_path / "stage1").exists()
    p1 = torch.load(
        next((release["src"] / "stage_2" / "process_1").glob("denoising_unet-*.pth")), weights_only=True
    )
    assert torch.equal(comps.denoiser.unet.conv_in.weight, p1["conv_in.weight"].float())
    from diffusers import MotionAdapter

    # motion modules from the AnimateDiff folder of the pretrained dir (as the original's process 2 began)
    adapter = MotionAdapter.from_pretrained(release["pretrained"] / "animatediff-motion-adapter-v1-5-2")
    ours = comps.denoiser.unet.down_blocks[0].motion_modules[0]
    assert torch.equal(ours.proj_out.weight, adapter.down_blocks[0].motion_modules[0].proj_out.weight)
    assert comps.denoiser.audio_module_names  # fresh release audio modules


def test_wrong_or_partial_release_folders_are_clear_errors(
    release: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--pretrained-dir", str(release["pretrained"]), *STANDIN]
    assert weights_main(["import-mmgt", str(tmp_path / "nowhere"), str(tmp_path / "o"), *base]) == 2
    assert "release folder not found" in capsys.readouterr().err
    partial = tmp_path / "partial"
    shutil.copytree(release["src"], partial)
    next((partial / "stage_2" / "process_1").glob("pose_guider-*.pth")).unlink()
    assert weights_main(["import-mmgt", str(partial), str(tmp_path / "o"), *base]) == 2
    err = capsys.readouterr().err
    assert (
        "incomplete process-1 set, missing ['pose_guider-<step>.pth']" in err
        and "expected release layout" in err
    )
    net = next((partial / "stage_2" / "process_2").glob("net-*.pth"))
    state = torch.load(net, weights_only=True)
    key = next(k for k in state if "audio_modules.0.proj_in.weight" in k)
    state[key] = state[key][:, :1]
    state["denoising_unet.unknown.weight"] = torch.zeros(1)
    torch.save(state, net)
    shutil.rmtree(partial / "stage_2" / "process_1")
    assert weights_main(["import-mmgt", str(partial), str(tmp_path / "o"), "--parts", "stage2", *base]) == 2
    err = capsys.readouterr().err
    assert (
        "has shape" in err
        and "unexpected unknown.weight" in err
        and key.removeprefix("denoising_unet.") in err
    )
    empty = ["import-mmgt", str(release["src"]), str(tmp_path / "o"), "--pretrained-dir", str(tmp_path)]
    assert weights_main(empty) == 2
    assert "wavlm-large: pretrained wavlm folder not found" in capsys.readouterr().err
    assert weights_main([*empty, "--parts", "stage2"]) == 2
    err = capsys.readouterr().err
    assert "wav2vec2-base-960h: pretrained speech_encoder folder not found" in err
    assert "stable-diffusion-v1-5/unet" in err and "sd-vae-ft-mse" in err  # names the whole layout


@pytest.mark.parametrize("process", ["image", "video"])
def test_fine_tuning_from_the_imported_release(
    release: dict[str, Path], imported: Path, tmp_path: Path, process: str
) -> None:
    from mmgt_prep.toy import generate_toy_dataset

    cfg2 = _configs()["stage2"]
    size = int(_import_flags(_configs())[1])
    store = tmp_path / "store"
    generate_toy_dataset(store, 1, 2, seconds=1.0, size=size, seed=0, test_fraction=0.5, progress=False)
    pose, proj = cfg2["pose_guider"], cfg2["audio_proj"]
    cfg = compose_config(
        "train",
        [
            "data=video",
            "model=stage2",
            "model/stage2/variant=mmgt_release",
            f"model/stage2/process={process}",
            f"paths.pretrained_dir={release['pretrained']}",
            f"model.init_from={imported / 'stage2'}",
            f"data.root={store}",
            f"data.size={size}",
            f"data.frames={1 if process == 'image' else 4}",
            "data.batch_size=1",
            "audio_encoder@data.audio_features=wav2vec2",  # <paths.pretrained_dir>/wav2vec2-base-960h
            f"model.pose_guider.out_channels={pose['conditioning_embedding_channels']}",
            f"model.pose_guider.block_out_channels={pose['block_out_channels']}",
            f"model.audio_proj.hidden_dim={proj['intermediate_dim']}",
            f"model.audio_proj.tokens={proj['context_tokens']}",
            f"model.audio_proj.token_dim={proj['output_dim']}",
        ],
        output_dir=tmp_path,
    )
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    model = build_model(cfg.model, dm.model_kwargs)
    comps = model.components
    before = {n: p.detach().clone() for n, p in comps.named_parameters()}
    trained = set(model.trainable_names)
    if process == "image":  # the original's process 1
        assert not any(
            ".motion_modules." in n or ".audio_modules." in n or n.startswith("audio_proj.") for n in trained
        )
        assert not any(n.startswith("reference_net.up_blocks.3.") for n in trained)
        assert any(n.startswith("reference_net.up_blocks.2.") for n in trained)
        assert any(n.startswith("pose_guider.") for n in trained) and any(
            ".attentions." in n for n in trained
        )
    else:  # the original's process 2
        assert all(
            ".motion_modules." in n or ".audio_modules." in n or n.startswith("audio_proj.") for n in trained
        )
        assert any(".audio_modules." in n for n in trained) and any(
            n.startswith("audio_proj.") for n in trained
        )
    dm.setup("fit")
    optimizer = model.configure_optimizers()
    loss = model.model_step(next(iter(dm.train_dataloader())))["loss"]
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = {n for n, p in comps.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= trained


@pytest.mark.slow
def test_doc_walkthrough_converts_the_fixtures_and_generates_a_video(tmp_path: Path) -> None:
    """docs/reproduce-mmgt.md §3, the lines as written (env: the fixtures, the samples, the output folder)."""
    from mmgt.io import read_video

    reference_fixture()
    if not (SAMPLES_DIR / "speech_zh_echomimicv2_good_4s.wav").is_file():
        pytest.skip(f"sample media not available: {SAMPLES_DIR}")
    if not (REPO / ".venv" / "bin" / "mmgt-weights").is_file():
        pytest.skip("the walk-through uses the repository's .venv (make install)")
    text = DOC.read_text()
    block = re.search(r"<!-- tiny-walkthrough -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "docs/reproduce-mmgt.md lost its tiny walk-through block"
    script = block.group(1)
    flags = " ".join(_import_flags(_configs()))
    assert flags in " ".join(script.split()), f"the walk-through's flags must be the fixtures' sizes: {flags}"
    env = {
        **os.environ,
        "MMGT_REFERENCE_FIXTURES": str(REFERENCE_FIXTURES),
        "MMGT_SAMPLES": str(SAMPLES_DIR),
        "OUT": str(tmp_path),
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    frames = read_video(tmp_path / "video.mp4").frames
    summary = json.loads(run.stdout[run.stdout.index("{") :])
    assert frames.shape[1:] == (int(_import_flags(_configs())[1]),) * 2 + (3,)
    assert len(frames) == summary["frames"] and (tmp_path / "video.keypoints.npy").is_file()


def test_the_default_stage1_audio_is_the_originals_librosa_set(
    release: dict[str, Path], tmp_path: Path, monkeypatch
) -> None:
    """``--stage1-audio-features exact`` (default): WavLM + :mod:`mmgt.audio_release`'s 35 features; without
    librosa the import is a clear error that names the stand-in option."""
    import json
    import sys

    args = [
        "import-mmgt",
        str(release["src"]),
        str(tmp_path / "o"),
        "--pretrained-dir",
        str(release["pretrained"]),
    ]
    args += ["--parts", "stage1", *_import_flags(_configs())]
    monkeypatch.setitem(sys.modules, "librosa", None)  # as on a machine without the audio extra
    assert weights_main([*args]) == 2
    monkeypatch.undo()
    pytest.importorskip("librosa")
    assert weights_main(args) == 0
    meta = json.loads((tmp_path / "o" / "stage1" / "mmgt_stage1.json").read_text())
    parts = [p["_target_"].rsplit(".", 1)[1] for p in meta["audio_features"]["extractors"]]
    assert parts == ["PretrainedSpeechEncoder", "ReleaseLibrosaFeatures"]
