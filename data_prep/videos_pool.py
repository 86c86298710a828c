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


class _Pool:
    """Spawned worker processes over a task queue, and the bookkeeping that notices a dead one.

    The bookkeeping: which clips each process took and has not reported, which processes said they exit.
    """

    def __init__(
        self, cfg: VideoPrepConfig, order: list[SourceTask], handle: Callable[[tuple[Any, ...]], None]
    ):
        self.cfg, self.order, self.handle = cfg, order, handle
        ctx = multiprocessing.get_context("spawn")
        self.tasks, self.events = ctx.Queue(), ctx.Queue()
        for item in enumerate(order):
            self.tasks.put(item)
        self.n = min(cfg.workers, len(order))
        for _ in range(self.n):
            self.tasks.put(None)
        self.procs = [
            ctx.Process(target=_worker_main, args=(cfg, self.tasks, self.events, os.getpid()), daemon=True)
            for _ in range(self.n)
        ]
        self.taken: dict[int, set[str]] = {}  # pid -> clips taken and not reported yet
        self.exited: set[int] = set()

    def dispatch(self, event: tuple[Any, ...]) -> None:
        kind, pid = event[0], event[1]
        if kind == "take":
            self.taken.setdefault(pid, set()).update(s.clip_id for s in self.order[event[2]].pending)
        elif kind == "clip":
            self.taken.get(pid, set()).discard(event[2]["id"])
        elif kind == "exit":
            self.exited.add(pid)
        self.handle(event)

    def drain(self, timeout: float) -> None:
        """Dispatch the events already in the pipe (until none comes for ``timeout`` s)."""
        while True:
            try:
                self.dispatch(self.events.get(timeout=timeout))
            except queue.Empty:
                return

    def reap_dead(self) -> None:
        """Record the unreported clips of every process that ended without saying it exits."""
        for proc in self.procs:
            if proc.pid in self.exited or proc.exitcode is None:
                continue
            self.drain(0.2)  # its last events may still be in the pipe
            if proc.pid in self.exited:
                continue
            self.exited.add(proc.pid)
            _record_crash(self.cfg, self.order, sorted(self.taken.pop(proc.pid, set())), proc, self.handle)

    def run(self) -> None:
        for proc in self.procs:
            proc.start()
        try:
            while len(self.exited) < self.n:
                try:
                    self.dispatch(self.events.get(timeout=0.5))
                except queue.Empty:
                    self.reap_dead()
        finally:
            for proc in self.procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()


def _run_pool(
    cfg: VideoPrepConfig, order: list[SourceTask], handle: Callable[[tuple[Any, ...]], None]
) -> None:
    """Run ``order`` on ``cfg.workers`` spawned processes; events go to ``handle`` in this process.

    A worker that dies (e.g. a crash inside a native library) is detected: the clips it had taken and
    not reported get failed rows naming the exit code, and the other workers carry on.
    """
    _Pool(cfg, order, handle).run()


__all__ = ["_run_pool", "_worker_main"]  # internal to mmgt_prep.videos: its driver and the spawn target
