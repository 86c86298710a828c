"""``mmgt-table``: benchmark tables (Markdown, LaTeX, CSV) from run folders of mmgt-eval results.

Examples::

    mmgt-table runs=outputs/train/multiruns/2025-01-01_12-00-00
    mmgt-table runs=[sweepA,sweepB] reference=[outputs/eval/gt] metrics=[fid/fid,sync/sync_c,sync/sync_d]
    mmgt-table runs=sweep metrics=[psnr/*] formats=[md,csv] out=tables/

**Input.** A ``runs`` entry is a sweep folder (searched recursively for ``results.json``; a folder holding
one is a job folder and is not searched further; hidden folders are skipped), a single job folder or a
``results.json`` file. A results file is mmgt-eval's format (:mod:`mmgt_eval.runner`), optionally with the
sweep runner's ``run`` object ``{status, error, overrides, seed, name, named, evaluated, seconds}``; a run
with ``evaluated: false`` was trained but not evaluated. A job folder with ``.hydra/overrides.yaml`` but no
``results.json`` is listed as not evaluated when it holds an ``export/`` (trained by an older version), else
as a failed run (the job did not finish). Reference rows (``reference=``) are plain results files (or
folders holding one), labelled by their folder name or, with ``reference={label: path}``, by the label.

**Rows.** One per configuration: ``run.name``, else the job's overrides without the seed keys
(``seed_keys``; sorted, comma-joined; none left -> ``default``), else the folder name. A row is labelled
by the overrides that differ between the configurations compared (:func:`row_labels`: no seed, no paths,
nothing all rows share), or by ``run.name`` when ``run_name`` chose it. Cells are the mean ± sample standard
deviation (ddof 1) over the configuration's evaluated runs (seeds); one run shows its value only; a cell
with fewer values than the row's ``n`` says so (``n=k``). Failed and not-evaluated runs are excluded from the
means and listed under the table; a configuration without an evaluated run shows ``failed`` (if one of its
runs failed) or ``not evaluated``. Order: ``baseline`` (default ``default``) first, the other configurations
sorted by label, reference rows last.

**Columns.** ``<metric>/<value>`` keys of the results' ``metrics.<m>.values``, chosen and ordered by
``metrics`` (exact keys or shell patterns such as ``sync/*``); by default every value that has a direction.
Directions come from each metric entry's ``value_higher_is_better`` (written by the runner from the
adapters' declarations: the one source of truth); for an entry without it, count-like names (``*_n_*``,
``*_videos`` ...) have none, others the metric's ``higher_is_better``. The best mean of each directed column
among the (non-reference) configurations is marked (bold in Markdown and LaTeX, ``:best`` = 1 in CSV) when
at least two configurations have a value; columns without a direction are never marked.

**Protocol.** The distinct run-level protocols (``protocol``) and per-metric protocols
(``metrics.<m>.protocol``) of all collected results (reference rows included) are printed under the table,
compactly (scalar settings, an 8-hex fingerprint of the whole object); when results disagree the table says
``PROTOCOL MISMATCH`` with the differing settings and which rows use which variant, and, when the metric
protocols name different ``variant`` s (e.g. diversity ``bailando`` vs ``kinetic_l2_corrected``),
``VARIANT MISMATCH`` first, with the rows of each variant.

Outputs (atomic writes): ``table.md`` (also printed), ``table.tex`` (booktabs tabular, escaped; notes as
``%`` comments), ``table.csv`` (one line per configuration: ``<key>:mean``, ``:std``, ``:n``, ``:best``),
and with ``plot=FILE.png`` a figure (:mod:`mmgt_eval.plot`). This module imports neither torch nor Hydra;
Hydra is used only inside :func:`main`.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmgt.atomic import write_text
from mmgt_eval.labels import row_labels

__all__ = [
    "FORMATS",
    "NOT_EVALUATED",
    "RESULTS_FILE",
    "Cell",
    "Column",
    "Row",
    "RunResult",
    "Table",
    "TableError",
    "build_table",
    "collect",
    "config_name",
    "error_line",
    "find_results",
    "format_csv",
    "format_latex",
    "format_markdown",
    "format_number",
    "load_result",
    "row_labels",
    "run",
    "value_direction",
    "write_outputs",
]

log = logging.getLogger("mmgt_eval")

RESULTS_FILE = "results.json"
FORMATS: tuple[str, ...] = ("md", "tex", "csv")

NOT_EVALUATED = "not_evaluated"
"""``RunResult.status`` of a run that was trained but not evaluated (shown as "not evaluated")."""
STATUSES = ("ok", "failed", NOT_EVALUATED)

_COUNT_LIKE = re.compile(r"(?:^|_)(?:n|num|count|videos|frames|clips|windows|skipped|offset)(?:_|$)")
_LONG_SETTING = 40  # protocol strings longer than this are left out of the compact line (not the fingerprint)


class TableError(ValueError):
    """The results cannot be tabulated (none found, unreadable file, unknown metric key, ...)."""


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RunResult:
    """One results file (or one job folder without results), as the table needs it.

    Attributes:
        path: the ``results.json`` (for a job without results: the job folder).
        name: configuration name (the row it belongs to).
        seed: the run's seed, when known.
        status: ``"ok"``, ``"failed"`` or ``"not_evaluated"`` (:data:`NOT_EVALUATED`: trained, no results).
        error: why the run failed.
        reference: a reference row (never ranked).
        named: ``name`` was chosen by the user (``run_name``, a reference label): it is the row's label.
        overrides: the job's overrides (what the row label is made of).
        values: ``{"<metric>/<value>": float}`` of the metrics whose status is ok.
        directions: ``{"<metric>/<value>": True | False | None}`` (higher is better / lower / none).
        protocol: the run-level protocol object, if any.
        metric_protocols: ``{metric: protocol object}``.
        failed_metrics: ``{metric: error}`` of metrics that failed in an otherwise successful run.
    """

    path: Path
    name: str
    seed: int | None = None
    status: str = "ok"
    error: str | None = None
    reference: bool = False
    named: bool = False
    overrides: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    directions: dict[str, bool | None] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    metric_protocols: dict[str, Any] = field(default_factory=dict)
    failed_metrics: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def label(self) -> str:
        """``name`` plus the seed, for listings."""
        return self.name if self.seed is None else f"{self.name} (seed {self.seed})"


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def config_name(overrides: Iterable[str], seed_keys: Sequence[str] = ("seed",)) -> str:
    """A job's configuration name: its overrides minus ``seed_keys``, sorted, comma-joined; or ``default``."""
    kept = sorted(str(o) for o in overrides if _split_override(o)[0] not in seed_keys)
    return ",".join(kept) or "default"


