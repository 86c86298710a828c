"""What the media readers share: :class:`MediaError`, the file checks and the error wrapping.

The message of a :class:`MediaError` starts with the path; the errors wrapped are those of PyAV / soundfile
(see :mod:`mmgt.io`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import soundfile as sf

__all__ = ["MediaError", "PathLike"]

PathLike = str | os.PathLike[str]


class MediaError(ValueError):
    """A media file is missing, empty, corrupt or lacks a required stream; message starts with the path."""


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


def _declared_duration(stream: Any) -> float | None:
    """Seconds the container declares for the stream, or None."""
    if stream.duration is None or stream.time_base is None or stream.duration <= 0:
        return None
    return float(stream.duration * stream.time_base)
