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

from mmgt.io_audio import *  # noqa: F403 - re-exported: the public home of the media IO is this module
from mmgt.io_audio import __all__ as _audio
from mmgt.io_common import *  # noqa: F403
from mmgt.io_common import __all__ as _common
from mmgt.io_video import *  # noqa: F403
from mmgt.io_video import __all__ as _video

__all__ = [*_common, *_audio, *_video]
