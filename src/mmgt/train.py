"""``mmgt-train``: train a stage from an experiment file, optionally evaluate it. Config: ``conf/train.yaml``.

Examples::

    mmgt-train experiment=smga_toy
    mmgt-train experiment=smga_toy trainer.max_steps=50 debug=default
    mmgt-train experiment=smga_toy evaluate=stage1              # + generate the test split and score it
    mmgt-train sweep=smga_face_weight                           # a Hydra multirun (conf/sweep)

The run folder (``outputs/train/runs/<time>/``, multiruns ``outputs/train/multiruns/<time>/<overrides>/``)
receives checkpoints, TensorBoard events (hyperparameters with the final metrics, for the HParams view),
the exported network (``export/``, ``save_pretrained`` format, what ``mmgt-generate`` loads) and
``results.json``: its ``run`` block (docs/experiments.md; ``evaluated: false`` without an ``evaluate`` node)
plus, with an ``evaluate`` node, mmgt-eval's results of the generated test videos. A failing job of a
multirun writes ``results.json`` with ``status: failed`` and the error, and the sweep goes on; at its end
:class:`mmgt.sweep.SweepReport` lists the failed jobs and exits 1. A single run re-raises (exit 1). An
evaluation that scored nothing (every metric failed or was skipped) fails the run the same way, after
its results (with the metrics' errors and skips) and the TensorBoard hparams are written.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mmgt.config import CONFIG_DIR, run_dirname
from mmgt.evaluation import NothingScored, nothing_scored, scalar_summary, write_run_results
from mmgt.tb import log_final_hparams

log = logging.getLogger("mmgt.train")

SEED_KEYS = ("seed",)
"""Overrides that select a repetition, not a configuration (left out of the run name)."""


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` child of a config dict (callbacks, loggers); None -> []."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


def job_overrides() -> list[str]:
    """The task overrides of the running Hydra job ([] outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def run_info(
    cfg: DictConfig, status: str, seconds: float, error: str | None = None, evaluated: bool = True
) -> dict[str, Any]:
    """The ``run`` block of results.json.

    Status, error, overrides, seed, the configuration name (``named``: given by ``run_name``) and whether
    the run was evaluated.
    """
    overrides = job_overrides()
    excluded = [*SEED_KEYS, *(cfg.get("run_name_exclude") or [])]
    return {
        "status": status,
        "error": error,
        "overrides": overrides,
        "seed": int(cfg.seed),
        "name": cfg.get("run_name") or run_dirname(overrides, excluded, max_len=10_000),
        "named": bool(cfg.get("run_name")),
        "evaluated": evaluated,
        "seconds": round(seconds, 1),
    }


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    """Every top-level node but the machine-specific ones, resolved (paths/hydra need a Hydra runtime)."""
    out: dict[str, Any] = {}
    for key in cfg:
        if key not in ("paths", "hydra"):
            node = cfg[key]
            out[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return out


def build_model(cfg: DictConfig, model_kwargs: dict[str, Any]) -> Any:
    """The model node built with the DataModule's ``model_kwargs`` passed as they are.

    They are plain values that Hydra must not build (the audio features' stored ``_target_`` node, which the
    export records).
    """
    return hydra.utils.instantiate(cfg, _partial_=True)(**model_kwargs)


def _evaluate_and_record(
    cfg: DictConfig, datamodule: Any, result: dict[str, Any], started: float
) -> tuple[dict[str, float], str | None]:
    """Run ``cfg.evaluate`` (when set) on the export and write results.json; fills ``result`` in place.

    Returns:
        The scalar results (empty when not evaluated) and why nothing was scored (None when something was).
    """
    out_dir = Path(result["output_dir"])
    if cfg.get("evaluate") is None:  # trained, not evaluated: mmgt-table and the sweep report read this
        info = run_info(cfg, "ok", time.perf_counter() - started, evaluated=False)
        result["results"] = str(write_run_results(out_dir, info))
        return {}, None
    if "export" not in result:
        raise ValueError("mmgt-train: `evaluate` needs a model with export()")
    evaluator = hydra.utils.instantiate(cfg.evaluate)
    log.info("evaluating %s", result["export"])
    results = evaluator(export_dir=result["export"], datamodule=datamodule, out_dir=out_dir)
    failure = nothing_scored(results)
    info = run_info(cfg, "failed" if failure else "ok", time.perf_counter() - started, error=failure)
    result["results"] = str(write_run_results(out_dir, info, results))
    result["summary"] = results.get("summary", {})
    return scalar_summary(results), failure


def _log_final_hparams(
    trainer: Any, params: dict[str, Any], metrics: dict[str, float], evaluated: dict[str, float], failed: bool
) -> None:
    """Hyperparameters with the final metrics (TensorBoard's HParams view compares a sweep's runs)."""
    import pytorch_lightning as pl

    step = trainer.global_step
    for lg in trainer.loggers:
        if isinstance(lg, pl.loggers.TensorBoardLogger):
            log_final_hparams(lg.experiment, params, metrics, new_scalars=evaluated, step=step)
        else:
            lg.log_hyperparams(params, metrics=metrics, step=step)
        lg.finalize("failed" if failed else "success")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test and evaluate) the configured model; export it. Returns metrics and paths.

    Contract with the stages: the DataModule's ``prepare_data`` runs first (creating or checking the
    store); its ``model_kwargs`` (a dict, e.g. the audio feature size; a pure property) is passed to the
    model's constructor; a model with ``export(dir)`` is exported into
    ``<run>/export`` after fitting; ``cfg.evaluate`` (optional) builds a callable
    ``evaluator(export_dir=, datamodule=, out_dir=) -> results dict`` (e.g. ``PoseEvaluation``).

    Raises:
        NothingScored: the evaluation produced no value (results.json says ``status: failed`` and why).
    """
    if cfg.get("data") is None or cfg.get("model") is None:
        raise ValueError(
            "mmgt-train: choose an experiment (e.g. experiment=smga_toy): `data` and `model` are unset"
        )
    import pytorch_lightning as pl  # here, not at the top: `mmgt-train --help` / `--cfg job` stay quick

    started = time.perf_counter()
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()  # a missing store fails here, before the model is built
    model = build_model(cfg.model, getattr(datamodule, "model_kwargs", {}))
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", False):
        trainer.test(model, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    result: dict[str, Any] = {"metrics": metrics, "output_dir": str(out_dir)}
    if not trainer.is_global_zero:
        return result
    if hasattr(model, "export"):
        result["export"] = str(model.export(out_dir / "export"))
        log.info("exported %s", result["export"])
    evaluated, failure = _evaluate_and_record(cfg, datamodule, result, started)
    metrics.update(evaluated)
    _log_final_hparams(trainer, _hparams(cfg), metrics, evaluated, failed=failure is not None)
    if failure:
        raise NothingScored(f"{failure} (results: {result['results']})", result["results"])
    return result


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    started = time.perf_counter()
    try:
        result = train(cfg)
    except NothingScored as e:  # results.json already says failed, with the evaluation's results
        if not _is_multirun():
            raise
        log.error("job failed (recorded in %s; the sweep goes on): %s", e.results_path, e)
        return None
    except Exception as e:
        error = f"{type(e).__name__}: {e}"
        info = run_info(cfg, "failed", time.perf_counter() - started, error)
        info["traceback"] = traceback.format_exc()
        path = write_run_results(cfg.paths.output_dir, info)
        if not _is_multirun():
            raise
        log.error("job failed (recorded in %s; the sweep goes on): %s", path, error)
        return None
    print(json.dumps(result, indent=2, default=str))
    metric = cfg.get("optimized_metric")
    return result["metrics"].get(metric) if metric else None


def main() -> None:
    """Console entry point ``mmgt-train``."""
    _hydra_main()


if __name__ == "__main__":
    main()
