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
adapters' declarations: the one source of truth); an entry without it (older results) takes the declaration
of the library adapter of that name, else the entry's ``higher_is_better`` (:mod:`mmgt_eval.directions`); a
summary-only file states none. The best mean of each directed column among the (non-reference)
configurations is marked (bold in Markdown and LaTeX, ``:best`` = 1 in CSV) when at least two configurations
have a value; columns without a direction are never marked.

**Protocol.** The distinct run-level protocols (``protocol``) and per-metric protocols
(``metrics.<m>.protocol``) of all collected results (reference rows included) are printed under the table,
compactly (scalar settings, an 8-hex fingerprint of the whole object); when results disagree the table says
``PROTOCOL MISMATCH`` with the differing settings and which rows use which variant, and, when the metric
protocols name different ``variant`` s (e.g. diversity ``bailando`` vs ``kinetic_l2_corrected``),
``VARIANT MISMATCH`` first, with the rows of each variant.

Outputs (atomic writes): ``table.md`` (also printed), ``table.tex`` (booktabs tabular, escaped; notes as
``%`` comments), ``table.csv`` (one line per configuration: ``<key>:mean``, ``:std``, ``:n``, ``:best``),
and with ``plot=FILE.png`` a figure (:mod:`mmgt_eval.plot`).

**Code.** This module is :func:`run` (what ``mmgt-table`` calls: collect -> build -> write -> plot) and
re-exports the pieces: :mod:`mmgt_eval.results` (loading), :mod:`mmgt_eval.aggregate` (the table),
:mod:`mmgt_eval.render` (text and files). No Hydra here: the console script is :mod:`mmgt_eval.table_cli`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmgt_eval.aggregate import Cell, Column, Row, Table, build_table, row_labels
from mmgt_eval.directions import value_direction
from mmgt_eval.render import (
    FORMATS,
    error_line,
    format_csv,
    format_latex,
    format_markdown,
    format_number,
    write_outputs,
)
from mmgt_eval.results import (
    NOT_EVALUATED,
    RESULTS_FILE,
    RunResult,
    TableError,
    collect,
    config_name,
    find_results,
    load_result,
    path_list,
)

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


def _cfg_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(v) for v in value]


def run(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Collect, build, write, plot: ``{"table", "markdown", "paths"}`` for a composed ``conf/table.yaml``."""
    runs = path_list(cfg["runs"], "runs")
    reference = cfg.get("reference")
    if reference is not None and not isinstance(reference, Mapping):
        reference = path_list(reference, "reference")
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
