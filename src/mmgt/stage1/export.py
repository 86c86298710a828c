"""The Stage I export and its pipeline: one typed contract for training, the release import and generation.

A Stage I export folder is ``save_pretrained`` of a :class:`~mmgt.stage1.network.SMGATransformer` (or of
its :class:`~mmgt.stage1.network.SMGAReferenceTransformer` subclass, named by ``config.json``) plus
``mmgt_stage1.json`` (:class:`Stage1Export`: the audio feature spec, the diffusion settings and the sampling
defaults). Every generation default is defined here, once; ``mmgt-train`` (``SMGALitModule.export``) and
``mmgt-weights import-mmgt`` write it, :class:`PosePipeline` reads it::

    pipe = PosePipeline.from_pretrained("<run>/export")
    keypoints = pipe(audio, ref_pose, n_frames)          # (n_frames, 134, 3) stored layout
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.atomic import write_text
from mmgt.schema import FPS, SAMPLE_RATE
from mmgt.stage1.diffusion import PoseDiffusion
from mmgt.stage1.network import SMGATransformer, network_class

EXPORT_META = "mmgt_stage1.json"
"""Written next to the exported network: what generation needs besides the weights."""


@dataclass
class Stage1Export:
    """``mmgt_stage1.json``: everything generation needs besides the weights.

    Attributes:
        audio_features: the node of the extractor the network was trained on
            (:meth:`mmgt.audio.AudioFeatureExtractor.node`; rebuilt through ``AUDIO_ENCODER_CLASSES``).
        diffusion: :class:`~mmgt.stage1.diffusion.PoseDiffusion` keyword arguments.
        sample_steps, guidance, eta: the DDIM sampling defaults (CFG weight, DDIM eta).
        fps, sample_rate: the frame and audio rates of the features.
        source: where the weights came from (a release checkpoint), if not trained here.
        extra: keys of the file this version does not know (kept on a round trip).
    """

    audio_features: Any
    diffusion: dict[str, Any] = field(default_factory=dict)
    sample_steps: int = 20
    guidance: float = 2.0
    eta: float = 1.0
    fps: int = FPS
    sample_rate: int = SAMPLE_RATE
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def sampling(
        self, steps: int | None = None, guidance: float | None = None, eta: float | None = None
    ) -> dict[str, Any]:
        """``{steps, guidance, eta}`` for :func:`~mmgt.stage1.generate.generate_pose_sequence`.

        The given values, else this export's defaults.
        """
        return {
            "steps": int(steps) if steps else self.sample_steps,
            "guidance": self.guidance if guidance is None else float(guidance),
            "eta": self.eta if eta is None else float(eta),
        }

    def to_json(self) -> dict[str, Any]:
        """The metadata as written to ``mmgt_stage1.json`` (unknown keys read earlier kept)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if data["source"] is None:
            del data["source"]
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = EXPORT_META) -> Stage1Export:
        """The metadata read from ``data`` (errors name ``where``); unknown keys go to ``extra``."""
        if "audio_features" not in data:
            raise ValueError(f"{where}: no 'audio_features' (not a Stage I export's metadata)")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in data.items() if k in known},
            extra={k: v for k, v in data.items() if k not in known},
        )

    def save(self, net: SMGATransformer, out_dir: str | Path) -> Path:
        """Write the export folder (the network's ``save_pretrained`` + ``mmgt_stage1.json``)."""
        out = Path(out_dir)
        net.save_pretrained(out, safe_serialization=True)
        write_text(out / EXPORT_META, json.dumps(self.to_json(), indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(
        cls, model_dir: str | Path, device: str = "cpu"
    ) -> tuple[SMGATransformer, PoseDiffusion, Stage1Export]:
        """The network (eval mode, on ``device``), its diffusion and the metadata of an export folder."""
        path = Path(model_dir)
        meta_path = path / EXPORT_META
        if not (path / "config.json").is_file() or not meta_path.is_file():
            raise FileNotFoundError(
                f"{path}: not a Stage I export (expected config.json, diffusion_pytorch_model.safetensors "
                f"and {EXPORT_META}, as written by `mmgt-train experiment=smga_toy` into <run>/export)"
            )
        try:
            export = cls.from_json(json.loads(meta_path.read_text()), str(meta_path))
            network = network_class(json.loads((path / "config.json").read_text()), str(path / "config.json"))
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise ValueError(f"{path}: unreadable Stage I export metadata ({e})") from e
        net = network.from_pretrained(path, local_files_only=True, use_safetensors=True)
        return net.to(device).eval(), PoseDiffusion(**export.diffusion), export


class PosePipeline:
    """Audio -> keypoints with a Stage I export: features, any-length windowed sampling, seam smoothing.

    ``PosePipeline.from_pretrained(dir)(audio, ref_pose, n_frames)``; :meth:`from_features` takes features
    already computed (e.g. cached in a clip store).
    """

    def __init__(self, net: SMGATransformer, diffusion: PoseDiffusion, export: Stage1Export) -> None:
        self.net, self.diffusion, self.export = net, diffusion, export
        self._extractor: Any = None

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, device: str = "cpu") -> PosePipeline:
        """The pipeline of the Stage I export folder ``model_dir``, on ``device``."""
        return cls(*Stage1Export.load(model_dir, device))

    @property
    def extractor(self) -> Any:
        """The export's audio feature extractor (built on first use)."""
        if self._extractor is None:
            from mmgt.audio import extractor_from_node

            self._extractor = extractor_from_node(
                self.export.audio_features, f"{EXPORT_META}: audio_features"
            )
        return self._extractor

    def __call__(self, audio: np.ndarray, ref_pose: np.ndarray, n_frames: int, **options: Any) -> np.ndarray:
        """Keypoints (n_frames, 134, 3) for audio (N,) mono 16 kHz and a reference pose (134, 3).

        ``options``: ``steps``, ``guidance``, ``eta`` (None: the export's), ``best_of``, ``seam``, ``seed``,
        ``window``.
        """
        return self.from_features(self.extractor(audio, n_frames=n_frames), ref_pose, n_frames, **options)

    def from_features(
        self,
        features: np.ndarray,
        ref_pose: np.ndarray,
        n_frames: int,
        steps: int | None = None,
        guidance: float | None = None,
        eta: float | None = None,
        **options: Any,
    ) -> np.ndarray:
        """As :meth:`__call__` from audio features (T, ...) at 25 fps."""
        from mmgt.stage1.generate import generate_pose_sequence

        sampling = self.export.sampling(steps, guidance, eta)
        return generate_pose_sequence(
            self.net, self.diffusion, features, ref_pose, n_frames=n_frames, **sampling, **options
        )


__all__ = ["EXPORT_META", "PosePipeline", "Stage1Export"]
