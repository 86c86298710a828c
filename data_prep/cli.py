"""``mmgt-prep``: build (or resume) a clip store. Hydra config: ``conf/prep.yaml``.

Examples::

    mmgt-prep source=toy out=outputs/data/toy n_speakers=4 clips_per_speaker=2 seconds=4 size=128 seed=0
    mmgt-prep source=toy out=outputs/data/toy preview=true
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # the command's wall time counts from here (before the heavy imports)

import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from mmgt.clipstore import ClipStore  # noqa: E402
from mmgt.config import CONFIG_DIR  # noqa: E402

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


def run(cfg: DictConfig, started: float | None = None) -> dict:
    """Run the selected source's ``runner`` (``module:function`` taking the config) and the previews.

    The summary's ``seconds`` is the wall time from ``started`` (default: now) to the end, previews
    included; ``phases`` breaks it down (``startup`` = imports and config before the runner, ``prep`` = the
    runner, ``previews``); ``splits`` counts the store's ok clips per split.
    """
    t0 = time.perf_counter()
    started = t0 if started is None else started
    module_name, _, func_name = cfg.runner.partition(":")
    summary = getattr(importlib.import_module(module_name), func_name)(cfg)
    t1 = time.perf_counter()
    phases = {"startup": round(t0 - started, 3), "prep": round(t1 - t0, 3)}
    if cfg.preview:
        summary["previews"] = str(cfg.preview_dir)
        write_previews(Path(cfg.out), Path(cfg.preview_dir), cfg.progress)
        phases["previews"] = round(time.perf_counter() - t1, 3)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["phases"] = phases
    summary["splits"] = split_report(cfg)
    return summary


def split_report(cfg: DictConfig) -> dict[str, int]:
    """Ok clips per split of the store ``cfg.out``; warns, with the fix, about a split that
    ``split_fractions`` asks for and that has no ok clip."""
    from mmgt.clipstore import MANIFEST, read_manifest
    from mmgt_prep.splits import split_summary

    if not (Path(cfg.out) / MANIFEST).is_file():
        return {}
    counts = split_summary(read_manifest(cfg.out).values())
    wanted = cfg.get("split_fractions") or {}
    empty = [name for name, fraction in wanted.items() if fraction > 0 and not counts.get(name)]
    if cfg.get("split") == "auto" and empty and counts:
        log.warning(
            "%s: no ok clips in split(s) %s (ok clips per split: %s). Too few source videos for %s "
            "(split_by=%s): add videos, use split_by=video, or give the splits in an interval list; "
            "training validates on 'test' when there is no 'val' (docs/prep.md#splits)",
            cfg.out,
            ", ".join(empty),
            counts,
            dict(wanted),
            cfg.get("split_by"),
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
