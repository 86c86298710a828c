"""mmgt-table: results of the real runner -> rows (mean ± std over seeds), best marks, failures, protocols,
Markdown / LaTeX / CSV, the Hydra CLI, clear errors; and the per-value directions the runner writes."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchmetrics
import yaml

from mmgt.io import write_video
from mmgt_eval.aggregate import build_table, row_labels
from mmgt_eval.directions import library_declarations, value_direction
from mmgt_eval.metrics.base import MetricAdapter, VideoSample
from mmgt_eval.metrics.image import PSNRAdapter, SSIMAdapter
from mmgt_eval.render import format_csv, format_latex, format_markdown, format_number
from mmgt_eval.results import RunResult, TableError, collect, load_result
from mmgt_eval.runner import RunProtocol, evaluate
from mmgt_eval.table import run
from mmgt_eval.table_cli import main
from tests.helpers.shared import compose_config

SIZE, T = 32, 10
NOISE = {"default": 4.0, "mask_guidance=none": 14.0}


class PixelStatsAdapter(MetricAdapter):
    """Mixed directions in one metric: agreement (higher is better), mae (lower), offset (no direction)."""

    name = "pixel"
    higher_is_better = True
    value_higher_is_better = {"agreement": True, "mae": False, "offset": None}  # noqa: RUF012
    needs_reference = True

    def __init__(self) -> None:
        self.abs_sum = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)
        self.signed_sum = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)
        self.count = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        assert reference is not None
        d = generated.frames.astype(np.float64) - reference.frames.astype(np.float64)
        self.abs_sum.update(torch.tensor(np.abs(d).sum(), dtype=torch.float64))
        self.signed_sum.update(torch.tensor(d.sum(), dtype=torch.float64))
        self.count.update(torch.tensor(float(d.size), dtype=torch.float64))
        return {}

    def compute(self) -> dict[str, float]:
        n = float(self.count.compute())
        mae = float(self.abs_sum.compute()) / n
        return {"agreement": 1.0 - mae / 255.0, "mae": mae, "offset": float(self.signed_sum.compute()) / n}

    def protocol(self) -> dict:
        return {"definition": "mean |generated - reference| and mean signed difference, 0-255 scale"}

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.abs_sum, self.signed_sum, self.count]


def _metrics() -> dict:
    return {"psnr": PSNRAdapter(max_db=None), "ssim": SSIMAdapter(), "pixel": PixelStatsAdapter()}


def _reference_videos(root: Path) -> Path:
    ref = root / "reference"
    for i, name in enumerate(("a", "b")):
        rng = np.random.default_rng(i)
        base = rng.integers(40, 200, size=(1, SIZE // 8, SIZE // 8, 3)).repeat(8, 1).repeat(8, 2)
        frames = np.clip(base + np.arange(T)[:, None, None, None] * 4, 0, 255).astype(np.uint8)
        write_video(ref / f"{name}.mp4", frames)
    return ref


def _job(sweep: Path, overrides: list[str]) -> Path:
    job = sweep / ",".join(sorted(overrides))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 0}))
    return job


def _add_run(job: Path, run_info: dict) -> None:
    path = job / "results.json"
    data = json.loads(path.read_text()) if path.is_file() else {"format": 1}
    data["run"] = run_info
    path.write_text(json.dumps(data, indent=2))


def _scored_job(sweep: Path, ref: Path, name: str, seed: int, protocol: RunProtocol | None = None) -> Path:
    """A job folder as the sweep runner leaves it: generated/*.mp4 (noisy references), results.json."""
    overrides = ([] if name == "default" else [name]) + [f"seed={seed}"]
    job = _job(sweep, overrides)
    rng = np.random.default_rng(100 + 10 * seed + len(name))
    from mmgt.io import read_video

    for video in sorted(ref.glob("*.mp4")):
        frames = read_video(video).frames.astype(np.float64)
        noisy = np.clip(frames + rng.normal(0, NOISE[name], frames.shape), 0, 255).astype(np.uint8)
        write_video(job / "generated" / video.name, noisy)
    evaluate(
        job / "generated",
        ref,
        _metrics(),
        protocol=protocol,
        results_path=job / "results.json",
        progress=False,
    )
    if name != "default":  # the default jobs carry no run object: the name comes from .hydra/overrides.yaml
        _add_run(
            job,
            {
                "status": "ok",
                "error": None,
                "overrides": overrides,
                "seed": seed,
                "name": name,
                "seconds": 1.5,
            },
        )
    return job


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("table")
    ref = _reference_videos(root)
    sweep = root / "sweep"
    jobs = {(n, s): _scored_job(sweep, ref, n, s) for n in NOISE for s in (0, 1)}
    failed = _job(sweep, ["mask_guidance=none", "seed=2"])
    _add_run(
        failed,
        {
            "status": "failed",
            "error": "RuntimeError: loss is NaN at step 12\nTraceback ...",
            "overrides": ["mask_guidance=none", "seed=2"],
            "seed": 2,
            "name": "mask_guidance=none",
            "seconds": 3.0,
        },
    )
    all_failed = _job(sweep, ["mask_guidance=hands", "seed=0"])
    _add_run(
        all_failed,
        {
            "status": "failed",
            "error": "ValueError: bad region",
            "overrides": ["mask_guidance=hands", "seed=0"],
            "seed": 0,
            "name": "mask_guidance=hands",
            "seconds": 0.1,
        },
    )
    gt = root / "ground_truth"
    evaluate(ref, ref, _metrics(), results_path=gt / "results.json", progress=False)
    return {"root": root, "ref": ref, "sweep": sweep, "jobs": jobs, "gt": gt}


def _values(sweep: dict, name: str, key: str) -> np.ndarray:
    metric, value = key.split("/")
    out = []
    for s in (0, 1):
        res = json.loads((sweep["jobs"][(name, s)] / "results.json").read_text())
        out.append(res["metrics"][metric]["values"][value])
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------- runner: per-value directions
def test_runner_writes_per_value_directions(sweep):
    res = json.loads((sweep["jobs"][("default", 0)] / "results.json").read_text())
    assert res["metrics"]["pixel"]["value_higher_is_better"] == {
        "agreement": True,
        "mae": False,
        "offset": None,
    }
    assert res["metrics"]["psnr"]["value_higher_is_better"] == {
        "psnr": True,
        "psnr_videos": None,
        "psnr_frames": None,
    }
    assert res["metrics"]["psnr"]["higher_is_better"] is True
    ref = json.loads((sweep["gt"] / "results.json").read_text())
    assert ref["metrics"]["psnr"]["values"]["psnr"] == "inf"  # identical frames, max_db=None


def test_library_adapters_declare_their_main_values_direction():
    """The adapters' declarations are the one source of the directions (the runner copies them into the
    results; the table has no table of its own that could drift)."""
    from mmgt_eval.metrics.bas import BASAdapter
    from mmgt_eval.metrics.diversity import DiversityAdapter
    from mmgt_eval.metrics.fgd import FGDAdapter
    from mmgt_eval.metrics.fid import FIDAdapter
    from mmgt_eval.metrics.fvd import FVDAdapter
    from mmgt_eval.metrics.image import LPIPSAdapter
    from mmgt_eval.metrics.lip_audio import LipAudioAdapter
    from mmgt_eval.metrics.region import RegionErrorAdapter
    from mmgt_eval.metrics.sync import SyncAdapter

    adapters = [FIDAdapter, FVDAdapter, SyncAdapter, BASAdapter, DiversityAdapter, FGDAdapter]
    adapters += [PSNRAdapter, SSIMAdapter, LPIPSAdapter]
    for cls in [*adapters, LipAudioAdapter, RegionErrorAdapter]:
        assert hasattr(cls, "variant"), cls  # the results name every library metric's protocol variant
    for cls in adapters:
        main_value = "sync_c" if cls is SyncAdapter else cls.name
        assert cls.value_higher_is_better[main_value] == cls.higher_is_better, cls
    assert SyncAdapter.value_higher_is_better["sync_d"] is False
    assert LipAudioAdapter.value_higher_is_better["lip_audio_r_reference"] is None  # context, not a score
    mouth = RegionErrorAdapter(region="lips", name="mouth")
    assert mouth.value_higher_is_better == {"mouth_psnr": True, "mouth_mse": False, "mouth_clips": None}


def test_a_values_direction_comes_from_the_results_else_the_adapters_declaration():
    """One source: the entry's ``value_higher_is_better``; an older entry without it takes the library
    adapter's declaration (no list of value names in the table), undeclared keys the metric's flag."""
    from mmgt_eval.metrics.base import value_directions
    from mmgt_eval.metrics.lip_audio import LipAudioAdapter
    from mmgt_eval.metrics.sync import SyncAdapter

    assert value_direction("mae", {"mae": False}, True) is False  # declared wins
    assert value_direction("sync_d", {"sync_d": True}, True, "sync") is True  # over the library too
    assert value_direction("offset", {"offset": None}, True) is None
    assert value_direction("sync_d", None, True, "sync") is False  # an older entry: SyncAdapter says so
    assert value_direction("lip_audio_r_reference", None, True, "lip_audio") is None
    assert value_direction("mad_n_videos", None, False, "not_a_library_metric") is False  # the metric's flag
    assert value_direction("mad", None, None) is None
    assert library_declarations()["sync"] == (SyncAdapter.value_higher_is_better, True)
    assert library_declarations()["lip_audio"] == (LipAudioAdapter.value_higher_is_better, True)
    # the runner resolves adapters with the same rule the table reads results with
    keys = [*SyncAdapter.value_higher_is_better, "sync_undeclared"]
    resolved = value_directions(SyncAdapter, keys)
    assert resolved["sync_d"] is False and resolved["sync_n_scored"] is None and resolved["sync_undeclared"]
    assert {k: value_direction(k, None, True, "sync") for k in keys} == resolved


def test_results_without_directions_take_the_adapters(tmp_path):
    """A results entry written before ``value_higher_is_better`` existed: Sync-D is still lower-is-better,
    the counts have no direction (the count-like name list that gave sync_d 'higher' is gone)."""
    from mmgt_eval.metrics.sync import SyncAdapter

    values = {"sync_c": 7.5, "sync_d": 6.9, "sync_offset_abs_mean": 1.0, "sync_n_scored": 4.0}
    old = {"status": "ok", "name": "sync", "higher_is_better": True, "values": values}
    path = tmp_path / "old" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"format": 1, "metrics": {"sync": old}}))
    r = load_result(path)
    assert r.directions == {f"sync/{k}": SyncAdapter.value_higher_is_better[k] for k in values}
    assert r.directions["sync/sync_d"] is False and r.directions["sync/sync_n_scored"] is None
    table = build_table([r])
    assert [(c.key, c.higher_is_better) for c in table.columns] == [
        ("sync/sync_c", True),
        ("sync/sync_d", False),
    ]
    # the runner's entry for the same values says the same
    new = {**old, "value_higher_is_better": SyncAdapter.value_higher_is_better}
    path.write_text(json.dumps({"format": 1, "metrics": {"sync": new}}))
    assert load_result(path).directions == r.directions


def test_table_module_re_exports_the_split_modules():
    """``mmgt_eval.table`` (notebooks, docs) re-exports the names of results / aggregate / render."""
    import mmgt_eval.aggregate
    import mmgt_eval.render
    import mmgt_eval.results
    import mmgt_eval.table

    for name in mmgt_eval.table.__all__:
        obj = getattr(mmgt_eval.table, name)
        homes = [m for m in (mmgt_eval.results, mmgt_eval.aggregate, mmgt_eval.render) if name in m.__all__]
        assert name == "run" or name == "value_direction" or homes, name
        for m in homes:
            assert getattr(m, name) is obj, (name, m)
    assert mmgt_eval.table.value_direction is value_direction


# --------------------------------------------------------------------------- rows, cells, marks
def test_rows_mean_std_best_and_failures(sweep):
    results = collect(sweep["sweep"], [sweep["gt"]])
    table = build_table(results)
    names = [(r.name, r.reference) for r in table.rows]
    assert names == [
        ("default", False),
        ("mask_guidance=hands", False),
        ("mask_guidance=none", False),
        ("ground_truth", True),
    ]
    keys = [c.key for c in table.columns]
    # default columns: every value with a direction, in the results' order; counts and the offset left out
    assert keys == ["psnr/psnr", "ssim/ssim", "pixel/agreement", "pixel/mae"]
    rows = {r.name: r for r in table.rows}
    for name in NOISE:
        for key in keys:
            v = _values(sweep, name, key)
            cell = rows[name].cells[key]
            assert cell.n == 2
            assert cell.mean == pytest.approx(v.mean(), rel=1e-12)
            assert cell.std == pytest.approx(v.std(ddof=1), rel=1e-12)
    # less noise is better in every directed column, whichever the direction
    assert rows["default"].best == set(keys)
    assert rows["mask_guidance=none"].best == set()
    assert rows["default"].cells["pixel/mae"].mean < rows["mask_guidance=none"].cells["pixel/mae"].mean
    assert rows["mask_guidance=none"].n == 2 and [r.seed for r in rows["mask_guidance=none"].failed] == [2]
    assert rows["mask_guidance=hands"].status == "failed" and rows["mask_guidance=hands"].n == 0
    assert [r.label for r in table.failed_runs] == [
        "mask_guidance=hands (seed 0)",
        "mask_guidance=none (seed 2)",
    ]
    gt = rows["ground_truth"]
    assert gt.n == 1 and gt.cells["psnr/psnr"].mean == math.inf and gt.cells["psnr/psnr"].std is None
    assert gt.cells["pixel/mae"].mean == 0.0 and not gt.best  # reference rows are never ranked
    assert not table.protocol_mismatch


def test_undirected_columns_are_never_marked(sweep):
    table = build_table(collect(sweep["sweep"]), metrics=["pixel/*", "psnr/psnr_videos"])
    assert [c.key for c in table.columns] == [
        "pixel/agreement",
        "pixel/mae",
        "pixel/offset",
        "psnr/psnr_videos",
    ]
    assert [c.higher_is_better for c in table.columns] == [True, False, None, None]
    assert all("pixel/offset" not in r.best and "psnr/psnr_videos" not in r.best for r in table.rows)
    with pytest.raises(
        TableError, match=r"'fid/fid' matches no value.*available: psnr/psnr, psnr/psnr_videos"
    ):
        build_table(collect(sweep["sweep"]), metrics=["fid/fid"])


def test_markdown_latex_csv(sweep):
    table = build_table(
        collect(sweep["sweep"], {"GT": sweep["gt"]}), metrics=["psnr/psnr", "pixel/mae", "pixel/offset"]
    )
    md = format_markdown(table)
    lines = md.splitlines()
    assert lines[0] == "| configuration | n | psnr/psnr ↑ | pixel/mae ↓ | pixel/offset |"
    v = _values(sweep, "default", "psnr/psnr")
    rows = {r.name: r for r in table.rows}
    mags = [abs(rows[n].cells["psnr/psnr"].mean) for n in NOISE]
    d = 3 - 1 - math.floor(math.log10(min(mags)))  # the smallest magnitude gets 3 significant digits
    assert f"| default | 2 | **{v.mean():.{d}f} ± {v.std(ddof=1):.{d}f}** |" in md
    none_row = next(line for line in lines if line.startswith("| mask_guidance=none |"))
    assert none_row.startswith("| mask_guidance=none | 2 (+1 failed) | ") and "**" not in none_row
    assert "| mask_guidance=hands | 0 (+1 failed) | failed | failed | failed |" in md
    sep = lines.index("| *reference* | | | | |")
    assert lines[sep + 1].startswith("| GT | 1 | ∞ | 0.00 | ")  # mae column: 3 significant digits of ~3
    assert "Failed runs (excluded from the means):" in md
    assert "- mask_guidance=none (seed 2): RuntimeError: loss is NaN at step 12 (" in md
    assert "Traceback" not in md  # first line of the error only
    assert "- run protocol [" in md and "name=default, seed=0, max_frames=null, resize=null" in md
    assert "- psnr [" in md and "max_db=null" in md and "PROTOCOL MISMATCH" not in md

    tex = format_latex(table)
    assert r"\toprule" in tex and r"\bottomrule" in tex and tex.count(r"\midrule") == 2
    assert r"pixel/mae $\downarrow$" in tex and r"psnr/psnr $\uparrow$" in tex
    assert r"mask\_guidance=none & 2 &" in tex and r"\textit{GT} & 1 & $\infty$" in tex
    assert rf"\textbf{{{v.mean():.{d}f} $\pm$ {v.std(ddof=1):.{d}f}}}" in tex
    assert "% mask\\_guidance" not in tex and "% mask_guidance=none (seed 2): RuntimeError" in tex

    parsed = list(csv.DictReader(io.StringIO(format_csv(table))))
    assert [r["configuration"] for r in parsed] == [
        "default",
        "mask_guidance=hands",
        "mask_guidance=none",
        "GT",
    ]
    by = {r["configuration"]: r for r in parsed}
    for name in NOISE:
        for key in ("psnr/psnr", "pixel/mae", "pixel/offset"):
            vals = _values(sweep, name, key)
            assert float(by[name][f"{key}:mean"]) == pytest.approx(vals.mean(), rel=1e-12)
            assert float(by[name][f"{key}:std"]) == pytest.approx(vals.std(ddof=1), rel=1e-12)
            assert by[name][f"{key}:n"] == "2"
    assert by["default"]["psnr/psnr:best"] == "1" and by["mask_guidance=none"]["psnr/psnr:best"] == "0"
    assert by["default"]["pixel/mae:best"] == "1" and by["default"]["pixel/offset:best"] == ""
    assert by["mask_guidance=none"]["n_failed"] == "1" and by["mask_guidance=none"]["failed_seeds"] == "2"
    assert (
        by["mask_guidance=hands"]["status"] == "failed" and by["mask_guidance=hands"]["psnr/psnr:mean"] == ""
    )
    assert (
        by["GT"]["kind"] == "reference"
        and by["GT"]["psnr/psnr:mean"] == "inf"
        and by["GT"]["psnr/psnr:std"] == ""
    )


def test_protocol_mismatch_is_loud(sweep, tmp_path):
    other = tmp_path / "other_sweep"
    _scored_job(other, sweep["ref"], "default", 5, protocol=RunProtocol(max_frames=6))
    table = build_table(collect([sweep["sweep"], other]))
    assert table.protocol_mismatch
    md = format_markdown(table)
    assert "WARNING: the results disagree (rows are not comparable)" in md
    assert "PROTOCOL MISMATCH in run protocol: 2 variants" in md and "differing: max_frames" in md
    assert "max_frames=6: default (seed 5)" in md
    assert "MISMATCH" in format_latex(table)
    rows = {r.name: r for r in table.rows}
    assert rows["default"].n == 3  # still tabulated, but flagged
    cfg = {"runs": [str(sweep["sweep"]), str(other)], "on_protocol_mismatch": "error", "out": str(tmp_path)}
    with pytest.raises(TableError, match="disagree on the protocol"):
        run(cfg)


def test_rows_differing_only_in_why_their_size_was_chosen_are_comparable(sweep, tmp_path):
    """``size_from`` (provenance: a model's training size vs a baseline's frame size) is not a setting."""
    other = tmp_path / "other_sweep"
    _scored_job(other, sweep["ref"], "default", 5, protocol=RunProtocol(extra={"size_from": "a baseline"}))
    table = build_table(collect([sweep["sweep"], other]))
    assert not table.protocol_mismatch and "MISMATCH" not in format_markdown(table)
    assert "size_from" not in format_markdown(table)  # the settings line shows settings only


def test_number_formatting():
    assert format_number(12.3456, 1) == "12.3"
    assert format_number(0.91234) == "0.912"
    assert format_number(0.0042, 1) == "0.00420"  # the column's decimals would show 0
    assert format_number(1234567.0) == "1.23e+06"
    assert format_number(math.inf) == "inf" and format_number(-math.inf, inf="∞") == "-∞"
    assert format_number(0.0, 2) == "0.00" and format_number(None) == ""


# --------------------------------------------------------------------------- inputs and errors
def test_runs_entries_file_job_folder_and_names(sweep):
    job = sweep["jobs"][("mask_guidance=none", 1)]
    assert [r.name for r in collect(job)] == ["mask_guidance=none"]
    one = collect(job / "results.json")[0]
    assert one.seed == 1 and one.overrides == ("mask_guidance=none", "seed=1") and one.seconds == 1.5
    default = load_result(sweep["jobs"][("default", 1)] / "results.json")
    assert default.name == "default" and default.seed == 1  # from .hydra/overrides.yaml
    assert collect(sweep["gt"])[0].name == "ground_truth"


def test_unfinished_jobs_and_failed_metrics_are_listed(sweep, tmp_path):
    s = tmp_path / "sweep"
    job = _scored_job(s, sweep["ref"], "default", 0)
    _job(s, ["seed=1"])  # killed before writing results.json
    data = json.loads((job / "results.json").read_text())
    data["metrics"]["ssim"] = {
        "status": "failed",
        "error": "ValueError: too few videos",
        "higher_is_better": True,
    }
    (job / "results.json").write_text(json.dumps(data))
    table = build_table(collect(s))
    row = table.rows[0]
    assert row.name == "default" and row.n == 1 and [r.seed for r in row.failed] == [1]
    assert "no results.json in" in (row.failed[0].error or "")
    md = format_markdown(table)
    assert "- default (seed 0): metric ssim failed: ValueError: too few videos" in md
    assert "ssim/ssim" not in md.splitlines()[0]


def test_clear_errors(tmp_path, sweep):
    empty = tmp_path / "empty_sweep"
    (empty / "x").mkdir(parents=True)
    with pytest.raises(TableError, match=rf"{empty}: no results.json found"):
        collect(empty)
    with pytest.raises(TableError, match=rf"{tmp_path / 'missing'}: not found"):
        collect(tmp_path / "missing")
    bad = tmp_path / "bad" / "job"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text('{"format": 1, "metrics": {')
    with pytest.raises(TableError, match=rf"{bad / 'results.json'}: not valid JSON \(line 1"):
        collect(tmp_path / "bad")
    (bad / "results.json").write_text('{"format": 1}')
    with pytest.raises(TableError, match=rf"{bad / 'results.json'}: no 'metrics' or 'summary'"):
        collect(bad)
    (bad / "results.json").write_text('{"metrics": {"psnr": {"status": "ok", "values": {"psnr": "big"}}}}')
    with pytest.raises(TableError, match=r"metrics.psnr.values.psnr: expected a number"):
        collect(bad)


# --------------------------------------------------------------------------- CLI
def test_cli_composes_and_writes_atomically(sweep, tmp_path):
    out = tmp_path / "tables"
    cfg = compose_config(
        "table",
        [
            f"runs=[{sweep['sweep']}]",
            f"reference={{truth:{sweep['gt']}}}",
            "metrics=[psnr/psnr,pixel/*]",
            f"out={out}",
        ],
    )
    assert cfg.formats == ["md", "tex", "csv"] and cfg.seed_keys == ["seed"]
    result = run(cfg)
    assert sorted(p.name for p in out.iterdir()) == [
        "table.csv",
        "table.md",
        "table.tex",
    ]  # no temp files left
    assert (out / "table.md").read_text() == result["markdown"]
    parsed = list(csv.DictReader((out / "table.csv").open()))
    assert parsed[-1]["configuration"] == "truth" and "pixel/offset:mean" in parsed[0]
    assert result["table"].columns[1].key == "pixel/agreement"

    # a job folder's name holds '=' and ',': Hydra needs it quoted
    cfg = compose_config("table", [f"runs='{sweep['jobs'][('default', 0)]}'", "formats=[csv]"])
    paths = run(cfg)["paths"]
    assert paths == {"csv": sweep["jobs"][("default", 0)] / "table.csv"}  # default out: the first runs folder
    paths["csv"].unlink()


def test_main_prints_markdown(sweep, tmp_path, capsys):
    main([f"runs={sweep['sweep']}", f"out={tmp_path}", "formats=[md]", f"hydra.run.dir={tmp_path / 'hydra'}"])
    printed = capsys.readouterr().out
    assert printed.startswith("| configuration | n | psnr/psnr ↑ |")
    assert f"md: {tmp_path / 'table.md'}" in printed


def test_python_m_entry_point_and_error_exit(sweep, tmp_path):
    cmd = [sys.executable, "-m", "mmgt_eval.table_cli", f"hydra.run.dir={tmp_path / 'hydra'}"]
    ok = subprocess.run(
        [*cmd, f"runs={sweep['sweep']}", f"out={tmp_path}", "metrics=[ssim/ssim]"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "| configuration | n | ssim/ssim ↑ |" in ok.stdout and (tmp_path / "table.tex").is_file()
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    bad = subprocess.run([*cmd, f"runs={empty}"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert f"mmgt-table: error: {empty}: no results.json found" in bad.stderr


def test_a_missing_metric_is_an_error_or_an_empty_column(sweep):
    results = collect(sweep["sweep"])
    with pytest.raises(TableError, match=r"'lip_audio/lip_audio_r' matches no value"):
        build_table(results, ["psnr/psnr", "lip_audio/lip_audio_r"])
    table = build_table(results, ["psnr/psnr", "lip_audio/lip_audio_r"], on_missing="keep")
    assert [c.key for c in table.columns] == ["psnr/psnr", "lip_audio/lip_audio_r"]
    assert any("lip_audio/lip_audio_r: no result reports" in n for n in table.notes)
    assert "lip_audio/lip_audio_r" in format_markdown(table)


# --------------------------------------------------------------------------- not evaluated, labels, plot
def _trained_job(sweep: Path, overrides: list[str], seed: int, evaluated: bool = False) -> Path:
    """A job as mmgt-train leaves it without an ``evaluate`` node: a run block saying ``evaluated: false``."""
    job = _job(sweep, [*overrides, f"seed={seed}"])
    (job / "export").mkdir()
    name = ",".join(sorted(overrides)) or "default"
    run_block = {"status": "ok", "error": None, "overrides": [*overrides, f"seed={seed}"], "seed": seed}
    run_block |= {"name": name, "named": False, "evaluated": evaluated, "seconds": 2.0}
    (job / "results.json").write_text(json.dumps({"run": run_block}))
    return job


def test_not_evaluated_runs_are_told_from_failed_ones(sweep, tmp_path):
    s = tmp_path / "sweep"
    _scored_job(s, sweep["ref"], "default", 0)
    _trained_job(s, [], 1)  # trained, not evaluated (this mmgt-train)
    _trained_job(s, ["mask_guidance=none"], 0)
    legacy = _job(s, ["mask_guidance=none", "seed=1"])  # an older mmgt-train: export/, no results.json
    (legacy / "export").mkdir()
    _job(s, ["mask_guidance=hands", "seed=0"])  # killed: neither
    table = build_table(collect(s), metrics=["psnr/psnr"])
    rows = {r.name: r for r in table.rows}
    assert rows["default"].status == "ok" and rows["default"].n == 1 and len(rows["default"].unevaluated) == 1
    assert (
        rows["mask_guidance=none"].status == "not_evaluated"
        and len(rows["mask_guidance=none"].unevaluated) == 2
    )
    assert rows["mask_guidance=hands"].status == "failed"
    md = format_markdown(table)
    assert "| default | 1 (+1 not evaluated) | " in md
    assert "| mask_guidance=none | 0 (+2 not evaluated) | not evaluated |" in md
    assert "| mask_guidance=hands | 0 (+1 failed) | failed |" in md
    assert "Not evaluated (trained, no evaluation results; add e.g. evaluate=stage1):" in md
    assert "- mask_guidance=none (seed 0) (" in md and "- mask_guidance=none (seed 1) (" in md
    failed = md.split("Failed runs (excluded from the means):")[1].split("Not evaluated")[0]
    assert "mask_guidance=hands (seed 0)" in failed and "mask_guidance=none" not in failed
    by = {r["configuration"]: r for r in csv.DictReader(io.StringIO(format_csv(table)))}
    assert (
        by["mask_guidance=none"]["status"] == "not_evaluated"
        and by["mask_guidance=none"]["n_not_evaluated"] == "2"
    )
    assert by["mask_guidance=hands"]["status"] == "failed" and by["default"]["n_not_evaluated"] == "1"
    assert "not evaluated" in format_latex(table)


def _result(name: str, overrides: list[str], seed: int = 0, named: bool = False) -> RunResult:
    return RunResult(
        Path(f"/r/{name}/{seed}/results.json"),
        name,
        seed,
        overrides=(*overrides, f"seed={seed}"),
        named=named,
    )


def test_row_labels_are_the_overrides_that_differ_without_paths():
    common = ["experiment=smga", "evaluate=stage1", "evaluate.steps=2", "trainer.max_time=00:00:30:00"]
    common += ["data.root=/home/me/stores/real", "paths.output_dir=/home/me/out", "hydra.run.dir=/x"]
    groups = {
        f"{c},model.net.stacking={v}": [_result("g", [*common, f"model.net.stacking={v}"], s) for s in (0, 1)]
        for c, v in (("a", "both"), ("b", "reference"))
    }
    labels = row_labels(groups)
    assert sorted(labels.values()) == ["model.net.stacking=both", "model.net.stacking=reference"]
    # two keys differ, one run of a configuration has its own init_from (left out of its label): the rest
    two = {
        "x1": [_result("x1", [*common, "model.lr=1", "model.init_from=/a/run1/export"])],
        "x2": [_result("x2", [*common, "model.lr=2", "model.init_from=/a/run2/export"])],
        "x3": [
            _result("x3", [*common, "model.lr=2", "model.depth=4", "model.init_from=/a/run2/export"], 0),
            _result("x3", [*common, "model.lr=2", "model.depth=4", "model.init_from=/b/run3/export"], 1),
        ],
    }
    assert row_labels(two) == {
        "x1": "model.init_from=run1/export,model.lr=1",
        "x2": "model.init_from=run2/export,model.lr=2",
        "x3": "model.depth=4,model.lr=2",
    }
    # one configuration: the experiment; a run_name keeps its name; no overrides: the name
    assert row_labels({"only": [_result("only", common)]}) == {"only": "experiment=smga"}
    named = {"mine": [_result("mine", [*common, "run_name=mine"], named=True)], "x1": two["x1"]}
    assert row_labels(named)["mine"] == "mine"
    assert row_labels({"plain": [RunResult(Path("/p/results.json"), "plain")]}) == {"plain": "plain"}
    # labels that would coincide fall back to the names
    same = {"n1": [_result("n1", ["seed=0"])], "n2": [_result("n2", ["hydra.job.name=x"])]}
    assert row_labels(same) == {"n1": "n1", "n2": "n2"}


def test_table_rows_are_labelled_by_what_differs(sweep, tmp_path):
    s = tmp_path / "sweep"
    for name in NOISE:
        for seed in (0, 1):
            job = _scored_job(s, sweep["ref"], name, seed)
            extra = ["experiment=stage2_video", "evaluate.max_clips=2", f"data.root={tmp_path}/store"]
            data = json.loads((job / "results.json").read_text())
            overrides = [*extra, *([] if name == "default" else [name]), f"seed={seed}"]
            data["run"] = {
                "status": "ok",
                "overrides": overrides,
                "seed": seed,
                "name": ",".join(overrides[:-1]),
            }
            (job / "results.json").write_text(json.dumps(data))
    table = build_table(collect(s), metrics=["psnr/psnr"], baseline="default")
    assert [r.name for r in table.rows] == ["default", "mask_guidance=none"]
    assert table.rows[1].config.startswith("experiment=stage2_video,evaluate.max_clips=2,data.root=")
    assert str(tmp_path) not in format_markdown(table).split("Protocol")[0].split("Failed")[0]


def test_plot_draws_one_readable_panel_per_column(sweep, tmp_path):
    from mmgt_eval.plot import plot_table, save_plot

    table = build_table(
        collect(sweep["sweep"], {"ground truth": sweep["gt"]}), ["psnr/psnr", "ssim/ssim", "pixel/mae"]
    )
    fig = plot_table(table)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["psnr/psnr", "ssim/ssim", "pixel/mae"]
    assert (
        panels[0].get_xlabel().startswith("psnr  (↑ higher is better)\n")
        and "lower is better" in panels[2].get_xlabel()
    )
    labels = [t.get_text() for t in panels[0].get_yticklabels()]
    assert labels == [
        "default\nn = 2",
        "mask_guidance=hands\nn = 0 (+1 failed)",
        "mask_guidance=none\nn = 2 (+1 failed)",
    ]
    rows = {r.name: r for r in table.rows}
    for ax, key in zip(panels, ["psnr/psnr", "ssim/ssim", "pixel/mae"], strict=True):
        lo, hi = ax.get_xlim()
        for name in NOISE:  # every mean ± std is on the scale
            cell = rows[name].cells[key]
            assert lo < cell.mean - cell.std and cell.mean + cell.std < hi, (key, name, lo, hi)
        texts = [t.get_text() for t in ax.texts]
        assert "failed" in texts  # the configuration whose only run failed says so
    # a reference that cannot be drawn (PSNR ∞) is written under the axis; the others are dashed lines
    assert panels[0].get_xlabel().endswith("\nreference off scale: ground truth = ∞")
    for ax, value in ((panels[1], 1.0), (panels[2], 0.0)):
        assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [
            pytest.approx(value, abs=1e-5)
        ]
    assert any(c.get_label() for c in panels[0].containers)  # error bars drawn
    out = save_plot(table, tmp_path / "figs" / "compare.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    with pytest.raises(TableError, match="give a .png, .pdf or .svg"):
        save_plot(table, tmp_path / "compare.jpg")


def test_cli_plot_option(sweep, tmp_path):
    cfg = compose_config("table", [f"runs={sweep['sweep']}", f"out={tmp_path}", f"plot={tmp_path / 'p.png'}"])
    result = run(cfg)
    assert result["paths"]["plot"] == tmp_path / "p.png" and (tmp_path / "p.png").is_file()


def test_results_name_metric_variants_and_table_warns_when_they_differ(tmp_path, caplog):
    """The runner names every metric's variant; runs scored with different Diversity definitions are
    flagged as a VARIANT MISMATCH (not only as differing settings)."""
    from mmgt_eval.metrics.diversity import DiversityAdapter
    from tests.helpers.poses import make_pose

    ref = _reference_videos(tmp_path)
    for i, name in enumerate(("a", "b")):
        np.save(ref / f"{name}.npy", make_pose(T, seed=i, motion=0.05))
    runs = {}
    for definition in ("bailando", "kinetic_l2_corrected"):
        job = _job(tmp_path / "sweep", [f"diversity={definition}"])
        for i, name in enumerate(("a", "b")):
            (job / "generated").mkdir(exist_ok=True)
            (job / "generated" / f"{name}.mp4").write_bytes((ref / f"{name}.mp4").read_bytes())
            np.save(job / "generated" / f"{name}.npy", make_pose(T, seed=10 + i, motion=0.05))
        metrics = {"diversity": DiversityAdapter(definition=definition), "psnr": PSNRAdapter(max_db=None)}
        res = evaluate(job / "generated", ref, metrics, results_path=job / "results.json", progress=False)
        assert res["metrics"]["diversity"]["variant"] == definition
        assert res["metrics"]["diversity"]["protocol"]["variant"] == definition
        assert res["variants"] == {"diversity": definition, "psnr": "torchmetrics"}
        runs[definition] = job
    with caplog.at_level("WARNING", logger="mmgt_eval"):
        table = build_table(collect([tmp_path / "sweep"]))
    assert table.protocol_mismatch
    md = format_markdown(table)
    assert "VARIANT MISMATCH in diversity: rows were scored with different variants of the metric " in md
    assert "(bailando, kinetic_l2_corrected)" in md and "bailando: diversity=bailando" in md
    assert "VARIANT MISMATCH in diversity" in caplog.text
    assert "VARIANT MISMATCH in psnr" not in md and "- psnr [" in md and "variant=torchmetrics" in md
