"""Stage II end to end through the real CLIs: mmgt-train for both processes (export, events, init_from
freezing) and mmgt-generate stage=full / stage=video on the speech samples (frame count, audio, bad input)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmgt.config import CONFIG_DIR, audio_encoder
from mmgt.io import probe_video, read_video
from mmgt.schema import FPS, SAMPLE_RATE
from mmgt.stage2.components import COMPONENT_NAMES
from mmgt.train import build_model
from tests.helpers.shared import compose_config, samples_path

TOY = [  # 2 speakers x 3 clips x 4 s (2 train + 1 test each); a quickly fitted toy VAE
    "data.prepare.n_speakers=2",
    "data.prepare.clips_per_speaker=3",
    "data.prepare.seconds=4",
    "data.batch_size=4",
    "data.samples_per_clip=4",
    "data.val_samples_per_clip=1",
    "data.prepare.vae_steps=60",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=5",
]


def _train(run_dir: Path, data_dir: Path, experiment: str, *extra: str) -> str:
    cmd = [sys.executable, "-m", "mmgt.train", f"experiment={experiment}", *TOY, f"paths.data_dir={data_dir}"]
    cmd += [f"hydra.run.dir={run_dir}", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def _state(folder: Path, name: str) -> dict[str, torch.Tensor]:
    from mmgt.stage2.export import load_component

    return load_component(folder, name).state_dict()


@pytest.mark.slow
def test_train_both_processes_export_and_init_from(tmp_path: Path) -> None:
    data = tmp_path / "data"
    image = tmp_path / "image"
    _train(image, data, "stage2_image_toy", "trainer.max_steps=20")
    export = image / "export"
    assert all((export / n / "config.json").is_file() for n in COMPONENT_NAMES)
    meta = json.loads((export / "mmgt_stage2.json").read_text())
    assert meta["process"] == "image" and meta["fps"] == FPS and meta["size"] == 64
    assert meta["mask_guidance"]["_target_"].endswith("MotionMaskGuidance")
    losses = set()
    for events in (image / "tensorboard").rglob("events.out.tfevents*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/loss" in acc.Tags()["scalars"]:
            losses |= {e.step for e in acc.Scalars("train/loss")}
    assert len(losses) >= 3

    standalone = tmp_path / "video_standalone"  # the acceptance command: no image-level export needed
    _train(standalone, data, "stage2_video_toy", "trainer.max_steps=20")
    assert (standalone / "export" / "mmgt_stage2.json").is_file()

    video = tmp_path / "video"
    _train(video, data, "stage2_video_toy", "trainer.max_steps=5", f"model.init_from={export}")
    # initialised from the image-level export, and only motion modules / audio branches / projection moved
    for name in ("reference_net", "pose_guider"):
        a, b = _state(export, name), _state(video / "export", name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = _state(export, "denoiser"), _state(video / "export", "denoiser")
    moved = {k for k in a if not torch.equal(a[k], b[k])}
    assert moved and all("motion_modules" in k or ".processor.branches." in k for k in moved)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny Stage I and Stage II exports written by the real LitModules (shapes, not quality)."""
    root = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    baseline = audio_encoder("baseline").node()
    stage1_cfg = compose_config("train", ["experiment=smga_toy"]).model
    stage1 = build_model(stage1_cfg, {"audio_dim": 95, "audio_features": baseline})
    cfg = compose_config("train", ["experiment=stage2_video_toy"])
    with open_dict(cfg):
        cfg.model.vae = OmegaConf.load(CONFIG_DIR / "model/stage2/scale/tiny.yaml").vae
        cfg.model.inference.steps = 2
        cfg.model.inference.guidance_scale = 1.0
    meta = {"size": 64, "frames": 8, "audio_features": baseline, "audio_margin": 2, "pose_render": {}}
    stage2 = build_model(cfg.model, {"audio_layers": 1, "audio_dim": 95, "data_meta": meta})
    return {"pose": stage1.export(root / "stage1"), "video": stage2.export(root / "stage2")}


def _check_video(path: Path, audio_path: Path) -> None:
    import soundfile as sf

    info = sf.info(str(audio_path))
    expected = round(info.frames / info.samplerate * FPS)
    probe = probe_video(path)
    assert abs(probe.fps - FPS) < 1e-6 and probe.has_audio
    data = read_video(path)
    assert abs(len(data.frames) - expected) <= 1, (len(data.frames), expected)
    assert data.frames.shape[1:] == (64, 64, 3)
    assert data.audio is not None and abs(len(data.audio) / SAMPLE_RATE - info.duration) < 0.1


