"""mmgt.io on real files: video/audio round trips, the shared sample media, bad input, resampling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from mmgt.io import (
    MediaError,
    VideoWriter,
    iter_video_frames,
    probe_video,
    read_audio,
    read_video,
    resample_audio,
    write_audio,
    write_video,
)
from mmgt.schema import FPS, SAMPLE_RATE
from tests.helpers.shared import SAMPLES_DIR

SAMPLES = SAMPLES_DIR
FRAME_S = 1.0 / FPS


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample media not available: {path}")
    return path


def smooth_frames(n: int, height: int = 64, width: int = 64) -> np.ndarray:
    """(n, H, W, 3) uint8 gradients that move a little each frame (easy for H.264)."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    out = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        out[i, ..., 0] = (xx * 3 + 2 * i) % 256
        out[i, ..., 1] = yy * 3 % 256
        out[i, ..., 2] = 128
    return out


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 2 s, 25 fps, 64x64 mp4 with a 440 Hz sine track at 16 kHz: (path, frames, audio)."""
    frames = smooth_frames(50)
    audio = sine(440.0, 2.0, SAMPLE_RATE)
    path = write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames, audio=audio)
    return path, frames, audio


# --------------------------------------------------------------------------- round trips
def test_video_round_trip(av_clip: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, frames, audio = av_clip
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temp file left behind

    info = probe_video(path)
    assert (info.width, info.height, info.n_frames) == (64, 64, 50)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(2.0, abs=FRAME_S)
    assert info.has_audio and info.audio_sample_rate == SAMPLE_RATE and info.audio_channels == 1
    assert not info.variable_frame_rate

    data = read_video(path)
    assert data.frames.shape == frames.shape and data.frames.dtype == np.uint8
    assert data.fps == pytest.approx(25.0)
    assert np.abs(data.frames.astype(np.float32) - frames).mean() < 8
    assert data.audio is not None and data.audio.dtype == np.float32 and data.audio.ndim == 1
    assert data.sample_rate == SAMPLE_RATE
    video_s = len(data.frames) / data.fps
    assert abs(len(data.audio) / SAMPLE_RATE - video_s) <= FRAME_S
    # same waveform, not shifted (AAC priming removed): compare away from the edges
    n = min(len(audio), len(data.audio))
    assert np.abs(data.audio[1000 : n - 1000] - audio[1000 : n - 1000]).mean() < 0.02

    assert np.allclose(read_audio(path), data.audio)
    no_audio = read_video(path, with_audio=False)
    assert no_audio.audio is None and no_audio.sample_rate is None


def test_read_video_max_frames_cuts_audio(av_clip: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, frames, _ = av_clip
    data = read_video(path, max_frames=10)
    assert data.frames.shape == (10, 64, 64, 3)
    np.testing.assert_array_equal(data.frames, read_video(path).frames[:10])
    assert data.audio is not None and len(data.audio) == 10 * SAMPLE_RATE // FPS


def test_iter_video_frames(av_clip: tuple[Path, np.ndarray, np.ndarray]) -> None:
    path, frames, _ = av_clip
    items = list(iter_video_frames(path))
    assert len(items) == len(frames)
    times = np.array([t for t, _ in items])
    np.testing.assert_allclose(times, np.arange(len(frames)) / FPS, atol=1e-6)
    assert items[0][1].shape == (64, 64, 3) and items[0][1].dtype == np.uint8


def test_write_video_30fps(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v30.mp4", smooth_frames(30), fps=30, audio=sine(300.0, 1.0, SAMPLE_RATE))
    data = read_video(path)
    assert data.fps == pytest.approx(30.0)
    assert len(data.frames) == 30
    assert data.audio is not None and abs(len(data.audio) / SAMPLE_RATE - 1.0) <= 1 / 30


def test_write_video_preset_is_applied_and_checked(tmp_path: Path) -> None:
    frames = smooth_frames(10)
    fast = read_video(write_video(tmp_path / "fast.mp4", frames, preset="ultrafast")).frames
    assert np.abs(fast.astype(np.float32) - frames).mean() < 8  # a preset trades size/CPU, not fidelity
    with pytest.raises(ValueError, match=r"bad\.mp4: unknown x264 preset 'warp'"):
        write_video(tmp_path / "bad.mp4", frames, preset="warp")
    assert not (tmp_path / "bad.mp4").exists()


def test_write_video_odd_size_is_padded(tmp_path: Path) -> None:
    frames = smooth_frames(5, height=33, width=65)
    data = read_video(write_video(tmp_path / "odd.mp4", frames))
    assert data.frames.shape == (5, 34, 66, 3)  # padded bottom/right by one pixel, as documented
    assert data.audio is None
    assert np.abs(data.frames[:, :33, :65].astype(np.float32) - frames).mean() < 8
    # the padding repeats the edge row/column
    assert np.abs(data.frames[:, 33].astype(np.float32) - data.frames[:, 32]).mean() < 8


def test_write_video_rejects_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        write_video(tmp_path / "g.mp4", np.zeros((2, 8, 8), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_video_writer_streams_the_same_video_as_write_video(tmp_path: Path) -> None:
    frames = smooth_frames(30)
    audio = sine(440.0, 1.2, SAMPLE_RATE)
    with VideoWriter(tmp_path / "stream.mp4", audio=audio, preset="veryfast") as writer:
        for i, frame in enumerate(frames):
            writer.write(frame)
            assert writer.n == i + 1
            assert not (tmp_path / "stream.mp4").exists()  # appears only when complete
    streamed = read_video(tmp_path / "stream.mp4")
    whole = read_video(write_video(tmp_path / "whole.mp4", frames, audio=audio, preset="veryfast"))
    np.testing.assert_array_equal(streamed.frames, whole.frames)  # same encoder settings, same frames
    assert streamed.audio is not None and whole.audio is not None
    np.testing.assert_array_equal(streamed.audio, whole.audio)


def test_video_writer_errors_leave_no_file(tmp_path: Path) -> None:
    frames = smooth_frames(4)
    mismatch = r"frame 2 is \(32, 32, 3\) uint8, expected \(64, 64, 3\)"
    with pytest.raises(ValueError, match=mismatch), VideoWriter(tmp_path / "mixed.mp4") as writer:
        writer.write(frames[0])
        writer.write(frames[1])
        writer.write(frames[2, :32, :32])
    with pytest.raises(RuntimeError, match="stop"), VideoWriter(tmp_path / "interrupted.mp4") as writer:
        writer.write(frames[0])
        raise RuntimeError("stop")
    writer = VideoWriter(tmp_path / "aborted.mp4")
    writer.write(frames[0])
    writer.abort()
    with pytest.raises(ValueError, match=r"empty\.mp4: no frames were written"):
        VideoWriter(tmp_path / "empty.mp4").close()
    assert list(tmp_path.iterdir()) == []  # neither targets nor temporary files


# --------------------------------------------------------------------------- audio files
def test_audio_wav_and_flac_round_trip(tmp_path: Path) -> None:
    stereo = np.stack([sine(440.0, 1.5, 44_100), sine(440.0, 1.5, 44_100)], axis=1)
    wav = tmp_path / "stereo.wav"
    sf.write(wav, stereo, 44_100)
    audio = read_audio(wav)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(1.5, abs=0.05)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)

    out = write_audio(tmp_path / "mono.wav", np.concatenate([audio, [2.0, -2.0]]).astype(np.float32))
    assert sf.info(out).subtype == "PCM_16" and sf.info(out).samplerate == SAMPLE_RATE
    back = read_audio(out)
    assert len(back) == len(audio) + 2 and back[-2] == pytest.approx(1.0, abs=1e-3)  # clipped
    np.testing.assert_allclose(back[:-2], audio, atol=1e-4)

    flac = write_audio(tmp_path / "mono.flac", audio)
    assert sf.info(flac).format == "FLAC"
    np.testing.assert_allclose(read_audio(flac), audio, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mono.flac", "mono.wav", "stereo.wav"]


@pytest.mark.parametrize(
    ("name", "seconds"),
    [("speech_en_jfk_11s.flac", 11.0), ("speech_en_beat2_scott_28s.mp3", 28.68)],
)
def test_read_audio_samples(name: str, seconds: float) -> None:
    audio = read_audio(sample(name))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / SAMPLE_RATE == pytest.approx(seconds, abs=0.05)
    assert 0.01 < np.abs(audio).max() <= 1.0


# --------------------------------------------------------------------------- sample videos
@pytest.mark.parametrize(
    ("name", "fps", "n_frames", "size", "audio_sr", "max_frames"),
    [
        # 300 frames of 650x650 would be ~380 MB and ~1-2 s: decode the first 3 s only
        ("talking_face_moore4_30fps.mp4", 30000 / 1001, 300, 650, 44_100, 90),
        ("talking_face_hdtf_aoc_25fps.mp4", 25.0, 200, 512, 16_000, None),
    ],
)
def test_read_sample_videos(
    name: str, fps: float, n_frames: int, size: int, audio_sr: int, max_frames: int | None
) -> None:
    path = sample(name)
    info = probe_video(path)
    assert (info.width, info.height, info.n_frames) == (size, size, n_frames)
    assert info.fps == pytest.approx(fps, rel=1e-4)
    assert info.duration == pytest.approx(n_frames / fps, abs=1 / fps)
    assert info.has_audio and info.audio_sample_rate == audio_sr and info.audio_channels == 2

    data = read_video(path, max_frames=max_frames)
    n_read = max_frames or n_frames
    assert data.frames.shape == (n_read, size, size, 3)
    assert data.fps == pytest.approx(fps, rel=1e-4)
    assert data.audio is not None and data.sample_rate == SAMPLE_RATE
    assert abs(len(data.audio) / SAMPLE_RATE - n_read / fps) <= 1 / fps
    assert data.audio.std() > 0.01  # real speech, not silence
    # the whole track, with the AAC end padding trimmed to the declared stream length
    assert len(read_audio(path)) / SAMPLE_RATE == pytest.approx(n_frames / fps, abs=1 / fps)


# --------------------------------------------------------------------------- bad input
def _raises_with_path(path: Path, fn: Callable[[Path], object], match: str) -> None:
    with pytest.raises(MediaError, match=match) as err:
        fn(path)
    assert str(err.value).startswith(str(path))


def test_bad_inputs(tmp_path: Path, av_clip: tuple[Path, np.ndarray, np.ndarray]) -> None:
    good = av_clip[0].read_bytes()
    empty = tmp_path / "empty.mp4"
    empty.touch()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    missing = tmp_path / "missing.mp4"

    for fn in (probe_video, read_video, read_audio):
        _raises_with_path(empty, fn, "empty")
        _raises_with_path(truncated, fn, "cannot open")
        _raises_with_path(text, fn, "cannot open")
        _raises_with_path(missing, fn, "not found")
    with pytest.raises(MediaError, match="not found"):
        list(iter_video_frames(missing))

    silent = write_video(tmp_path / "silent.mp4", smooth_frames(3, 16, 16))
    _raises_with_path(silent, read_audio, "no audio stream")
    wav = write_audio(tmp_path / "a.wav", sine(440.0, 0.2, SAMPLE_RATE))
    _raises_with_path(wav, read_video, "no video stream")


def test_truncated_faststart_mp4(tmp_path: Path, av_clip: tuple[Path, np.ndarray, np.ndarray]) -> None:
    """Index (moov) at the front and half the media data cut: opens, but must not pass as a short clip."""
    faststart = tmp_path / "faststart.mp4"
    with (
        av.open(str(av_clip[0])) as src,
        av.open(str(faststart), "w", options={"movflags": "faststart"}) as dst,
    ):
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    data = faststart.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    _raises_with_path(cut, read_video, "truncated")


# --------------------------------------------------------------------------- resampling
def test_resample_keeps_frequency_and_length() -> None:
    x = sine(1000.0, 1.0, 44_100)
    y = resample_audio(x, 44_100, 16_000)
    assert y.dtype == np.float32 and len(y) == 16_000
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / 16_000)[spectrum.argmax()] == pytest.approx(1000.0, abs=1.0)
    assert np.abs(y[100:-100]).max() == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(resample_audio(x, 44_100, 44_100), x)
