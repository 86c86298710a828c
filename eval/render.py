"""A :class:`~mmgt_eval.aggregate.Table` as text (Markdown, booktabs LaTeX, CSV) and as table.* files.

Numbers get the column's decimals (``significant_digits`` for its smallest magnitude); a cell is its mean ±
sample std, ``(n=k)`` when fewer runs have it, or the row's status; failed runs, metrics, notes and protocols
are listed under the table. :func:`cell_texts` and :func:`n_text` are shared with :mod:`mmgt_eval.plot`.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmgt.atomic import write_text
from mmgt_eval.aggregate import Column, Row, Table
from mmgt_eval.results import NOT_EVALUATED, TableError

__all__ = [
    "FORMATS",
    "STATUS_TEXT",
    "cell_texts",
    "error_line",
    "format_csv",
    "format_latex",
    "format_markdown",
    "format_number",
    "latex_escape",
    "n_text",
    "render",
    "write_outputs",
]

FORMATS: tuple[str, ...] = ("md", "tex", "csv")


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


def cell_texts(table: Table, sig: int, inf: str) -> dict[tuple[int, str], tuple[str, bool]]:
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


def n_text(row: Row) -> str:
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
    """An error message on one line, without its traceback.

    Hydra's InstantiationException puts the cause on the lines after its first.
    """
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
    texts = cell_texts(table, sig, "∞")
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
        lines.append("| " + " | ".join([_md_escape(row.name), n_text(row), *cells]) + " |")
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
    r"""A booktabs ``tabular`` (``\usepackage{booktabs}``); legend, failures and protocols as comments."""
    texts = cell_texts(table, sig, "inf")
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
    """One line per configuration.

    Columns: label, kind, status, n, failures, not-evaluated runs, then mean, std, n, best per column.
    """
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
