"""RunResults -> :class:`Table`: rows per configuration, mean ± std over seeds, best marks, protocols.

Runs are grouped by configuration and labelled by the overrides that differ (:func:`row_labels`); cells are
the mean ± sample std of the evaluated runs; a column's direction is the one its results agree on (the
results carry each value's direction: :mod:`mmgt_eval.directions`); the run and metric protocols of all
results are compared and summarised. Rendering is :mod:`mmgt_eval.render`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmgt_eval.labels import row_labels
from mmgt_eval.results import NOT_EVALUATED, RunResult, TableError

__all__ = ["Cell", "Column", "Row", "Table", "build_table", "row_labels"]

log = logging.getLogger("mmgt_eval")

_LONG_SETTING = 40  # protocol strings longer than this are left out of the compact line (not the fingerprint)


@dataclass(frozen=True)
class Column:
    """One value column: ``key`` = ``"<metric>/<value>"``; ``higher_is_better`` True, False or None."""

    key: str
    higher_is_better: bool | None

    @property
    def metric(self) -> str:
        """The metric name: the key up to its first ``/``."""
        return self.key.split("/", 1)[0]


@dataclass(frozen=True)
class Cell:
    """The values of one column over a configuration's successful runs."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        """Number of values in the cell."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """Mean (inf when a value is inf; NaN when +inf meets -inf); None without values."""
        if not self.values:
            return None
        with np.errstate(invalid="ignore"):
            return float(np.mean(np.asarray(self.values, dtype=np.float64)))

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof 1); None for fewer than 2 values or non-finite values."""
        a = np.asarray(self.values, dtype=np.float64)
        if a.size < 2 or not np.isfinite(a).all():
            return None
        return float(np.std(a, ddof=1))


@dataclass
class Row:
    """One configuration (or reference result).

    ``name`` is the row's label (:func:`row_labels`), ``config`` the configuration name its runs share.
    """

    name: str
    reference: bool
    runs: list[RunResult]
    failed: list[RunResult]
    cells: dict[str, Cell]
    best: set[str] = field(default_factory=set)
    unevaluated: list[RunResult] = field(default_factory=list)
    config: str = ""
    short: str = ""
    """The label with shortened override keys (``mask_guidance=none``), for figures; else ``name``."""

    @property
    def n(self) -> int:
        """Evaluated (successful) runs."""
        return len(self.runs)

    @property
    def status(self) -> str:
        """``ok`` (an evaluated run), else ``failed`` (a failed run), else ``not_evaluated``."""
        if self.runs:
            return "ok"
        return "failed" if self.failed else NOT_EVALUATED


@dataclass
class Table:
    """Rows × columns plus everything printed under the table."""

    columns: list[Column]
    rows: list[Row]
    failed_runs: list[RunResult]
    failed_metrics: list[tuple[RunResult, str, str]]
    protocol_lines: list[str]
    protocol_mismatch: bool
    notes: list[str]
    unevaluated_runs: list[RunResult] = field(default_factory=list)


def _select_columns(
    results: Sequence[RunResult], metrics: Sequence[str] | None, on_missing: str = "error"
) -> tuple[list[Column], list[str]]:
    available: dict[str, list[bool | None]] = {}
    for r in results:
        for key in r.values:
            available.setdefault(key, []).append(r.directions.get(key))
    notes: list[str] = []

    def direction(key: str) -> bool | None:
        seen = {d for d in available.get(key, []) if d is not None}
        if len(seen) > 1:
            notes.append(f"{key}: results disagree on its direction; not ranked")
            return None
        return seen.pop() if seen else None

    if metrics is None:
        keys = [k for k in available if any(d is not None for d in available[k])] or list(available)
    else:
        keys = []
        for pattern in metrics:
            pattern = str(pattern)
            matched = [k for k in available if fnmatch.fnmatchcase(k, pattern)]
            if not matched and not available and not any(c in pattern for c in "*?["):
                matched = [pattern]  # every run failed: keep the requested column
            if not matched and on_missing == "keep" and not any(c in pattern for c in "*?["):
                notes.append(f"{pattern}: no result reports this value (its metric failed or was not run)")
                matched = [pattern]
            if not matched:
                raise TableError(
                    f"metrics: {pattern!r} matches no value of the results; available: "
                    + (", ".join(available) or "none")
                )
            keys.extend(k for k in matched if k not in keys)
    return [Column(k, direction(k)) for k in keys], notes


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _fingerprint(obj: Any) -> str:
    return hashlib.sha1(_canonical(obj).encode()).hexdigest()[:8]


def _compact(obj: Any) -> str:
    parts = []
    for k, v in _flatten(obj).items():
        text = json.dumps(v, default=str) if not isinstance(v, str) else v
        if k in ("metric",) or len(text) > _LONG_SETTING:
            continue
        parts.append(f"{k}={text}")
    return ", ".join(parts)


def _variant_mismatch(title: str, protocols: Iterable[tuple[Any, list[RunResult]]]) -> list[str]:
    """A ``VARIANT MISMATCH`` line when the protocols name different ``variant`` s.

    E.g. FVD stylegan_v vs clip_sampling, diversity bailando vs kinetic_l2_corrected: different definitions
    of the metric.
    """
    by_variant: dict[str, list[str]] = {}
    for proto, rs in protocols:
        variant = proto.get("variant") if isinstance(proto, dict) else None
        who = [r.label + (" [reference]" if r.reference else "") for r in rs]
        by_variant.setdefault(str(variant) if variant is not None else "<unnamed>", []).extend(who)
    if len(by_variant) < 2:
        return []
    listing = "; ".join(f"{v}: {', '.join(dict.fromkeys(w))}" for v, w in by_variant.items())
    return [
        f"VARIANT MISMATCH in {title}: rows were scored with different variants of the metric "
        f"({', '.join(by_variant)}); their values are different definitions, not comparable ({listing})"
    ]


PROVENANCE_KEYS: frozenset[str] = frozenset({"size_from"})
"""Protocol entries that say why a setting has its value (``size_from``: where the evaluation size came from,
e.g. a model's training size or a baseline's frame size), not a setting: rows that differ only in them were
scored the same way and are compared without a mismatch."""


def _settings(proto: Any) -> Any:
    """``proto`` without its :data:`PROVENANCE_KEYS`."""
    return {k: v for k, v in proto.items() if k not in PROVENANCE_KEYS} if isinstance(proto, dict) else proto


def _protocol_report(results: Sequence[RunResult], metrics: Sequence[str]) -> tuple[list[str], bool]:
    scopes: list[tuple[str, list[tuple[RunResult, Any]]]] = [
        ("run", [(r, r.protocol) for r in results if r.protocol is not None])
    ]
    for m in metrics:
        scopes.append((m, [(r, r.metric_protocols[m]) for r in results if m in r.metric_protocols]))
    lines: list[str] = []
    mismatch = False
    for scope, items in scopes:
        if not items:
            continue
        variants: dict[str, tuple[Any, list[RunResult]]] = {}
        for r, proto in items:
            proto = _settings(proto)
            variants.setdefault(_canonical(proto), (proto, []))[1].append(r)
        title = "run protocol" if scope == "run" else f"{scope}"
        if len(variants) == 1:
            proto = next(iter(variants.values()))[0]
            lines.append(f"{title} [{_fingerprint(proto)}]: {_compact(proto) or '(no short settings)'}")
            continue
        mismatch = True
        lines.extend(_variant_mismatch(title, variants.values()))
        flat = [_flatten(p) for p, _ in variants.values()]
        keys = sorted({k for f in flat for k in f})
        differing = [k for k in keys if len({_canonical(f.get(k, "<missing>")) for f in flat}) > 1]
        lines.append(
            f"PROTOCOL MISMATCH in {title}: {len(variants)} variants; rows using different variants are "
            f"not comparable (differing: {', '.join(differing)})"
        )
        for proto, rs in variants.values():
            setting = ", ".join(
                f"{k}={_canonical(_flatten(proto).get(k, '<missing>'))}"
                for k in differing
                if len(_canonical(_flatten(proto).get(k))) <= 2 * _LONG_SETTING
            )
            who = "; ".join(r.label + (" [reference]" if r.reference else "") for r in rs)
            lines.append(f"  [{_fingerprint(proto)}] {setting or '(long settings differ)'}: {who}")
    return lines, mismatch


def _row(
    name: str, ref: bool, members: Sequence[RunResult], columns: Sequence[Column], config: str, short: str
) -> Row:
    """One table row: the group's ok runs' values per column, its failed and unevaluated runs."""
    ok = [r for r in members if r.status == "ok"]
    cells = {c.key: Cell(tuple(r.values[c.key] for r in ok if c.key in r.values)) for c in columns}
    failed = [r for r in members if r.status == "failed"]
    unevaluated = [r for r in members if r.status == NOT_EVALUATED]
    return Row(name, ref, ok, failed, cells, unevaluated=unevaluated, config=config, short=short)


def _duplicate_seeds(name: str, members: Sequence[RunResult]) -> str | None:
    """A note when several runs of one row share a seed, else None."""
    seeds = [r.seed for r in members if r.seed is not None]
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    return f"{name}: several runs with seed {', '.join(map(str, dup))} (all are averaged)" if dup else None


def _mark_best(rows: Sequence[Row], columns: Sequence[Column]) -> None:
    """Add each directed column's best mean over the run rows (at least two) to those rows' ``best``."""
    for c in columns:
        if c.higher_is_better is None:
            continue
        cand = [
            (row, m)
            for row in rows
            if not row.reference and (m := row.cells[c.key].mean) is not None and not math.isnan(m)
        ]
        if len(cand) < 2:
            continue
        best = max(m for _, m in cand) if c.higher_is_better else min(m for _, m in cand)
        for row, m in cand:
            if m == best:
                row.best.add(c.key)


def build_table(
    results: Sequence[RunResult],
    metrics: Sequence[str] | None = None,
    baseline: str | None = "default",
    on_missing: str = "error",
    seed_keys: Sequence[str] = ("seed",),
) -> Table:
    """Group results into rows (configurations), label them, choose columns, mark the best, check protocols.

    ``on_missing``: what a requested ``metrics`` key that no result reports does - ``error`` (listing what
    is available) or ``keep`` (an empty column, with a note under the table). ``baseline``: a row label or
    configuration name listed first.
    """
    if not results:
        raise TableError("no results to tabulate")
    if on_missing not in ("error", "keep"):
        raise TableError(f"on_missing_metric must be 'error' or 'keep', got {on_missing!r}")
    columns, notes = _select_columns([r for r in results if r.status == "ok"], metrics, on_missing)
    by_config: dict[str, list[RunResult]] = {}
    for r in results:
        if not r.reference:
            by_config.setdefault(r.name, []).append(r)
    labels = row_labels(by_config, seed_keys)
    shorts = row_labels(by_config, seed_keys, short=True)
    configs = {label: name for name, label in labels.items()}
    results = [r if r.reference else replace(r, name=labels[r.name]) for r in results]  # runs show labels
    groups: dict[tuple[bool, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.reference, r.name), []).append(r)
    run_names = sorted(
        {n for ref, n in groups if not ref}, key=lambda n: (baseline not in (n, configs[n]), n)
    )
    ref_names = list(dict.fromkeys(n for ref, n in groups if ref))
    rows: list[Row] = []
    for ref, names in ((False, run_names), (True, ref_names)):
        for name in names:
            config = name if ref else configs[name]
            rows.append(
                _row(name, ref, groups[(ref, name)], columns, config, name if ref else shorts[config])
            )
            if note := _duplicate_seeds(name, groups[(ref, name)]):
                notes.append(note)
    _mark_best(rows, columns)
    failed_runs = [r for row in rows for r in row.failed]
    unevaluated_runs = [r for row in rows for r in row.unevaluated]
    failed_metrics = [
        (r, m, err) for row in rows for r in row.runs for m, err in sorted(r.failed_metrics.items())
    ]
    metric_names = list(dict.fromkeys(c.metric for c in columns))
    protocol_lines, mismatch = _protocol_report(results, metric_names)
    if mismatch:
        log.warning(
            "mmgt-table: the results disagree on the evaluation protocol:\n%s", "\n".join(protocol_lines)
        )
    return Table(
        columns, rows, failed_runs, failed_metrics, protocol_lines, mismatch, notes, unevaluated_runs
    )
