"""Media IO: read, probe and write video (H.264 mp4 + AAC) and audio files.

This is the bottom-floor media module: numpy, PyAV (``av``), soundfile and scipy only. All arrays
follow the conventions of :mod:`mmgt.schema`:

* video frames: ``(T, H, W, 3)`` uint8 RGB;
* audio: ``(N,)`` float32 mono in [-1, 1], resampled to the requested rate (16 kHz by default) with
  :func:`scipy.signal.resample_poly`. Multi-channel audio is averaged to mono.

Every problem with a file (missing, empty, truncated, not media, no video/audio stream, decode error)
raises :class:`MediaError`, whose message starts with the file path.

Audio length: AAC (and other codecs) pad the last packet. Decoded audio is trimmed to the duration the
container declares for the audio stream, so a track written with ``write_video`` reads back with the
length it was written with (not rounded up to a whole 1024-sample AAC frame).

Stream start offsets are not compensated: audio and video are assumed to start together, which holds
for files written by ``write_video`` and for ordinary mp4 files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from mmgt.atomic import temp_sibling
from mmgt.schema import FPS, SAMPLE_RATE

__all__ = [
    "X264_PRESETS",
    "MediaError",
    "VideoData",
    "VideoInfo",
    "iter_video_frames",
    "probe_video",
    "read_audio",
    "read_audio_native",
    "read_video",
    "resample_audio",
    "write_audio",
    "VideoWriter",
    "write_video",
]

PathLike = str | os.PathLike[str]

_SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".aiff", ".aif"})
"""Suffixes read with soundfile first (PyAV is the fallback, e.g. for MP3 data named .wav)."""
_MAX_CODEC_PADDING = 8192
"""Most surplus decoded samples (at the stream rate) trimmed to the declared stream duration."""


class MediaError(ValueError):
    """A media file is missing, empty, corrupt or lacks a required stream; message starts with the path."""


@dataclass
class VideoInfo:
    """Container/stream metadata of a video file (no decoding)."""

    path: Path
    width: int
    height: int
    fps: float
    n_frames: int
    """Frame count from the container, or round(duration x fps) when the container has none."""
    duration: float
    """Seconds, of the video stream (container duration as a fallback)."""
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    variable_frame_rate: bool
    """Best effort: the average rate differs from the stream's base (r_frame_rate) by more than 1 %."""


@dataclass
class VideoData:
    """Decoded video: frames (T, H, W, 3) uint8 RGB and, optionally, its audio track."""

    frames: np.ndarray
    """(T, H, W, 3) uint8 RGB."""
    fps: float
    audio: np.ndarray | None
    """(N,) float32 mono at ``sample_rate``, or None (not requested or no audio stream)."""
    sample_rate: int | None


# --------------------------------------------------------------------------- helpers
def _fail(path: Path, problem: str) -> MediaError:
    return MediaError(f"{path}: {problem}")


def _check_file(path: PathLike) -> Path:
    """The path as a Path, after checking that it names a non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise _fail(p, "file not found")
    if not p.is_file():
        raise _fail(p, "not a regular file")
    if p.stat().st_size == 0:
        raise _fail(p, "file is empty (0 bytes)")
    return p


@contextmanager
def _wrap_errors(path: Path, what: str) -> Iterator[None]:
    """Re-raise av/soundfile/OS errors as MediaError("<path>: <what>: <error>")."""
    try:
        yield
    except MediaError:
        raise
    except (av.error.FFmpegError, sf.SoundFileError, OSError, EOFError) as e:
        # FFmpeg/OS errors repeat the file name in str(e); their strerror is the bare problem
        detail = getattr(e, "strerror", None) or str(e)
        raise _fail(path, f"{what}: {detail}") from e


def _open_input(path: Path) -> Any:
    with _wrap_errors(path, "cannot open as a media file (corrupt, truncated or not audio/video)"):
        return av.open(str(path), mode="r")


def _video_stream(path: Path, container: Any) -> Any:
    if not container.streams.video:
        raise _fail(path, "no video stream")
    return container.streams.video[0]


def _stream_fps(path: Path, stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    raise _fail(path, "cannot determine the video frame rate")


def _declared_duration(stream: Any) -> float | None:
    """Seconds the container declares for the stream, or None."""
    if stream.duration is None or stream.time_base is None or stream.duration <= 0:
        return None
    return float(stream.duration * stream.time_base)


def _fps_fraction(fps: float) -> Fraction:
    """Exact rate for the encoder: integers stay integers, 29.97 -> 30000/1001, else a close fraction."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if abs(fps - round(fps)) < 1e-6:
        return Fraction(round(fps))
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if abs(float(ntsc) - fps) < 1e-3:
        return ntsc
    return Fraction(fps).limit_denominator(1001)


