"""TensorBoard helpers that need no extra dependency: videos as animated GIF image summaries."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """(T, H, W, 3) uint8 frames -> animated GIF bytes (looping)."""
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0
    )
    return buf.getvalue()


def add_video(writer, tag: str, frames: np.ndarray, fps: float, step: int) -> None:  # noqa: ANN001
    """Log a (T, H, W, 3) uint8 video to a ``SummaryWriter`` as TensorBoard does (GIF image summary).

    Unlike ``SummaryWriter.add_video`` this needs no moviepy.
    """
    t, h, w, _ = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=gif_bytes(frames, fps))
    writer.file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
