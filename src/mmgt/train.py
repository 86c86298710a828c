"""``mmgt-train``: train a stage from an experiment file. Hydra config: ``conf/train.yaml``.

Examples::

    mmgt-train experiment=smga_toy
    mmgt-train experiment=smga_toy trainer.max_steps=50 debug=default

The run folder (``outputs/train/runs/<time>/``) receives checkpoints, TensorBoard events and the
exported network (``export/``, ``save_pretrained`` format) that ``mmgt-generate`` loads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from mmgt.config import CONFIG_DIR, setup_project_root

log = logging.getLogger("mmgt.train")


def instantiate_list(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` child of a config dict (callbacks, loggers); None -> []."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the configured model; export it. Returns metrics and paths.

    Contract with the stages: the DataModule may expose ``model_kwargs`` (a dict, e.g. the audio feature
    size) that is passed to the model's constructor; a model with ``export(dir)`` is exported into
    ``<run>/export`` after fitting (``save_pretrained`` format, what ``mmgt-generate`` loads).
    """
    if cfg.get("data") is None or cfg.get("model") is None:
        raise ValueError(
            "mmgt-train: choose an experiment (e.g. experiment=smga_toy): `data` and `model` are unset"
        )
    pl.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model, **getattr(datamodule, "model_kwargs", {}))
    callbacks = instantiate_list(cfg.get("callbacks"))
    loggers = instantiate_list(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    # every top-level node but the machine-specific ones, resolved (paths/hydra need a Hydra runtime)
    hparams: dict[str, Any] = {}
    for key in cfg:
        if key not in ("paths", "hydra"):
            node = cfg[key]
            hparams[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    for lg in trainer.loggers:
        lg.log_hyperparams(hparams)
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", False):
        trainer.test(model, datamodule=datamodule)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    result: dict[str, Any] = {"metrics": metrics, "output_dir": str(out_dir)}
    if trainer.is_global_zero and hasattr(model, "export"):
        result["export"] = str(model.export(out_dir / "export"))
        log.info("exported %s", result["export"])
    return result


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    print(json.dumps(result, indent=2))
    metric = cfg.get("optimized_metric")
    return result["metrics"].get(metric) if metric else None


def main() -> None:
    """Console entry point ``mmgt-train``."""
    setup_project_root()
    _hydra_main()


if __name__ == "__main__":
    main()
