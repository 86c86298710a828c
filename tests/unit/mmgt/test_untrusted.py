"""Untrusted input: planted pickles never run, manifests cannot lead outside the store, torn rows, claims,
class names from exports, and a grep that keeps unsafe loading out of the code base."""

from __future__ import annotations

import ast
import json
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mmgt.clipstore import MANIFEST, ClipRecord, ClipStore, clip_relpath, read_manifest
from mmgt.untrusted import UntrustedFileError, check_name, inside, load_npy, load_pickled_npy, npy_header
from mmgt_prep.importers import ImportFormatError, discover_sources, load_echomimic_dir
from mmgt_prep.store import TORN_FILE, ClipStoreWriter
from tests.helpers.shared import REPO, compose_config, samples_path


class _Planted:
    """A pickle payload whose load would create ``marker`` (``open(marker, "w")`` via __reduce__)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, wrap_in_dict: bool = False) -> None:
    payload = {"bodies": _Planted(marker)} if wrap_in_dict else _Planted(marker)
    np.save(path, np.array(payload, dtype=object), allow_pickle=True)  # trusted-pickle: writing


def test_a_planted_pickle_never_runs_while_detecting_or_importing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    folder = tmp_path / "poses" / "clip"
    folder.mkdir(parents=True)
    _plant(folder / "0.npy", marker)
    _plant(folder / "1.npy", marker, wrap_in_dict=True)
    (src,) = discover_sources(folder)  # format detection reads only the .npy header
    assert src.kind == "echomimicv2" and not marker.exists()
    with pytest.raises(ImportFormatError, match=r"0\.npy: refused to unpickle io\.open"):
        load_echomimic_dir(folder)
    shutil.copy(samples_path("pose_echomimicv2_good") / "0.npy", folder / "0.npy")
    with pytest.raises(ImportFormatError, match=r"1\.npy: refused to unpickle"):
        load_echomimic_dir(folder)
    assert not marker.exists()


def test_the_mmgt_prep_dwpose_import_records_a_planted_file_and_runs_nothing(tmp_path: Path) -> None:
    from mmgt_prep.cli import run

    marker = tmp_path / "PWNED"
    inp = tmp_path / "in" / "spk"
    good = inp / "good"
    shutil.copytree(samples_path("pose_echomimicv2_good"), good)
    evil = inp / "evil"
    evil.mkdir()
    for i in range(3):
        _plant(evil / f"{i}.npy", marker, wrap_in_dict=i == 1)
    overrides = ["source=dwpose", f"input={inp}", f"out={tmp_path / 'store'}", "size=64", "progress=false"]
    summary = run(compose_config("prep", overrides))
    assert summary["ok"] == 1 and summary["failed"] == 1 and not marker.exists()
    failed = ClipStore(tmp_path / "store").failed()
    assert [r.id for r in failed] == ["evil"] and "0.npy: refused to unpickle" in failed[0].error


def test_real_pose_pickles_load_with_the_restricted_unpickler() -> None:
    folder = samples_path("pose_echomimicv2_good")
    frame = load_pickled_npy(folder / "0.npy")
    assert set(frame) >= {"bodies", "hands", "faces", "draw_pose_params"}
    assert isinstance(frame["bodies"]["candidate"], np.ndarray)
    assert load_echomimic_dir(folder).shape[1:] == (134, 3)


def test_plain_arrays_name_the_file_when_truncated_or_pickled(tmp_path: Path) -> None:
    kps = tmp_path / "keypoints.npy"
    np.save(kps, np.zeros((10, 134, 3), np.float32))
    kps.write_bytes(kps.read_bytes()[:400])
    with pytest.raises(
        UntrustedFileError, match=r"keypoints\.npy: truncated or corrupt keypoints.*\(10, 134, 3\)"
    ):
        load_npy(kps, "keypoints")
    obj = np.array({"a": 1}, dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)  # trusted-pickle: writing
    with pytest.raises(UntrustedFileError, match=r"obj\.npy: holds pickled Python objects"):
        load_npy(tmp_path / "obj.npy")
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(UntrustedFileError, match=r"text\.npy: not a \.npy file"):
        npy_header(tmp_path / "text.npy")
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        load_npy(tmp_path / "absent.npy")


@pytest.mark.parametrize("bad", ["../../x", "a/b", "/abs", "..", ".hidden", "", "x" * 201, "a\\b", 7])
def test_manifest_rows_that_would_leave_the_store_are_errors_naming_the_line(tmp_path: Path, bad) -> None:
    good = ClipRecord(id="ok", speaker="s").to_json()
    for field in ("speaker", "id"):
        row = json.loads(good)
        row[field] = bad
        (tmp_path / MANIFEST).write_text(good + "\n" + json.dumps(row) + "\n")
        with pytest.raises(ValueError, match=rf"manifest\.jsonl:2: {field} .* is not a safe name"):
            read_manifest(tmp_path)


def test_store_paths_stay_inside_the_root(tmp_path: Path) -> None:
    with pytest.raises(UntrustedFileError, match="speaker"):
        clip_relpath("../up", "a")
    (tmp_path / "clips" / "s").mkdir(parents=True)
    os.symlink(tmp_path.parent, tmp_path / "clips" / "s" / "link")  # a folder linking out of the store
    with pytest.raises(UntrustedFileError, match="leads outside"):
        inside(tmp_path, clip_relpath("s", "link"), "test")
    writer = ClipStoreWriter(tmp_path / "store")
    writer.write_clip(ClipRecord(id="a", speaker="s", n_frames=2), lambda d: None)
    clip = ClipStore(tmp_path / "store").clip("a")
    with pytest.raises(UntrustedFileError, match="feature name"):
        clip.feature_path("../../../features_outside")
    assert clip.feature_path("logmel80+energy").name == "logmel80+energy.npy"
    assert check_name("toy_spk0-001.v2", "id", "x") == "toy_spk0-001.v2"


def test_a_torn_last_row_is_ignored_then_cut_before_the_next_append(tmp_path: Path, caplog) -> None:
    writer = ClipStoreWriter(tmp_path)
    writer.write_clip(ClipRecord(id="a", speaker="s"), lambda d: None)
    row = ClipRecord(id="b", speaker="s").to_json()
    with (tmp_path / MANIFEST).open("a") as f:
        f.write(row[: len(row) // 2])  # a prep killed mid-append
    assert list(read_manifest(tmp_path)) == ["a"] and "torn" in caplog.text
    again = ClipStoreWriter(tmp_path)  # the next run resumes ...
    again.write_clip(ClipRecord(id="c", speaker="s"), lambda d: None)
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "c"]  # ... on a new, whole line
    assert (tmp_path / TORN_FILE).read_text() == row[: len(row) // 2] + "\n"
    (tmp_path / MANIFEST).write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    with pytest.raises(ValueError, match=r"manifest\.jsonl:2: malformed"):  # inside the file: an error
        read_manifest(tmp_path)


def _toy_prep(out: str, barrier, results) -> None:  # noqa: ANN001 - multiprocessing objects
    from mmgt_prep.toy import generate_toy_dataset

    barrier.wait(timeout=120)
    results.put(
        generate_toy_dataset(out, n_speakers=2, clips_per_speaker=4, seconds=2.0, size=32, progress=False)
    )


def test_two_concurrent_preps_split_the_work_and_make_each_clip_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_toy_prep, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    summaries = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ids = [json.loads(line)["id"] for line in (tmp_path / MANIFEST).read_text().splitlines()]
    assert len(ids) == 8 and len(set(ids)) == 8  # every clip made exactly once
    assert sum(s["ok"] for s in summaries) == 8
    assert all(s["ok"] + s["elsewhere"] + s["skipped"] == 8 for s in summaries)
    assert not (tmp_path / ".tmp" / "claims").exists()


def test_a_store_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a folder")
    with pytest.raises(FileExistsError, match="store: exists and is a file, not a clip-store folder"):
        ClipStoreWriter(tmp_path / "store")


def test_a_claim_is_exclusive_and_released(tmp_path: Path) -> None:
    a, b = ClipStoreWriter(tmp_path), ClipStoreWriter(tmp_path)
    with a.claim("src1") as mine_a, b.claim("src1") as mine_b, b.claim("src2") as other:
        assert mine_a and not mine_b and other
    with b.claim("src1") as mine_b:
        assert mine_b


def test_export_class_names_resolve_only_against_the_allow_list(tmp_path: Path, monkeypatch) -> None:
    from mmgt.factory import build
    from mmgt.stage2.guidance import GUIDANCE_CLASSES, MotionMaskGuidance

    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass G: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in ("evil_module.G", "os.system", "builtins.exec", None):
        with pytest.raises(UntrustedFileError, match="mask_guidance: class .* is not allowed"):
            build({"_target_": target}, GUIDANCE_CLASSES, "mmgt_stage2.json: mask_guidance")
    assert not marker.exists() and "evil_module" not in sys.modules
    g = build(MotionMaskGuidance(expand_ratio=1.5).config(), GUIDANCE_CLASSES, "mmgt_stage2.json")
    assert type(g) is MotionMaskGuidance and g.kwargs["expand_ratio"] == 1.5
    assert all(cls().config()["_target_"] in GUIDANCE_CLASSES for cls in GUIDANCE_CLASSES.values())
    with pytest.raises(UntrustedFileError, match="arguments do not fit"):
        build(
            {"_target_": "mmgt.stage2.guidance.MotionMaskGuidance", "command": "rm -rf /"},
            GUIDANCE_CLASSES,
            "mmgt_stage2.json",
        )


def _unsafe_calls(source: str) -> list[tuple[int, str]]:
    """(line, what) of every unsafe loading call in Python source: ``allow_pickle=True``, ``pickle.load(s)``,
    an ``Unpickler(...)`` or ``torch.load`` without ``weights_only=True`` (found on the syntax tree)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is True:
            found.append((node.lineno, "allow_pickle=True"))
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "Unpickler"):
            found.append((node.lineno, f"unrestricted {name}"))
        weights_only = kw.get("weights_only")
        if name == "torch.load" and not (
            isinstance(weights_only, ast.Constant) and weights_only.value is True
        ):
            found.append((node.lineno, "torch.load without weights_only=True"))
    return found