def _to_float(x: np.ndarray) -> np.ndarray:
    """Samples of any PCM dtype as float32 in [-1, 1]."""
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.integer):
        return (x / float(2 ** (8 * x.dtype.itemsize - 1))).astype(np.float32)
    return x.astype(np.float32, copy=False)


class _AudioAccumulator:
    """Collects decoded audio frames as mono float32 at the stream's (first frame's) rate."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.rate: int | None = None
        self.n_samples = 0

    def add(self, frame: Any) -> None:
        x = frame.to_ndarray()
        n_ch = len(frame.layout.channels)
        # planar: (C, n); packed: (1, n * C) interleaved
        x = x.reshape(n_ch, -1) if frame.format.is_planar else x.reshape(-1, n_ch).T
        mono = _to_float(x).mean(axis=0, dtype=np.float32)
        if self.rate is None:
            self.rate = int(frame.sample_rate)
        elif frame.sample_rate != self.rate:  # rate change mid-stream (rare): convert to the first rate
            mono = resample_audio(mono, int(frame.sample_rate), self.rate)
        self.chunks.append(mono)
        self.n_samples += mono.shape[0]

    @property
    def seconds(self) -> float:
        return self.n_samples / self.rate if self.rate else 0.0

    def finish(self, stream: Any, target_sr: int) -> np.ndarray:
        """(N,) float32 at ``target_sr``, codec padding beyond the declared stream duration trimmed."""
        if self.rate is None:
            return np.zeros(0, dtype=np.float32)
        audio = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
        declared = _declared_duration(stream)
        if declared is not None:
            n_declared = int(round(declared * self.rate))
            if 0 < audio.shape[0] - n_declared <= _MAX_CODEC_PADDING:
                audio = audio[:n_declared]
        return resample_audio(audio, self.rate, target_sr)


def _frame_rgb(frame: Any, width: int, height: int) -> np.ndarray:
    if frame.width == width and frame.height == height:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


# --------------------------------------------------------------------------- video
def probe_video(path: PathLike) -> VideoInfo:
    """Metadata of a video file from its container, without decoding frames."""
    p = _check_file(path)
    container = _open_input(p)
    with container:
        stream = _video_stream(p, container)
        fps = _stream_fps(p, stream)
        duration = _declared_duration(stream)
        if duration is None and container.duration:
            duration = container.duration / av.time_base
        n_frames = int(stream.frames or 0)
        if n_frames <= 0:
            n_frames = int(round((duration or 0.0) * fps))
        if duration is None:
            duration = n_frames / fps
        base = stream.base_rate
        vfr = bool(base and stream.average_rate and abs(float(stream.average_rate) / float(base) - 1) > 0.01)
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=p,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=fps,
            n_frames=n_frames,
            duration=float(duration),
            has_audio=audio is not None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
            variable_frame_rate=vfr,
        )


def read_video(
    path: PathLike,
    *,
    with_audio: bool = True,
    sample_rate: int = SAMPLE_RATE,
    max_frames: int | None = None,
) -> VideoData:
    """Decode a whole video (or its first ``max_frames`` frames) and its audio track.

    Returns frames (T, H, W, 3) uint8 RGB, fps from the stream's average rate (fallback: guessed rate),
    and audio (N,) float32 mono resampled to ``sample_rate`` (None if ``with_audio`` is False or the
    file has no audio stream). With ``max_frames``, the audio is cut to the span of the frames returned.
    Frames whose size differs from the first frame's are rescaled to it. Raises MediaError when clearly
    fewer frames decode than the container declares (best effort: a cut file whose index survived).
    """
    p = _check_file(path)
    if max_frames is not None and max_frames <= 0:
        raise ValueError(f"max_frames must be positive, got {max_frames}")
    container = _open_input(p)
    with container:
        vstream = _video_stream(p, container)
        vstream.thread_type = "AUTO"
        fps = _stream_fps(p, vstream)
        astream = container.streams.audio[0] if with_audio and container.streams.audio else None
        if astream is not None:
            astream.thread_type = "AUTO"

        capacity = int(vstream.frames or 0)
        if max_frames is not None:
            capacity = min(capacity, max_frames) if capacity > 0 else max_frames
        buf: np.ndarray | None = None
        overflow: list[np.ndarray] = []
        n = 0
        width = height = 0
        video_done = False
        acc = _AudioAccumulator()
        streams = [vstream] if astream is None else [vstream, astream]
        with _wrap_errors(p, "decoding failed (file truncated or corrupt?)"):
            for packet in container.demux(streams):
                if packet.stream.index == vstream.index:
                    if video_done:
                        continue
                    for frame in packet.decode():
                        if n == 0:
                            width, height = frame.width, frame.height
                            if capacity > 0:
                                buf = np.empty((capacity, height, width, 3), dtype=np.uint8)
                        rgb = _frame_rgb(frame, width, height)
                        if buf is not None and n < capacity:
                            buf[n] = rgb
                        else:
                            overflow.append(rgb)
                        n += 1
                        if max_frames is not None and n >= max_frames:
                            video_done = True
                            break
                else:
                    for aframe in packet.decode():
                        acc.add(aframe)
                if video_done and (astream is None or acc.seconds >= n / fps + 0.1):
                    break
        if n == 0:
            raise _fail(p, "no decodable video frames")
        declared = int(vstream.frames or 0)
        expected = declared if max_frames is None else min(declared, max_frames)
        if declared > 0 and n < expected - max(2, expected // 10):
            raise _fail(p, f"truncated or corrupt: decoded {n} of {expected} declared frames")
        if buf is None:
            frames = np.stack(overflow)
        elif overflow:
            frames = np.concatenate([buf, np.stack(overflow)])
        else:
            frames = buf if n == buf.shape[0] else buf[:n].copy()

        audio: np.ndarray | None = None
        if astream is not None:
            audio = acc.finish(astream, sample_rate)
            if max_frames is not None and n >= max_frames:
                audio = audio[: int(round(n / fps * sample_rate))]
    out_sr = sample_rate if audio is not None else None
    return VideoData(frames=frames, fps=fps, audio=audio, sample_rate=out_sr)


def iter_video_frames(path: PathLike) -> Iterator[tuple[float, np.ndarray]]:
    """Stream-decode a video: yields (seconds from the stream start, (H, W, 3) uint8 RGB) per frame."""
    p = _check_file(path)
    container = _open_input(p)
    try:
        stream = _video_stream(p, container)
        stream.thread_type = "AUTO"
        fps = _stream_fps(p, stream)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        width = height = 0
        i = 0
        with _wrap_errors(p, "decoding failed (file truncated or corrupt?)"):
            for frame in container.decode(stream):
                if i == 0:
                    width, height = frame.width, frame.height
                t = frame.time - start if frame.time is not None else i / fps
                yield t, _frame_rgb(frame, width, height)
                i += 1
        if i == 0:
            raise _fail(p, "no decodable video frames")
    finally:
        container.close()


X264_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
)  # fmt: skip
"""libx264's speed presets, fastest first."""