def _seed_from(overrides: Iterable[str], seed_keys: Sequence[str]) -> int | None:
    for o in overrides:
        key, value = _split_override(o)
        if key in seed_keys:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _read_overrides(job_dir: Path) -> list[str] | None:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TableError(f"{path}: cannot read the overrides: {e}") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise TableError(f"{path}: expected a list of 'key=value' strings, got {type(data).__name__}")
    return [str(o) for o in data]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise TableError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(value.strip().lower().replace("infinity", "inf"))
    raise TableError(f"{where}: expected a number (or 'inf'), got {value!r}")


def value_direction(value: str, declared: Mapping[str, Any] | None, metric_flag: Any) -> bool | None:
    """Direction of a value: declared in the results (``value_higher_is_better``), else count-like (None),
    else the metric's ``higher_is_better``."""
    if declared is not None and value in declared:
        d = declared[value]
        return None if d is None else bool(d)
    if _COUNT_LIKE.search(value):
        return None
    return None if metric_flag is None else bool(metric_flag)


def load_result(
    path: str | os.PathLike[str],
    *,
    reference: bool = False,
    label: str | None = None,
    seed_keys: Sequence[str] = ("seed",),
) -> RunResult:
    """Read one ``results.json`` into a :class:`RunResult`; :class:`TableError` naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TableError(f"{path}: cannot read: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TableError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a JSON object (mmgt-eval results), got {type(data).__name__}")
    run_info = data.get("run")
    if run_info is not None and not isinstance(run_info, dict):
        raise TableError(f"{path}: 'run' must be an object, got {type(run_info).__name__}")
    run_info = run_info or {}
    overrides = run_info.get("overrides")
    if overrides is None:
        overrides = _read_overrides(path.parent)
    elif not isinstance(overrides, list):
        raise TableError(f"{path}: run.overrides must be a list of 'key=value' strings")
    if label:
        name = str(label)
    elif run_info.get("name"):
        name = str(run_info["name"])
    elif overrides is not None and not reference:
        name = config_name(overrides, seed_keys)
    else:
        name = path.parent.name or str(path)
    seed = run_info.get("seed")
    if seed is None and overrides is not None:
        seed = _seed_from(overrides, seed_keys)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise TableError(f"{path}: run.seed must be an integer, got {seed!r}") from None
    status = str(run_info.get("status", "ok"))
    if status not in ("ok", "failed"):
        raise TableError(f"{path}: run.status must be 'ok' or 'failed', got {status!r}")
    if status == "ok" and run_info.get("evaluated") is False:
        status = NOT_EVALUATED  # trained; its results hold no metrics

    metrics = data.get("metrics")
    if status == "ok" and not isinstance(metrics, dict):
        if not isinstance(data.get("summary"), dict):
            raise TableError(f"{path}: no 'metrics' or 'summary' object: not an mmgt-eval results file")
        metrics = None
    values: dict[str, float] = {}
    directions: dict[str, bool | None] = {}
    metric_protocols: dict[str, Any] = {}
    failed_metrics: dict[str, str] = {}
    if isinstance(metrics, dict):
        for mname, entry in metrics.items():
            if not isinstance(entry, dict):
                raise TableError(f"{path}: metrics.{mname} must be an object")
            if "protocol" in entry:
                metric_protocols[mname] = entry["protocol"]
            if entry.get("status", "ok") != "ok":
                failed_metrics[mname] = str(entry.get("error") or "failed")
                continue
            declared = entry.get("value_higher_is_better")
            for key, v in (entry.get("values") or {}).items():
                full = f"{mname}/{key}"
                values[full] = _number(v, f"{path}: metrics.{mname}.values.{key}")
                directions[full] = value_direction(key, declared, entry.get("higher_is_better"))
    elif status == "ok":
        for full, v in data["summary"].items():
            values[full] = _number(v, f"{path}: summary.{full}")
            directions[full] = value_direction(full.rsplit("/", 1)[-1], None, None)
    seconds = run_info.get("seconds")
    return RunResult(
        path=path,
        name=name,
        seed=None if seed is None else int(seed),
        status=status,
        error=None if run_info.get("error") is None else str(run_info["error"]),
        reference=reference,
        named=bool(label) or reference or bool(run_info.get("named")),
        overrides=tuple(str(o) for o in overrides or ()),
        values=values,
        directions=directions,
        protocol=data.get("protocol") if isinstance(data.get("protocol"), dict) else None,
        metric_protocols=metric_protocols,
        failed_metrics=failed_metrics,
        seconds=None if seconds is None else float(seconds),
    )


def _unfinished_job(job_dir: Path, seed_keys: Sequence[str]) -> RunResult:
    """A job folder without results: trained and exported (an older mmgt-train without ``evaluate`` wrote
    none) -> not evaluated; otherwise failed."""
    overrides = _read_overrides(job_dir) or []
    trained = (job_dir / "export").is_dir()
    return RunResult(
        path=job_dir,
        name=config_name(overrides, seed_keys),
        seed=_seed_from(overrides, seed_keys),
        status=NOT_EVALUATED if trained else "failed",
        error=None if trained else f"no {RESULTS_FILE} in {job_dir} (the job did not finish?)",
        overrides=tuple(overrides),
    )


def find_results(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """(results files, job folders without one) under ``path``: a file, a job folder or a sweep folder."""
    p = Path(path)
    if p.is_file():
        return [p], []
    if not p.is_dir():
        raise TableError(f"{p}: not found (expected a sweep folder, a job folder or a {RESULTS_FILE})")
    if (p / RESULTS_FILE).is_file():
        return [p / RESULTS_FILE], []
    found: list[Path] = []
    unfinished: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(p):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if RESULTS_FILE in filenames:
            found.append(here / RESULTS_FILE)
            dirnames[:] = []  # a job folder: its own subfolders are not runs
        elif here != p and (here / ".hydra" / "overrides.yaml").is_file():
            unfinished.append(here)
            dirnames[:] = []
    if not found:
        raise TableError(
            f"{p}: no {RESULTS_FILE} found (searched recursively, hidden folders skipped)"
            + (f"; {len(unfinished)} job folders have none" if unfinished else "")
        )
    return sorted(found), sorted(unfinished)


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise TableError(f"{what}: expected a path or a list of paths, got {type(value).__name__}")


def collect(
    runs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    reference: Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None = None,
    *,
    seed_keys: Sequence[str] = ("seed",),
) -> list[RunResult]:
    """Every run under ``runs`` (plus unfinished jobs as failed runs) and the ``reference`` rows."""
    entries = _as_list(runs, "runs")
    if not entries:
        raise TableError("runs is empty: give runs=DIR (a sweep folder, a job folder or a results.json)")
    out: list[RunResult] = []
    seen: set[Path] = set()
    for entry in entries:
        files, unfinished = find_results(entry)
        for f in files:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(load_result(f, seed_keys=seed_keys))
        for job in unfinished:
            if job.resolve() not in seen:
                seen.add(job.resolve())
                out.append(_unfinished_job(job, seed_keys))
    if isinstance(reference, Mapping):
        labelled = [(str(k), v) for k, v in reference.items()]
    else:
        labelled = [(None, v) for v in _as_list(reference, "reference")]
    for label, ref in labelled:
        files, _ = find_results(ref)
        for f in files:
            out.append(
                load_result(f, reference=True, label=label if len(files) == 1 else None, seed_keys=seed_keys)
            )
    return out


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Column:
    """One value column: ``key`` = ``"<metric>/<value>"``; ``higher_is_better`` True, False or None."""

    key: str
    higher_is_better: bool | None

    @property
    def metric(self) -> str:
        return self.key.split("/", 1)[0]


@dataclass(frozen=True)
class Cell:
    """The values of one column over a configuration's successful runs."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
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
    """A ``VARIANT MISMATCH`` line when the protocols name different ``variant`` s (e.g. FVD stylegan_v vs
    clip_sampling, diversity bailando vs kinetic_l2_corrected): different definitions of the metric."""
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
            members = groups[(ref, name)]
            ok = [r for r in members if r.status == "ok"]
            cells = {c.key: Cell(tuple(r.values[c.key] for r in ok if c.key in r.values)) for c in columns}
            failed = [r for r in members if r.status == "failed"]
            unevaluated = [r for r in members if r.status == NOT_EVALUATED]
            config = name if ref else configs[name]
            short = name if ref else shorts[config]
            rows.append(
                Row(name, ref, ok, failed, cells, unevaluated=unevaluated, config=config, short=short)
            )
            seeds = [r.seed for r in members if r.seed is not None]
            dup = sorted({s for s in seeds if seeds.count(s) > 1})
            if dup:
                notes.append(f"{name}: several runs with seed {', '.join(map(str, dup))} (all are averaged)")
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


