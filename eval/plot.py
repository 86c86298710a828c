"""The benchmark table as a figure: ``mmgt-table ... plot=FILE.png`` and ``notebooks/02_compare_runs.ipynb``.

One panel per column of a :class:`~mmgt_eval.aggregate.Table`, on the values' own scale. Each configuration
is a row (the table's row labels with short override keys, top to bottom, and its ``n``): its mean as a dot
with ± sample std error bars, the individual runs (seeds) as small grey dots, the table's cell text above it;
the best configuration (the table's mark) in green. Reference rows are dashed vertical lines, or written
under the x axis when they lie far outside the runs' range (they would flatten the comparison) or are not
finite (PSNR of identical videos is ∞). Configurations without a value say why (``failed``, ``not
evaluated``, ``no value``). The x axis is the value, labelled with its direction.

Matplotlib's object API only (no pyplot state): :func:`plot_table` returns a ``Figure``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmgt_eval.aggregate import Table
from mmgt_eval.render import STATUS_TEXT, cell_texts, n_text
from mmgt_eval.results import TableError

__all__ = ["plot_table", "save_plot"]

PANEL_WIDTH = 4.6  # inches per panel
ROW_HEIGHT = 0.55  # inches per configuration
MAX_COLUMNS = 3  # panels per figure row
LABEL_WIDTH = 28  # characters per line of a row label (wrapped at commas)
BEST, RUN, SEED, REF = "#2ca02c", "#1f77b4", "#7f7f7f", "#444444"


def _wrap(label: str) -> str:
    """A row label on lines of about :data:`LABEL_WIDTH` characters, broken after commas."""
    lines: list[str] = []
    for part in label.split(","):
        if lines and len(lines[-1]) + 1 + len(part) <= LABEL_WIDTH:
            lines[-1] += "," + part
        else:
            lines.append(part)
    return ",\n".join(lines)


def _direction(higher: bool | None) -> str:
    return {True: "↑ higher is better", False: "↓ lower is better", None: "no direction"}[higher]


def _limits(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0:
        span = abs(hi) * 0.1 or 1.0
    return lo - 0.25 * span, hi + 0.25 * span


def _draw_run(
    ax: Any, side: Any, yi: float, row: Any, col: Any, texts: dict, index: dict, rng: Any
) -> list[float]:
    """One configuration's seeds, mean ± std and value text on ``ax`` at height ``yi``; the x values drawn."""
    cell = row.cells[col.key]
    seeds = [v for v in cell.values if math.isfinite(v)]
    mean = cell.mean
    if row.status != "ok" or mean is None:
        why = STATUS_TEXT[row.status] if row.status != "ok" else "no value"
        ax.text(0.03, yi, why, transform=side, va="center", color=SEED, style="italic")
        return []
    best = col.key in row.best
    text = texts[(index[id(row)], col.key)][0]
    color = BEST if best else RUN
    if not math.isfinite(mean):
        ax.text(0.97, yi, text, transform=side, va="center", ha="right", color=color)
        return []
    jitter = rng.uniform(-0.12, 0.12, len(seeds))
    ax.scatter(seeds, yi + jitter, s=14, color=SEED, alpha=0.7, zorder=2)
    ax.errorbar(
        mean, yi, xerr=cell.std, fmt="o", ms=7, color=color, ecolor=color, capsize=5, lw=1.6, zorder=3
    )
    ax.annotate(
        text, (mean, yi), xytext=(0, 7), textcoords="offset points", ha="center", va="bottom",
        fontsize=8.5, color=color, fontweight="bold" if best else "normal",
    )  # fmt: skip
    drawn = [mean, *seeds]
    if cell.std is not None:
        drawn += [mean - cell.std, mean + cell.std]
    return drawn


