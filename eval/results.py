"""Results -> :class:`RunResult`: reading mmgt-eval ``results.json`` files and run folders for mmgt-table.

A ``runs`` entry is a sweep folder (searched for ``results.json``), a job folder or a results file; a job
folder without results is a failed run, or a not-evaluated one when it holds an ``export/``. The job's
configuration name and seed come from the results' ``run`` object, else ``.hydra/overrides.yaml``. Each
value's direction is read with :func:`mmgt_eval.directions.value_direction`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmgt_eval.directions import value_direction

__all__ = [
    "NOT_EVALUATED",
    "RESULTS_FILE",
    "STATUSES",
    "RunResult",
    "TableError",
    "collect",
    "config_name",
    "find_results",
    "load_result",
    "path_list",
]

RESULTS_FILE = "results.json"

NOT_EVALUATED = "not_evaluated"
"""``RunResult.status`` of a run that was trained but not evaluated (shown as "not evaluated")."""
STATUSES = ("ok", "failed", NOT_EVALUATED)


class TableError(ValueError):
    """The results cannot be tabulated (none found, unreadable file, unknown metric key, ...)."""


@dataclass(frozen=True)
class RunResult:
    """One results file (or one job folder without results), as the table needs it.

    Attributes:
        path: the ``results.json`` (for a job without results: the job folder).
        name: configuration name (the row it belongs to).
        seed: the run's seed, when known.
        status: ``"ok"``, ``"failed"`` or ``"not_evaluated"`` (:data:`NOT_EVALUATED`: trained, no results).
        error: why the run failed.
        reference: a reference row (never ranked).
        named: ``name`` was chosen by the user (``run_name``, a reference label): it is the row's label.
        overrides: the job's overrides (what the row label is made of).
        values: ``{"<metric>/<value>": float}`` of the metrics whose status is ok.
        directions: ``{"<metric>/<value>": True | False | None}`` (higher is better / lower / none).
        protocol: the run-level protocol object, if any.
        metric_protocols: ``{metric: protocol object}``.
        failed_metrics: ``{metric: error}`` of metrics that failed in an otherwise successful run.
    """

    path: Path
    name: str
    seed: int | None = None
    status: str = "ok"
    error: str | None = None
    reference: bool = False
    named: bool = False
    overrides: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    directions: dict[str, bool | None] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    metric_protocols: dict[str, Any] = field(default_factory=dict)
    failed_metrics: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None

    @property
    def label(self) -> str:
        """``name`` plus the seed, for listings."""
        return self.name if self.seed is None else f"{self.name} (seed {self.seed})"


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def config_name(overrides: Iterable[str], seed_keys: Sequence[str] = ("seed",)) -> str:
    """A job's configuration name: its overrides minus ``seed_keys``, sorted, comma-joined; or ``default``."""
    kept = sorted(str(o) for o in overrides if _split_override(o)[0] not in seed_keys)
    return ",".join(kept) or "default"


def _seed_from(overrides: Iterable[str], seed_keys: Sequence[str]) -> int | None:
    for o in overrides:
        key, value = _split_override(o)
        if key in seed_keys:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _read_overrides(job_dir: Path) -> list[str] | None:
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TableError(f"{path}: cannot read the overrides: {e}") from e
    if data is None:
        return []
    if not isinstance(data, list):
        raise TableError(f"{path}: expected a list of 'key=value' strings, got {type(data).__name__}")
    return [str(o) for o in data]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise TableError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "-inf", "infinity", "-infinity"):
        return float(value.strip().lower().replace("infinity", "inf"))
    raise TableError(f"{where}: expected a number (or 'inf'), got {value!r}")


def _json_object(path: Path) -> dict:
    """The results file's top-level object; :class:`TableError` naming the file otherwise."""
    try:
        text = path.read_text()
    except OSError as e:
        raise TableError(f"{path}: cannot read: {e}") from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TableError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    if not isinstance(data, dict):
        raise TableError(f"{path}: expected a JSON object (mmgt-eval results), got {type(data).__name__}")
    run_info = data.get("run")
    if run_info is not None and not isinstance(run_info, dict):
        raise TableError(f"{path}: 'run' must be an object, got {type(run_info).__name__}")
    return data


