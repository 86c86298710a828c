"""The Stage II export: one typed contract for training, the release import, generation and evaluation.

An export folder follows diffusers' pipeline layout::

    <export>/model_index.json     {"_class_name": "Stage2Pipeline", "_diffusers_version": ..., "<component>":
                                  [library, class], ...}
    <export>/<component>/         save_pretrained of each of COMPONENT_NAMES (config.json + safetensors)
    <export>/mmgt_stage2.json     Stage2Export: what generation needs besides the weights

``mmgt-train`` (``Stage2LitModule.export``) and ``mmgt-weights import-mmgt`` write it with
:meth:`Stage2Export.save`; :meth:`Stage2Export.load` reads it for ``Stage2Pipeline.from_pretrained``. Every
generation default (steps, guidance scale, context window / overlap, ...) is :data:`DEFAULT_INFERENCE`,
defined here once.

The folder is written and read by this small module, not by ``DiffusionPipeline.register_modules`` /
``from_pretrained``: diffusers imports whatever library ``model_index.json`` names, so a downloaded export
would choose the code that runs. Here each ``[library, class]`` must be an entry of
:data:`COMPONENT_CLASSES` (nothing is imported), weights load from safetensors only, and the mask guidance
is rebuilt by :func:`mmgt.factory.build` over :data:`~mmgt.stage2.guidance.GUIDANCE_CLASSES`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from transformers import CLIPVisionModelWithProjection

from mmgt.atomic import write_text
from mmgt.factory import build
from mmgt.schema import AUDIO_MARGIN, FPS, SAMPLE_RATE
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.components import COMPONENT_NAMES, Stage2Components
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.guidance import GUIDANCE_CLASSES, MaskGuidance, MotionMaskGuidance
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet
from mmgt.untrusted import UntrustedFileError, split_fields

EXPORT_META = "mmgt_stage2.json"
"""Generation metadata written next to the exported components."""

MODEL_INDEX = "model_index.json"
"""diffusers' pipeline index: each component's ``[library, class]``."""

PIPELINE_CLASS = "Stage2Pipeline"

DEFAULT_INFERENCE: dict[str, Any] = {
    "steps": 25,
    "guidance_scale": 3.5,
    "context_frames": 12,
    "context_overlap": 4,
    "context_batch": 1,
    "closed_loop": False,
    "decode_chunk": 8,
    "pose_cache": "device",
    "audio_branches": None,
    "motion_scale": None,
    "scheduler": "ddim",
    "cfg_mode": "batched",
    "channels_last": False,
    "sdpa_backend": None,
    "compile": False,
    "compile_mode": None,
    "compile_backend": None,
    "compile_fullgraph": True,
    "vae_slicing": False,
    "vae_tiling": False,
}
"""Generation defaults, the only definition (an export's ``inference`` overrides them key by key; None = the
default). ``audio_branches`` / ``motion_scale``: the mask region and weight of each audio branch at
generation (None: the denoiser's training ones; the released MMGT used 1 + lips and 1 : 1 : 2 here). The
speed levers (:mod:`mmgt.stage2.speed`): ``scheduler`` (``ddim`` | ``dpmsolver++`` | ``unipc`` | ``euler``),
``cfg_mode`` (``batched`` | ``sequential``), ``channels_last``, ``sdpa_backend`` (None | ``math`` |
``flash`` | ``efficient`` | ``cudnn``), ``compile`` / ``compile_mode`` / ``compile_backend`` /
``compile_fullgraph`` (``torch.compile`` of the denoiser as one graph; None: torch's defaults, ``inductor``),
``vae_slicing`` / ``vae_tiling``."""


def _entry(cls: type) -> tuple[str, str]:
    library = cls.__module__.split(".")[0]
    return (library if library in ("diffusers", "transformers") else cls.__module__, cls.__name__)


_DEFAULT_CLASSES: dict[str, type] = {
    "vae": AutoencoderKL,
    "image_encoder": CLIPVisionModelWithProjection,
    "reference_net": ReferenceNet,
    "denoiser": MMGTDenoiser,
    "pose_guider": PoseGuider,
    "audio_proj": AudioProjModel,
}

COMPONENT_CLASSES: dict[str, dict[tuple[str, str], type]] = {
    name: {_entry(cls): cls} for name, cls in _DEFAULT_CLASSES.items()
}
"""Component -> the ``(library, class)`` entries ``model_index.json`` may name for it (the allow-list).
An export without ``model_index.json`` (written before it) loads the one default entry of each."""


def _guidance_node() -> dict[str, Any]:
    return MotionMaskGuidance().config()


@dataclass
class Stage2Export:
    """``mmgt_stage2.json``: everything generation needs besides the weights.

    Attributes:
        size: the square frame size S the model was trained at.
        audio_features: the extractor spec (:func:`mmgt.audio.build_extractor`) of the training features.
        frames: frames per training clip (1: image level).
        audio_margin: the audio window is +- this many frames.
        pose_render: :func:`mmgt.render.draw_pose` options of the training pose video.
        process: ``image`` or ``video`` (the training process).
        use_audio: whether the denoiser gets audio tokens (decided once, by the LightningModule).
        mask_guidance: the mask ablation as a ``_target_`` node (:mod:`mmgt.stage2.guidance`).
        noise_scheduler: ``DDPMScheduler`` keyword arguments of training (DDIM samples on them).
        inference: generation settings, :data:`DEFAULT_INFERENCE` with this export's values (None: default).
        fps, sample_rate: the frame and audio rates.
        source: where the weights came from (release files), if not trained here.
        extra: keys of the file this version does not know (kept on a round trip).
    """

    size: int
    audio_features: Any
    frames: int = 1
    audio_margin: int = AUDIO_MARGIN
    pose_render: dict[str, Any] = field(default_factory=dict)
    process: str = "image"
    use_audio: bool = True
    mask_guidance: dict[str, Any] = field(default_factory=_guidance_node)
    noise_scheduler: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    fps: int = FPS
    sample_rate: int = SAMPLE_RATE
    source: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = int(self.size)
        given = {k: v for k, v in dict(self.inference or {}).items() if v is not None}
        self.inference = {**DEFAULT_INFERENCE, **given}

    def guidance(self) -> MaskGuidance:
        """The recorded mask guidance, rebuilt through the allow-list."""
        return build(self.mask_guidance, GUIDANCE_CLASSES, f"{EXPORT_META}: mask_guidance")

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The generation settings: :attr:`inference` with the ``overrides`` that are not None."""
        return {**self.inference, **{k: v for k, v in overrides.items() if v is not None}}

    def to_json(self) -> dict[str, Any]:
        """The file's content: the fields (``source`` only when set) over the unknown keys."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"}
        return {**self.extra, **{k: v for k, v in data.items() if k != "source" or v is not None}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = EXPORT_META) -> Stage2Export:
        """The export of a file's content; keys this version does not know go to ``extra``."""
        missing = [k for k in ("size", "audio_features") if k not in data]
        if missing:
            raise ValueError(f"{where}: no {missing} (not a Stage II export's metadata)")
        known, extra = split_fields(cls, data)
        return cls(**known, extra=extra)

    @classmethod
    def read(cls, export_dir: str | Path) -> Stage2Export:
        """The metadata of an export folder (no weights loaded)."""
        meta_path = Path(export_dir) / EXPORT_META
        try:
            return cls.from_json(json.loads(meta_path.read_text()), str(meta_path))
        except (json.JSONDecodeError, TypeError) as e:
            raise ValueError(f"{meta_path}: unreadable Stage II metadata ({e})") from e

    def save(self, components: Stage2Components, out_dir: str | Path) -> Path:
        """Write the export folder and return its path.

        One ``save_pretrained`` subfolder per component, ``model_index.json`` and ``mmgt_stage2.json``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__}
        for name in COMPONENT_NAMES:
            part = getattr(components, name)
            part.save_pretrained(out / name, safe_serialization=True)
            index[name] = list(_entry(type(part)))
        write_text(out / MODEL_INDEX, json.dumps(index, indent=2) + "\n")
        write_text(out / EXPORT_META, json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(
        cls, export_dir: str | Path, device: str | torch.device = "cpu"
    ) -> tuple[Stage2Components, Stage2Export]:
        """The components (eval mode, on ``device``) and the metadata of an export folder."""
        path = Path(export_dir)
        missing = [n for n in COMPONENT_NAMES if not (path / n / "config.json").is_file()]
        if not (path / EXPORT_META).is_file() or missing:
            raise FileNotFoundError(
                f"{path}: not a Stage II export (expected {EXPORT_META}, {MODEL_INDEX} and the subfolders "
                f"{', '.join(COMPONENT_NAMES)}, each a save_pretrained folder, as written by "
                f"`mmgt-train experiment=stage2_image_toy` into <run>/export); missing: "
                f"{', '.join(missing) or EXPORT_META}"
            )
        export = cls.read(path)
        classes = component_classes(path)
        parts = {n: load_component(path, n, classes[n]) for n in COMPONENT_NAMES}
        return Stage2Components(**parts).to(device).eval(), export


def component_classes(export_dir: str | Path) -> dict[str, type]:
    """Component -> class named by the export's ``model_index.json`` (allow-listed; no index: defaults)."""
    index_path = Path(export_dir) / MODEL_INDEX
    if not index_path.is_file():
        return dict(_DEFAULT_CLASSES)
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{index_path}: unreadable ({e})") from e
    classes = {}
    for name in COMPONENT_NAMES:
        entry = index.get(name) if isinstance(index, dict) else None
        allowed = COMPONENT_CLASSES[name]
        key = tuple(entry) if isinstance(entry, list) and len(entry) == 2 else None
        if key not in allowed:
            raise UntrustedFileError(
                f"{index_path}: {name} {entry!r} is not allowed here; expected one of "
                f"{[list(k) for k in allowed]}"
            )
        classes[name] = allowed[key]
    return classes


def load_component(export_dir: str | Path, name: str, cls: type | None = None) -> Any:
    """One exported component from its ``save_pretrained`` folder: safetensors only (no pickled weights)."""
    folder = Path(export_dir) / name
    cls = cls or component_classes(export_dir)[name]
    try:
        return cls.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    except OSError as e:
        raise FileNotFoundError(
            f"{folder}: cannot load the exported {name} (exports hold safetensors weights; "
            f"pickled .bin weights are refused): {e}"
        ) from e


__all__ = [
    "COMPONENT_CLASSES",
    "DEFAULT_INFERENCE",
    "EXPORT_META",
    "MODEL_INDEX",
    "Stage2Export",
    "component_classes",
    "load_component",
]