# --------------------------------------------------------------------------- number formatting
def _column_decimals(values: Iterable[float | None], sig: int) -> int | None:
    """Decimals giving the column's smallest magnitude (in [1e-3, 1e6)) ``sig`` significant digits."""
    mags = [abs(v) for v in values if v is not None and math.isfinite(v) and 1e-3 <= abs(v) < 1e6]
    if not mags:
        return None
    return max(0, sig - 1 - math.floor(math.log10(min(mags))))


def format_number(x: float | None, decimals: int | None = None, sig: int = 3, inf: str = "inf") -> str:
    """``x`` with ``decimals`` places (the column's), or ``sig`` significant digits; ``inf`` spelled ``inf``.

    Values the column's decimals would show as 0 get their own ``sig`` digits; very large or small
    magnitudes (>= 1e6, < 1e-3) use scientific notation.
    """
    if x is None:
        return ""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return inf if x > 0 else f"-{inf}"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.{sig - 1}e}"
    own = max(0, sig - 1 - math.floor(math.log10(abs(x)))) if x != 0 else 0
    d = own if decimals is None else decimals
    text = f"{x:.{d}f}"
    if x != 0 and float(text) == 0:
        text = f"{x:.{own}f}"
    return text


def _format_std(std: float, decimals: int | None) -> str:
    """At the mean's decimals; a non-zero std those would show as 0 gets one significant digit."""
    if decimals is not None and (std == 0 or float(f"{std:.{decimals}f}") != 0):
        return f"{std:.{decimals}f}"
    if std == 0:
        return "0"
    return f"{std:.{max(0, -math.floor(math.log10(std)))}f}" if std >= 1e-6 else f"{std:.0e}"


