"""``mmgt-prep source=videos`` on real files: bad input, frame-rate resampling, audio formats, interval
lists, the real sample videos/images (acceptance), and the store being identical across workers, shards
and a SIGKILL + resume. Media are written in ``tmp_path`` (64-160 px, 1-3 s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from mmgt.clipstore import CLIPS_DIR, META_FILE, TMP_DIR, ClipStore, read_manifest
from mmgt.config import audio_encoder_node
from mmgt.io import MediaError, probe_video, read_video, write_video
from mmgt.schema import FACE, FPS, LEFT_HAND, RIGHT_HAND, SAMPLE_RATE, SAMPLES_PER_FRAME
from mmgt_prep.cli import build_source
from mmgt_prep.cli import run as prep_run
from mmgt_prep.videos import (
    BACKGROUND_NICE,
    ClipEncoder,
    CropBox,
    VideoPrepConfig,
    fixed_crop,
    lower_thread_priority,
    prepare_videos,
    resample_frames,
    shard_of,
    source_id,
)
from tests.helpers.shared import compose_config, samples_path
from tests.helpers.videos import video_prep_config

SIZE = 64
AOC = "talking_face_hdtf_aoc_25fps.mp4"
MOORE = "talking_face_moore4_30fps.mp4"


# =========================================================================== media helpers
def levels_frames(levels: list[int], height: int = 64, width: int = 64) -> np.ndarray:
    """(T, H, W, 3) uint8 plain frames of the given grey levels (frame identity readable after H.264)."""
    return np.stack([np.full((height, width, 3), lv, dtype=np.uint8) for lv in levels])


def colour_frames(n: int, height: int = 64, width: int = 64) -> np.ndarray:
    """Plain colour frames with a small moving square: a video with no person in it."""
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    out[:] = (40, 120, 200)
    for i in range(n):
        x = (3 * i) % max(width - 8, 1)
        out[i, 4:12, x : x + 8] = (230, 230, 30)
    return out


def tone(seconds: float, sr: int = SAMPLE_RATE, channels: int = 1, amp: float = 0.3) -> np.ndarray:
    """(N,) mono or (N, C) sine tones: channel c at 220 (c + 1) Hz, amplitude amp / (c + 1)."""
    t = np.arange(int(round(seconds * sr))) / sr
    chans = [amp / (c + 1) * np.sin(2 * np.pi * (220.0 * (c + 1)) * t) for c in range(channels)]
    x = np.stack(chans, axis=1).astype(np.float32)
    return x[:, 0] if channels == 1 else x


def write_av(
    path: Path,
    frames: np.ndarray,
    *,
    fps: float = 25.0,
    pts_ms: list[int] | None = None,
    audio: np.ndarray | None = None,
    sr: int = SAMPLE_RATE,
) -> Path:
    """An H.264 mp4 with exact control of rate, timestamps (``pts_ms``: variable frame rate), odd sizes
    (yuv444p) and an AAC track of any rate and channel count (``audio`` (N,) or (N, C))."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        vs.options = {"crf": "10"}
        if pts_ms is not None:
            vs.time_base = Fraction(1, 1000)
            vs.codec_context.time_base = Fraction(1, 1000)
        aus = None
        if audio is not None:
            aus = out.add_stream("aac", rate=sr)
            aus.layout = "mono" if audio.ndim == 1 else "stereo"
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[i], Fraction(1, 1000)
            else:
                vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if aus is not None and audio is not None:
            planar = audio[None, :] if audio.ndim == 1 else audio.T
            planar = np.ascontiguousarray(planar, dtype=np.float32)
            af = av.AudioFrame.from_ndarray(planar, format="fltp", layout=aus.layout.name)
            af.sample_rate, af.pts, af.time_base = sr, 0, Fraction(1, sr)
            out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


def make_cfg(input_: Path, out: Path, **kw: Any) -> VideoPrepConfig:
    base: dict[str, Any] = {"size": SIZE, "features": (audio_encoder_node("logmel"),), "progress": False}
    return video_prep_config(input=str(input_), out=str(out), **{**base, **kw})


def rows(out: Path) -> dict[str, Any]:
    """Last manifest row per id."""
    return read_manifest(out)


def row_for(out: Path, rel: str, suffix: str = "") -> Any:
    return rows(out)[source_id(rel) + suffix]


