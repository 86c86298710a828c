"""Every ``conf/experiment`` file, and every job of every ``conf/sweep`` file, composes, resolves and names
only importable ``_target_`` classes: a typo in a group choice, an interpolation or a class path fails here
instead of minutes into a run."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hydra.types import RunMode
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from mmgt.config import CONFIG_DIR
from mmgt_prep.toy import generate_toy_dataset
from tests.helpers.shared import compose_config

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (CONFIG_DIR / "sweep").glob("*.yaml"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clip store for the real-data experiments' ``data.root`` (their sizes follow the store)."""
    root = tmp_path_factory.mktemp("configs") / "store"
    generate_toy_dataset(root, n_speakers=1, clips_per_speaker=2, seconds=1.0, size=64, progress=False)
    return root


def _overrides(name: str, store: Path) -> list[str]:
    """Real-data experiments need a store (``data.root`` is mandatory); toy ones make their own."""
    return [] if name.endswith("_toy") else [f"data.root={store}"]


def _targets(node: Any, where: str = "") -> list[tuple[str, str]]:
    """(config path, _target_) of every node below ``node``."""
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        if "_target_" in node:
            found.append((where or "<root>", node["_target_"]))
        for key, value in node.items():
            found += _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{where}[{i}]")
    return found


def _check(cfg: DictConfig) -> None:
    """Resolve everything but ``hydra`` and import every ``_target_``."""
    assert "model" in cfg and "data" in cfg, "an experiment chooses the model and the data"
    body = {k: v for k, v in cfg.items() if k != "hydra"}
    resolved = OmegaConf.to_container(OmegaConf.create(body), resolve=True)
    targets = _targets(resolved)
    assert any(path == "model" for path, _ in targets) and any(path == "data" for path, _ in targets)
    for path, target in targets:
        try:
            get_object(target)
        except Exception as e:  # noqa: BLE001 - name the node in the failure
            pytest.fail(f"{path}._target_ = {target!r} does not import: {e}")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment: str, store: Path, tmp_path: Path) -> None:
    overrides = [f"experiment={experiment}", "trainer=cpu", *_overrides(experiment, store)]
    cfg = compose_config("train", overrides, output_dir=tmp_path)
    _check(cfg)


def _jobs(params: dict[str, Any]) -> list[list[str]]:
    """The override lists of a basic sweeper's ``params`` (comma-separated choices, cartesian product)."""
    axes = [[f"{key}={choice.strip()}" for choice in str(value).split(",")] for key, value in params.items()]
    return [list(job) for job in itertools.product(*axes)]


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_job_composes_and_resolves(sweep: str, store: Path, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"sweep={sweep}", "trainer=cpu"], output_dir=tmp_path)
    assert cfg.hydra.mode == RunMode.MULTIRUN, f"conf/sweep/{sweep}.yaml is not a multirun"
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    jobs = _jobs(params)
    assert len(jobs) >= 2, f"conf/sweep/{sweep}.yaml sweeps {params}: fewer than two jobs"
    chosen = cfg.hydra.runtime.choices.experiment
    # a sweep that chooses no experiment (e.g. seeds) combines with any: every experiment is tried
    experiments = [[]] if chosen else [[f"experiment={name}"] for name in EXPERIMENTS]
    for job, experiment in itertools.product(jobs, experiments):
        name = chosen or experiment[0].split("=")[1]
        overrides = [f"sweep={sweep}", "trainer=cpu", *experiment, *_overrides(name, store), *job]
        _check(compose_config("train", overrides, output_dir=tmp_path))


def test_a_target_typo_is_named_with_its_node() -> None:
    cfg = OmegaConf.create(
        {"model": {"_target_": "mmgt.stage1.modul.SMGAModule"}, "data": {"_target_": "builtins.dict"}}
    )
    with pytest.raises(pytest.fail.Exception, match=r"model\._target_ = 'mmgt\.stage1\.modul\.SMGAModule'"):
        _check(cfg)
