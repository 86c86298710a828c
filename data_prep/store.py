"""Clip-store writer: atomic per-clip writes, a manifest row per attempt, resume and retry.

Format and file names: :mod:`mmgt.clipstore`. A clip is built in ``<root>/.tmp/<id>.<pid>`` by a
caller-supplied function and renamed into ``<root>/clips/<speaker>/<id>`` only when that function
returned; its manifest row (with sha256 checksums of every file) is appended afterwards under a file
lock, so several processes or SLURM array tasks may write into one store.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ClipStoreWriter:
    """Writes clips into a store at ``root``.

    Args:
        root: store folder (created if missing).
        retry_failed: when False, clips whose last manifest row is ``failed`` count as done.
    """

    def __init__(self, root: str | Path, retry_failed: bool = False) -> None:
        self.root = Path(root)
        self.retry_failed = retry_failed
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / TMP_DIR).mkdir(exist_ok=True)
        self.manifest_path = self.root / MANIFEST
        self.manifest_path.touch(exist_ok=True)
        self._known = read_manifest(self.root)

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
        tmp = self.root / TMP_DIR / f"{record.id}.{os.getpid()}"
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
                old = final.with_name(f".{final.name}.old.{os.getpid()}")
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

    def record_failure(self, record: ClipRecord, error: str) -> ClipRecord:
        """Append a ``failed`` row for a clip that could not even be started."""
        done = replace(record, status=STATUS_FAILED, error=error)
        self.append_row(done)
        return done

    def append_row(self, record: ClipRecord) -> None:
        """Append one manifest row under an exclusive lock (safe across processes)."""
        row = json.loads(record.to_json())
        row["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        line = json.dumps(row, sort_keys=True) + "\n"
        with self.manifest_path.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        self._known[record.id] = record
