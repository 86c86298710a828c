"""Where the Hydra configs live, run-folder names, the ``mmgt_*`` resolvers and audio encoders by name.

The configs are the package ``mmgt.conf``; the ``mmgt_dirname`` resolver names multirun jobs by their
overrides; ``mmgt_store_size`` / ``mmgt_export_size`` give the frame size of a clip store, of a Stage II
export; :func:`audio_encoder_node` / :func:`audio_encoder` give the options of ``conf/audio_encoder`` by
name (what ``mmgt-prep features=[...]`` and the demo name).

Directories of runs and data are not here: ``conf/paths/default.yaml`` puts them under the working
directory of the command (``paths.output_root``, default ``<cwd>/outputs``). No environment variable
decides where configs are found.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONFIG_PACKAGE: str = "mmgt.conf"
"""The Hydra configs as a package: the repository's ``conf/`` (editable install) or the wheel's copy."""


def _config_dir() -> Path:
    path = Path(str(resources.files(CONFIG_PACKAGE)))
    if not (path / "train.yaml").is_file():
        raise FileNotFoundError(
            f"{path}: the Hydra configs of {CONFIG_PACKAGE} are not a folder with train.yaml "
            "(a zipped or partial install?); reinstall with pip install ."
        )
    return path


CONFIG_DIR: Path = _config_dir()
"""Folder of the primary configs (``train.yaml``, ``eval.yaml``, ...) and their groups."""


RUN_NAME_EXCLUDE: tuple[str, ...] = (
    "paths.*", "hydra.*", "out", "sweep", "run_name*", "ckpt_path", "data.root", "*.init_from",
    "trainer.enable_progress_bar",
)  # fmt: skip
"""Override keys (fnmatch patterns) that never name a run folder: where things are read and written, how
runs are launched and displayed - not what they are."""
MAX_DIRNAME: int = 120


def run_dirname(overrides: Sequence[str], exclude: Sequence[str] = (), max_len: int = MAX_DIRNAME) -> str:
    """A readable, filesystem-safe folder name for a job from its ``key=value`` overrides.

    Sorted overrides joined by ``,``, leaving out keys matching :data:`RUN_NAME_EXCLUDE` or ``exclude``
    (fnmatch patterns, ``+``/``~`` prefixes ignored); ``/`` becomes ``.``; longer than ``max_len``: cut
    and suffixed with 8 hex of its sha1, so distinct jobs keep distinct folders. ``default`` if empty.
    """
    patterns = (*RUN_NAME_EXCLUDE, *exclude)
    kept = []
    for item in overrides:
        key = str(item).split("=", 1)[0].lstrip("+~")
        if not any(fnmatch.fnmatchcase(key, p) for p in patterns):
            kept.append(str(item).lstrip("+").replace("/", "."))
    name = ",".join(sorted(kept)) or "default"
    if len(name) > max_len:
        name = f"{name[: max_len - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def _dirname_resolver(overrides: Any, exclude: Any = None) -> str:
    return run_dirname(list(overrides or []), list(exclude or []))


OmegaConf.register_new_resolver("mmgt_dirname", _dirname_resolver, replace=True)


def _store_size_resolver(root: Any) -> int:
    from mmgt.clipstore import store_size

    return store_size(root)


def _export_size_resolver(export: Any, fallback: Any) -> Any:
    import json

    meta = Path(str(export)) / "mmgt_stage2.json" if export else None
    if meta is None or not meta.is_file():
        return fallback  # no export (or not one: model.init_from's loader explains that)
    return int(json.loads(meta.read_text())["size"])


OmegaConf.register_new_resolver("mmgt_store_size", _store_size_resolver, replace=True, use_cache=True)
"""``${mmgt_store_size:<root>}``: the frame side of a store's clips (``size`` in ``conf/data/video.yaml``)."""
OmegaConf.register_new_resolver("mmgt_export_size", _export_size_resolver, replace=True, use_cache=True)
"""``${mmgt_export_size:<Stage II export>,<fallback>}``: the frame size an export was trained at (else
``fallback``): the video-level experiments train at their ``init_from``'s size."""


def audio_encoder_node(name: str, paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resolved ``_target_`` node of ``conf/audio_encoder/<name>.yaml``.

    Args:
        name: an option of the group, e.g. ``baseline``, ``logmel`` or ``wav2vec2``.
        paths: the composed config's ``paths`` node (unresolved), where a pretrained encoder's folder
            (``${paths.pretrained_dir}/...``) is looked up; default: ``conf/paths/default.yaml``'s.
    """
    file = CONFIG_DIR / "audio_encoder" / f"{name}.yaml"
    if not file.is_file():
        known = ", ".join(sorted(p.stem for p in file.parent.glob("*.yaml")))
        raise ValueError(f"audio encoder {name!r}: no conf/audio_encoder/{name}.yaml (known: {known})")
    if paths is None:
        default = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml"))
        paths = {k: default[k] for k in ("weights_dir", "pretrained_dir")}  # not the hydra: ones
    plain = OmegaConf.to_container(paths) if OmegaConf.is_config(paths) else dict(paths)
    both = OmegaConf.create({"paths": plain, "node": OmegaConf.load(file)})
    node = OmegaConf.to_container(both.node, resolve=True)
    assert isinstance(node, dict)
    return node


def audio_encoder(name: str, paths: Mapping[str, Any] | None = None) -> Any:
    """The extractor of ``conf/audio_encoder/<name>.yaml``.

    Its node is :func:`audio_encoder_node`, built through ``mmgt.audio.AUDIO_ENCODER_CLASSES``.
    """
    from mmgt.audio import extractor_from_node

    return extractor_from_node(audio_encoder_node(name, paths), f"conf/audio_encoder/{name}.yaml")
