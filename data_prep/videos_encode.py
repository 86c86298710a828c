"""The encoder thread of ``mmgt-prep source=videos``: a clip is H.264-encoded while its frames are detected.

:class:`ClipEncoder` runs one background thread per open clip at a lower CPU priority
(:func:`lower_thread_priority`, ``BACKGROUND_NICE``), so it uses the cycles mediapipe leaves idle instead
of slowing it down. At most ``ENCODER_QUEUE`` S x S frames wait per open clip (bounded RAM); the partial
video lives in a scratch folder under ``<out>/.tmp/``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.io import MediaError
from mmgt.schema import FPS

ENCODER_QUEUE = 16
"""Frames that may wait for a clip's encoder thread (bounded RAM: 16 x 0.79 MB at 512 x 512)."""
BACKGROUND_NICE = 10
"""Niceness added to the encoder and writer threads (Linux: per thread, inherited by libx264's)."""


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> None:
    """Raise the calling thread's niceness by ``increment`` (capped at 19), so it runs on idle cycles.

    Linux keeps the nice value per thread and threads started from this one (libx264's) inherit it.
    Elsewhere ``setpriority`` would change the whole process, so this is a no-op there.
    """
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # not permitted: run at the normal priority
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))


_ABORT = object()


class ClipEncoder:
    """Encodes one clip's (S, S, 3) frames into ``path`` while the next frames are detected.

    A background thread at a lower priority (:func:`lower_thread_priority`) owns a
    :class:`mmgt.io.VideoWriter`; :meth:`add` queues a frame and blocks while ``ENCODER_QUEUE``
    frames wait (bounded RAM). :meth:`finish` waits until the file is complete and returns its path;
    :meth:`abort` drops it. An encoder error is raised by the next :meth:`add` or :meth:`finish`.
    """

    def __init__(self, path: Path, preset: str) -> None:
        from mmgt.io import VideoWriter

        self.path, self.n = path, 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ENCODER_QUEUE)
        self._error: BaseException | None = None
        self._aborted = False
        writer = VideoWriter(path, fps=FPS, preset=preset, threads=1)  # N workers: no N x cores threads
        self._thread = threading.Thread(target=self._run, args=(writer,), name="clip-encoder", daemon=True)
        self._thread.start()

    def _run(self, writer: Any) -> None:
        lower_thread_priority()
        item: Any = False
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    if writer.n:
                        writer.close()
                    return
                if item is _ABORT:
                    break
                if not self._aborted:
                    writer.write(item)
        except BaseException as e:  # noqa: BLE001 - handed to the thread that adds or finishes
            self._error = e
            while item is not None and item is not _ABORT:  # keep consuming: add() never blocks forever
                item = self._queue.get()
        writer.abort()

    def _raise(self) -> None:
        if self._error is not None:
            raise MediaError(f"{self.path}: encoding failed: {self._error}") from self._error

    def add(self, frame: np.ndarray) -> None:
        """Queue one (S, S, 3) uint8 frame (not copied: do not modify it afterwards)."""
        self._raise()
        self._queue.put(frame)
        self.n += 1

    def finish(self) -> Path:
        """Wait for the encoder; the complete video is at the returned path."""
        self._queue.put(None)
        self._thread.join()
        self._raise()
        if not self.path.is_file():
            raise MediaError(f"{self.path}: encoding produced no file ({self.n} frames)")
        return self.path

    def abort(self) -> None:
        """Stop encoding (queued frames are skipped) and delete the file.

        Also deletes a finished file the caller has not moved away.
        """
        if self._thread.is_alive():
            self._aborted = True
            self._queue.put(_ABORT)
            self._thread.join()
        self.path.unlink(missing_ok=True)


__all__ = ["BACKGROUND_NICE", "ENCODER_QUEUE", "ClipEncoder", "lower_thread_priority"]
