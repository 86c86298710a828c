"""The settings of ``mmgt-prep source=videos``: :class:`VideoPrepConfig`.

It is the node of ``conf/source/videos.yaml`` (+ ``out``, ``retry_failed``, ``progress`` of
``conf/prep.yaml``), which holds every default; ``mmgt_prep.cli`` builds it with Hydra, and it is checked
when built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmgt.factory import is_node
from mmgt.io import X264_PRESETS
from mmgt_prep.splits import SplitSettings

CROP_MODES = ("center", "left_ratio", "person")


@dataclass(frozen=True)
class VideoPrepConfig(SplitSettings):
    """Plain-value settings of a ``source=videos`` run.

    The keys of ``conf/source/videos.yaml`` (their defaults and meaning are there; docs/prep.md) + ``out``,
    ``retry_failed``, ``progress`` of ``conf/prep.yaml``. The split keys (``split``, ``split_fractions``,
    ...) come from :class:`~mmgt_prep.splits.SplitSettings`.
    """

    input: str
    out: str
    input_root: str | None
    size: int
    crop: str
    left_ratios: dict[str, float | str]
    person_samples: int
    person_scale: float
    max_gap: int
    max_missing_fraction: float
    require_audio: bool
    silence_threshold_db: float
    video_preset: str
    window: float | None
    stride: float | None
    max_seconds: float | None
    features: tuple[dict[str, Any], ...]
    """Resolved ``_target_`` nodes of the extractors cached as ``features/<name>.npy`` (the YAML names
    ``conf/audio_encoder`` options; :func:`mmgt_prep.cli.build_source` resolves them)."""
    workers: int
    shard: int
    num_shards: int
    model_complexity: int
    min_detection_confidence: float
    min_tracking_confidence: float
    retry_failed: bool
    progress: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop={self.crop!r}: expected one of {', '.join(CROP_MODES)}")
        if self.video_preset not in X264_PRESETS:
            raise ValueError(f"video_preset={self.video_preset!r}: expected one of {', '.join(X264_PRESETS)}")
        for speaker, ratio in self.left_ratios.items():
            if ratio != "right" and not (isinstance(ratio, float) and 0.0 <= ratio < 1.0):
                raise ValueError(f"left_ratios.{speaker}={ratio!r}: expected a fraction in [0, 1) or 'right'")
        self._check_counts()
        self._check_seconds()
        for node in self.features:
            if not is_node(node):
                raise ValueError(
                    f"features: {node!r} is not an audio encoder node (a conf/audio_encoder name)"
                )

    def _check_counts(self) -> None:
        if self.size < 2:
            raise ValueError(f"size={self.size}: must be at least 2 pixels")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: must be >= 1")
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard={self.shard} num_shards={self.num_shards}: need 0 <= shard < num_shards")
        if not 0.0 <= self.max_missing_fraction <= 1.0:
            raise ValueError(f"max_missing_fraction={self.max_missing_fraction}: must be in [0, 1]")

    def _check_seconds(self) -> None:
        if self.window is not None and self.window <= 0:
            raise ValueError(f"window={self.window}: must be positive seconds (or null)")
        if self.stride is not None and (self.window is None or self.stride <= 0):
            raise ValueError(f"stride={self.stride}: needs window= and must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds={self.max_seconds}: must be positive (or null)")

    def extractors(self) -> list[Any]:
        """The :class:`~mmgt.audio.AudioFeatureExtractor` of each ``features`` node (checks model folders)."""
        from mmgt.audio import extractor_from_node

        return [extractor_from_node(node, f"features[{i}]") for i, node in enumerate(self.features)]

    def run(self) -> dict[str, Any]:
        """Build/resume the store (:func:`mmgt_prep.videos.prepare_videos`); returns its summary."""
        from mmgt_prep.videos import prepare_videos

        return prepare_videos(self)


__all__ = ["CROP_MODES", "VideoPrepConfig"]