def _cell_texts(table: Table, sig: int, inf: str) -> dict[tuple[int, str], tuple[str, bool]]:
    """{(row index, column key): (text, best)}."""
    out: dict[tuple[int, str], tuple[str, bool]] = {}
    for c in table.columns:
        decimals = _column_decimals((row.cells[c.key].mean for row in table.rows), sig)
        for i, row in enumerate(table.rows):
            cell = row.cells[c.key]
            if row.status != "ok":
                out[(i, c.key)] = (STATUS_TEXT[row.status], False)
                continue
            if cell.n == 0:
                out[(i, c.key)] = ("–", False)
                continue
            text = format_number(cell.mean, decimals, sig, inf)
            if cell.std is not None:
                text += f" ± {_format_std(cell.std, decimals)}"
            if cell.n != row.n:
                text += f" (n={cell.n})"
            out[(i, c.key)] = (text, c.key in row.best)
    return out


STATUS_TEXT = {"ok": "ok", "failed": "failed", NOT_EVALUATED: "not evaluated"}
"""How a row or run status is written in the tables."""


def _n_text(row: Row) -> str:
    """The ``n`` cell: evaluated runs, plus the failed and not-evaluated ones."""
    extra = [f"+{len(row.failed)} failed"] if row.failed else []
    extra += [f"+{len(row.unevaluated)} not evaluated"] if row.unevaluated else []
    return str(row.n) + (f" ({', '.join(extra)})" if extra else "")