def assert_no_partial_clips(out: Path) -> None:
    """Every clip folder is complete (meta.json, files matching its checksums) and listed ok; no scratch."""
    ok = {r.id: r for r in rows(out).values() if r.status == "ok"}
    folders = [p for p in (out / CLIPS_DIR).glob("*/*") if p.is_dir()]
    assert sorted(p.name for p in folders) == sorted(ok)
    for folder in folders:
        meta = json.loads((folder / META_FILE).read_text())
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        assert sorted([*meta["checksums"], META_FILE]) == files
    assert list((out / TMP_DIR).iterdir()) == []


def store_signature(out: Path) -> dict[str, Any]:
    """What must be identical between two runs: per ok clip its checksums and meta.json bytes."""
    sig = {}
    for rec in rows(out).values():
        if rec.status == "ok":
            meta = (out / CLIPS_DIR / rec.speaker / rec.id / META_FILE).read_bytes()
            sig[rec.id] = (rec.checksums, meta)
    return sig


# =========================================================================== unit: timing
def test_resample_frames_picks_nearest_timestamp() -> None:
    ts = [0.0, 0.03, 0.06, 0.11, 0.20]  # variable gaps
    out = list(resample_frames(iter([(t, np.array([i])) for i, t in enumerate(ts)]), src_fps=25.0))
    # k/25 = 0, .04, .08, .12, .16, .20 -> nearest source times 0, .03, .06, .11, .20, .20; the last
    # frame lasts 1/25 s, so round((.20 + .04) x 25) = 6 frames in all
    assert [int(f[0]) for _, f in out] == [0, 1, 2, 3, 4, 4]
    assert [k for k, _ in out] == list(range(6))
    thirty = list(resample_frames(iter([(i / 30, np.array([i])) for i in range(30)]), src_fps=30.0))
    assert len(thirty) == 25 and [int(f[0]) for _, f in thirty[:5]] == [0, 1, 2, 4, 5]


