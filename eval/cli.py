"""``mmgt-eval``: score a folder of videos. Hydra: ``conf/eval.yaml`` (+ ``conf/eval/{metric,protocol}``).

Examples::

    mmgt-eval generated=outputs/gen reference=outputs/gt metrics=[fid,fvd,psnr,ssim,lpips]
    mmgt-eval generated=outputs/gen metrics=[sync] protocol=smoke
    mmgt-eval generated=outputs/gen reference=outputs/gt metrics=[fid] +metric_args.fid.batch_size=100
    torchrun --nproc_per_node=2 -m mmgt_eval.cli generated=... reference=... metrics=[fid,fvd]

One process by default; under ``torchrun`` (``WORLD_SIZE > 1``) the default process group is initialised from
the environment (gloo on CPU, NCCL on GPU) and videos are sharded across ranks; rank 0 writes
``results.json`` and the TensorBoard events into the Hydra run folder. A metric whose weight file is missing
is not built: it is recorded as failed (the reason names the file and the ``mmgt-weights`` command that gets
it) and the other metrics are scored. The exit status is 1 when a metric failed (its error is in the
results), so also when no metric produced a value; ``strict=true`` raises at the first skip or failure.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf, open_dict

from mmgt.config import CONFIG_DIR
from mmgt_eval.distributed import init_distributed
from mmgt_eval.runner import RunProtocol, evaluate
from mmgt_eval.weights import (
    MissingWeightsError,
    WeightsChecksumError,
    get_command,
    get_spec,
    resolve,
    verify,
)

log = logging.getLogger("mmgt_eval")

METRIC_CONFIG_DIR = CONFIG_DIR / "eval" / "metrics"
"""The ``metrics`` config group: one ``_target_`` node per file, each in package ``metrics.<name>``."""


def available_metrics() -> list[str]:
    """Names of the shipped metric configs (``conf/eval/metrics/<name>.yaml``)."""
    return sorted(p.stem for p in METRIC_CONFIG_DIR.glob("*.yaml"))


def metric_names(cfg: DictConfig) -> list[str]:
    """The selected metrics (``metrics=[fid,psnr]``: the ``metrics`` group's options), in selection order."""
    selected = cfg.get("metrics") or {}
    if "_target_" in selected:
        raise ValueError(
            "a metric config without its package header merged into `metrics` itself: start the file with "
            "`# @package metrics.<name>` (see conf/eval/metrics/psnr.yaml)"
        )
    if not selected:
        raise ValueError("metrics is empty: name at least one of " + ", ".join(available_metrics()))
    return [str(n) for n in selected]


def metric_node(cfg: DictConfig, name: str) -> DictConfig:
    """The selected metric's node, overridden by ``protocol.metric_args.<name>`` and ``metric_args.<name>``.

    The merged node replaces ``cfg.metrics.<name>``, so interpolations such as ``${protocol.seed}`` resolve
    against the whole config.
    """
    node = cfg.metrics[name]
    if "_target_" not in node:
        raise ValueError(
            f"metrics.{name}: no _target_ (the adapter class); select it with metrics=[...,{name}]"
        )
    proto_args = cfg.protocol.get("metric_args", None) or {}
    merged = OmegaConf.merge(
        node, proto_args.get(name, {}) or {}, (cfg.metric_args or {}).get(name, {}) or {}
    )
    with open_dict(cfg):
        cfg.metrics[name] = merged
    return cfg.metrics[name]


def _weight_keys(node: dict) -> list[str]:
    return [k for k in node if k == "weights" or k.endswith("_weights")]


def build_metric(cfg: DictConfig, name: str, device: str) -> tuple[Any, dict, dict[str, dict]]:
    """(adapter, its resolved config, {registry name: verification}) for metric ``name``."""
    node = OmegaConf.to_container(metric_node(cfg, name), resolve=True)
    assert isinstance(node, dict)
    weights_info: dict[str, dict] = {}
    for key in _weight_keys(node):
        reg = node.pop(key)
        if reg is None:
            continue
        path_key = f"{key}_path"
        spec = get_spec(str(reg))
        try:
            path = resolve(spec, path=node.get(path_key), directory=cfg.weights_dir, check=cfg.verify_weights)
        except WeightsChecksumError as e:
            raise WeightsChecksumError(
                f"metric {name}: {e}\n(to use this file anyway, e.g. test weights, set verify_weights=false; "
                "the results then record its checksum status)"
            ) from e
        node[path_key] = str(path)
        weights_info[spec.name] = {**verify(spec, path=path).as_dict(), "metric": name, "file": spec.filename}
    target = hydra.utils.get_object(node["_target_"])
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    if "device" in params and "device" not in node:
        kwargs["device"] = device
    adapter = hydra.utils.instantiate(node, **kwargs)
    return adapter, node, weights_info


def missing_weights_entry(name: str, error: MissingWeightsError) -> dict[str, Any]:
    """The failed-metric entry of a metric whose weights are missing.

    It names the file, where it was looked for and the ``mmgt-weights`` command that gets it.
    """
    spec = error.spec
    if spec is None:  # raised by an adapter itself: its message is all there is
        return {"error": f"missing weights: {error}"}
    searched = [str(p) for p in error.searched]
    command = get_command(spec)
    return {
        "error": f"missing weights {spec.filename} (registry name {spec.name}; looked in "
        f"{', '.join(searched)}): get it with `{command}`",
        "missing_weights": {
            "name": spec.name,
            "file": spec.filename,
            "searched": searched,
            "command": command,
        },
    }


def _device(cfg: DictConfig) -> str:
    if cfg.device != "auto":
        return str(cfg.device)
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def run(cfg: DictConfig) -> dict:
    """Build the metrics of ``cfg``, evaluate, and return the results dict."""
    generated = cfg.generated  # a missing mandatory value fails here, before any work
    started_dist = not (dist.is_available() and dist.is_initialized())
    rank, world = init_distributed(cfg.dist_backend)
    if cfg.weights_dir:  # adapters that look weights up themselves use the same folder
        os.environ["MMGT_WEIGHTS"] = str(cfg.weights_dir)
    try:
        device = _device(cfg)
        metrics, configs, weights, unavailable = {}, {}, {}, {}
        for name in metric_names(cfg):
            try:
                metrics[name], configs[name], w = build_metric(cfg, name, device)
            except MissingWeightsError as e:  # the others are still scored
                unavailable[name] = missing_weights_entry(name, e)
                configs[name] = OmegaConf.to_container(metric_node(cfg, name), resolve=True)
                log.error("metric %s is not scored: %s", name, unavailable[name]["error"])
                continue
            weights.update(w)
        proto = OmegaConf.to_container(cfg.protocol, resolve=True)
        assert isinstance(proto, dict)
        proto.pop("metric_args", None)
        known = {k: proto.pop(k) for k in ("name", "seed", "max_frames", "resize") if k in proto}
        protocol = RunProtocol(**known, extra=proto)
        return evaluate(
            generated,
            cfg.reference,
            metrics,
            pairing=cfg.pairing,
            unmatched=cfg.unmatched,
            protocol=protocol,
            results_path=cfg.results,
            tensorboard_dir=cfg.tensorboard_dir,
            tensorboard_step=cfg.tensorboard_step,
            weights=weights,
            config={"metrics": configs, "device": device},
            strict=cfg.strict,
            progress=cfg.progress,
            device=device,
            unavailable=unavailable,
        )
    finally:
        if world > 1 and started_dist and dist.is_initialized():
            dist.destroy_process_group()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    result = run(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"summary": result["summary"], "counts": result["counts"]}, indent=2))
        if cfg.results:
            print(f"results: {Path(cfg.results)}")
        for name in result["failed_metrics"]:
            print(f"FAILED {name}: {result['metrics'][name]['error']}")
        if not result["summary"]:
            print("mmgt-eval: no metric produced a value")
    if result["failed_metrics"]:
        raise SystemExit(1)


def main() -> None:
    """Console entry point ``mmgt-eval``."""
    _hydra_main()


if __name__ == "__main__":
    main()