def _arrow(c: Column, up: str, down: str) -> str:
    return "" if c.higher_is_better is None else f" {up if c.higher_is_better else down}"


def _legend(table: Table) -> str:
    return (
        "Cells: mean ± sample std (ddof 1) over n seeds (one seed: its value; n=k: only k runs have it). "
        "Bold: best configuration per column (↑ higher, ↓ lower is better; columns without an arrow and "
        "reference rows are not ranked)."
    )


def error_line(error: str | None, limit: int = 300) -> str:
    """An error message on one line, without its traceback (Hydra's InstantiationException puts the cause
    on the lines after its first)."""
    kept = []
    for line in (error or "").strip().splitlines():
        if line.startswith("Traceback"):
            break
        if line.strip():
            kept.append(line.strip())
    text = " ".join(kept) or "failed (no error recorded)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure_lines(table: Table) -> list[str]:
    return [f"{r.label}: {error_line(r.error)} ({r.path})" for r in table.failed_runs]


def _unevaluated_lines(table: Table) -> list[str]:
    return [f"{r.label} ({r.path})" for r in table.unevaluated_runs]


def _metric_failure_lines(table: Table) -> list[str]:
    return [
        f"{r.label}: metric {m} failed: {err.splitlines()[0] if err else ''}"
        for r, m, err in table.failed_metrics
    ]


