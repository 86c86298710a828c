"""Video files: probe, decode (whole or streamed) and write H.264 mp4 (+ AAC audio) (see :mod:`mmgt.io`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from mmgt.atomic import temp_sibling
from mmgt.io_audio import _AudioAccumulator
from mmgt.io_common import PathLike, _check_file, _declared_duration, _fail, _open_input, _wrap_errors
from mmgt.schema import FPS, SAMPLE_RATE

__all__ = ["X264_PRESETS", "VideoData", "VideoInfo", "VideoWriter", "iter_video_frames", "probe_video"]
__all__ += ["read_video", "write_video"]


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


def _video_stream(path: Path, container: Any) -> Any:
    if not container.streams.video:
        raise _fail(path, "no video stream")
    return container.streams.video[0]


def _stream_fps(path: Path, stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    raise _fail(path, "cannot determine the video frame rate")


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


def _frame_rgb(frame: Any, width: int, height: int) -> np.ndarray:
    if frame.width == width and frame.height == height:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=width, height=height, format="rgb24").to_ndarray()


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


class _FrameBuffer:
    """Decoded frames (H, W, 3) uint8 RGB, the size of the first, in one array and an overflow list.

    They go into one (capacity, H, W, 3) array allocated at the first frame (capacity = the declared count),
    any further ones into a list.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity, self.n = capacity, 0
        self.buf: np.ndarray | None = None
        self.overflow: list[np.ndarray] = []
        self.width = self.height = 0

    def add(self, frame: Any) -> None:
        if self.n == 0:
            self.width, self.height = frame.width, frame.height
            if self.capacity > 0:
                self.buf = np.empty((self.capacity, self.height, self.width, 3), dtype=np.uint8)
        rgb = _frame_rgb(frame, self.width, self.height)
        if self.buf is not None and self.n < self.capacity:
            self.buf[self.n] = rgb
        else:
            self.overflow.append(rgb)
        self.n += 1

    def frames(self) -> np.ndarray:
        """(n, H, W, 3) uint8."""
        if self.buf is None:
            return np.stack(self.overflow)
        if self.overflow:
            return np.concatenate([self.buf, np.stack(self.overflow)])
        return self.buf if self.n == self.buf.shape[0] else self.buf[: self.n].copy()


def _decode_frames(packet: Any, frames: _FrameBuffer, max_frames: int | None) -> bool:
    """Decode one video packet into ``frames``; True once ``max_frames`` frames are there."""
    for frame in packet.decode():
        frames.add(frame)
        if max_frames is not None and frames.n >= max_frames:
            return True
    return False


def _demux(
    p: Path,
    container: Any,
    streams: list[Any],
    frames: _FrameBuffer,
    acc: _AudioAccumulator,
    max_frames: int | None,
    fps: float,
) -> None:
    """Decode ``streams`` (the video stream, then the audio one if any) into ``frames`` and ``acc``.

    Stop once ``max_frames`` frames and their audio (+0.1 s at ``fps``) are there.
    """
    vindex, video_done = streams[0].index, False
    with _wrap_errors(p, "decoding failed (file truncated or corrupt?)"):
        for packet in container.demux(streams):
            if packet.stream.index != vindex:
                for aframe in packet.decode():
                    acc.add(aframe)
            elif not video_done:
                video_done = _decode_frames(packet, frames, max_frames)
            if video_done and (len(streams) == 1 or acc.seconds >= frames.n / fps + 0.1):
                break


def _check_frame_count(p: Path, n: int, declared: int, max_frames: int | None) -> None:
    """MediaError when nothing decoded or clearly fewer frames than the container declares."""
    if n == 0:
        raise _fail(p, "no decodable video frames")
    expected = declared if max_frames is None else min(declared, max_frames)
    if declared > 0 and n < expected - max(2, expected // 10):
        raise _fail(p, f"truncated or corrupt: decoded {n} of {expected} declared frames")


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
        fps = _stream_fps(p, vstream)
        astream = container.streams.audio[0] if with_audio and container.streams.audio else None
        streams = [vstream] if astream is None else [vstream, astream]
        for stream in streams:
            stream.thread_type = "AUTO"
        capacity = int(vstream.frames or 0)
        if max_frames is not None:
            capacity = min(capacity, max_frames) if capacity > 0 else max_frames
        frames, acc = _FrameBuffer(capacity), _AudioAccumulator()
        _demux(p, container, streams, frames, acc, max_frames, fps)
        _check_frame_count(p, frames.n, int(vstream.frames or 0), max_frames)
        audio: np.ndarray | None = None
        if astream is not None:
            audio = acc.finish(astream, sample_rate)
            if max_frames is not None and frames.n >= max_frames:
                audio = audio[: int(round(frames.n / fps * sample_rate))]
    out_sr = sample_rate if audio is not None else None
    return VideoData(frames=frames.frames(), fps=fps, audio=audio, sample_rate=out_sr)


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