@pytest.mark.slow
def test_generate_full_cli_on_speech_samples(exports: dict[str, Path], tmp_path: Path) -> None:
    image = samples_path("ref_halfbody_woman_openhands_flux.png")
    for name in ("speech_en_jfk_11s.flac", "speech_en_beat2_scott_28s.mp3"):
        audio = samples_path(name)
        out = tmp_path / f"{Path(name).stem}.mp4"
        cmd = [
            sys.executable,
            "-m",
            "mmgt.generate",
            f"audio={audio}",
            f"ref_image={image}",
            f"pose_model={exports['pose']}",
            f"video_model={exports['video']}",
            f"out={out}",
            "steps=4",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        summary = json.loads(proc.stdout[proc.stdout.index("{") :])
        assert summary["out"] == str(out) and summary["stats"]["cfg"] is False
        _check_video(out, audio)
        kps = np.load(out.with_suffix(".keypoints.npy"))
        assert kps.shape == (summary["frames"], 134, 3)


def _generate(exports: dict[str, Path], out: Path, **kw: str) -> dict:
    from mmgt.generate import generate

    overrides = [f"video_model={exports['video']}", f"pose_model={exports['pose']}", f"out={out}"]
    return generate(compose_config("generate", [*overrides, *[f"{k}={v}" for k, v in kw.items()]]))


def test_generate_video_stage_with_given_poses(exports: dict[str, Path], tmp_path: Path) -> None:
    from mmgt.io import write_audio
    from mmgt_prep.toy import generate_clip, speaker_style

    clip = generate_clip(speaker_style(0, 1), 2.0, 64, np.random.default_rng(0))
    audio = tmp_path / "a.wav"
    write_audio(audio, clip.audio[: 45 * 640])  # 1.8 s: 45 frames, fewer than the 50 poses (trimmed)
    np.save(tmp_path / "poses.npy", clip.keypoints)
    import cv2

    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(clip.frames[0], cv2.COLOR_RGB2BGR))
    res = _generate(
        exports,
        tmp_path / "out",
        stage="video",
        audio=str(audio),
        ref_image=str(tmp_path / "ref.png"),
        keypoints=str(tmp_path / "poses.npy"),
        video_options="{scheduler: dpmsolver++, cfg_mode: sequential}",  # speed levers reach the pipeline
        video_dtype="bf16",
    )
    assert res["out"] == str(tmp_path / "out" / "video.mp4") and res["frames"] == 45
    assert res["stats"]["scheduler"] == "dpmsolver++" and res["stats"]["cfg_mode"] == "sequential"
    assert res["stats"]["dtype"] == "bfloat16"
    _check_video(Path(res["out"]), audio)


def test_video_options_map_and_named_keys() -> None:
    from mmgt.generate import _video_options

    cfg = compose_config("generate", ["video_steps=3", "video_options={scheduler: unipc, vae_tiling: true}"])
    assert _video_options(cfg) == {"steps": 3, "scheduler": "unipc", "vae_tiling": True}
    with pytest.raises(ValueError, match=r"\['steps'\] given both"):
        _video_options(compose_config("generate", ["video_steps=3", "video_options={steps: 2}"]))
    lever = "+evaluate.options.scheduler=dpmsolver++"
    train = compose_config("train", ["experiment=stage2_video_toy", lever])
    assert train.evaluate.options == {"scheduler": "dpmsolver++"}  # docs/stage2.md "Speed levers"


def test_generate_bad_input_is_a_clear_error(exports: dict[str, Path], tmp_path: Path) -> None:
    audio = samples_path("speech_zh_echomimicv2_good_4s.wav")
    image = samples_path("ref_halfbody_man_openhands_flux.png")
    with pytest.raises(ValueError, match="give keypoints=FILE.npy"):
        _generate(exports, tmp_path / "o.mp4", stage="video", audio=str(audio), ref_image=str(image))
    with pytest.raises(FileNotFoundError, match="not a Stage II export"):
        _generate(
            {**exports, "video": tmp_path / "none"},
            tmp_path / "o.mp4",
            audio=str(audio),
            ref_image=str(image),
        )
    (tmp_path / "bad.png").write_text("not an image")
    np.save(tmp_path / "p.npy", np.zeros((5, 134, 3), np.float32))
    with pytest.raises(ValueError, match="bad.png: not a readable image"):
        _generate(
            exports,
            tmp_path / "o.mp4",
            stage="video",
            audio=str(audio),
            ref_image=str(tmp_path / "bad.png"),
            keypoints=str(tmp_path / "p.npy"),
        )