def _overrides(path: Path, run_info: dict) -> list | None:
    """``run.overrides``, else the Hydra overrides beside the file (None: neither)."""
    overrides = run_info.get("overrides")
    if overrides is None:
        return _read_overrides(path.parent)
    if not isinstance(overrides, list):
        raise TableError(f"{path}: run.overrides must be a list of 'key=value' strings")
    return overrides


def _run_name(
    path: Path,
    run_info: dict,
    overrides: list | None,
    label: str | None,
    reference: bool,
    seed_keys: Sequence[str],
) -> str:
    if label:
        return str(label)
    if run_info.get("name"):
        return str(run_info["name"])
    if overrides is not None and not reference:
        return config_name(overrides, seed_keys)
    return path.parent.name or str(path)


def _run_seed(path: Path, run_info: dict, overrides: list | None, seed_keys: Sequence[str]) -> int | None:
    seed = run_info.get("seed")
    if seed is None and overrides is not None:
        seed = _seed_from(overrides, seed_keys)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise TableError(f"{path}: run.seed must be an integer, got {seed!r}") from None
    return None if seed is None else int(seed)


def _run_status(path: Path, run_info: dict) -> str:
    status = str(run_info.get("status", "ok"))
    if status not in ("ok", "failed"):
        raise TableError(f"{path}: run.status must be 'ok' or 'failed', got {status!r}")
    if status == "ok" and run_info.get("evaluated") is False:
        return NOT_EVALUATED  # trained; its results hold no metrics
    return status


@dataclass
class _Scores:
    """What a results file reports per metric: values and their directions, protocols, failures."""

    values: dict[str, float] = field(default_factory=dict)
    directions: dict[str, bool | None] = field(default_factory=dict)
    protocols: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def add_entry(self, path: Path, mname: str, entry: Any) -> None:
        """One ``metrics.<mname>`` entry of mmgt-eval's results."""
        if not isinstance(entry, dict):
            raise TableError(f"{path}: metrics.{mname} must be an object")
        if "protocol" in entry:
            self.protocols[mname] = entry["protocol"]
        if entry.get("status", "ok") != "ok":
            self.failed[mname] = str(entry.get("error") or "failed")
            return
        declared = entry.get("value_higher_is_better")
        adapter = str(entry.get("name") or mname)  # consulted only when the entry declares nothing
        for key, v in (entry.get("values") or {}).items():
            full = f"{mname}/{key}"
            self.values[full] = _number(v, f"{path}: metrics.{mname}.values.{key}")
            self.directions[full] = value_direction(key, declared, entry.get("higher_is_better"), adapter)


def _scores(path: Path, data: dict, status: str) -> _Scores:
    """The file's metric entries, else (a plain ``summary``) its values with no directions."""
    scores = _Scores()
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        for mname, entry in metrics.items():
            scores.add_entry(path, mname, entry)
    elif status == "ok":
        if not isinstance(data.get("summary"), dict):
            raise TableError(f"{path}: no 'metrics' or 'summary' object: not an mmgt-eval results file")
        for full, v in data["summary"].items():
            scores.values[full] = _number(v, f"{path}: summary.{full}")
            scores.directions[full] = None  # a summary states no directions
    return scores


