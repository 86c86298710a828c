"""Stage I end to end through the real CLIs: mmgt-train experiment=smga_toy (checkpoint, TensorBoard,
export, SIGKILL + resume) and mmgt-generate stage=pose (any length, bad input)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmgt.config import audio_encoder
from mmgt.io import probe_video
from mmgt.pose_detect import NoPersonError
from mmgt.schema import FPS, SAMPLE_RATE, KeypointLayoutError
from mmgt.train import build_model
from tests.helpers.shared import compose_config, samples_path

TOY = [  # a small toy store: 2 speakers x 3 clips x 4 s (2 train + 1 test each)
    "data.prepare.n_speakers=2",
    "data.prepare.clips_per_speaker=3",
    "data.prepare.seconds=4",
    "data.prepare.size=32",
    "data.batch_size=8",
    "data.stride=20",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def _train(run_dir: Path, data_dir: Path, *extra: str, wait: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mmgt.train", "experiment=smga_toy", *TOY, f"paths.data_dir={data_dir}"]
    cmd += [f"hydra.run.dir={run_dir}", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if wait:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:]
    return proc


def _scalars(run_dir: Path, tag: str) -> dict[int, float]:
    """step -> value of a scalar over every event file of the run (later files win)."""
    values: dict[int, float] = {}
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents*"), key=os.path.getmtime):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            values.update({e.step: e.value for e in acc.Scalars(tag)})
    return values


@pytest.mark.slow
def test_train_writes_checkpoint_events_export_and_resumes_after_sigkill(tmp_path: Path) -> None:
    run, data = tmp_path / "run", tmp_path / "data"
    # 1. an uninterrupted 50-step run: checkpoint, TensorBoard events, exported network
    _train(run, data, "trainer.max_steps=50")
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(_scalars(run, "train/loss")) >= 40
    export = run / "export"
    assert (export / "config.json").is_file() and (export / "mmgt_stage1.json").is_file()
    meta = json.loads((export / "mmgt_stage1.json").read_text())
    assert meta["audio_features"] == audio_encoder("baseline").node() and meta["fps"] == FPS

    # 2. a run killed with SIGKILL after its step-20 checkpoint, resumed from last.ckpt
    killed = tmp_path / "killed"
    ckpt = killed / "checkpoints" / "last.ckpt"
    every = ["callbacks.model_checkpoint.every_n_train_steps=20", "trainer.max_steps=200"]
    proc = _train(killed, data, *every, wait=False)
    deadline = time.monotonic() + 300
    while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # let the checkpoint write finish (it is renamed into place)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.is_file(), proc.stdout.read()[-3000:]
    saved_step = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
    assert 20 <= saved_step < 200
    before = _scalars(killed, "train/loss")
    _train(killed, data, *every, f"ckpt_path={ckpt}", "trainer.max_steps=" + str(saved_step + 30))
    after = {s: v for s, v in _scalars(killed, "train/loss").items() if s >= saved_step}
    assert after and min(after) >= saved_step and max(after) >= saved_step + 25  # the step count continues
    # the loss curve continues: the resumed losses are those of a trained model, not of a fresh one
    first = np.mean([before[s] for s in sorted(before)[:10]])
    assert np.mean([after[s] for s in sorted(after)[:10]]) < first
    final = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved_step < final["global_step"] <= saved_step + 30  # checkpoints kept coming after the resume


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stage I export written by the real SMGALitModule (tiny, untrained: shapes, not quality)."""

    cfg = compose_config("train", ["experiment=smga_toy"])
    torch.manual_seed(0)
    module = build_model(cfg.model, {"audio_dim": 95, "audio_features": audio_encoder("baseline").node()})
    return module.export(tmp_path_factory.mktemp("smga") / "export")


def _generate(export_dir: Path, out: Path, audio: Path, **kw: str) -> dict:
    from mmgt.generate import generate

    overrides = [f"audio={audio}", f"pose_model={export_dir}", f"out={out}", "steps=4", "size=96"]
    overrides += [f"{k}={v}" for k, v in kw.items()]
    if "ref_image" not in kw and "ref_keypoints" not in kw:
        overrides.append(f"ref_image={samples_path('ref_halfbody_woman_openhands_flux.png')}")
    return generate(compose_config("generate", ["stage=pose", *overrides]))


def _check_outputs(out: Path, n_frames: int) -> None:
    kps = np.load(out / "keypoints.npy")
    assert kps.shape == (n_frames, 134, 3) and np.isfinite(kps).all()
    assert ((kps[..., :2] >= 0) & (kps[..., :2] <= 1)).all()
    assert np.load(out / "masks.npy").shape[:2] == (n_frames, 3)
    for name in ("pose.mp4", "preview.mp4", "mask_face_hands.mp4", "mask_lips.mp4", "mask_hands.mp4"):
        info = probe_video(out / name)
        assert abs(info.n_frames - n_frames) <= 1, name
    assert probe_video(out / "pose.mp4").has_audio and probe_video(out / "preview.mp4").has_audio


