"""What a results file records besides the scores: package versions, the git commit, JSON-safe values.

Also the TensorBoard scalars of a results dict (``eval/<metric>/<key>``, ``eval_counts/<metric>/...``).
Infinite values (PSNR of identical frames) become the strings ``"inf"`` / ``"-inf"``; NaN is an error.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmgt_eval.metrics.base import EvaluationError

__all__ = ["as_float", "git_commit", "jsonable", "package_versions", "write_tensorboard"]

_VERSION_PACKAGES = (
    "mmgt",
    "torch",
    "torchvision",
    "torchmetrics",
    "numpy",
    "scipy",
    "av",
    "lpips",
    "pytorch-fid",
    "mediapipe",
    "opencv-python",
    "python_speech_features",
)


def as_float(value: Any, what: str) -> float:
    """``value`` (a number or 1-element tensor) as a float; NaN or a non-number: :class:`EvaluationError`."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise EvaluationError(f"{what}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        x = float(value)
    except (TypeError, ValueError) as e:
        raise EvaluationError(f"{what}: expected a number, got {value!r}") from e
    if math.isnan(x):
        raise EvaluationError(f"{what} is NaN")
    return x


def jsonable(x: Any) -> Any:
    """``x`` with tensors, numpy scalars and paths made JSON values, infinities as strings (NaN: an error)."""
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, float) and math.isnan(x):
        raise EvaluationError("NaN in results")
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, torch.Tensor):
        return jsonable(x.tolist())
    return x


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages that change metric values."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in _VERSION_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    return out


def git_commit() -> dict[str, Any] | None:
    """Commit (and whether tracked files differ from it) of the checkout mmgt_eval runs from, if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def write_tensorboard(log_dir: Path, result: dict, step: int) -> None:
    """The finite values and counts of ``result`` as scalars at ``step``, its protocol and counts as text."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        for metric, entry in result["metrics"].items():
            for key, value in entry.get("values", {}).items():
                if isinstance(value, float) and math.isfinite(value):
                    writer.add_scalar(f"eval/{metric}/{key}", value, global_step=step)
            writer.add_scalar(f"eval_counts/{metric}/n_videos", entry["n_videos"], global_step=step)
            writer.add_scalar(f"eval_counts/{metric}/n_skipped", entry["n_skipped"], global_step=step)
        text = json.dumps(jsonable({"protocol": result["protocol"], "counts": result["counts"]}), indent=2)
        writer.add_text("eval/protocol", f"```\n{text}\n```", global_step=step)
    finally:
        writer.close()
