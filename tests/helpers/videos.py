"""Real talking-face videos of chosen lengths, trimmed or looped from the sample clips (PyAV, no ffmpeg CLI).

The samples are 8 s at 25 fps (``talking_face_hdtf_aoc_25fps.mp4``) and 10 s at 29.97 fps
(``talking_face_moore4_30fps.mp4``); :func:`loop_video` cuts or repeats one at its own frame rate and audio
rate, so a folder of a few videos of 4-16 s at 25 and 29.97 fps is what a user would give ``mmgt-prep``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.io import VideoWriter, iter_video_frames, probe_video, read_audio_native

AOC = "talking_face_hdtf_aoc_25fps.mp4"
MOORE = "talking_face_moore4_30fps.mp4"

SIX_VIDEOS: tuple[tuple[str, str, float, float], ...] = (
    ("aoc/address_a.mp4", AOC, 4.0, 0.0),
    ("aoc/address_b.mp4", AOC, 8.0, 2.0),
    ("aoc/address_c.mp4", AOC, 16.0, 0.0),
    ("moore/talk_a.mp4", MOORE, 4.0, 1.0),
    ("moore/talk_b.mp4", MOORE, 10.0, 0.0),
    ("moore/talk_c.mp4", MOORE, 16.0, 3.0),
)
"""(relative path, sample, seconds, start offset): the issue's probe, 6 videos of 4-16 s, 25 and 29.97 fps."""


def loop_video(src: Path, dst: Path, seconds: float, start: float = 0.0, preset: str = "ultrafast") -> Path:
    """Write ``seconds`` of ``src`` from ``start`` on (wrapping round to the beginning as often as needed)
    to ``dst``: H.264 at the source's frame rate and size, with its audio at its own rate and channels."""
    info = probe_video(src)
    fps = info.fps
    n_out = int(round(seconds * fps))
    first = int(round(start * fps)) % info.n_frames
    audio, sr = read_audio_native(src)
    a0, n_audio = int(round(start * sr)) % len(audio), int(round(seconds * sr))
    looped = np.take(audio, np.arange(a0, a0 + n_audio) % len(audio), axis=0)
    with VideoWriter(dst, fps=fps, audio=looped, sample_rate=sr, preset=preset) as writer:
        k = 0
        while writer.n < n_out:
            for _, frame in iter_video_frames(src):
                if k >= first and writer.n < n_out:
                    writer.write(frame)
                k += 1
            first = 0
    return dst


def make_video_folder(root: Path, samples: Path, specs=SIX_VIDEOS) -> Path:  # noqa: ANN001
    """A folder of videos ``root/<relative path>`` from ``specs`` (see :data:`SIX_VIDEOS`)."""
    for rel, sample, seconds, start in specs:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        loop_video(samples / sample, root / rel, seconds, start)
    return root


@functools.cache
def _video_prep_defaults() -> Any:
    from mmgt_prep.cli import build_source
    from tests.helpers.shared import compose_config

    return build_source(compose_config("prep", ["source=videos", "input=unset"]))


def video_prep_config(**settings: Any) -> Any:
    """A :class:`mmgt_prep.videos.VideoPrepConfig` with the defaults of ``conf/source/videos.yaml`` (as the
    CLI builds it) but ``settings`` (``input=`` and ``out=`` at least), checked again."""
    return dataclasses.replace(_video_prep_defaults(), **settings)
