"""An honest exit status for ``mmgt-train`` multiruns: :class:`SweepReport`, a Hydra callback.

A failing job of a sweep records ``results.json`` with ``run.status: failed`` and returns, so that the other
jobs still run (whatever the launcher: basic, submitit local or SLURM). After the last job, this callback
(``hydra.callbacks.sweep_report`` in ``conf/train.yaml``; it runs in the launching process) reads the job
folders of the sweep, prints every failed job (folder and error) and exits with status 1.
Hydra turns exceptions raised by callbacks into warnings, hence ``SystemExit``. Job folders older than the
sweep's ``multirun.yaml`` (left by an earlier sweep into the same folder) are not counted.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from mmgt_eval.render import error_line

RESULTS_FILE = "results.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
MULTIRUN_FILE = "multirun.yaml"
"""Written by Hydra's sweeper into the sweep folder when the sweep starts."""
STALE_S = 60.0
"""Jobs whose overrides file is this much older than the sweep's ``multirun.yaml`` belong to an earlier sweep
(slack for clocks of cluster nodes that write to a shared file system)."""


@dataclass(frozen=True)
class FailedJob:
    """A job of the sweep that did not succeed: its folder and why."""

    folder: Path
    error: str


def failed_jobs(sweep_dir: str | Path) -> tuple[list[FailedJob], int]:
    """(failed jobs, jobs seen) among the job folders of a multirun folder.

    A job folder holds ``.hydra/overrides.yaml`` (written when the job starts). It failed when its
    ``results.json`` says ``run.status: failed``, or when it has none (killed, crashed hard), or when the
    file is unreadable. Jobs older than the sweep (:data:`STALE_S` before its ``multirun.yaml``) are left out.
    """
    root = Path(sweep_dir)
    failed: list[FailedJob] = []
    seen = 0
    if not root.is_dir():
        return failed, seen
    marker = root / MULTIRUN_FILE
    since = marker.stat().st_mtime - STALE_S if marker.is_file() else None
    for overrides in sorted(root.rglob(str(OVERRIDES_FILE))):
        job = overrides.parent.parent
        if any(part.startswith(".") for part in job.relative_to(root).parts):
            continue  # .submitit/ etc.
        if since is not None and overrides.stat().st_mtime < since:
            continue
        seen += 1
        results = job / RESULTS_FILE
        if not results.is_file():
            failed.append(FailedJob(job, f"no {RESULTS_FILE}: the job did not finish (killed or crashed?)"))
            continue
        try:
            run = json.loads(results.read_text()).get("run") or {}
        except (OSError, ValueError, AttributeError) as e:
            failed.append(FailedJob(job, f"{results}: unreadable ({e})"))
            continue
        if run.get("status") == "failed":
            failed.append(FailedJob(job, error_line(run.get("error"), limit=400)))
    return failed, seen


def report(failed: list[FailedJob], seen: int) -> str:
    """The message printed when jobs failed."""
    lines = [f"mmgt-train: {len(failed)} of {seen} sweep jobs failed (the others' results are kept):"]
    lines += [f"  {f.folder}: {f.error}" for f in failed]
    return "\n".join(lines)


class SweepReport(Callback):
    """Hydra callback: after a multirun, list the failed jobs and exit 1 if there are any."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        """Hydra's hook after the last job: list the failed jobs and exit 1 when there are any."""
        failed, seen = failed_jobs(config.hydra.sweep.dir)
        if failed:
            sys.stdout.flush()
            raise SystemExit(report(failed, seen))
