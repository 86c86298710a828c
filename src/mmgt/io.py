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

from mmgt.io_audio import read_audio, read_audio_native, resample_audio, write_audio
from mmgt.io_common import MediaError, PathLike
from mmgt.io_video import (
    X264_PRESETS,
    VideoData,
    VideoInfo,
    VideoWriter,
    iter_video_frames,
    probe_video,
    read_video,
    write_video,
)

__all__ = [
    "X264_PRESETS",
    "MediaError",
    "PathLike",
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