_CHANNEL_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
"""FFmpeg's default channel layout per channel count (AAC tracks of :class:`VideoWriter`)."""


class VideoWriter:
    """Stream (H, W, 3) uint8 RGB frames into an H.264 (libx264, yuv420p) mp4, one :meth:`write` at a time.

    Frames are encoded as they arrive (memory stays bounded for any length); the file is written to a
    temporary sibling and moved into place by :meth:`close` (atomic), or deleted by :meth:`abort`
    (also on an exception inside ``with``). ``crf`` and ``preset`` are libx264's quality and speed
    settings (``veryfast`` costs ~0.4x the CPU of ``medium`` per frame at a similar size;
    docs/prep.md); ``threads`` is libx264's thread count (0: its default, ~1.5 x the cores; use 1
    when many encoders run at once, as in ``mmgt-prep``).

    ``audio`` (N,) mono or (N, C) float at ``sample_rate`` (any rate AAC takes, e.g. 16 / 44.1 / 48 kHz)
    is clipped to [-1, 1] and muxed as an AAC track with its C channels, as given (neither trimmed nor
    padded to the video length), interleaved with the frames. yuv420p needs
    even sizes: an odd height or width is padded by one row/column at the bottom/right, repeating the
    edge pixels. Every frame must have the first frame's size.
    """

    def __init__(
        self,
        path: PathLike,
        fps: float = FPS,
        audio: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        crf: int = 18,
        preset: str = "medium",
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        if preset not in X264_PRESETS:
            raise ValueError(
                f"{self.path}: unknown x264 preset {preset!r}; expected one of {', '.join(X264_PRESETS)}"
            )
        self.rate = _fps_fraction(fps)
        self.crf, self.preset, self.sample_rate = int(crf), str(preset), int(sample_rate)
        self.threads = int(threads)
        self._audio = np.zeros((1, 0), dtype=np.float32)  # (C, N) planar
        if audio is not None:
            audio_f = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
            if audio_f.ndim not in (1, 2) or (audio_f.ndim == 2 and not 1 <= audio_f.shape[1] <= 8):
                raise ValueError(f"{self.path}: audio must be (N,) or (N, C <= 8), got shape {audio_f.shape}")
            self._audio = np.ascontiguousarray(audio_f.reshape(audio_f.shape[0], -1).T)
        self.n = 0
        self._shape: tuple[int, ...] | None = None
        self._pad = (0, 0)
        self._tmp: Path | None = None
        self._out: Any = None
        self._vstream: Any = None
        self._astream: Any = None
        self._a_pos = 0

    def _open(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".mov": "mov", ".mkv": "matroska"}.get(self.path.suffix.lower(), "mp4")
        self._tmp = temp_sibling(self.path)
        self._pad = (height % 2, width % 2)
        with _wrap_errors(self.path, "writing video failed"):
            self._out = av.open(str(self._tmp), mode="w", format=fmt)
            vstream = self._out.add_stream("libx264", rate=self.rate)
            vstream.width, vstream.height = width + self._pad[1], height + self._pad[0]
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(self.crf), "preset": self.preset, "threads": str(self.threads)}
            self._vstream = vstream
            if self._audio.shape[1]:
                self._astream = self._out.add_stream("aac", rate=self.sample_rate)
                self._astream.layout = _CHANNEL_LAYOUTS[self._audio.shape[0]]

    def _encode_audio_until(self, end: int) -> None:
        end = min(end, self._audio.shape[1])
        if self._astream is None or end <= self._a_pos:
            return
        layout = self._astream.layout.name
        chunk = np.ascontiguousarray(self._audio[:, self._a_pos : end])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._a_pos
        frame.time_base = Fraction(1, self.sample_rate)
        self._out.mux(self._astream.encode(frame))
        self._a_pos = end

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame."""
        img = np.asarray(frame)
        if self._shape is None:
            if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise ValueError(f"each frame must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
            self._shape = img.shape
            self._open(img.shape[0], img.shape[1])
        elif img.shape != self._shape or img.dtype != np.uint8:
            raise ValueError(f"frame {self.n} is {img.shape} {img.dtype}, expected {self._shape} uint8")
        pad_h, pad_w = self._pad
        if pad_h or pad_w:
            img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        with _wrap_errors(self.path, "writing video failed"):
            vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            vframe.pts = self.n
            self._out.mux(self._vstream.encode(vframe))
            self.n += 1
            # interleave: the audio up to the end of this frame
            self._encode_audio_until(int(round(self.n * self.sample_rate / float(self.rate))))

    def close(self) -> Path:
        """Flush the encoders and move the file into place; returns the path."""
        if self._out is None:
            raise ValueError(f"{self.path}: no frames were written")
        try:
            with _wrap_errors(self.path, "writing video failed"):
                self._out.mux(self._vstream.encode(None))
                if self._astream is not None:
                    self._encode_audio_until(self._audio.shape[1])
                    self._out.mux(self._astream.encode(None))
                self._out.close()
                self._out = None
            assert self._tmp is not None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the partial file (the target path is untouched)."""
        if self._out is not None:
            with contextlib.suppress(Exception):  # the partial file is deleted anyway
                self._out.close()
            self._out = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: PathLike,
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float = FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Write frames (T, H, W, 3) uint8 RGB as an H.264 mp4, optionally with audio (see :class:`VideoWriter`).

    A (T, 33, 65, 3) input is stored and read back as (T, 34, 66, 3) (yuv420p pads odd sizes). The
    file appears atomically. Returns the path.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
        seq: Sequence[np.ndarray] = frames
    else:
        seq = list(frames)
    if len(seq) == 0:
        raise ValueError("frames is empty")
    with VideoWriter(path, fps=fps, audio=audio, sample_rate=sample_rate, crf=crf, preset=preset) as writer:
        for img in seq:
            writer.write(img)
    return Path(path)


