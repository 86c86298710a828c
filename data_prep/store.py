"""Clip-store writer: atomic per-clip writes, a manifest row per attempt, resume, retry and claims.

Format and file names: :mod:`mmgt.clipstore`. A clip is built in ``<root>/.tmp/<id>.<host>-<pid>`` by a
caller-supplied function and renamed into ``<root>/clips/<speaker>/<id>`` only when that function
returned; its manifest row (with sha256 checksums of every file) is appended afterwards under a file
lock, so several processes or SLURM array tasks may write into one store.

Faults: a row torn by a killed append (no newline at the end of the file) is cut off, and kept in
``manifest.jsonl.torn``, before the next append; temporary folders of dead processes of this host are
removed when a writer opens the store. Concurrent preps split the work through :meth:`ClipStoreWriter.claim`
(an ``flock`` per unit of work in ``<root>/.tmp/claims``: the kernel releases it when its holder dies, so a
killed prep leaves no stale claim).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from mmgt.atomic import write_text
from mmgt.clipstore import (
    MANIFEST,
    META_FILE,
    STATUS_FAILED,
    STATUS_OK,
    TMP_DIR,
    ClipRecord,
    clip_relpath,
    read_manifest,
)
from mmgt.digest import sha256_file
from mmgt.untrusted import check_name

log = logging.getLogger(__name__)

FAULT_ENV = "MMGT_FAULT_INJECT"
"""Fault injection for the fault tests: ``manifest_append:N`` makes the N-th manifest append of this process
write half its row and then SIGKILL the process group (a prep killed mid-append, at a chosen moment)."""
_appends = 0

CLAIMS_DIR = "claims"
"""Under ``<root>/.tmp``: one ``<key>.lock`` per unit of work being made (:meth:`ClipStoreWriter.claim`)."""
TORN_FILE = MANIFEST + ".torn"
"""Torn manifest rows cut off by :meth:`ClipStoreWriter.append_row` (kept for inspection)."""


def _inject_torn_append(f: Any, line: bytes) -> None:
    """The ``manifest_append:N`` fault of :data:`FAULT_ENV` (a no-op unless that variable asks for it)."""
    global _appends
    spec = os.environ.get(FAULT_ENV, "")
    if not spec.startswith("manifest_append:"):
        return
    _appends += 1
    if _appends == int(spec.split(":", 1)[1]):
        f.write(line[: len(line) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.killpg(os.getpgid(0), signal.SIGKILL)


class ClipStoreWriter:
    """Writes clips into a store at ``root``.

    Args:
        root: store folder (created if missing).
        retry_failed: when False, clips whose last manifest row is ``failed`` count as done.
    """

    def __init__(self, root: str | Path, retry_failed: bool = False) -> None:
        self.root = Path(root)
        self.retry_failed = retry_failed
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(
                f"{self.root}: exists and is a file, not a clip-store folder; give another out="
            )
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / TMP_DIR).mkdir(exist_ok=True)
        self.manifest_path = self.root / MANIFEST
        self.manifest_path.touch(exist_ok=True)
        self._known = read_manifest(self.root)
        self._tag = f"{socket.gethostname()}-{os.getpid()}"
        self._clean_dead_tmp()

    def _clean_dead_tmp(self) -> None:
        """Remove ``.tmp/<id>.<host>-<pid>`` folders of processes of this host that no longer run."""
        host = socket.gethostname()
        for d in (self.root / TMP_DIR).glob(f"*.{host}-*"):
            try:
                os.kill(int(d.name.rsplit("-", 1)[1]), 0)
            except (ValueError, ProcessLookupError):
                shutil.rmtree(d, ignore_errors=True)
            except PermissionError:  # alive, another user's
                pass

    def refresh(self) -> None:
        """Re-read the manifest (clips other processes finished since this writer opened the store)."""
        self._known = read_manifest(self.root)

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[bool]:
        """Claim the unit of work ``key`` (a clip or source id) while the ``with`` block runs.

        Yields True when this process holds the claim (after re-reading the manifest, so :meth:`is_done`
        sees what others finished), False when another live process holds it: skip the work, the other
        process makes it. The claim is an ``flock``, released on exit and by the kernel when the holder
        dies.
        """
        claims = self.root / TMP_DIR / CLAIMS_DIR
        path = claims / f"{check_name(key, 'claim key', str(self.root))}.lock"
        while True:
            claims.mkdir(parents=True, exist_ok=True)
            try:
                f = open(path, "a")  # noqa: SIM115 - held across the yield
            except FileNotFoundError:  # the folder was removed by a releasing holder: again
                continue
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                yield False
                return
            try:  # the holder before us may have unlinked the file it locked: ours must be the file there
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()
        try:
            self.refresh()
            yield True
        finally:
            path.unlink(missing_ok=True)  # while still locked: a waiter re-checks the inode
            with contextlib.suppress(OSError):
                claims.rmdir()  # only when empty
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    @property
    def records(self) -> dict[str, ClipRecord]:
        """The store's clips as this writer knows them (last row per id), keyed by id."""
        return self._known

    def status(self, clip_id: str) -> str | None:
        """Last recorded status of ``clip_id`` (None when never attempted)."""
        rec = self._known.get(clip_id)
        return None if rec is None else rec.status

    def is_done(self, clip_id: str) -> bool:
        """True when the clip need not be processed again (ok and on disk, or failed without retry)."""
        rec = self._known.get(clip_id)
        if rec is None:
            return False
        if rec.status == STATUS_OK:
            return (self.root / clip_relpath(rec.speaker, rec.id) / META_FILE).is_file()
        return not self.retry_failed

    def write_clip(self, record: ClipRecord, write: Callable[[Path], None]) -> ClipRecord:
        """Build a clip with ``write(tmp_dir)`` and move it into place atomically.

        ``write`` fills the given empty folder (video.mp4, audio.wav, keypoints.npy, ...). If it
        raises, the temporary folder is removed, a ``failed`` row carrying the error is appended and
        that record is returned: the batch goes on. Returns the record as written to the manifest.
        """
        tmp = self.root / TMP_DIR / f"{record.id}.{self._tag}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        final = self.root / clip_relpath(record.speaker, record.id)
        try:
            write(tmp)
            checksums = {
                p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            done = replace(record, status=STATUS_OK, error=None, checksums=checksums)
            (tmp / META_FILE).write_text(done.to_json() + "\n")
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # an older version of the clip (overwrite or retry): replace it
                old = final.with_name(f".{final.name}.old.{self._tag}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except Exception as e:  # noqa: BLE001 - every failure becomes a manifest row
            shutil.rmtree(tmp, ignore_errors=True)
            done = replace(record, status=STATUS_FAILED, error=f"{type(e).__name__}: {e}")
            done.extra = {**done.extra, "traceback": traceback.format_exc(limit=3)}
        self.append_row(done)
        return done

    def set_split(self, record: ClipRecord, split: str) -> ClipRecord:
        """Move an ok clip to another split (``mmgt-prep ... resplit=true``).

        Its ``meta.json`` is rewritten (atomically) and a row with the new split is appended; the clip's
        files are untouched.
        """
        extra = {k: v for k, v in record.extra.items() if k != "written_at"}  # a row's time, not the clip's
        done = replace(record, split=split, extra=extra)
        meta = self.root / clip_relpath(record.speaker, record.id) / META_FILE
        write_text(meta, done.to_json() + "\n")
        self.append_row(done)
        return done

    def record_failure(self, record: ClipRecord, error: str) -> ClipRecord:
        """Append a ``failed`` row for a clip that could not even be started."""
        done = replace(record, status=STATUS_FAILED, error=error)
        self.append_row(done)
        return done

    def append_row(self, record: ClipRecord) -> None:
        """Append one manifest row under an exclusive lock (safe across processes).

        A torn last row left by a killed writer is cut off first (and kept in ``manifest.jsonl.torn``).
        """
        row = json.loads(record.to_json())
        row["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        with self.manifest_path.open("r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                self._cut_torn_tail(f)
                f.seek(0, os.SEEK_END)
                _inject_torn_append(f, line)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        self._known[record.id] = record

    def _cut_torn_tail(self, f: Any) -> None:
        """Truncate ``f`` (the locked manifest) after its last newline; the cut bytes go to TORN_FILE."""
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        start = max(0, end - (1 << 16))
        while True:  # find the last newline (rows are short: one 64 KiB block almost always holds it)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0 or start == 0:
                break
            start = max(0, start - (1 << 16))
        keep = start + cut + 1 if cut >= 0 else 0
        f.seek(keep)
        torn = f.read()
        with (self.root / TORN_FILE).open("ab") as t:
            t.write(torn + b"\n")
        f.truncate(keep)
        log.warning(
            "%s: cut off a torn last row (%d bytes, kept in %s)", self.manifest_path, len(torn), TORN_FILE
        )
