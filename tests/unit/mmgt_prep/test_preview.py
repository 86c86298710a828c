"""Streamed previews (mmgt_prep.preview): chunking changes nothing, the shorter of frames / keypoints wins,
and the written mp4 has every frame, the four panels and the clip's audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgt.clipstore import ClipStore
from mmgt.io import probe_video, read_video
from mmgt_prep.preview import iter_preview_frames, preview_frames, write_clip_preview
from mmgt_prep.toy import generate_toy_dataset


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("preview") / "store"
    generate_toy_dataset(root, 1, 1, seconds=2.0, size=64, seed=0, progress=False)
    return ClipStore(root).clips()[0]


def test_chunks_give_the_whole_clips_preview(clip) -> None:  # noqa: ANN001
    frames, kps = clip.video(), clip.keypoints()
    whole = preview_frames(frames, kps)
    assert whole.shape == (50, 64, 256, 3)
    for chunk in (1, 7, 50):
        pieces = list(iter_preview_frames(iter(frames), kps, chunk=chunk))
        assert max(len(p) for p in pieces) <= chunk
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert len(np.concatenate(list(iter_preview_frames(iter(frames[:20]), kps, chunk=16)))) == 20
    assert len(np.concatenate(list(iter_preview_frames(iter(frames), kps[:30], chunk=16)))) == 30


def test_written_preview_has_every_frame_and_the_audio(clip, tmp_path: Path) -> None:  # noqa: ANN001
    out = write_clip_preview(clip, tmp_path / "p.mp4", chunk=8)
    info = probe_video(out)
    assert (info.n_frames, info.width, info.height, info.has_audio) == (50, 256, 64, True)
    got = read_video(out).frames.astype(int)
    expected = preview_frames(clip.video(), clip.keypoints()).astype(int)
    assert np.abs(got - expected).mean() < 4.0  # H.264 at crf 18