def load_result(
    path: str | os.PathLike[str],
    *,
    reference: bool = False,
    label: str | None = None,
    seed_keys: Sequence[str] = ("seed",),
) -> RunResult:
    """Read one ``results.json`` into a :class:`RunResult`; :class:`TableError` naming the file otherwise."""
    path = Path(path)
    data = _json_object(path)
    run_info = data.get("run") or {}
    overrides = _overrides(path, run_info)
    name = _run_name(path, run_info, overrides, label, reference, seed_keys)
    seed = _run_seed(path, run_info, overrides, seed_keys)
    status = _run_status(path, run_info)
    scores = _scores(path, data, status)
    seconds = run_info.get("seconds")
    return RunResult(
        path=path,
        name=name,
        seed=seed,
        status=status,
        error=None if run_info.get("error") is None else str(run_info["error"]),
        reference=reference,
        named=bool(label) or reference or bool(run_info.get("named")),
        overrides=tuple(str(o) for o in overrides or ()),
        values=scores.values,
        directions=scores.directions,
        protocol=data.get("protocol") if isinstance(data.get("protocol"), dict) else None,
        metric_protocols=scores.protocols,
        failed_metrics=scores.failed,
        seconds=None if seconds is None else float(seconds),
    )


def _unfinished_job(job_dir: Path, seed_keys: Sequence[str]) -> RunResult:
    """The :class:`RunResult` of a job folder without results.

    Trained and exported (an older mmgt-train without ``evaluate`` wrote none) -> not evaluated; otherwise
    failed.
    """
    overrides = _read_overrides(job_dir) or []
    trained = (job_dir / "export").is_dir()
    return RunResult(
        path=job_dir,
        name=config_name(overrides, seed_keys),
        seed=_seed_from(overrides, seed_keys),
        status=NOT_EVALUATED if trained else "failed",
        error=None if trained else f"no {RESULTS_FILE} in {job_dir} (the job did not finish?)",
        overrides=tuple(overrides),
    )


def find_results(path: str | os.PathLike[str]) -> tuple[list[Path], list[Path]]:
    """(results files, job folders without one) under ``path``: a file, a job folder or a sweep folder."""
    p = Path(path)
    if p.is_file():
        return [p], []
    if not p.is_dir():
        raise TableError(f"{p}: not found (expected a sweep folder, a job folder or a {RESULTS_FILE})")
    if (p / RESULTS_FILE).is_file():
        return [p / RESULTS_FILE], []
    found: list[Path] = []
    unfinished: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(p):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if RESULTS_FILE in filenames:
            found.append(here / RESULTS_FILE)
            dirnames[:] = []  # a job folder: its own subfolders are not runs
        elif here != p and (here / ".hydra" / "overrides.yaml").is_file():
            unfinished.append(here)
            dirnames[:] = []
    if not found:
        raise TableError(
            f"{p}: no {RESULTS_FILE} found (searched recursively, hidden folders skipped)"
            + (f"; {len(unfinished)} job folders have none" if unfinished else "")
        )
    return sorted(found), sorted(unfinished)


def path_list(value: Any, what: str) -> list[Any]:
    """``value`` (None, a path or a sequence of paths) as a list; :class:`TableError` naming ``what``."""
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise TableError(f"{what}: expected a path or a list of paths, got {type(value).__name__}")


def collect(
    runs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    reference: Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] | None = None,
    *,
    seed_keys: Sequence[str] = ("seed",),
) -> list[RunResult]:
    """Every run under ``runs`` (plus unfinished jobs as failed runs) and the ``reference`` rows."""
    entries = path_list(runs, "runs")
    if not entries:
        raise TableError("runs is empty: give runs=DIR (a sweep folder, a job folder or a results.json)")
    out: list[RunResult] = []
    seen: set[Path] = set()
    for entry in entries:
        files, unfinished = find_results(entry)
        for f in files:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                out.append(load_result(f, seed_keys=seed_keys))
        for job in unfinished:
            if job.resolve() not in seen:
                seen.add(job.resolve())
                out.append(_unfinished_job(job, seed_keys))
    if isinstance(reference, Mapping):
        labelled = [(str(k), v) for k, v in reference.items()]
    else:
        labelled = [(None, v) for v in path_list(reference, "reference")]
    for label, ref in labelled:
        files, _ = find_results(ref)
        for f in files:
            out.append(
                load_result(f, reference=True, label=label if len(files) == 1 else None, seed_keys=seed_keys)
            )
    return out