# --------------------------------------------------------------------------- Markdown
def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def format_markdown(table: Table, sig: int = 3) -> str:
    """The table as GitHub Markdown, with the legend, failures, notes and protocols under it."""
    texts = _cell_texts(table, sig, "∞")
    header = ["configuration", "n", *(_md_escape(c.key) + _arrow(c, "↑", "↓") for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|:--|--:|" + "--:|" * len(table.columns)]
    shown_ref = False
    for i, row in enumerate(table.rows):
        if row.reference and not shown_ref:
            lines.append("| *reference* |" + " |" * (len(table.columns) + 1))
            shown_ref = True
        cells = []
        for c in table.columns:
            text, best = texts[(i, c.key)]
            cells.append(f"**{text}**" if best else text)
        lines.append("| " + " | ".join([_md_escape(row.name), _n_text(row), *cells]) + " |")
    lines += ["", _legend(table)]
    if table.failed_runs:
        lines += [
            "",
            "Failed runs (excluded from the means):",
            *(f"- {_md_escape(s)}" for s in _failure_lines(table)),
        ]
    if table.unevaluated_runs:
        lines += [
            "",
            "Not evaluated (trained, no evaluation results; add e.g. evaluate=stage1):",
            *(f"- {_md_escape(s)}" for s in _unevaluated_lines(table)),
        ]
    if table.failed_metrics:
        lines += ["", "Failed metrics:", *(f"- {s}" for s in _metric_failure_lines(table))]
    if table.notes:
        lines += ["", "Notes:", *(f"- {s}" for s in table.notes)]
    if table.protocol_lines:
        title = (
            "**Protocol — WARNING: the results disagree (rows are not comparable):**"
            if table.protocol_mismatch
            else "Protocol:"
        )
        lines += [
            "",
            title,
            *(f"- {s}" if not s.startswith("  ") else f"  - {s.strip()}" for s in table.protocol_lines),
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- LaTeX
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _comment(text: str) -> str:
    return "% " + " ".join(text.split())


def format_latex(table: Table, sig: int = 3) -> str:
    """A booktabs ``tabular`` (``\\usepackage{booktabs}``); legend, failures and protocols as comments."""
    texts = _cell_texts(table, sig, "inf")
    head = [
        "Configuration",
        "$n$",
        *(latex_escape(c.key) + _arrow(c, r"$\uparrow$", r"$\downarrow$") for c in table.columns),
    ]
    lines = [
        "% mmgt-table; " + _legend(table).replace("↑", "up-arrow").replace("↓", "down-arrow"),
        r"\begin{tabular}{l" + "r" * (len(table.columns) + 1) + "}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    shown_ref = False
    for i, row in enumerate(table.rows):
        if row.reference and not shown_ref:
            lines.append(r"\midrule")
            shown_ref = True
        cells = []
        for c in table.columns:
            text, best = texts[(i, c.key)]
            text = latex_escape(text).replace(" ± ", r" $\pm$ ").replace("inf", r"$\infty$")
            text = text.replace("–", "--")
            cells.append(rf"\textbf{{{text}}}" if best else text)
        name = latex_escape(row.name) if not row.reference else rf"\textit{{{latex_escape(row.name)}}}"
        lines.append(" & ".join([name, str(row.n), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for title, items in (
        ("failed runs (excluded from the means)", _failure_lines(table)),
        ("not evaluated (trained, no evaluation results)", _unevaluated_lines(table)),
        ("failed metrics", _metric_failure_lines(table)),
        ("notes", table.notes),
        (
            "protocol" + (" MISMATCH: rows are not comparable" if table.protocol_mismatch else ""),
            table.protocol_lines,
        ),
    ):
        if items:
            lines.append(_comment(title + ":"))
            lines.extend(_comment(s) for s in items)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CSV
def _csv_number(x: float | None) -> str:
    if x is None:
        return ""
    return "inf" if x == math.inf else "-inf" if x == -math.inf else repr(float(x))


def format_csv(table: Table) -> str:
    """One line per configuration: label, kind, status, n, failures, not-evaluated runs, then mean, std, n,
    best per column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["configuration", "kind", "status", "n", "n_failed", "failed_seeds", "n_not_evaluated"]
    for c in table.columns:
        head += [f"{c.key}:mean", f"{c.key}:std", f"{c.key}:n", f"{c.key}:best"]
    w.writerow(head)
    for row in table.rows:
        line = [
            row.name,
            "reference" if row.reference else "run",
            row.status,
            row.n,
            len(row.failed),
            " ".join(str(r.seed) for r in row.failed if r.seed is not None),
            len(row.unevaluated),
        ]
        for c in table.columns:
            cell = row.cells[c.key]
            best = "" if c.higher_is_better is None or row.reference or not cell.n else int(c.key in row.best)
            line += [_csv_number(cell.mean), _csv_number(cell.std), cell.n, best]
        w.writerow(line)
    return buf.getvalue()


# --------------------------------------------------------------------------- outputs
def render(table: Table, fmt: str, sig: int = 3) -> str:
    """The table in one of :data:`FORMATS`."""
    if fmt == "md":
        return format_markdown(table, sig)
    if fmt == "tex":
        return format_latex(table, sig)
    if fmt == "csv":
        return format_csv(table)
    raise TableError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def write_outputs(
    table: Table, out: str | os.PathLike[str], formats: Sequence[str] = FORMATS, sig: int = 3
) -> dict[str, Path]:
    """Write ``table.<fmt>`` for every format into ``out`` (atomically); returns {format: path}."""
    texts = {
        fmt: render(table, fmt, sig) for fmt in formats
    }  # every format renders before any file is written
    paths = {}
    for fmt, text in texts.items():
        paths[fmt] = Path(out) / f"table.{fmt}"
        write_text(paths[fmt], text)
    return paths


# --------------------------------------------------------------------------- CLI
def _cfg_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(v) for v in value]


def run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Collect, build, write, plot: ``{"table", "markdown", "paths"}`` for a composed ``conf/table.yaml``."""
    runs = _as_list(cfg["runs"], "runs")
    reference = cfg.get("reference")
    if reference is not None and not isinstance(reference, Mapping):
        reference = _as_list(reference, "reference")
    formats = _cfg_list(cfg.get("formats")) or list(FORMATS)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise TableError(f"formats: unknown {unknown}; choose from {', '.join(FORMATS)}")
    seed_keys = tuple(_cfg_list(cfg.get("seed_keys")) or ("seed",))
    results = collect(runs, reference, seed_keys=seed_keys)
    table = build_table(
        results,
        _cfg_list(cfg.get("metrics")),
        baseline=cfg.get("baseline", "default"),
        on_missing=cfg.get("on_missing_metric", "error"),
        seed_keys=seed_keys,
    )
    policy = cfg.get("on_protocol_mismatch", "warn")
    if policy not in ("warn", "error"):
        raise TableError(f"on_protocol_mismatch must be 'warn' or 'error', got {policy!r}")
    if table.protocol_mismatch and policy == "error":
        raise TableError("the results disagree on the protocol:\n" + "\n".join(table.protocol_lines))
    sig = int(cfg.get("significant_digits", 3))
    if cfg.get("out"):
        out = Path(cfg["out"])
    else:
        first = Path(runs[0])
        out = first if first.is_dir() else first.parent
    paths = write_outputs(table, out, formats, sig)
    if cfg.get("plot"):
        from mmgt_eval.plot import save_plot

        paths["plot"] = save_plot(table, cfg["plot"])
    return {"table": table, "markdown": format_markdown(table, sig), "paths": paths}
