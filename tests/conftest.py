"""Shared fixtures: offline environment, one torch thread, the composed training config.

Helpers (paths of the shared data, ``compose_config``) live in :mod:`tests.helpers.shared`.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from tests.helpers.shared import compose_config  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def single_thread() -> Iterator[None]:
    """One torch thread for every test (autouse).

    Tiny models run faster on one thread, their round-off is the same on every machine, and jobs sharing
    the cores do not oversubscribe them (measured: 52 s vs 213 s for the Stage II fast tier with 2 threads
    beside another job). Subprocesses (the CLI tests) choose their own.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def cfg_train_global() -> DictConfig:
    """``conf/train.yaml`` composed once per test package, forced to a tiny CPU run (tests copy it)."""
    cfg = compose_config("train", ["trainer=cpu"])
    with open_dict(cfg):
        cfg.trainer.max_epochs = 1
        cfg.trainer.enable_progress_bar = False
    return cfg


@pytest.fixture
def cfg_train(cfg_train_global: DictConfig, tmp_path: Path) -> DictConfig:
    """A copy of :func:`cfg_train_global` writing into ``tmp_path``."""
    cfg = cfg_train_global.copy()
    with open_dict(cfg):
        cfg.paths.root_dir = cfg.paths.output_dir = cfg.paths.log_dir = str(tmp_path)
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg
