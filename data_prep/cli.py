"""``mmgt-prep``: build (or resume) a clip store.

Hydra config: ``conf/prep.yaml``; the source (``conf/source/*.yaml``) is a ``_target_`` node, built here
(:func:`build_source`) and run (``.run()``).

Examples::

    mmgt-prep source=toy out=outputs/data/toy n_speakers=4 clips_per_speaker=2 seconds=4 size=128 seed=0
    mmgt-prep source=toy out=outputs/data/toy preview=true
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # the command's wall time counts from here (before the heavy imports)

import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Protocol  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.errors import InstantiationException  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from mmgt.clipstore import ClipStore  # noqa: E402
from mmgt.config import CONFIG_DIR, audio_encoder_node  # noqa: E402

if TYPE_CHECKING:
    from mmgt_prep.splits import SplitPolicy

log = logging.getLogger("mmgt_prep")


def write_previews(store_root: Path, preview_dir: Path, progress: bool = True) -> list[Path]:
    """One preview mp4 per ok clip of the store (skips previews that already exist)."""
    from mmgt_prep.preview import write_clip_preview

    store = ClipStore(store_root)
    written = []
    clips = [c for c in store.clips() if c.has_video]  # keypoint-only clips already carry pose.mp4
    for clip in tqdm(clips, desc="previews", disable=not progress):
        out = preview_dir / f"{clip.record.id}.mp4"
        if not out.exists():
            write_clip_preview(clip, out)
        written.append(out)
    return written


CLI_KEYS = frozenset({"hydra", "paths", "task_name", "preview", "preview_dir"})
"""Keys of the composed config that are the command's own; every other key is the source's node."""


class Source(Protocol):
    """What a source node (``conf/source/*.yaml``) builds: settings with ``out`` and ``run()``."""

    out: str
    progress: bool

    def run(self) -> dict[str, Any]:
        """Build (or resume) the store at ``out``; returns the run's summary."""


def build_source(cfg: DictConfig) -> Source:
    """Instantiate the source node of a composed prep config: ``_target_`` and every key but :data:`CLI_KEYS`.

    The source's keys are at the top level, so ``input=DIR`` overrides them.

    A required key left unset (``???``) and a bad value raise a ValueError naming the key.
    """
    keys = [k for k in cfg if k not in CLI_KEYS]
    missing = [k for k in keys if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ValueError(
            f"{' '.join(f'{k}=' for k in missing)}: required by this source ({cfg._target_}), e.g. "
            "`mmgt-prep source=videos input=DIR out=DIR`; conf/source/*.yaml, docs/prep.md explain each key"
        )
    values = {k: cfg[k] for k in keys}
    node = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in values.items()
    }
    if "features" in node:  # conf/audio_encoder names (or inline nodes) -> resolved extractor nodes
        node["features"] = _feature_nodes(node["features"], cfg.paths)
    try:  # not recursive: the extractor nodes stay nodes (each worker builds its own extractors)
        return instantiate(node, _convert_="all", _recursive_=False)
    except InstantiationException as e:  # the settings' own message names the key
        if isinstance(e.__cause__, (ValueError, TypeError)):
            raise e.__cause__ from None
        raise


def _feature_nodes(value: Any, paths: DictConfig) -> list[dict[str, Any]]:
    """``features``: ``conf/audio_encoder`` names or inline ``_target_`` nodes -> resolved nodes."""
    items = [value] if isinstance(value, str) else list(value or [])
    return [dict(item) if isinstance(item, dict) else audio_encoder_node(str(item), paths) for item in items]


def run(cfg: DictConfig, started: float | None = None) -> dict:
    """Build the selected source (:func:`build_source`), run it, then the previews.

    The summary's ``seconds`` is the wall time from ``started`` (default: now) to the end, previews
    included; ``phases`` breaks it down (``startup`` = imports and config before the source runs,
    ``prep`` = the source's ``run()``, ``previews``); ``splits`` counts the store's ok clips per split.
    """
    t0 = time.perf_counter()
    started = t0 if started is None else started
    source = build_source(cfg)
    summary = source.run()
    t1 = time.perf_counter()
    phases = {"startup": round(t0 - started, 3), "prep": round(t1 - t0, 3)}
    if cfg.preview:
        summary["previews"] = str(cfg.preview_dir)
        write_previews(Path(source.out), Path(cfg.preview_dir), source.progress)
        phases["previews"] = round(time.perf_counter() - t1, 3)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["phases"] = phases
    summary["splits"] = split_report(Path(source.out), getattr(source, "split_policy", None))
    return summary


def split_report(out: Path, policy: SplitPolicy | None) -> dict[str, int]:
    """Ok clips per split of the store ``out``.

    Warns, with the fix, about a split that ``policy`` (a source with ``split=auto``) asks for and that has
    no ok clip.
    """
    from mmgt.clipstore import MANIFEST, read_manifest
    from mmgt_prep.splits import split_summary

    if not (out / MANIFEST).is_file():
        return {}
    counts = split_summary(read_manifest(out).values())
    if policy is None or not policy.auto:
        return counts
    empty = [name for name, fraction in policy.fractions.items() if fraction > 0 and not counts.get(name)]
    if empty and counts:
        log.warning(
            "%s: no ok clips in split(s) %s (ok clips per split: %s). Too few source videos for %s "
            "(split_by=%s): add videos, use split_by=video, or give the splits in an interval list; "
            "training validates on 'test' when there is no 'val' (docs/prep.md#splits)",
            out,
            ", ".join(empty),
            counts,
            dict(policy.fractions),
            policy.by,
        )
    return counts


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="prep")
def _hydra_main(cfg: DictConfig) -> None:
    log.info("mmgt-prep source=%s out=%s", HydraConfig.get().runtime.choices["source"], cfg.out)
    summary = run(cfg, started=_STARTED)
    print(json.dumps(summary, indent=2, default=str))


def main() -> None:
    """Console entry point ``mmgt-prep``."""
    _hydra_main()


if __name__ == "__main__":
    main()
