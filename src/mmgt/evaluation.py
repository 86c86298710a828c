"""Scoring a training run's generated test videos with ``mmgt-eval``, and the run's ``results.json``.

A stage's evaluator (``cfg.evaluate`` of ``mmgt-train``, e.g. :class:`mmgt.stage1.evaluate.PoseEvaluation`)
generates the test split into ``<run>/generated`` and calls :func:`score_videos`, which runs the real
``mmgt-eval`` CLI (``python -m mmgt_eval.cli``) in a subprocess: exactly the command users run on any
folder of videos, isolated from the training process (its memory, its Hydra state, its failures). The
results of control conditions (e.g. shuffled audio) are merged in under ``<metric>_<suffix>`` names by
:func:`merge_results`. :func:`write_run_results` adds the ``run`` block the tables read (docs/experiments.md).

Protocol size: generated videos (the model's training size) and references (the store's size) are scored
at one declared side (:func:`protocol_size`, the evaluators' ``eval_size``): mmgt-eval's ``protocol.resize``
brings both to it (cv2.INTER_AREA) and the results' ``protocol`` records it and why (``size_from``).
An evaluation in which no metric of the generated videos produced a value (:func:`nothing_scored`) makes
the run ``failed`` (``mmgt-train`` raises :class:`NothingScored` after writing results.json).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmgt.atomic import write_json

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"


class EvaluationFailed(RuntimeError):
    """``mmgt-eval`` exited with an error (the message holds the end of its output)."""


class NothingScored(EvaluationFailed):
    """The evaluation ran, no metric produced a value; ``results_path`` holds why (metric errors, skips)."""

    def __init__(self, message: str, results_path: str | Path | None = None) -> None:
        super().__init__(message)
        self.results_path = results_path


EVAL_SIZE_GENERATED = "generated"
"""``eval_size`` value: score at the generated videos' side (the model's training size)."""


def protocol_size(
    eval_size: int | str | None, generated_size: int, reference_sizes: Sequence[int], what: str
) -> tuple[int | None, list[str]]:
    """(side, mmgt-eval overrides) that score generated and reference videos at one declared side.

    Args:
        eval_size: ``"generated"`` (the generated videos' side; references are area-downsampled to it),
            a side in pixels (both are resized to it), or None (native sizes: they must already match).
        generated_size: side of the generated videos.
        reference_sizes: sides of the reference videos (the clip store's records).
        what: where ``generated_size`` comes from (recorded as ``protocol.size_from``).

    Raises:
        ValueError: at start-up, before any generation, when ``eval_size`` is None and the sizes differ, or
            when it is neither ``"generated"``, a positive int nor None.
    """
    if eval_size is None:
        other = sorted({int(s) for s in reference_sizes if s and int(s) != generated_size})
        if other:
            raise ValueError(
                f"eval_size=null scores at native sizes, but the generated videos are {generated_size}x"
                f"{generated_size} ({what}) and the references {', '.join(f'{s}x{s}' for s in other)}: set "
                f"eval_size={EVAL_SIZE_GENERATED} (references area-downsampled) or a side in pixels"
            )
        return None, []
    if eval_size == EVAL_SIZE_GENERATED:
        side, source = int(generated_size), f"{EVAL_SIZE_GENERATED}: {what}"
    elif isinstance(eval_size, int) and not isinstance(eval_size, bool) and eval_size > 0:
        side, source = int(eval_size), "eval_size (configured)"
    else:
        raise ValueError(
            f"eval_size must be {EVAL_SIZE_GENERATED!r}, a positive int or null, got {eval_size!r}"
        )
    return side, [f"protocol.resize={side}", f"++protocol.size_from={_quoted(source)}"]


def generation_conditions(
    n_clips: int, shuffled_control: bool, where: str
) -> tuple[dict[str, list[int]], str]:
    """The generation conditions of an evaluation and what became of the shuffled-audio control.

    Conditions: ``{"generated": [0..n), "generated_shuffled": clip i driven by clip i+1's audio (a
    derangement)}``; the control is ``"ok"``, ``"off"``, or why it was skipped (a split of one clip has no
    other clip's audio, so it is scored without the control).
    """
    out = {"generated": list(range(n_clips))}
    if not shuffled_control:
        return out, "off"
    if n_clips < 2:
        note = f"skipped: the shuffled-audio control needs >= 2 clips, {where} has {n_clips}"
        log.warning("%s", note)
        return out, note
    out["generated_shuffled"] = [(i + 1) % n_clips for i in range(n_clips)]
    return out, "ok"


def nothing_scored(results: Mapping[str, Any]) -> str | None:
    """Why an evaluation scored nothing (no metric of the generated videos has a value), else None.

    Control conditions merged in by :func:`merge_results` do not count: a run is judged by its own videos.
    """
    controls = {m for c in (results.get("controls") or {}).values() for m in c.get("metrics", [])}
    own = {k: v for k, v in (results.get("metrics") or {}).items() if k not in controls}
    if any(e.get("status") == "ok" and e.get("values") for e in own.values()):
        return None
    if not own:
        return "evaluation scored nothing: no metric was run"
    errors = "; ".join(f"{k}: {e.get('error') or e.get('status')}" for k, e in sorted(own.items()))
    skips = results.get("skips") or []
    first = f"; first skip: {skips[0].get('video')}: {skips[0].get('reason')}" if skips else ""
    return f"evaluation scored nothing, every metric failed: {errors}{first}"


def _quoted(value: str | Path) -> str:
    """A Hydra override value that may hold ``=`` and ``,`` (multirun job folders do): single-quoted."""
    text = str(value)
    if "'" in text:
        raise ValueError(f"{text}: a path with a single quote cannot be passed to mmgt-eval")
    return f"'{text}'"


def score_videos(
    generated: str | Path,
    reference: str | Path | None,
    metrics: Sequence[str],
    results: str | Path,
    pairing: str | Path = "name",
    protocol: str = "default",
    overrides: Sequence[str] = (),
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``mmgt-eval`` on a folder; returns its results dict (also written to ``results``).

    Args:
        generated: folder of generated videos (with companion keypoints / audio, see mmgt_eval.runner).
        reference: folder of reference videos, or None.
        metrics: names of ``conf/eval/metrics/<name>.yaml``.
        results: where mmgt-eval writes its JSON.
        pairing: ``name`` or a pairing manifest (.jsonl / .csv).
        protocol: ``conf/eval/protocol/<name>.yaml``.
        overrides: further Hydra overrides of ``conf/eval.yaml`` (e.g. ``+metric_args.fid.batch_size=8``).
        timeout: seconds mmgt-eval may run (None: no limit).

    Raises:
        EvaluationFailed: mmgt-eval failed before writing results (a metric that fails inside a run is
            reported in the results instead, as ``status: failed``).
    """
    results = Path(results)
    cmd = [
        sys.executable,
        "-m",
        "mmgt_eval.cli",
        f"generated={_quoted(generated)}",
        f"reference={_quoted(reference)}" if reference is not None else "reference=null",
        f"metrics=[{','.join(metrics)}]",
        f"pairing={_quoted(pairing)}",
        f"protocol={protocol}",
        f"results={_quoted(results)}",
        "tensorboard_dir=null",
        "progress=false",
        f"hydra.run.dir={_quoted(results.parent / '.mmgt_eval')}",
        *overrides,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if not results.is_file():
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise EvaluationFailed(f"mmgt-eval on {generated} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(results.read_text())


def clip_name(clip: Any) -> str:
    """``<speaker>/<id>``: how a clip's generated video is named (``generated/<speaker>/<id>.mp4``)."""
    return f"{clip.record.speaker}/{clip.record.id}"


def write_pairs_manifest(clips: Sequence[Any], path: str | Path) -> Path:
    """A pairing manifest for mmgt-eval: generated ``<speaker>/<id>.mp4`` <-> the clip's own video.mp4."""
    from mmgt.clipstore import VIDEO_FILE

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "name": clip_name(c),
            "generated": f"{clip_name(c)}.mp4",
            "reference": str(c.dir.resolve() / VIDEO_FILE),
        }
        for c in clips
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def merge_results(main: dict[str, Any], control: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    """Add a control condition's metrics to ``main`` as ``<metric>_<suffix>`` (summary keys likewise)."""
    merged = dict(main)
    merged["metrics"] = dict(main.get("metrics", {}))
    merged["summary"] = dict(main.get("summary", {}))
    for name, entry in control.get("metrics", {}).items():
        merged["metrics"][f"{name}_{suffix}"] = entry
        for key, value in entry.get("values", {}).items():
            merged["summary"][f"{name}_{suffix}/{key}"] = value
    merged.setdefault("controls", {})[suffix] = {
        "generated_dir": control.get("generated_dir"),
        "failed_metrics": control.get("failed_metrics", []),
        "metrics": [f"{name}_{suffix}" for name in control.get("metrics", {})],
    }
    return merged


def write_run_results(
    out_dir: str | Path, run: Mapping[str, Any], results: Mapping[str, Any] | None = None
) -> Path:
    """``<out_dir>/results.json``: the evaluation results (if any) plus the ``run`` block."""
    data = dict(results or {})
    data["run"] = dict(run)
    return write_json(Path(out_dir) / RESULTS_FILE, data, default=str)


def scalar_summary(results: Mapping[str, Any]) -> dict[str, float]:
    """The finite numeric values of ``results["summary"]`` (for TensorBoard's HParams view)."""
    out: dict[str, float] = {}
    for key, value in (results.get("summary") or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if value == value and abs(value) != float("inf"):
            out[f"eval/{key}"] = float(value)
    return out
