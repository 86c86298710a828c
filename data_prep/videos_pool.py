"""The process pool of ``mmgt-prep source=videos``: ``workers=N`` spawns N processes.

Each process builds one :class:`~mmgt_prep.videos_worker.Worker` (one mediapipe graph, one
ClipStoreWriter) and takes sources (one task each) from a queue; its events come back to the parent. A
worker that dies gets WorkerCrash rows for its unfinished clips. Processes are started with ``spawn``, so
:func:`_worker_main` must stay importable at the top level of this module.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmgt.clipstore import TMP_DIR
from mmgt_prep.videos_config import VideoPrepConfig
from mmgt_prep.videos_discover import SourceTask
from mmgt_prep.videos_worker import Worker

log = logging.getLogger("mmgt_prep.videos")  # the name the prep logged under before the split


def _worker_main(cfg: VideoPrepConfig, tasks: Any, events: Any, parent_pid: int) -> None:
    """A pool process: build one Worker (one mediapipe graph), then process tasks until ``None``.

    Sends ``("take", pid, task index)`` before each task, the Worker's events, and ``("exit", pid)``
    after the last write. Quits on its own when the parent process is gone.
    """
    logging.basicConfig(level=logging.WARNING)
    worker = Worker(cfg, events.put)
    try:
        while True:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent_pid:
                    return  # orphaned (the parent was killed): stop
                continue
            if item is None:
                break
            index, task = item
            events.put(("take", worker.pid, index))
            worker.process(task)
    finally:
        worker.close()
    events.put(("exit", worker.pid))


def _record_crash(
    cfg: VideoPrepConfig,
    order: list[SourceTask],
    lost: list[str],
    proc: Any,
    handle: Callable[[tuple[Any, ...]], None],
) -> None:
    """Failed rows for the clips a dead worker process had taken and not reported."""
    from mmgt_prep.store import ClipStoreWriter

    log.error("worker %d died (exit code %s) with %d clips unfinished", proc.pid, proc.exitcode, len(lost))
    shutil.rmtree(Path(cfg.out) / TMP_DIR / f"scratch-{socket.gethostname()}-{proc.pid}", ignore_errors=True)
    writer = ClipStoreWriter(cfg.out, retry_failed=cfg.retry_failed)
    by_id = {s.clip_id: (t, s) for t in order for s in t.segments}
    for clip_id in lost:
        task, seg = by_id[clip_id]
        reason = f"WorkerCrash: the worker process died (exit code {proc.exitcode}) while making {task.path}"
        writer.record_failure(seg.record(task.rel, cfg.size), reason)
        handle(("clip", proc.pid, {"id": clip_id, "status": "failed", "error": reason, "n_frames": 0}))


def _run_pool(
    cfg: VideoPrepConfig, order: list[SourceTask], handle: Callable[[tuple[Any, ...]], None]
) -> None:
    """Run ``order`` on ``cfg.workers`` spawned processes; events go to ``handle`` in this process.

    A worker that dies (e.g. a crash inside a native library) is detected: the clips it had taken and
    not reported get failed rows naming the exit code, and the other workers carry on.
    """
    ctx = multiprocessing.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    for item in enumerate(order):
        tasks.put(item)
    n = min(cfg.workers, len(order))
    for _ in range(n):
        tasks.put(None)
    procs = [
        ctx.Process(target=_worker_main, args=(cfg, tasks, events, os.getpid()), daemon=True)
        for _ in range(n)
    ]
    for proc in procs:
        proc.start()
    taken: dict[int, set[str]] = {}  # pid -> clips taken and not reported yet
    exited: set[int] = set()

    def dispatch(event: tuple[Any, ...]) -> None:
        kind, pid = event[0], event[1]
        if kind == "take":
            taken.setdefault(pid, set()).update(s.clip_id for s in order[event[2]].pending)
        elif kind == "clip":
            taken.get(pid, set()).discard(event[2]["id"])
        elif kind == "exit":
            exited.add(pid)
        handle(event)

    try:
        while len(exited) < n:
            try:
                dispatch(events.get(timeout=0.5))
                continue
            except queue.Empty:
                pass
            for proc in procs:
                if proc.pid in exited or proc.exitcode is None:
                    continue
                while True:  # its last events may still be in the pipe
                    try:
                        dispatch(events.get(timeout=0.2))
                    except queue.Empty:
                        break
                if proc.pid in exited:
                    continue
                exited.add(proc.pid)
                _record_crash(cfg, order, sorted(taken.pop(proc.pid, set())), proc, handle)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


__all__ = ["_run_pool", "_worker_main"]  # internal to mmgt_prep.videos: its driver and the spawn target
