"""Atomic outputs: files and folders that appear complete or not at all, and never silently replace work.

* :func:`atomic_file` - write a file through a temporary sibling, renamed into place on success;
  :func:`write_text`, :func:`write_json`, :func:`save_npy` for whole files at once.
* :func:`staged_folder` - build a whole output folder beside its target, renamed into place on success.
* :func:`check_new_output` - refuse an existing file or non-empty folder unless ``overwrite``.
* :class:`NpyStreamWriter` - a ``.npy`` array written piece by piece (memory O(piece) for any length).

On an exception nothing partial is left: no temporary file, no half-filled folder, no empty parent folder
that the call itself created.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | Path


class OutputExistsError(FileExistsError):
    """An output path that is taken (the message says what to do)."""


def check_new_output(path: PathLike, overwrite: bool, kind: str = "file") -> Path:
    """``path`` as an output that may be written (``kind``: ``"file"`` or ``"folder"``).

    Refused (OutputExistsError) when it exists as the wrong kind (a file where a folder goes, a folder where
    a file goes), or as a file / non-empty folder and ``overwrite`` is False.
    """
    p = Path(path)
    if kind == "folder" and p.is_file():
        raise OutputExistsError(f"{p}: exists and is a file, but a folder is written here; give another path")
    if kind == "file" and p.is_dir():
        raise OutputExistsError(f"{p}: exists and is a folder, but a file is written here; give another path")
    taken = p.is_file() or (p.is_dir() and any(p.iterdir()))
    if taken and not overwrite:
        what = "file exists" if p.is_file() else "folder exists and is not empty"
        raise OutputExistsError(f"{p}: {what}; set overwrite=true to replace it")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _parents_removed_on_error(path: Path) -> Iterator[None]:
    """Create ``path``'s missing parents; on an exception remove those of them that are still empty."""
    created: list[Path] = []
    parent = path.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()
        raise


def temp_sibling(path: PathLike) -> Path:
    """A new empty file beside ``path`` with its suffix and the usual permissions (mkstemp makes 0600).

    The caller renames it into place or deletes it.
    """
    p = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) that replaces ``path`` on success.

    On an exception it is deleted (and so are parents this call created).
    """
    p = Path(path)
    with _parents_removed_on_error(p):
        tmp = temp_sibling(p)
        try:
            yield tmp
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) atomically and durably (on disk before the rename)."""
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def write_json(path: PathLike, data: Any, **dumps: Any) -> Path:
    """``data`` as indented JSON plus a newline, atomically (``dumps``: e.g. ``allow_nan=False``)."""
    return write_text(path, json.dumps(data, indent=2, **dumps) + "\n")


def save_npy(path: PathLike, array: np.ndarray) -> Path:
    """``np.save`` atomically (no pickles: object arrays are refused by numpy's allow_pickle=False)."""
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)
    return Path(path)


@contextlib.contextmanager
def staged_folder(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` that becomes ``path`` on success.

    An existing one is replaced only with ``overwrite`` (see :func:`check_new_output`); on an exception the
    temporary folder is removed.
    """
    p = check_new_output(path, overwrite, "folder")
    with _parents_removed_on_error(p):
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.", dir=p.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the final folder gets the usual permissions
        try:
            yield tmp
            if p.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{p.name}.old.", dir=p.parent))
                os.replace(p, old / p.name)
                os.replace(tmp, p)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, p)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class NpyStreamWriter:
    """Write a ``.npy`` array of known ``shape`` piece by piece along axis 0 (C order), atomically.

    Usage: ``with NpyStreamWriter(path, (T, R, h, w)) as w: w.write(piece)`` for pieces that add up to T
    rows; fewer or more rows than declared is an error and leaves no file.
    """

    def __init__(self, path: PathLike, shape: Sequence[int], dtype: np.dtype | type = np.float32) -> None:
        self.path, self.shape, self.dtype = Path(path), tuple(int(s) for s in shape), np.dtype(dtype)
        self.rows = 0
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> NpyStreamWriter:
        tmp = self._stack.enter_context(atomic_file(self.path))
        self._f = self._stack.enter_context(tmp.open("wb"))
        descr = np.lib.format.dtype_to_descr(self.dtype)
        np.lib.format.write_array_header_1_0(
            self._f, {"descr": descr, "fortran_order": False, "shape": self.shape}
        )
        return self

    def write(self, piece: np.ndarray) -> None:
        """Append rows (n, *shape[1:])."""
        arr = np.ascontiguousarray(piece, dtype=self.dtype)
        if arr.shape[1:] != self.shape[1:] or self.rows + arr.shape[0] > self.shape[0]:
            raise ValueError(
                f"{self.path}: piece {arr.shape} does not continue an array of shape {self.shape} "
                f"({self.rows} rows written)"
            )
        self._f.write(arr.tobytes())
        self.rows += arr.shape[0]

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc_type is None and self.rows != self.shape[0]:
            try:
                raise ValueError(f"{self.path}: {self.rows} rows written, {self.shape[0]} declared")
            except ValueError as e:
                self._stack.__exit__(type(e), e, e.__traceback__)
                raise
        self._stack.__exit__(exc_type, exc, tb)


__all__ = [
    "NpyStreamWriter",
    "OutputExistsError",
    "atomic_file",
    "check_new_output",
    "save_npy",
    "staged_folder",
    "temp_sibling",
    "write_json",
    "write_text",
]
