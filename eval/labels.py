"""Row labels of benchmark tables: the overrides that differ between the configurations compared.

A sweep's configurations share most of their overrides (``experiment=...``, ``evaluate.*``,
``trainer.max_time``, data paths); a row is labelled only by what tells it apart (:func:`row_labels`), with
differing paths cut to their distinguishing tail. Used by :mod:`mmgt_eval.aggregate` (labels) and
:mod:`mmgt_eval.plot` (the same with short keys).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LABEL_EXCLUDE", "row_labels"]

LABEL_EXCLUDE: tuple[str, ...] = (
    "hydra.*", "paths.*", "run_name*", "out", "sweep", "ckpt_path", "results", "tensorboard_dir", "progress",
    "trainer.enable_progress_bar",
)  # fmt: skip
"""Override keys (fnmatch) never in a row label: where a job writes, how it is shown - not what it is."""


def _path_parts(value: str) -> tuple[str, ...] | None:
    """The parts of a path-valued override (absolute, ./, ../, ~), else None."""
    v = value.strip("'\"")
    if not v.startswith(("/", "./", "../", "~")):
        return None
    return tuple(p for p in Path(v).parts if p not in ("/", ".", "..", "~")) or None


def _short_paths(values: set[str]) -> dict[str, str]:
    """Path values -> their shortest trailing parts that still tell them apart (no absolute paths)."""
    parts = {v: _path_parts(v) or (v,) for v in values}
    longest = max(len(p) for p in parts.values())
    for k in range(1, longest + 1):
        short = {v: "/".join(p[-k:]) for v, p in parts.items()}
        if len(set(short.values())) == len(values):
            return short
    return {v: "/".join(p) for v, p in parts.items()}


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Override keys -> their shortest trailing components (split at ``.`` and ``/``) that stay distinct.

    E.g. ``model/stage2/mask_guidance`` -> ``mask_guidance``, ``model.net.stacking`` -> ``stacking``.
    """
    parts = {k: re.split(r"[./]", k) for k in keys}
    out: dict[str, str] = {}
    for k, ps in parts.items():
        for n in range(1, len(ps) + 1):
            tail = ps[-n:]
            if sum(1 for q in parts.values() if q[-n:] == tail) == 1:
                out[k] = ".".join(tail)
                break
        else:
            out[k] = k
    return out


def _label_items(r: Any, seed_keys: Sequence[str]) -> dict[str, str]:
    """``{key: value}`` of a run's overrides that may label its row."""
    items = {}
    for o in r.overrides:
        key, _, value = str(o).partition("=")
        key = key.lstrip("+~")
        if key not in seed_keys and not any(fnmatch.fnmatchcase(key, p) for p in LABEL_EXCLUDE):
            items[key] = value
    return items


def row_labels(
    groups: Mapping[str, Sequence[Any]], seed_keys: Sequence[str] = ("seed",), short: bool = False
) -> dict[str, str]:
    """``{configuration name: row label}`` for the (non-reference) configurations compared.

    ``groups``: configuration name -> its runs (``mmgt_eval.results.RunResult``: ``overrides``, ``named``).
    A label is ``key=value,...`` of the overrides whose values differ between the configurations (sorted by
    key), leaving out seeds and :data:`LABEL_EXCLUDE`; a key the runs of one configuration disagree on is
    left out of its label; a differing path is shortened to the trailing parts that tell the paths apart, and
    paths all configurations share are left out with every other common override. One configuration: its
    ``experiment=`` override, else ``default``. A name the user chose (``named``) or a configuration without
    overrides keeps its name; labels that would coincide fall back to the names. ``short``: keys shortened
    to their last distinct components (:func:`_short_keys`; the figure's labels).
    """
    items: dict[str, dict[str, str] | None] = {}
    for name, members in groups.items():
        if any(r.named for r in members) or not any(r.overrides for r in members):
            items[name] = None
            continue
        per_run = [_label_items(r, seed_keys) for r in members]
        items[name] = {k: v for k, v in per_run[0].items() if all(d.get(k) == v for d in per_run[1:])}
    keyed = [d for d in items.values() if d is not None]
    keys = sorted({k for d in keyed for k in d})
    differing = [k for k in keys if len({d.get(k) for d in keyed}) > 1]
    shown: dict[str, dict[str, str]] = {}
    for k in differing:
        values = {d[k] for d in keyed if k in d}
        paths = {v for v in values if _path_parts(v) is not None}
        shown[k] = {**{v: v for v in values}, **(_short_paths(paths) if paths else {})}
    key_text = _short_keys(differing) if short else {k: k for k in differing}
    labels: dict[str, str] = {}
    for name, d in items.items():
        if d is None:
            labels[name] = name
        elif differing:
            parts = [f"{key_text[k]}={shown[k][d[k]]}" for k in differing if k in d]
            labels[name] = ",".join(parts) or "default"
        else:
            labels[name] = f"experiment={d['experiment']}" if "experiment" in d else "default"
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {name: (name if counts[label] > 1 else label) for name, label in labels.items()}
