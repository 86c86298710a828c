"""Where the Hydra configs live, and the project root that ``conf/paths`` builds directories from."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parents[2]
"""Repository root (the package is installed editable: ``pip install -e .``)."""
CONFIG_DIR: Path = PROJECT_ROOT / "conf"


def setup_project_root() -> Path:
    """Set ``PROJECT_ROOT`` (read by ``conf/paths/default.yaml``) unless the user already set it."""
    os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(
            f"{CONFIG_DIR}: Hydra config folder not found; install the project editable (pip install -e .)"
        )
    return PROJECT_ROOT
