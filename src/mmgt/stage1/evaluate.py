"""Stage I test-split evaluation: generate every test clip's poses from its audio and score them.

For each clip of ``split`` in the DataModule's clip store, the exported network generates the whole clip
(any length, :func:`mmgt.stage1.generate.generate_pose_sequence`) from the clip's audio features and its
first ground-truth frame. Written into ``<run>/generated/<speaker>/<clip>.mp4`` (a pose video with the
clip's audio) and ``.npy`` (keypoints). With ``shuffled_control`` the same is done with the audio features
of another test clip (a derangement), while the video keeps the clip's own audio track: a model that uses
the audio scores clearly better on its own audio than on the shuffled one. Both are scored by ``mmgt-eval``
against the ground-truth clips (their keypoints and audio) with ``metrics``; the control's metrics are
merged in as ``<metric>_shuffled``. The keypoint metrics (``lip_audio_pose``, ``bas``, ``diversity``) read the
``.npy`` files; pixel metrics, if any are listed, score the pose videos and the clips at one protocol size
(``eval_size``, default the pose videos' side; :func:`mmgt.evaluation.protocol_size`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmgt.audio import load_or_compute_features
from mmgt.clipstore import ClipStore
from mmgt.evaluation import (
    EVAL_SIZE_GENERATED,
    clip_name,
    generation_conditions,
    merge_results,
    protocol_size,
    score_videos,
    write_pairs_manifest,
)
from mmgt.io import write_video
from mmgt.render import draw_pose
from mmgt.schema import FPS
from mmgt.stage1.export import PosePipeline

log = logging.getLogger(__name__)


class PoseEvaluation:
    """Callable evaluator for ``mmgt-train``'s ``evaluate`` hook (``conf/evaluate/stage1.yaml``).

    Args:
        split: manifest split to generate.
        metrics: mmgt-eval metric names (``conf/eval/metrics``); keypoint metrics need no weights.
        steps, guidance, eta: DDIM settings (None: the export's defaults).
        seed: generation seed (each clip uses ``seed + clip index``).
        size: side of the written pose videos.
        shuffled_control: also generate with another clip's audio and score it.
        protocol: mmgt-eval protocol name.
        max_clips: evaluate at most this many clips (None: all).
        overrides: extra mmgt-eval overrides.
        eval_size: the side pose videos and clips are scored at: ``"generated"`` (``size``), a side in
            pixels, or None (native sizes, which must match).
    """

    def __init__(
        self,
        split: str = "test",
        metrics: Sequence[str] = ("lip_audio_pose", "bas", "diversity"),
        steps: int | None = None,
        guidance: float | None = None,
        eta: float | None = None,
        seed: int = 0,
        size: int = 128,
        shuffled_control: bool = True,
        protocol: str = "default",
        max_clips: int | None = None,
        overrides: Sequence[str] = (),
        eval_size: int | str | None = EVAL_SIZE_GENERATED,
    ) -> None:
        self.split, self.metrics, self.seed, self.size = split, list(metrics), int(seed), int(size)
        self.eval_size = eval_size
        self.steps, self.guidance, self.eta = steps, guidance, eta
        self.shuffled_control, self.protocol = bool(shuffled_control), protocol
        self.max_clips, self.overrides = max_clips, list(overrides)

    def __call__(self, export_dir: str | Path, datamodule: Any, out_dir: str | Path) -> dict[str, Any]:
        """Generate, score and return the merged mmgt-eval results (also in ``<out_dir>/eval/``)."""
        out_dir = Path(out_dir)
        pipe = PosePipeline.from_pretrained(export_dir)
        store = ClipStore(datamodule.root)
        clips = store.clips(split=self.split)
        if self.max_clips is not None:
            clips = clips[: self.max_clips]
        if not clips:
            raise ValueError(f"{store.root}: no ok clips in split {self.split!r}")
        side, size_overrides = protocol_size(
            self.eval_size, self.size, [c.record.size for c in clips], "the side of the pose videos (size)"
        )
        feats = [load_or_compute_features(c, pipe.extractor) for c in clips]
        settings = pipe.export.sampling(self.steps, self.guidance, self.eta)
        conditions, control = generation_conditions(
            len(clips), self.shuffled_control, f"split {self.split!r} of {store.root}"
        )
        for i, clip in enumerate(tqdm(clips, desc=f"stage I: generating {self.split}", unit="clip")):
            kps_true, audio = clip.keypoints(), clip.audio()
            name = clip_name(clip)
            for folder, source in conditions.items():
                f = feats[source[i]]
                f = np.concatenate([f] * (1 + len(kps_true) // len(f)))[: len(kps_true)]
                kps = pipe.from_features(f, kps_true[0], len(kps_true), seed=self.seed + i, **settings)
                path = out_dir / folder / f"{name}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path.with_suffix(".npy"), kps)
                write_video(path, draw_pose(kps, self.size), fps=FPS, audio=audio)
        ref = (store.root / "clips").resolve()
        eval_dir = out_dir / "eval"
        manifest = write_pairs_manifest(clips, eval_dir / "pairs.jsonl")
        results: dict[str, Any] = {}
        for folder in conditions:
            res = score_videos(
                out_dir / folder,
                ref,
                self.metrics,
                eval_dir / f"{folder}.json",
                pairing=manifest,
                protocol=self.protocol,
                overrides=[*size_overrides, *self.overrides],
            )
            results = res if folder == "generated" else merge_results(results, res, "shuffled")
        results["generation"] = {"stage": "pose", "split": self.split, "clips": len(clips), **settings}
        results["generation"].update(eval_size=side, shuffled_control=control)
        return results