# =========================================================================== unit: encoding
def _moving(n: int, size: int = 64) -> list[np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    return [
        np.stack([(xx * 4 + 3 * i) % 256, yy * 4 % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
        for i in range(n)
    ]


def test_clip_encoder_writes_frames_while_they_arrive(tmp_path: Path) -> None:
    frames = _moving(40)  # more than the queue holds: add() waits for the encoder thread
    encoder = ClipEncoder(tmp_path / "scratch" / "clip.mp4", "veryfast")
    for f in frames:
        encoder.add(f)
    assert encoder.n == 40 and not encoder.path.exists()  # the file appears complete or not at all
    path = encoder.finish()
    data = read_video(path)
    assert data.frames.shape == (40, 64, 64, 3)
    assert np.abs(data.frames.astype(np.float32) - np.stack(frames)).mean() < 6
    encoder.abort()  # after finish: deletes a file the caller did not move (a failed clip write)
    assert not path.exists()


def test_clip_encoder_error_and_abort_leave_no_file(tmp_path: Path) -> None:
    bad = ClipEncoder(tmp_path / "bad.mp4", "veryfast")
    bad.add(_moving(1)[0])
    bad.add(np.zeros((32, 32, 3), dtype=np.uint8))  # a frame of another size fails in the encoder thread
    with pytest.raises(MediaError, match=r"bad\.mp4: encoding failed: frame 1 is \(32, 32, 3\)"):
        for f in _moving(30):  # the error surfaces at the next add (or at finish)
            bad.add(f)
        bad.finish()
    bad.abort()
    dropped = ClipEncoder(tmp_path / "dropped.mp4", "veryfast")
    for f in _moving(20):
        dropped.add(f)
    dropped.abort()
    assert not dropped._thread.is_alive()
    assert list(tmp_path.iterdir()) == []  # no video, no temporary file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_background_threads_yield_the_cpu() -> None:
    seen: dict[str, int] = {}

    def body() -> None:
        lower_thread_priority()
        seen["thread"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen["thread"] == min(19, main + BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # only that thread


def test_crops_ids_and_shards() -> None:
    assert fixed_crop("center", 640, 360) == CropBox(140, 0, 360)
    assert fixed_crop("left_ratio", 1280, 720, 0.38) == CropBox(486, 0, 720)  # PATS oliver
    assert fixed_crop("left_ratio", 1280, 720, "right") == CropBox(560, 0, 720)  # PATS jon
    assert fixed_crop("left_ratio", 1280, 720, 0.9) == CropBox(560, 0, 720)  # kept inside the frame
    assert fixed_crop("left_ratio", 1280, 720, None) == fixed_crop("center", 1280, 720)
    a, b = source_id("oliver/ep 1.mp4"), source_id("oliver/ep_1.mp4")
    assert a != b and a == source_id("oliver/ep 1.mp4") and a.startswith("oliver__ep_1-")
    assert all(c.isalnum() or c in "_-" for c in a)
    rels = [f"spk{i}/v{i}.mp4" for i in range(40)]
    shards = [[r for r in rels if shard_of(r, 4) == i] for i in range(4)]
    assert sorted(sum(shards, [])) == sorted(rels) and all(shards)


@pytest.mark.parametrize("launcher", ["submitit_local", "submitit_slurm"])
def test_source_and_launcher_configs_compose(launcher: str) -> None:
    cfg = compose_config("prep", ["source=videos", "input=/data", "workers=2", f"hydra/launcher={launcher}"])
    assert cfg.left_ratios.jon == "right"
    pcfg = build_source(cfg)
    assert isinstance(pcfg, VideoPrepConfig)
    assert (pcfg.input, pcfg.workers, pcfg.size) == ("/data", 2, 512)
    assert pcfg.features == (audio_encoder_node("baseline"),)
    assert cfg.hydra.launcher._target_.endswith("Launcher") and cfg.hydra.launcher.gpus_per_node == 0


NON_DEFAULT = {  # a valid value unlike the default for every key of conf/source/videos.yaml (but _target_)
    "out": "/elsewhere/store",
    "input": "/data/talks",
    "input_root": "/data",
    "split": "train",
    "split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
    "split_by": "speaker",
    "split_seed": 7,
    "resplit": True,
    "size": 256,
    "crop": "person",
    "left_ratios": {"oliver": 0.25},
    "person_samples": 9,
    "person_scale": 1.5,
    "max_gap": 3,
    "max_missing_fraction": 0.25,
    "require_audio": False,
    "silence_threshold_db": -50.0,
    "video_preset": "medium",
    "window": 3.2,
    "stride": 1.6,
    "max_seconds": 30.0,
    "features": ["logmel", "energy"],
    "workers": 3,
    "shard": 1,
    "num_shards": 4,
    "model_complexity": 0,
    "min_detection_confidence": 0.6,
    "min_tracking_confidence": 0.7,
}


def test_every_key_of_the_source_config_reaches_the_worker_config() -> None:
    """Each key of conf/source/videos.yaml, given a non-default value on the command line, arrives in
    VideoPrepConfig (what the workers run with); a key added to the YAML without reaching it fails here."""
    from dataclasses import asdict, fields

    from omegaconf import OmegaConf

    from mmgt.config import CONFIG_DIR

    keys = set(OmegaConf.load(CONFIG_DIR / "source" / "videos.yaml")) - {"_target_"}
    assert keys == set(NON_DEFAULT), "keep NON_DEFAULT in step with conf/source/videos.yaml"
    field_names = {f.name for f in fields(VideoPrepConfig)}
    assert field_names == keys | {"retry_failed", "progress"}  # those two come from conf/prep.yaml
    defaults = asdict(build_source(compose_config("prep", ["source=videos", "input=/x"])))
    overrides = ["source=videos", "retry_failed=true", "progress=false"]
    for key, value in NON_DEFAULT.items():
        overrides.append(
            f"{key}={value if isinstance(value, str) else json.dumps(value).replace(chr(34), '')}"
        )
    got = asdict(build_source(compose_config("prep", overrides)))
    for key, value in NON_DEFAULT.items():
        expected = tuple(map(audio_encoder_node, value)) if key == "features" else value
        if key == "left_ratios":  # a dict override is merged into the default table
            expected = {**defaults["left_ratios"], **value}
        assert got[key] == expected and got[key] != defaults[key], key
    assert got["retry_failed"] is True and got["progress"] is False


def test_prep_default_features_are_the_training_default() -> None:
    """mmgt-prep caches the features the DataModules read by default (no recomputation at training)."""
    from omegaconf import OmegaConf

    prep = build_source(compose_config("prep", ["source=videos", "input=/x"]))
    for experiment in ("smga", "stage2_image", "stage2_video"):
        cfg = compose_config("train", [f"experiment={experiment}"])
        assert prep.features == (OmegaConf.to_container(cfg.data.audio_features),), experiment


# =========================================================================== bad input batch
@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run over a folder of broken and unusual files (person check off: the frames are synthetic)."""
    root = tmp_path_factory.mktemp("batch")
    inp = root / "in" / "spk"
    inp.mkdir(parents=True)
    (inp / "zero.mp4").write_bytes(b"")
    (inp / "text.mp4").write_text("this is not a video\n")
    good = write_av(root / "good.mp4", colour_frames(50), audio=tone(2.0))
    data = good.read_bytes()
    (inp / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_av(inp / "noaudio.mp4", colour_frames(25))
    write_av(inp / "silent.mp4", colour_frames(25), audio=np.zeros(SAMPLE_RATE, np.float32))
    write_av(inp / "one_frame.mp4", colour_frames(1), audio=tone(0.04))
    write_av(inp / "odd.mp4", colour_frames(10, 359, 641), audio=tone(0.4))
    # 30 fps and variable frame rate: grey level = source frame index, to check which frame is picked
    write_av(inp / "fps30.mp4", levels_frames([20 + 6 * i for i in range(30)]), fps=30, audio=tone(1.0))
    gaps = [20, 60, 33, 45, 25, 80, 40, 30, 50, 20, 70, 35, 40, 60, 30, 45, 55, 40, 33, 50]
    pts = np.concatenate([[0], np.cumsum(gaps)]).tolist()
    write_av(inp / "vfr.mp4", levels_frames([20 + 10 * i for i in range(len(pts))]), pts_ms=pts)
    (inp / "vfr.mp4").rename(inp / "vfr_noaudio.mp4")
    write_av(
        inp / "vfr.mp4", levels_frames([20 + 10 * i for i in range(len(pts))]), pts_ms=pts, audio=tone(0.9)
    )
    write_av(inp / "mono44k.mp4", colour_frames(25), audio=tone(1.0, 44_100, 1), sr=44_100)
    write_av(inp / "stereo48k.mp4", colour_frames(25), audio=tone(1.0, 48_000, 2), sr=48_000)
    (inp / "notes.txt").write_text("ignored: not a media suffix\n")
    out = root / "store"
    summary = prepare_videos(make_cfg(root / "in", out, max_missing_fraction=1.0))
    return {"out": out, "summary": summary, "pts": pts, "inp": inp}


def _failed_reason(batch: dict[str, Any], name: str) -> str:
    rec = row_for(batch["out"], f"spk/{name}")
    assert rec.status == "failed"
    assert not (batch["out"] / CLIPS_DIR / "spk" / rec.id).exists()
    return rec.error


def test_batch_goes_on_and_leaves_no_partial_clip(batch: dict[str, Any]) -> None:
    s = batch["summary"]
    assert (s["ok"], s["failed"], s["skipped"]) == (7, 5, 0), s["failures"]
    assert len(rows(batch["out"])) == 12  # one row per media file, notes.txt ignored
    assert_no_partial_clips(batch["out"])
    again = prepare_videos(make_cfg(batch["inp"].parent, batch["out"], max_missing_fraction=1.0))
    assert (again["ok"], again["failed"], again["skipped"]) == (0, 0, 12)


def test_zero_byte_file(batch: dict[str, Any]) -> None:
    assert "zero.mp4: file is empty" in _failed_reason(batch, "zero.mp4")


def test_truncated_mp4(batch: dict[str, Any]) -> None:
    assert "truncated.mp4" in _failed_reason(batch, "truncated.mp4")


def test_text_file_named_mp4(batch: dict[str, Any]) -> None:
    assert "text.mp4: cannot open as a media file" in _failed_reason(batch, "text.mp4")


def test_video_without_audio_stream(batch: dict[str, Any]) -> None:
    assert "noaudio.mp4: no audio stream" in _failed_reason(batch, "noaudio.mp4")
    assert "no audio stream" in _failed_reason(batch, "vfr_noaudio.mp4")


def test_silent_audio_is_ok_but_flagged(batch: dict[str, Any]) -> None:
    rec = row_for(batch["out"], "spk/silent.mp4")
    assert rec.status == "ok" and rec.extra["silent_audio"] is True and rec.extra["audio_rms_db"] < -60
    assert row_for(batch["out"], "spk/mono44k.mp4").extra["silent_audio"] is False
    assert batch["summary"]["silent_audio"] == 1


def test_one_frame_video(batch: dict[str, Any]) -> None:
    rec = row_for(batch["out"], "spk/one_frame.mp4")
    assert rec.status == "ok" and rec.n_frames == 1
    clip = ClipStore(batch["out"]).clip(rec.id)
    assert clip.video().shape == (1, SIZE, SIZE, 3) and clip.keypoints().shape == (1, 134, 3)
    assert clip.audio().shape == (SAMPLES_PER_FRAME,) and clip.features("logmel80").shape == (1, 80)


def test_odd_size_is_cropped_and_resized_square(batch: dict[str, Any]) -> None:
    assert probe_video(batch["inp"] / "odd.mp4").width == 641
    rec = row_for(batch["out"], "spk/odd.mp4")
    assert rec.status == "ok" and rec.extra["source_size"] == [641, 359]
    assert rec.extra["crop"]["box"] == [141, 0, 359]  # centred square
    frames = ClipStore(batch["out"]).clip(rec.id).video()
    assert frames.shape == (10, SIZE, SIZE, 3)
    assert np.abs(frames[0, 32:, :].astype(int) - (40, 120, 200)).mean() < 6  # colour survives


def _levels(clip_frames: np.ndarray) -> np.ndarray:
    return clip_frames.reshape(len(clip_frames), -1).mean(axis=1)


def test_30_fps_becomes_25_fps_nearest_frames(batch: dict[str, Any]) -> None:
    rec = row_for(batch["out"], "spk/fps30.mp4")
    assert rec.status == "ok" and rec.n_frames == 25 and rec.extra["source_fps"] == 30.0
    got = _levels(ClipStore(batch["out"]).clip(rec.id).video())
    want = [20 + 6 * int(np.floor(k * 30 / 25 + 0.5 - 1e-9)) for k in range(25)]
    np.testing.assert_allclose(got, want, atol=2.5)
    assert ClipStore(batch["out"]).clip(rec.id).audio().shape == (25 * SAMPLES_PER_FRAME,)


def test_variable_frame_rate(batch: dict[str, Any]) -> None:
    info = probe_video(batch["inp"] / "vfr.mp4")
    rec = row_for(batch["out"], "spk/vfr.mp4")
    assert rec.status == "ok"
    assert abs(rec.n_frames - round(info.duration * FPS)) <= 1
    pts = np.array(batch["pts"]) / 1000.0
    got = _levels(ClipStore(batch["out"]).clip(rec.id).video())
    nearest = [int(np.argmin(np.abs(pts - k / FPS) + 1e-9 * np.arange(len(pts)))) for k in range(len(got))]
    np.testing.assert_allclose(got, [20 + 10 * i for i in nearest], atol=2.5)


@pytest.mark.parametrize(
    ("name", "seconds"), [("mono44k.mp4", 1.0), ("stereo48k.mp4", 1.0), ("vfr.mp4", 0.9)]
)
def test_audio_rates_and_channels_become_16k_mono(batch: dict[str, Any], name: str, seconds: float) -> None:
    rec = row_for(batch["out"], f"spk/{name}")
    assert rec.status == "ok"
    clip = ClipStore(batch["out"]).clip(rec.id)
    audio = clip.audio()
    assert audio.shape == (rec.n_frames * SAMPLES_PER_FRAME,)
    spectrum = np.abs(np.fft.rfft(audio[: int(seconds * SAMPLE_RATE) - 800]))
    freqs = np.fft.rfftfreq(int(seconds * SAMPLE_RATE) - 800, 1 / SAMPLE_RATE)
    assert abs(freqs[np.argmax(spectrum)] - 220.0) < 5  # the (first) tone survived the resampling
    if name.startswith("stereo"):  # both channels averaged into the mono track
        second = spectrum[np.argmin(np.abs(freqs - 440.0))]
        assert second > 0.3 * spectrum.max()


# =========================================================================== interval lists, windows
def test_interval_list_no_person_and_outside_root(tmp_path: Path) -> None:
    """Through the Hydra config: a real-person interval, a plain-colour one (no person), an entry
    outside the input root (rejected), an unreadable time and a missing file; the batch goes on."""
    root = tmp_path / "data"
    (root / "aoc").mkdir(parents=True)
    (root / "aoc" / "talk.mp4").symlink_to(samples_path(AOC))
    (root / "plain").mkdir()
    write_av(root / "plain" / "colour.mp4", colour_frames(25), audio=tone(1.0))
    write_av(tmp_path / "outside.mp4", colour_frames(5), audio=tone(0.2))
    csv = root / "intervals.csv"
    csv.write_text(
        "path,start,end,speaker,split\n"
        "aoc/talk.mp4,0.48,1.28,aoc,test\n"
        "aoc/talk.mp4,3.0,3.4,,\n"
        "plain/colour.mp4,0,1,,\n"
        "../outside.mp4,0,1,,\n"
        "aoc/talk.mp4,abc,1,,\n"
        "aoc/missing.mp4,0,1,,\n"
    )
    out = tmp_path / "store"
    cfg = compose_config(
        "prep", ["source=videos", f"input={csv}", f"out={out}", "size=128", "progress=false", "split=train"]
    )
    summary = prep_run(cfg)
    assert (summary["ok"], summary["failed"]) == (2, 4), summary["failures"]
    store = ClipStore(out)
    first = store.clip(source_id("aoc/talk.mp4") + "_i000")
    assert (first.record.speaker, first.record.split, first.record.n_frames) == ("aoc", "test", 20)
    assert (first.record.start, first.record.end) == (0.48, 1.28)
    assert first.audio().shape == (20 * SAMPLES_PER_FRAME,)
    assert (first.keypoints()[:, FACE, 2] > 0.5).all(axis=1).mean() >= 0.95
    second = store.clip(source_id("aoc/talk.mp4") + "_i001")
    assert (second.record.split, second.record.n_frames, second.record.start) == ("train", 10, 3.0)
    colour = row_for(out, "plain/colour.mp4", "_i000")
    assert colour.status == "failed" and "NoPersonError" in colour.error and "100%" in colour.error
    outside = row_for(out, "../outside.mp4", "_i000")
    assert outside.status == "failed" and "outside the input root" in outside.error
    bad_time = row_for(out, "aoc/talk.mp4", "_i002")
    assert bad_time.status == "failed" and "intervals.csv:6" in bad_time.error
    assert "file not found" in row_for(out, "aoc/missing.mp4", "_i000").error
    assert_no_partial_clips(out)
    # previews (handled generically by the CLI) work on these clips
    from mmgt_prep.cli import write_previews

    (preview,) = write_previews(out, tmp_path / "previews", progress=False)[:1]
    info = probe_video(preview)
    assert info.has_audio and info.n_frames == 20 and info.width == 4 * 128


def test_fixed_windows(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_av(tmp_path / "in" / "c.mp4", colour_frames(30), audio=tone(1.2))
    write_av(tmp_path / "in" / "short.mp4", colour_frames(5), audio=tone(0.2))
    out = tmp_path / "store"
    s = prepare_videos(make_cfg(tmp_path / "in", out, window=0.4, stride=0.2, max_missing_fraction=1.0))
    assert (s["ok"], s["failed"]) == (5, 1)  # 30 frames: windows of 10 frames at 0, 5, ..., 20
    clips = ClipStore(out).clips()
    assert [(c.record.start, c.record.n_frames) for c in clips] == [
        (pytest.approx(0.2 * i), 10) for i in range(5)
    ]
    frames = [c.video().astype(int) for c in clips]
    assert np.abs(frames[0][5:] - frames[1][:5]).mean() < 1.0  # overlapping windows share source frames
    assert "shorter than one window" in row_for(out, "short.mp4").error


def test_auto_splits_keep_each_video_in_one_split_and_stay_put_when_videos_are_added(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    for name in ("spk_a/a1", "spk_a/a2", "spk_a/a3", "spk_b/b1", "spk_b/b2", "spk_b/b3"):
        (inp / name).parent.mkdir(parents=True, exist_ok=True)
        write_av(inp / f"{name}.mp4", colour_frames(10), audio=tone(0.4))
    out = tmp_path / "store"
    kw: dict[str, Any] = {"window": 0.2, "max_missing_fraction": 1.0, "features": ()}
    assert prepare_videos(make_cfg(inp, out, **kw))["ok"] == 12  # 6 videos x 2 windows

    def by_video() -> dict[str, set[str]]:
        out_: dict[str, set[str]] = {}
        for rec in rows(out).values():
            out_.setdefault(rec.source, set()).add(rec.split)
        return out_

    first = by_video()
    assert all(len(s) == 1 for s in first.values())  # the windows of a video share its split
    assert sorted(s for (s,) in first.values()) == ["test", "train", "train", "train", "train", "val"]
    for name in ("spk_a/a4", "spk_b/b4"):  # more videos: nothing already in the store moves
        write_av(inp / f"{name}.mp4", colour_frames(10), audio=tone(0.4))
    again = prepare_videos(make_cfg(inp, out, **kw))
    assert (again["ok"], again["skipped"], again["resplit"]) == (4, 12, 0)
    second = by_video()
    assert {k: second[k] for k in first} == first and all(len(s) == 1 for s in second.values())
    # resplit with other fractions: rows and meta.json follow, the clips' files do not change
    checksums = {r.id: r.checksums for r in rows(out).values()}
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    moved = prepare_videos(make_cfg(inp, out, split_fractions=fractions, resplit=True, **kw))
    assert moved["resplit"] > 0 and moved["ok"] == 0
    third = by_video()
    assert sorted(s for (s,) in third.values()) == [
        "test",
        "test",
        "train",
        "train",
        "train",
        "train",
        "val",
        "val",
    ]
    for rec in rows(out).values():
        meta = json.loads((out / CLIPS_DIR / rec.speaker / rec.id / META_FILE).read_text())
        assert meta["split"] == rec.split and rec.checksums == checksums[rec.id]
    # by speaker: 2 groups -> train and test (training validates on test when there is no val)
    speakers = prepare_videos(make_cfg(inp, tmp_path / "by_speaker", split_by="speaker", **kw))
    assert speakers["ok"] == 16
    per_speaker = {r.speaker: set() for r in rows(tmp_path / "by_speaker").values()}
    for rec in rows(tmp_path / "by_speaker").values():
        per_speaker[rec.speaker].add(rec.split)
    assert sorted(s for (s,) in per_speaker.values()) == ["test", "train"]


# =========================================================================== acceptance on real media
def _face_rate(kps: np.ndarray) -> float:
    return float((kps[:, FACE, 2] > 0.5).all(axis=1).mean())


def test_real_talking_faces_short(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in (AOC, MOORE):
        (tmp_path / "in" / name).symlink_to(samples_path(name))
    out = tmp_path / "store"
    s = prepare_videos(make_cfg(tmp_path / "in", out, size=128, max_seconds=2.0))
    assert (s["ok"], s["failed"]) == (2, 0), s["failures"]
    for clip in ClipStore(out).clips():
        assert clip.record.n_frames == 50 and _face_rate(clip.keypoints()) >= 0.95
        assert clip.features("logmel80").shape == (50, 80)


@pytest.mark.slow
def test_real_talking_faces_full_length(tmp_path: Path) -> None:
    """Acceptance: whole videos; the 29.97 fps one becomes 25 fps with round(duration x 25) +- 1 frames."""
    (tmp_path / "in").mkdir()
    for name in (AOC, MOORE):
        (tmp_path / "in" / name).symlink_to(samples_path(name))
    out = tmp_path / "store"
    s = prepare_videos(make_cfg(tmp_path / "in", out, size=128, workers=2))
    assert (s["ok"], s["failed"]) == (2, 0), s["failures"]
    for name in (AOC, MOORE):
        clip = ClipStore(out).clip(source_id(name))
        duration = probe_video(samples_path(name)).duration
        assert abs(clip.record.n_frames - round(duration * FPS)) <= 1
        assert _face_rate(clip.keypoints()) >= 0.95
        assert probe_video(clip.video_path).fps == 25.0
        assert clip.audio().shape == (clip.record.n_frames * SAMPLES_PER_FRAME,)


def test_real_images_as_one_frame_sources(tmp_path: Path) -> None:
    """The half-body images give both hands; the astronaut photo gives a face (crop=person)."""
    (tmp_path / "in").mkdir()
    names = ["ref_halfbody_woman_openhands_flux.png", "ref_halfbody_man_openhands_flux.png"]
    for name in [*names, "ref_upperbody_astronaut_nasa_pd.png"]:
        (tmp_path / "in" / name).symlink_to(samples_path(name))
    out = tmp_path / "store"
    s = prepare_videos(make_cfg(tmp_path / "in", out, size=256, crop="person"))
    assert (s["ok"], s["failed"]) == (3, 0), s["failures"]
    for name in names:
        clip = ClipStore(out).clip(source_id(name))
        kps = clip.keypoints()
        assert kps.shape == (1, 134, 3) and clip.record.extra["image"] is True
        assert (kps[0, LEFT_HAND, 2] > 0.5).all() and (kps[0, RIGHT_HAND, 2] > 0.5).all()
    astronaut = ClipStore(out).clip(source_id("ref_upperbody_astronaut_nasa_pd.png"))
    assert _face_rate(astronaut.keypoints()) == 1.0
    box = astronaut.record.extra["crop"]["box"]
    assert astronaut.record.extra["crop"]["mode"] == "person" and box[2] < 512  # a crop around the person


# =========================================================================== determinism and scale
@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 1-s snippets of the real talking-face videos (96 px) in two speaker folders."""
    root = tmp_path_factory.mktemp("real") / "in"
    for spk, name in (("aoc", AOC), ("moore", MOORE)):
        (root / spk).mkdir(parents=True)
        video = read_video(samples_path(name), max_frames=60)
        step = len(video.audio) * 1.0 / len(video.frames)
        for j, lo in enumerate((0, 30)):
            frames = np.stack([v[::5, ::5] for v in video.frames[lo : lo + 25]])
            audio = video.audio[int(lo * step) : int((lo + 25) * step)]
            write_video(root / spk / f"clip{j}.mp4", frames, fps=video.fps, audio=audio)
    return root


@pytest.fixture(scope="module")
def reference_store(real_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "store"
    s = prepare_videos(make_cfg(real_inputs, out, size=96))
    assert (s["ok"], s["failed"]) == (4, 0), s["failures"]
    return out


@pytest.mark.slow
def test_two_workers_give_the_same_store(real_inputs: Path, reference_store: Path, tmp_path: Path) -> None:
    s = prepare_videos(make_cfg(real_inputs, tmp_path / "w2", size=96, workers=2))
    assert (s["ok"], s["workers"]) == (4, 2)
    assert store_signature(tmp_path / "w2") == store_signature(reference_store)
    assert_no_partial_clips(tmp_path / "w2")


@pytest.mark.slow
def test_shards_add_up_to_the_unsharded_run(real_inputs: Path, reference_store: Path, tmp_path: Path) -> None:
    rels = sorted(p.relative_to(real_inputs).as_posix() for p in real_inputs.rglob("*.mp4"))
    assert {shard_of(r, 2) for r in rels} == {0, 1}  # both shards get work
    counts = []
    for shard in (0, 1):
        s = prepare_videos(make_cfg(real_inputs, tmp_path / "sharded", size=96, shard=shard, num_shards=2))
        counts.append(s["ok"])
    assert sum(counts) == 4 and 0 not in counts
    assert store_signature(tmp_path / "sharded") == store_signature(reference_store)


@pytest.mark.slow
def test_sigkill_and_resume_gives_an_identical_store(
    real_inputs: Path, reference_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "store"
    cmd = [
        sys.executable,
        "-m",
        "mmgt_prep.cli",
        "source=videos",
        f"input={real_inputs}",
        f"out={out}",
        "size=96",
        "features=[logmel]",
        "progress=false",
        f"hydra.run.dir={tmp_path}/hydra",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and manifest.read_text().strip():
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(rows(out))
    assert 1 <= n_before < 4, "the run must be killed mid-way"
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["skipped"] == n_before and summary["ok"] == 4 - n_before
    assert store_signature(out) == store_signature(reference_store)
    leftovers = [p for p in (out / TMP_DIR).iterdir() if not p.name.startswith(tuple(rows(out)))]
    assert leftovers == []  # only a killed clip's own temp folder may remain
    ok = {r.id for r in rows(out).values() if r.status == "ok"}
    assert sorted(p.name for p in (out / CLIPS_DIR).glob("*/*")) == sorted(ok)


@pytest.mark.slow
def test_a_crashed_worker_is_recorded_and_retried(
    real_inputs: Path, reference_store: Path, tmp_path: Path
) -> None:
    """SIGKILL one of two worker processes as soon as it works on a clip (its scratch folder, named
    after its pid, appears): its clips get WorkerCrash rows, the other worker finishes the batch, and
    ``retry_failed=true`` completes the store identically to an undisturbed run."""
    out = tmp_path / "store"
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for scratch in sorted((out / TMP_DIR).glob("scratch-*")):
                killed.append(int(scratch.name.rsplit("-", 1)[1]))
                os.kill(killed[0], signal.SIGKILL)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    s = prepare_videos(make_cfg(real_inputs, out, size=96, workers=2))
    killer.join()
    assert killed and s["failed"] >= 1 and s["ok"] + s["failed"] == 4 and "unfinished" not in s
    assert all("WorkerCrash" in f["error"] and "exit code -9" in f["error"] for f in s["failures"])
    ok = {r.id for r in rows(out).values() if r.status == "ok"}
    assert sorted(p.name for p in (out / CLIPS_DIR).glob("*/*")) == sorted(ok)
    again = prepare_videos(make_cfg(real_inputs, out, size=96, workers=2, retry_failed=True))
    assert (again["ok"], again["failed"], again["skipped"]) == (s["failed"], 0, s["ok"])
    assert store_signature(out) == store_signature(reference_store)
