"""The harness of ``bench_gpu.py``: sections in forked processes with time boxes, one table, JSON + Markdown.

A section is a function ``args -> dict`` of figures; it raises :class:`Skip` when it cannot run here. Each
runs in a forked process (the parent imports the heavy modules once and never initialises CUDA), its
stdout/stderr in ``<out>/logs/<name>.log``; a section that fails, dies or outlives its box is reported
(status, error, log tail), never fatal.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

Section = Callable[[argparse.Namespace], dict[str, Any]]


class Skip(Exception):  # noqa: N818 - a result, not an error
    """A section that cannot run here (the reason is reported)."""


def _child(fn: Section, args: argparse.Namespace, conn: Any, log: Path) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    torch.manual_seed(0)
    try:
        res = {"status": "ok", **fn(args)}
    except Skip as e:
        res = {"status": "skipped", "reason": str(e)}
    except BaseException as e:  # noqa: BLE001 - reported, not fatal
        traceback.print_exc()
        res = {"status": "error", "error": f"{type(e).__name__}: {e}"[-2000:]}
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(res)
    conn.close()


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def run_section(name: str, fn: Section, args: argparse.Namespace, box: float) -> dict[str, Any]:
    """Run one section in a forked process; after ``box`` seconds it is killed and reported as timed out."""
    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised in the parent: forked sections could not use it")
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    log = Path(args.out) / "logs" / f"{name}.log"
    args = argparse.Namespace(**{**vars(args), "box": box})  # the section's own deadline
    proc = ctx.Process(target=_child, args=(fn, args, send, log), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    send.close()
    res: dict[str, Any]
    try:
        res = recv.recv() if recv.poll(box) else {"status": "timeout", "error": f"over its {box:.0f} s box"}
    except EOFError:
        res = {"status": "error", "error": "the process died without a result"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if proc.exitcode not in (0, None) and res["status"] == "error":
        res["error"] += f" (exit code {proc.exitcode})"
    res.update(wall_s=round(time.perf_counter() - t0, 2), box_s=box)
    if res["status"] in ("error", "timeout"):
        res["log_tail"] = _tail(log)
    return res


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def summary_lines(sections: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(section, status, wall s, figures) rows of the table."""
    skip = {"status", "wall_s", "box_s", "log_tail", "config"}
    rows = []
    for name, res in sections.items():
        if res["status"] == "ok":
            figures = ", ".join(f"{k} {_fmt(v)}" for k, v in res.items() if k not in skip)
        else:
            figures = res.get("reason") or res.get("error", "")
        wall = _fmt(res.get("wall_s", ""))
        rows.append((name, res["status"], wall, figures.replace("\n", " ")[:400]))
    return rows


def write_report(out: Path, report: dict[str, Any]) -> None:
    rows = summary_lines(report["sections"])
    width = max(len(r[0]) for r in rows)
    print(f"\n== bench_gpu ({'quick, CPU' if report['quick'] else report['device']})")
    for name, status, wall, figures in rows:
        print(f"{name:<{width}} {status:<8} {wall:>7}s  {figures}")
    (out / "bench_gpu.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = [
        f"# bench_gpu: {report['device']}{' (quick)' if report['quick'] else ''}",
        "",
        f"{report['date']}, commit {report['commit']}, total {report['total_s']:.0f} s",
        "",
        "| section | status | wall s | figures |",
        "|---|---|---|---|",
    ]
    md += [f"| {n} | {s} | {w} | {f.replace('|', '/')} |" for n, s, w, f in rows]
    (out / "bench_gpu.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out / 'bench_gpu.json'} and {out / 'bench_gpu.md'}")
