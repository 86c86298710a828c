"""Clip store: atomic per-clip writes, manifest rows, resume, retry, concurrent writers, reader."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest

from mmgt.clipstore import (
    KEYPOINTS_FILE,
    MANIFEST,
    META_FILE,
    PREPARING,
    TMP_DIR,
    ClipRecord,
    ClipStore,
    ensure_store,
    read_manifest,
)
from mmgt_prep.store import ClipStoreWriter


def _write_kps(t: int):
    def write(d: Path) -> None:
        np.save(d / KEYPOINTS_FILE, np.zeros((t, 134, 3), np.float32))

    return write


def _fail(d: Path) -> None:
    (d / "partial.bin").write_bytes(b"half a clip")
    raise RuntimeError("decoder exploded")


def test_write_read_and_checksums(tmp_path: Path) -> None:
    w = ClipStoreWriter(tmp_path)
    rec = w.write_clip(ClipRecord(id="a", speaker="s1", n_frames=5), _write_kps(5))
    assert rec.status == "ok" and KEYPOINTS_FILE in rec.checksums
    store = ClipStore(tmp_path)
    (clip,) = store.clips()
    assert clip.keypoints().shape == (5, 134, 3)
    assert json.loads((clip.dir / META_FILE).read_text())["id"] == "a"
    assert clip.features("logmel") is None


def test_failure_is_recorded_and_leaves_no_partial_clip(tmp_path: Path) -> None:
    w = ClipStoreWriter(tmp_path)
    rec = w.write_clip(ClipRecord(id="bad", speaker="s1"), _fail)
    assert rec.status == "failed" and "decoder exploded" in rec.error
    assert not (tmp_path / "clips" / "s1" / "bad").exists()
    assert list((tmp_path / TMP_DIR).iterdir()) == []
    store = ClipStore(tmp_path)
    assert store.clips() == [] and [r.id for r in store.failed()] == ["bad"]


def test_resume_and_retry_failed(tmp_path: Path) -> None:
    w = ClipStoreWriter(tmp_path)
    w.write_clip(ClipRecord(id="a", speaker="s"), _write_kps(3))
    w.write_clip(ClipRecord(id="b", speaker="s"), _fail)
    again = ClipStoreWriter(tmp_path)
    assert again.is_done("a") and again.is_done("b") and not again.is_done("c")
    retry = ClipStoreWriter(tmp_path, retry_failed=True)
    assert not retry.is_done("b")
    retry.write_clip(ClipRecord(id="b", speaker="s"), _write_kps(4))
    assert {c.record.id for c in ClipStore(tmp_path).clips()} == {"a", "b"}
    # a clip whose folder vanished is not done even if the manifest says ok
    import shutil

    shutil.rmtree(tmp_path / "clips" / "s" / "a")
    assert not ClipStoreWriter(tmp_path).is_done("a")


def test_split_and_speaker_filters(tmp_path: Path) -> None:
    w = ClipStoreWriter(tmp_path)
    for i, (spk, split) in enumerate([("x", "train"), ("x", "test"), ("y", "train")]):
        w.write_clip(ClipRecord(id=f"c{i}", speaker=spk, split=split), _write_kps(2))
    store = ClipStore(tmp_path)
    assert [c.record.id for c in store.clips(split="train")] == ["c0", "c2"]
    assert [c.record.id for c in store.clips(speakers=["y"])] == ["c2"]
    assert store.speakers() == ["x", "y"]
    with pytest.raises(KeyError, match="nope"):
        store.clip("nope")


def _worker(args: tuple[str, int]) -> None:
    root, k = args
    w = ClipStoreWriter(root)
    for i in range(5):
        w.write_clip(ClipRecord(id=f"w{k}_{i}", speaker=f"s{k}"), _write_kps(2))


def test_concurrent_writers_keep_manifest_whole(tmp_path: Path) -> None:
    ClipStoreWriter(tmp_path)
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_worker, [(str(tmp_path), 0), (str(tmp_path), 1)])
    rows = (tmp_path / MANIFEST).read_text().splitlines()
    assert len(rows) == 10 and all(json.loads(r)["status"] == "ok" for r in rows)
    assert len(ClipStore(tmp_path).clips()) == 10


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST).write_text('{"id": "a", "speaker": "s"}\nnot json\n')
    with pytest.raises(ValueError, match=r"manifest.jsonl:2"):
        read_manifest(tmp_path)


def _slow_prepare(root: Path) -> None:
    """A preparation whose manifest appears long before the store is complete (as a real one's)."""
    with open(root / MANIFEST, "a") as f:
        f.write("row 1\n")
    time.sleep(1.5)
    with open(root / MANIFEST, "a") as f:
        f.write("row 2\n")
    with open(root / "prepare_calls", "a") as f:
        f.write("x")


def _ensure_then_read(root: Path, out: mp.Queue) -> None:
    ensure_store(root, _slow_prepare)
    out.put((root / MANIFEST).read_text())


def test_ensure_store_prepares_once_for_concurrent_processes(tmp_path: Path) -> None:
    """Two sweep jobs start together on a missing store: one prepares, the other waits for all of it."""
    root = tmp_path / "store"
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ensure_then_read, args=(root, out)) for _ in range(2)]
    for p in procs:
        p.start()
    seen = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert seen == ["row 1\nrow 2\n"] * 2  # neither saw the half-made store
    assert (root / "prepare_calls").read_text() == "x"
    assert not (root / PREPARING).exists()


def test_ensure_store_skips_a_store_and_resumes_a_killed_preparation(tmp_path: Path) -> None:
    calls: list[Path] = []
    ensure_store(tmp_path / "a", None)  # nothing to prepare with: nothing happens
    assert not (tmp_path / "a").exists()
    done = tmp_path / "done"
    done.mkdir()
    (done / MANIFEST).write_text("row\n")
    ensure_store(done, calls.append)  # a store made earlier (e.g. by mmgt-prep) is left alone
    assert calls == []
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / MANIFEST).write_text("row 1\n")
    (killed / PREPARING).touch()  # a preparation killed half-way
    ensure_store(killed, calls.append)
    assert calls == [killed] and not (killed / PREPARING).exists()
