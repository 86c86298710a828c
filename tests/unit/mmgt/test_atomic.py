"""The floor every package writes and hashes through: mmgt.atomic (whole or nothing) and mmgt.digest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mmgt.atomic import (
    NpyStreamWriter,
    OutputExistsError,
    atomic_file,
    check_new_output,
    save_npy,
    staged_folder,
    write_json,
    write_text,
)
from mmgt.digest import sha256_file


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_file_replaces_on_success_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and _names(tmp_path) == ["a.txt"]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and _names(tmp_path) == ["a.txt"]


def test_a_failed_write_removes_the_parents_it_created(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "x" / "y" / "z.json"):
        raise RuntimeError("killed")
    assert _names(tmp_path) == []


def test_write_json_and_text_keep_the_usual_permissions(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"a": 1.5, "b": [1, 2]}, allow_nan=False)
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [1, 2]} and path.read_text().endswith("}\n")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ValueError, match="Out of range float"):
        write_json(tmp_path / "r.json", {"a": float("nan")}, allow_nan=False)
    assert json.loads(path.read_text())["a"] == 1.5  # the refused write left the old file
    assert write_text(tmp_path / "t.csv", "a,b\r\n1,2\r\n").read_bytes() == b"a,b\r\n1,2\r\n"


def test_save_npy_refuses_object_arrays(tmp_path: Path) -> None:
    save_npy(tmp_path / "k.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.load(tmp_path / "k.npy").shape == (2, 3)
    with pytest.raises(ValueError, match="allow_pickle"):
        save_npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert _names(tmp_path) == ["k.npy"]


def test_outputs_are_not_replaced_silently(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "kept").write_text("x")
    with pytest.raises(OutputExistsError, match="set overwrite=true"):
        check_new_output(tmp_path / "f", overwrite=False)
    with pytest.raises(OutputExistsError, match="is a file, but a folder is written here"):
        check_new_output(tmp_path / "f", overwrite=True, kind="folder")
    with pytest.raises(OutputExistsError, match="not empty"), staged_folder(tmp_path / "d"):
        pass
    with staged_folder(tmp_path / "d", overwrite=True) as tmp:
        (tmp / "new").write_text("y")
    assert _names(tmp_path / "d") == ["new"] and _names(tmp_path) == ["d", "f"]


def test_npy_stream_writer_needs_every_declared_row(tmp_path: Path) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    with NpyStreamWriter(tmp_path / "s.npy", (4, 3)) as w:
        w.write(rows[:3])
        w.write(rows[3:])
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), rows)
    with (
        pytest.raises(ValueError, match="3 rows written, 4 declared"),
        NpyStreamWriter(tmp_path / "t.npy", (4, 3)) as w,
    ):
        w.write(rows[:3])
    assert not (tmp_path / "t.npy").exists()


def test_sha256_file_is_hashlib_and_follows_rewrites(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    data = os.urandom(3 << 20)  # three read blocks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    path.write_bytes(data[:-1])
    assert sha256_file(path) == hashlib.sha256(data[:-1]).hexdigest()
