"""Paths of the shared reference data and the real Hydra configs composed as the CLI would (used by tests).

The data under ../shared (samples, fixtures) is optional: each accessor skips the calling test when its file
is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from mmgt.config import CONFIG_DIR

REPO = Path(__file__).resolve().parents[2]
"""The checkout's root (tests use it instead of counting ``parents`` of their own path)."""
WORK = REPO.parent
"""The folder holding the checkout and ../shared (reference data)."""
SAMPLES_DIR = WORK / "shared" / "samples"
REFERENCE_FIXTURES = Path(
    os.environ.get(
        "MMGT_REFERENCE_FIXTURES",
        WORK / "shared" / "fixtures" / "mmgt_reference",
    )
)
"""Outputs of the original MMGT code (``$MMGT_REFERENCE_FIXTURES``; default ../shared/fixtures/...)."""


def samples_path(name: str) -> Path:
    """A file of ../shared/samples; skips the calling test when it is absent."""
    path = SAMPLES_DIR / name
    if not path.exists():
        pytest.skip(f"sample media not available: {path}")
    return path


def reference_fixture(*parts: str) -> Path:
    """A path inside the MMGT reference fixtures; skips the calling test when it is absent."""
    path = REFERENCE_FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"MMGT reference fixtures not available: {path}")
    return path


METRICS_REFERENCE_DIR = WORK / "shared" / "fixtures" / "metrics_reference"


def metrics_reference_path(name: str) -> Path:
    """A file of ../shared/fixtures/metrics_reference (outputs of the reference code); skips when absent."""
    path = METRICS_REFERENCE_DIR / name
    if not path.exists():
        pytest.skip(f"reference fixture not available: {path}")
    return path


def compose_config(
    config_name: str, overrides: list[str] | None = None, output_dir: Path | None = None
) -> DictConfig:
    """Compose a real primary config (``conf/<config_name>.yaml``) with overrides, as the CLI would.

    Outside a Hydra run there is no ``hydra:runtime.cwd`` for ``paths.root_dir``: it becomes
    ``output_dir`` if given (every directory of ``conf/paths`` is then under it), else the cwd.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=True)
    with open_dict(cfg):
        if OmegaConf.to_container(cfg.paths)["root_dir"] == "${hydra:runtime.cwd}":  # not overridden
            cfg.paths.root_dir = str(output_dir or cfg.hydra.runtime.cwd)
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir)
            cfg.paths.data_dir = str(output_dir / "data")
    GlobalHydra.instance().clear()
    return cfg
