"""``mmgt-prep``: build (or resume) a clip store. Hydra config: ``conf/prep.yaml``.

Examples::

    mmgt-prep source=toy out=outputs/data/toy n_speakers=4 clips_per_speaker=2 seconds=4 size=128 seed=0
    mmgt-prep source=toy out=outputs/data/toy preview=true
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm.auto import tqdm

from mmgt.clipstore import ClipStore
from mmgt.config import CONFIG_DIR, setup_project_root

log = logging.getLogger("mmgt_prep")


def write_previews(store_root: Path, preview_dir: Path, progress: bool = True) -> list[Path]:
    """One preview mp4 per ok clip of the store (skips previews that already exist)."""
    from mmgt_prep.preview import write_clip_preview

    store = ClipStore(store_root)
    written = []
    for clip in tqdm(store.clips(), desc="previews", disable=not progress):
        out = preview_dir / f"{clip.record.id}.mp4"
        if not out.exists():
            write_clip_preview(clip, out)
        written.append(out)
    return written


def run(cfg: DictConfig, source: str) -> dict:
    """Dispatch on the selected ``source`` config; returns the summary dict that is printed."""
    out = Path(cfg.out)
    if source == "toy":
        from mmgt_prep.toy import generate_toy_dataset

        summary = generate_toy_dataset(
            out,
            n_speakers=cfg.n_speakers,
            clips_per_speaker=cfg.clips_per_speaker,
            seconds=cfg.seconds,
            size=cfg.size,
            seed=cfg.seed,
            test_fraction=cfg.test_fraction,
            progress=cfg.progress,
        )
    else:
        raise ValueError(f"mmgt-prep: unknown source {source!r} (available: toy)")
    if cfg.preview:
        summary["previews"] = str(cfg.preview_dir)
        write_previews(out, Path(cfg.preview_dir), cfg.progress)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="prep")
def _hydra_main(cfg: DictConfig) -> None:
    source = HydraConfig.get().runtime.choices["source"]
    summary = run(cfg, source)
    print(json.dumps(summary, indent=2, default=str))


def main() -> None:
    """Console entry point ``mmgt-prep``."""
    setup_project_root()
    _hydra_main()


if __name__ == "__main__":
    main()