_EXEMPT = "trusted-pickle"  # a line marker: the object was made by the same test (writing, or a round trip)


def test_the_unsafe_loading_check_finds_what_it_should() -> None:
    code = (
        "torch.load(f(x), weights_only=True)\ntorch.load(p)\nnp.load(p, allow_pickle=True)\n"
        "pickle.loads(b)\ntorch.load(\n    p,\n    weights_only=False,\n)\n"
    )
    assert [line for line, _ in _unsafe_calls(code)] == [2, 3, 4, 5]


def test_no_unsafe_loading_remains_anywhere() -> None:
    """No allow_pickle=True, unrestricted pickle.load(s)/Unpickler or torch.load without weights_only=True
    in the sources, tests, benchmarks or notebooks (lines marked ``trusted-pickle`` aside: a test's own
    objects)."""
    files = [p for d in ("src", "data_prep", "eval", "tests") for p in (REPO / d).rglob("*.py")]
    sources = {p: p.read_text() for p in files}
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        sources[nb] = "\n".join(
            line for c in code for line in c.splitlines() if not line.startswith(("%", "!"))
        )
    found = []
    for path, text in sources.items():
        lines = text.splitlines()
        for no, what in _unsafe_calls(text):
            if _EXEMPT not in lines[no - 1]:
                found.append(f"{path.relative_to(REPO)}:{no}: {what}")
    assert len(files) > 100 and not found, "\n".join(found)