@pytest.mark.parametrize(
    "name, seconds",
    [
        ("speech_en_jfk_11s.flac", 11.0),
        pytest.param("speech_en_beat2_scott_28s.mp3", 28.7, marks=pytest.mark.slow),
    ],
)
def test_generate_pose_on_the_speech_samples(
    export_dir: Path, tmp_path: Path, name: str, seconds: float
) -> None:
    audio = samples_path(name)
    summary = _generate(export_dir, tmp_path, audio)
    n = summary["frames"]
    assert abs(n - round(seconds * FPS)) <= 1
    _check_outputs(tmp_path, n)


def test_short_silent_and_odd_rate_audio(export_dir: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.npy"
    np.save(ref, np.full((134, 3), 0.5, np.float32))
    cases = {  # shorter than one 80-frame window, silent, 44.1 kHz stereo, 8 kHz
        "short.wav": (np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE), SAMPLE_RATE),
        "silent.wav": (np.zeros(2 * SAMPLE_RATE), SAMPLE_RATE),
        "stereo44k.wav": (np.random.default_rng(1).normal(0, 0.1, (int(1.5 * 44100), 2)), 44100),
        "tel8k.wav": (np.random.default_rng(2).normal(0, 0.1, 5 * 8000), 8000),
    }
    for name, (wave, rate) in cases.items():
        path = tmp_path / name
        sf.write(path, wave.astype(np.float32), rate)
        out = tmp_path / path.stem
        summary = _generate(export_dir, out, path, ref_keypoints=str(ref))
        expected = round(len(wave) / rate * FPS)
        assert abs(summary["frames"] - expected) <= 1, name  # padded to a window, trimmed to the audio
        _check_outputs(out, summary["frames"])


def test_bad_references_are_clear_errors(export_dir: Path, tmp_path: Path) -> None:
    import cv2

    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    empty = tmp_path / "empty_room.png"
    cv2.imwrite(str(empty), np.full((256, 256, 3), 200, np.uint8))
    with pytest.raises(NoPersonError, match="empty_room.png"):
        _generate(export_dir, tmp_path / "o1", audio, ref_image=str(empty))
    bad = tmp_path / "coco133.npy"
    np.save(bad, np.zeros((10, 133, 3), np.float32))
    with pytest.raises(KeypointLayoutError, match="coco133.npy"):
        _generate(export_dir, tmp_path / "o2", audio, ref_keypoints=str(bad))
    with pytest.raises(ValueError, match="exactly one of"):
        _generate(export_dir, tmp_path / "o3", audio, ref_keypoints=str(bad), ref_image=str(empty))
    good = tmp_path / "ref.npy"
    np.save(good, np.full((134, 3), 0.5, np.float32))
    with pytest.raises(FileNotFoundError, match="not a Stage I export"):
        _generate(tmp_path, tmp_path / "o4", audio, ref_keypoints=str(good))


def test_pose_outputs_stream_keep_the_audio_and_are_never_partial(export_dir: Path, tmp_path: Path) -> None:
    """masks.npy equals the whole-clip masks; the input's own rate and channels are muxed; a taken output
    is refused unless overwrite=true; a failed run leaves nothing behind."""
    import av
    import torch

    from mmgt.atomic import OutputExistsError
    from mmgt.masks import motion_masks

    ref = tmp_path / "ref.npy"
    np.save(ref, np.full((134, 3), 0.5, np.float32))
    audio = tmp_path / "stereo.wav"
    sf.write(audio, np.random.default_rng(3).normal(0, 0.1, (int(1.6 * 44100), 2)).astype(np.float32), 44100)
    out = tmp_path / "o"
    _generate(export_dir, out, audio, ref_keypoints=str(ref), mask_size=16)
    kps = np.load(out / "keypoints.npy")
    np.testing.assert_array_equal(np.load(out / "masks.npy"), motion_masks(torch.from_numpy(kps), 16).numpy())
    with av.open(str(out / "pose.mp4")) as c:
        assert (c.streams.audio[0].rate, c.streams.audio[0].channels) == (44100, 2)
    with pytest.raises(OutputExistsError, match=r"o: folder exists and is not empty; set overwrite=true"):
        _generate(export_dir, out, audio, ref_keypoints=str(ref))
    (out / "mine.txt").write_text("a user's file")
    _generate(export_dir, out, audio, ref_keypoints=str(ref), overwrite="true")
    assert not (out / "mine.txt").exists() and (out / "preview.mp4").is_file()
    with pytest.raises(OutputExistsError, match="exists and is a file"):
        _generate(export_dir, ref, audio, ref_keypoints=str(ref))
    with pytest.raises(ValueError):  # fails while writing (size 0): no folder, no parents, no temporaries
        _generate(export_dir, tmp_path / "new" / "deeper", audio, ref_keypoints=str(ref), size=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "ref.npy", "stereo.wav"]