@pytest.mark.slow
def test_video_evaluation_generates_the_split_and_scores_it(exports: dict[str, Path], tmp_path: Path) -> None:
    """The mmgt-train ``evaluate`` hook for Stage II: generate the test split, score with mmgt-eval."""
    from types import SimpleNamespace

    from mmgt.stage2.evaluate import VideoEvaluation
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"
    generate_toy_dataset(store, 2, 2, seconds=1.2, size=64, seed=0, test_fraction=0.5, progress=False)
    evaluator = VideoEvaluation(metrics=["psnr", "ssim"], options={"steps": 2}, shuffled_control=True)
    res = evaluator(exports["video"], SimpleNamespace(root=store), tmp_path / "run")
    assert {"psnr", "ssim", "psnr_shuffled"} <= set(res["metrics"])
    assert res["generation"]["clips"] == 2 and res["generation"]["steps"] == 2
    videos = sorted((tmp_path / "run" / "generated").rglob("*.mp4"))
    assert len(videos) == 2 and all(v.with_suffix(".npy").is_file() for v in videos)


def test_video_evaluation_scores_a_larger_store_at_the_training_size(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    """A 64x64 export against a 128x128 store (as 64² generations against a 512² store): with the default
    ``eval_size`` both are scored at 64 (the references area-downsampled) and the protocol says so; native
    sizes are refused before anything is generated. lip_audio looks for lips on the generated pixels: this
    untrained export draws none, so it is failed with that reason (never scored from the driving poses)."""
    from types import SimpleNamespace

    from mmgt.stage2.evaluate import VideoEvaluation
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"
    generate_toy_dataset(store, 2, 2, seconds=1.2, size=128, seed=0, test_fraction=0.5, progress=False)
    data = SimpleNamespace(root=store)
    native = VideoEvaluation(metrics=["psnr"], options={"steps": 2}, eval_size=None)
    with pytest.raises(ValueError, match=r"eval_size=null .* generated videos are 64x64 .* 128x128"):
        native(exports["video"], data, tmp_path / "native")
    assert not (tmp_path / "native").exists()
    metrics = ["psnr", "mouth", "lip_audio", "hands"]
    res = VideoEvaluation(metrics=metrics, options={"steps": 2}, max_frames=12)(
        exports["video"], data, tmp_path / "run"
    )
    assert res["protocol"]["resize"] == 64 and res["protocol"]["resize_interpolation"] == "cv2.INTER_AREA"
    assert res["protocol"]["size_from"].startswith("generated: the training size of the Stage II export")
    assert res["generation"]["eval_size"] == 64 and res["generation"]["size"] == 64
    assert res["metrics"]["psnr"]["n_videos"] == 2 and res["metrics"]["mouth"]["n_videos"] == 2
    hands = res["metrics"]["hands"]  # scored at 64 against the driving poses, references truncated too
    assert hands["n_videos"] == 2 and hands["protocol"]["frame_policy"] == "truncate"
    assert hands["values"]["hand_error"] >= hands["values"]["hand_error_reference"]
    video = next(iter(res["per_video"].values()))
    assert video["reference"]["conversions"] == ["resized 128x128 -> 64x64 (cv2.INTER_AREA)"]
    assert video["generated"]["conversions"] == []  # already at the protocol size
    lips = res["metrics"]["lip_audio"]  # an untrained export draws no face mediapipe can find
    assert lips["protocol"]["source"] == "pixels" and lips["status"] == "failed" and lips["n_skipped"] == 2
    reasons = {s["reason"] for s in res["skips"] if s["metric"] == "lip_audio"}
    assert reasons == {"lip_audio: mediapipe FaceMesh found a face on 0 of 12 frames (64x64); 10 needed"}


def test_still_baselines_max_frames_and_clips_spread_over_speakers(tmp_path: Path) -> None:
    """``max_clips`` takes clips round-robin over speakers; ``max_frames`` shortens the videos and the
    frame-policy metrics score only those frames against the full-length references. With
    ``metrics=[psnr,hands]`` the reference frame held still misses the moving hands (hand_error above the
    detector's floor on the clips themselves), and mmgt-table shows hand_error as lower-is-better."""
    import json

    from mmgt.io import read_video
    from mmgt.stage2.evaluate import still_baseline
    from mmgt_eval.aggregate import build_table
    from mmgt_eval.render import format_markdown
    from mmgt_eval.results import load_result
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"  # 64 px: the hands metric's smallest size (speaker 1 wears long sleeves)
    generate_toy_dataset(store, 2, 4, seconds=1.2, size=64, seed=0, test_fraction=0.5, progress=False)
    res = still_baseline(store, tmp_path / "base", "mean_frame", max_clips=2, max_frames=10)
    videos = sorted((tmp_path / "base" / "generated").rglob("*.mp4"))
    assert sorted(v.parent.name for v in videos) == ["toy_spk0", "toy_spk1"]  # not two of one speaker
    assert all(len(read_video(v).frames) == 10 for v in videos)
    assert res["summary"]["psnr/psnr_frames"] == 20 and res["summary"]["mouth/mouth_clips"] == 2
    assert res["generation"]["max_frames"] == 10
    saved = json.loads((tmp_path / "base" / "results.json").read_text())
    assert saved["metrics"]["psnr"]["protocol"]["frame_policy"] == "truncate"
    # the clip's own first frame held still is closer to the clip than the mean training frame
    ref = still_baseline(store, tmp_path / "ref", "reference_frame", metrics=["psnr", "hands"], max_clips=2)
    assert ref["summary"]["psnr/psnr"] > res["summary"]["psnr/psnr"]
    hands = {v: s["scores"]["hands"] for v, s in ref["per_video"].items()}
    assert (
        ref["metrics"]["hands"]["n_videos"] == 2 and ref["metrics"]["hands"]["protocol"]["colour_tol"] == 40
    )
    sleeved = next(h for v, h in hands.items() if "toy_spk1" in v)
    assert (
        sleeved["hand_error_reference"] < 0.015
        and sleeved["hand_error"] > 3 * sleeved["hand_error_reference"]
    )
    table = build_table([load_result(tmp_path / "ref" / "results.json")], ["psnr/psnr", "hands/hand_error"])
    assert [(c.key, c.higher_is_better) for c in table.columns] == [
        ("psnr/psnr", True),
        ("hands/hand_error", False),
    ]
    assert "hands/hand_error ↓" in format_markdown(table)
    with pytest.raises(ValueError, match="kind must be one of mean_frame, reference_frame"):
        still_baseline(store, tmp_path / "bad", "median_frame")


def test_exports_are_safetensors_and_pickled_weights_are_refused(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    from mmgt.stage2.export import Stage2Export

    files = [p.name for p in exports["video"].rglob("*") if p.is_file()]
    assert files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    assert sum(f.endswith(".safetensors") for f in files) == len(COMPONENT_NAMES)
    assert (exports["pose"] / "diffusion_pytorch_model.safetensors").is_file()
    pickled = tmp_path / "export"
    shutil.copytree(exports["video"], pickled)
    part = pickled / "pose_guider"
    weights = part / "diffusion_pytorch_model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(weights), part / "diffusion_pytorch_model.bin")  # the same weights, pickled
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="pose_guider: cannot load the exported pose_guider"):
        Stage2Export.load(pickled)


def test_video_outputs_keep_the_audio_refuse_taken_paths_and_leave_nothing_on_failure(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    import av
    import soundfile as sf

    from mmgt.atomic import OutputExistsError
    from mmgt_prep.toy import generate_clip, speaker_style

    clip = generate_clip(speaker_style(0, 1), 1.0, 64, np.random.default_rng(0))
    np.save(tmp_path / "poses.npy", clip.keypoints)
    import cv2

    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(clip.frames[0], cv2.COLOR_RGB2BGR))
    audio = tmp_path / "stereo48k.wav"
    sf.write(audio, np.random.default_rng(0).normal(0, 0.1, (48000, 2)).astype(np.float32), 48000)
    args = {"stage": "video", "audio": str(audio), "ref_image": str(tmp_path / "ref.png")}
    args["keypoints"] = str(tmp_path / "poses.npy")
    out = tmp_path / "v.mp4"
    res = _generate(exports, out, **args)
    assert res["frames"] == 25 and out.with_suffix(".keypoints.npy").is_file()
    with av.open(str(out)) as c:
        assert (c.streams.audio[0].rate, c.streams.audio[0].channels) == (48000, 2)
    with pytest.raises(OutputExistsError, match=r"v\.mp4: file exists; set overwrite=true"):
        _generate(exports, out, **args)
    assert _generate(exports, out, overwrite="true", **args)["frames"] == 25
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(OutputExistsError, match="exists and is a folder"):
        _generate(exports, tmp_path / "dir.mp4", **args)
    with pytest.raises(ValueError, match="steps must be >= 1"):  # fails: no video, no poses, no folder
        _generate(exports, tmp_path / "new" / "x.mp4", video_steps=0, **args)
    assert not (tmp_path / "new").exists()
