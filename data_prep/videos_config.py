"""The settings of ``mmgt-prep source=videos``: :class:`VideoPrepConfig`, the keys of
``conf/source/videos.yaml``, validated when built; :meth:`VideoPrepConfig.from_cfg` takes them from the
composed Hydra config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from mmgt.config import audio_encoder_node
from mmgt.factory import is_node
from mmgt.io import X264_PRESETS
from mmgt_prep.splits import AUTO, DEFAULT_FRACTIONS, SplitPolicy

CROP_MODES = ("center", "left_ratio", "person")


@dataclass(frozen=True)
class VideoPrepConfig:
    """Plain-value settings of a ``source=videos`` run: the keys of ``conf/source/videos.yaml`` (+ ``out``,
    ``retry_failed``, ``progress`` of ``conf/prep.yaml``), with the same defaults."""

    input: str
    out: str
    input_root: str | None = None
    split: str = AUTO
    split_fractions: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    split_by: str = "video"
    split_seed: int = 0
    resplit: bool = False
    size: int = 512
    crop: str = "center"
    left_ratios: dict[str, float | str] = field(default_factory=dict)
    person_samples: int = 5
    person_scale: float = 1.2
    max_gap: int = 5
    max_missing_fraction: float = 0.5
    require_audio: bool = True
    silence_threshold_db: float = -60.0
    video_preset: str = "veryfast"
    window: float | None = None
    stride: float | None = None
    max_seconds: float | None = None
    features: tuple[dict[str, Any], ...] = field(default_factory=lambda: (audio_encoder_node("baseline"),))
    """Resolved ``_target_`` nodes of the extractors cached as ``features/<name>.npy`` (the YAML names
    ``conf/audio_encoder`` options: :meth:`from_cfg` resolves them)."""
    workers: int = 1
    shard: int = 0
    num_shards: int = 1
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    retry_failed: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop={self.crop!r}: expected one of {', '.join(CROP_MODES)}")
        if self.size < 2:
            raise ValueError(f"size={self.size}: must be at least 2 pixels")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: must be >= 1")
        if self.video_preset not in X264_PRESETS:
            raise ValueError(f"video_preset={self.video_preset!r}: expected one of {', '.join(X264_PRESETS)}")
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard={self.shard} num_shards={self.num_shards}: need 0 <= shard < num_shards")
        if self.window is not None and self.window <= 0:
            raise ValueError(f"window={self.window}: must be positive seconds (or null)")
        if self.stride is not None and (self.window is None or self.stride <= 0):
            raise ValueError(f"stride={self.stride}: needs window= and must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds={self.max_seconds}: must be positive (or null)")
        if not 0.0 <= self.max_missing_fraction <= 1.0:
            raise ValueError(f"max_missing_fraction={self.max_missing_fraction}: must be in [0, 1]")
        for speaker, ratio in self.left_ratios.items():
            if ratio != "right" and not (isinstance(ratio, (int, float)) and 0.0 <= ratio < 1.0):
                raise ValueError(f"left_ratios.{speaker}={ratio!r}: expected a fraction in [0, 1) or 'right'")
        _ = self.split_policy  # validates the split keys
        for node in self.features:
            if not is_node(node):
                raise ValueError(
                    f"features: {node!r} is not an audio encoder node (a conf/audio_encoder name)"
                )

    @property
    def split_policy(self) -> SplitPolicy:
        return SplitPolicy(self.split, self.split_fractions, self.split_by, self.split_seed, self.resplit)

    def extractors(self) -> list[Any]:
        """The :class:`~mmgt.audio.AudioFeatureExtractor` of each ``features`` node (checks model folders)."""
        from mmgt.audio import extractor_from_node

        return [extractor_from_node(node, f"features[{i}]") for i, node in enumerate(self.features)]

    @classmethod
    def from_cfg(cls, cfg: Any) -> VideoPrepConfig:
        """From the composed Hydra config (``conf/prep.yaml`` + ``conf/source/videos.yaml``): every field
        present in ``cfg`` is taken, converted to the field's type (a test checks that each key of
        ``conf/source/videos.yaml`` arrives). ``features`` lists ``conf/audio_encoder`` names (or inline
        ``_target_`` nodes), resolved with the config's ``paths``."""
        from omegaconf import OmegaConf

        if OmegaConf.select(cfg, "input") in (None, ""):
            raise ValueError(
                "input= is required: a folder of videos/images or an interval list .csv, e.g. "
                "`mmgt-prep source=videos input=DIR out=DIR`"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = OmegaConf.select(cfg, f.name, default=_ABSENT)
            if value is _ABSENT:
                continue
            if f.name == "features":
                values[f.name] = _feature_nodes(value, OmegaConf.select(cfg, "paths"))
                continue
            plain = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            values[f.name] = _convert(f.name, str(f.type), plain)
        return cls(**values)


_ABSENT = object()


def _feature_nodes(value: Any, paths: Any) -> tuple[dict[str, Any], ...]:
    """``features``: conf/audio_encoder names (or inline nodes) -> resolved ``_target_`` nodes."""
    from omegaconf import OmegaConf

    items = [value] if isinstance(value, str) else list(value or [])
    nodes = []
    for item in items:
        if OmegaConf.is_config(item):
            nodes.append(OmegaConf.to_container(item, resolve=True))
        else:
            nodes.append(audio_encoder_node(str(item), paths))
    return tuple(nodes)


def _convert(name: str, annotation: str, value: Any) -> Any:
    """A config value as the plain type of a :class:`VideoPrepConfig` field (annotation as a string)."""
    if value is None:
        if "None" in annotation:
            return None
        raise ValueError(f"{name}=null: a value is required")
    kind = annotation.split("[", 1)[0].split("|", 1)[0].strip()
    if kind == "tuple":
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value))
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"{name}={value!r}: expected a mapping, e.g. {name}={{a: 1}}")
        return dict(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: expected true or false")
        return value
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected {'an' if kind == 'int' else 'a'} {kind}") from None


__all__ = ["CROP_MODES", "VideoPrepConfig"]