# --------------------------------------------------------------------------- audio
def resample_audio(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis with a polyphase filter (exact rational ratio); float32 out.

    (..., N) -> (..., ceil(N * target_sr / orig_sr)).
    """
    audio = np.asarray(audio, dtype=np.float32)
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr or audio.shape[-1] == 0:
        return audio
    g = gcd(orig_sr, target_sr)
    return resample_poly(audio, target_sr // g, orig_sr // g, axis=-1).astype(np.float32, copy=False)


def _read_audio_av(p: Path, sample_rate: int) -> np.ndarray:
    container = _open_input(p)
    with container:
        if not container.streams.audio:
            raise _fail(p, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        acc = _AudioAccumulator()
        with _wrap_errors(p, "decoding audio failed (file truncated or corrupt?)"):
            for frame in container.decode(stream):
                acc.add(frame)
        if acc.rate is None:
            raise _fail(p, "no decodable audio")
        return acc.finish(stream, sample_rate)


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any audio (or the audio track of a video) as (N,) float32 mono at ``sample_rate``.

    wav/flac/ogg/aiff are read with soundfile, everything else (mp3, m4a, mp4, ...) with PyAV; soundfile
    failures fall back to PyAV. Channels are averaged; resampling uses :func:`resample_audio`.
    """
    p = _check_file(path)
    if p.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except sf.SoundFileError:
            pass  # e.g. MP3 data in a .wav name: let FFmpeg try
        else:
            return resample_audio(data.mean(axis=1, dtype=np.float32), int(sr), sample_rate)
    return _read_audio_av(p, sample_rate)


def read_audio_native(path: PathLike) -> tuple[np.ndarray, int]:
    """Read audio (or a video's audio track) as it is: ((N, C) float32, sample rate) - no resampling, no
    downmix (what generated videos carry, so that 44.1 kHz stereo speech stays 44.1 kHz stereo)."""
    p = _check_file(path)
    if p.suffix.lower() in _SOUNDFILE_SUFFIXES:
        try:
            data, sr = sf.read(str(p), dtype="float32", always_2d=True)
        except sf.SoundFileError:
            pass
        else:
            return data, int(sr)
    with _open_input(p) as container:
        if not container.streams.audio:
            raise _fail(p, "no audio stream")
        stream = container.streams.audio[0]
        chunks, rate = [], None
        with _wrap_errors(p, "decoding audio failed (file truncated or corrupt?)"):
            for frame in container.decode(stream):
                x = frame.to_ndarray()
                n_ch = len(frame.layout.channels)
                x = x.reshape(n_ch, -1) if frame.format.is_planar else x.reshape(-1, n_ch).T
                rate = rate or int(frame.sample_rate)
                x = _to_float(x)
                if frame.sample_rate != rate:
                    x = resample_audio(x, int(frame.sample_rate), rate)
                chunks.append(x)
        if rate is None:
            raise _fail(p, "no decodable audio")
        audio = np.concatenate(chunks, axis=1).T
        declared = _declared_duration(stream)
        if declared is not None and 0 < audio.shape[0] - int(round(declared * rate)) <= _MAX_CODEC_PADDING:
            audio = audio[: int(round(declared * rate))]
        return np.ascontiguousarray(audio, dtype=np.float32), rate


def write_audio(path: PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (N,) mono (or (N, C)) float audio, clipped to [-1, 1], as 16-bit PCM; atomic. Returns the path.

    The container follows the suffix: .flac writes FLAC, anything else WAV.
    """
    p = Path(path)
    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if data.ndim not in (1, 2):
        raise ValueError(f"audio must be (N,) or (N, C), got shape {data.shape}")
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = "FLAC" if p.suffix.lower() == ".flac" else "WAV"
    tmp = temp_sibling(p)
    try:
        with _wrap_errors(p, "writing audio failed"):
            sf.write(str(tmp), data, int(sample_rate), subtype="PCM_16", format=fmt)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
