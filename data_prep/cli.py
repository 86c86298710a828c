"""``mmgt-prep``: build (or resume) a clip store. Hydra config: ``conf/prep.yaml``.

Examples::

    mmgt-prep source=toy out=outputs/data/toy n_speakers=4 clips_per_speaker=2 seconds=4 size=128 seed=0
    mmgt-prep source=toy out=outputs/data/toy preview=true
"""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm.auto import tqdm

from mmgt.clipstore import ClipStore
from mmgt.config import CONFIG_DIR

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


def run(cfg: DictConfig) -> dict:
    """Run the selected source's ``runner`` (``module:function`` taking the config) and the previews."""
    module_name, _, func_name = cfg.runner.partition(":")
    summary = getattr(importlib.import_module(module_name), func_name)(cfg)
    if cfg.preview:
        summary["previews"] = str(cfg.preview_dir)
        write_previews(Path(cfg.out), Path(cfg.preview_dir), cfg.progress)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="prep")
def _hydra_main(cfg: DictConfig) -> None:
    log.info("mmgt-prep source=%s out=%s", HydraConfig.get().runtime.choices["source"], cfg.out)
    summary = run(cfg)
    print(json.dumps(summary, indent=2, default=str))


def main() -> None:
    """Console entry point ``mmgt-prep``."""
    _hydra_main()


if __name__ == "__main__":
    main()