def _draw_references(
    ax: Any, refs: list, col: Any, texts: dict, index: dict, lo: float, hi: float
) -> tuple[float, float, list[str]]:
    """Reference values near the runs' range as dashed lines; (lo, hi) widened to them, the others' texts."""
    off_scale = []
    for ref in refs:
        value = ref.cells[col.key].mean
        if value is None:
            continue
        if math.isfinite(value) and lo - (hi - lo) <= value <= hi + (hi - lo):
            ax.axvline(value, ls="--", lw=1.2, color=REF, zorder=1)
            ax.text(value, 0.01, f" {ref.name}", transform=ax.get_xaxis_transform(), va="bottom",
                    ha="left", fontsize=8, color=REF)  # fmt: skip
            lo, hi = min(lo, value), max(hi, value)
        else:
            off_scale.append(f"{ref.name} = {texts[(index[id(ref)], col.key)][0]}")
    return lo, hi, off_scale


def plot_table(table: Table, columns: list[str] | None = None, sig: int = 3) -> Any:
    """A ``matplotlib.figure.Figure`` of ``table`` (``columns``: keys to draw, default every column)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    cols = [c for c in table.columns if columns is None or c.key in columns]
    if not cols:
        among = f" among {columns}" if columns else ""
        raise TableError(f"plot: nothing to draw{among}: no evaluated run reports a value (see the table)")
    rows = [r for r in table.rows if not r.reference]
    refs = [r for r in table.rows if r.reference]
    if not rows:
        raise TableError("plot: no configuration (only reference rows)")
    texts = cell_texts(table, sig, "∞")
    index = {id(r): i for i, r in enumerate(table.rows)}
    ncols = 2 if len(cols) == 4 else min(MAX_COLUMNS, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig = Figure(
        figsize=(PANEL_WIDTH * ncols + 1.8, (ROW_HEIGHT * len(rows) + 1.5) * nrows + 0.6),
        layout="constrained",
    )
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    y = np.arange(len(rows))
    rng = np.random.default_rng(0)  # seed dots are jittered vertically, reproducibly
    for k, ax in enumerate(axes.flat):
        if k >= len(cols):
            ax.set_visible(False)
            continue
        col = cols[k]
        side = blended_transform_factory(ax.transAxes, ax.transData)
        drawn = [
            v
            for yi, row in zip(y, rows, strict=True)
            for v in _draw_run(ax, side, yi, row, col, texts, index, rng)
        ]
        lo, hi = _limits(drawn) if drawn else (0.0, 1.0)
        lo, hi, off_scale = _draw_references(ax, refs, col, texts, index, lo, hi)
        ax.set_xlim(*_limits([lo, hi]) if drawn else (lo, hi))
        ax.set_title(col.key, fontsize=11, fontweight="bold")
        xlabel = f"{col.key.rsplit('/', 1)[-1]}  ({_direction(col.higher_is_better)})"
        if off_scale:  # below the axis, where it cannot hide a point
            xlabel += "\nreference off scale: " + "; ".join(off_scale)
        ax.set_xlabel(xlabel, fontsize=9.5)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=9)
        ax.set_ylim(len(rows) - 0.35, -0.7)  # first row on top; room for the value texts and reference names
    for ax in axes[:, 0]:
        ax.set_yticks(y, [f"{_wrap(r.short or r.name)}\nn = {n_text(r)}" for r in rows], fontsize=9)
    handles = [
        Line2D([], [], marker="o", color=RUN, ls="-", label="mean ± std over seeds"),
        Line2D([], [], marker="o", color=BEST, ls="-", label="best configuration"),
        Line2D([], [], marker="o", color=SEED, ls="", ms=4, label="one run (seed)"),
    ]
    if refs:
        handles.append(Line2D([], [], color=REF, ls="--", label="reference"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=2 if ncols == 1 else len(handles),
        fontsize=9,
        frameon=False,
    )
    title = "Mean ± sample std over the evaluated runs (seeds) of each configuration"
    if table.protocol_mismatch:
        title = "WARNING: the results disagree on the protocol (see the table)"
    fig.suptitle(title, fontsize=11, color="#b00020" if table.protocol_mismatch else "black")
    return fig


def save_plot(table: Table, path: str | os.PathLike[str], columns: list[str] | None = None) -> Path:
    """Write :func:`plot_table` to ``path`` (format from the suffix: .png, .pdf, .svg); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise TableError(f"plot={path}: give a .png, .pdf or .svg file")
    fig = plot_table(table, columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
