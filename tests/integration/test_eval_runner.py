"""Evaluation runner: pairing, results JSON + TensorBoard, bad input, 1 vs 2 gloo processes, Hydra CLI.

The metrics here are real adapters defined in this file (torchmetrics states, the runner's protocol); the
library's own metrics are tested in their own files.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torchmetrics
from omegaconf import open_dict

from mmgt.io import read_video, write_audio, write_video
from mmgt_eval.metrics.base import EvaluationError, MetricAdapter, MetricInputError, VideoSample, VideoSkipped
from mmgt_eval.pairing import PairingError, pair_videos
from mmgt_eval.runner import RunProtocol, evaluate
from tests.helpers.shared import compose_config

SIZE, T = 32, 12


# --------------------------------------------------------------------------- test adapters
class MadAdapter(MetricAdapter):
    """Mean absolute pixel difference generated vs reference, over every pixel of every video."""

    name = "mad"
    higher_is_better = False
    needs_reference = True

    def __init__(self, weights_path: str | None = None, min_frames: int = 1) -> None:
        self.weights_path = weights_path
        self.min_frames = min_frames
        self.abs_sum = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)
        self.count = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        assert reference is not None
        if generated.frames.shape != reference.frames.shape:
            raise MetricInputError(
                f"{generated.name}: generated {generated.frames.shape} vs reference {reference.frames.shape}"
            )
        if generated.frames.shape[0] < self.min_frames:
            raise VideoSkipped(generated.name, f"{generated.frames.shape[0]} frames < {self.min_frames}")
        d = np.abs(generated.frames.astype(np.float64) - reference.frames.astype(np.float64))
        self.abs_sum.update(torch.tensor(d.sum(), dtype=torch.float64))
        self.count.update(torch.tensor(float(d.size), dtype=torch.float64))
        return {"mad": float(d.mean())}

    def compute(self) -> dict[str, float]:
        return {"mad": float(self.abs_sum.compute() / self.count.compute())}

    def protocol(self) -> dict:
        return {
            "definition": "mean |generated - reference| over all pixels",
            "weights_path": self.weights_path,
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.abs_sum, self.count]


class KeypointFramesAdapter(MetricAdapter):
    """Keypoint frames of the generated video: a metric that needs keypoints and nothing else."""

    name = "kp"
    higher_is_better = True
    needs_reference = False

    def __init__(self) -> None:
        self.frames = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        if generated.keypoints is None:
            raise VideoSkipped(generated.name, generated.missing_keypoints("kp"))
        self.frames.update(torch.tensor(float(len(generated.keypoints)), dtype=torch.float64))
        return {"kp_frames": float(len(generated.keypoints))}

    def compute(self) -> dict[str, float]:
        return {"kp_frames": float(self.frames.compute())}

    def protocol(self) -> dict:
        return {"definition": "keypoint frames of the generated videos"}

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.frames]


class ProbeAdapter(MetricAdapter):
    """No reference: a random draw (tests per-video seeding), frame count, keypoints and audio presence."""

    name = "probe"
    higher_is_better = True
    needs_reference = False

    def __init__(self) -> None:
        self.mean = torchmetrics.MeanMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        r = float(torch.rand(()))
        self.mean.update(torch.tensor(r, dtype=torch.float64))
        kp = generated.keypoints
        return {
            "rand": r,
            "n_frames": float(generated.frames.shape[0]),
            "kp_frames": float(kp.shape[0]) if kp is not None else -1.0,
            "audio_s": len(generated.audio) / 16000 if generated.audio is not None else -1.0,
            "has_ref": float(reference is not None),
        }

    def compute(self) -> dict[str, float]:
        return {"mean_rand": float(self.mean.compute())}

    def protocol(self) -> dict:
        return {}

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.mean]


class ColourFrechetAdapter(MetricAdapter):
    """Fréchet distance between Gaussians of per-video mean colours (3-d); needs >= 2 videos per side."""

    name = "colour_fd"
    higher_is_better = False
    needs_reference = True

    def __init__(self) -> None:
        self.gen = torchmetrics.CatMetric(sync_on_compute=False).set_dtype(torch.float64)
        self.ref = torchmetrics.CatMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        assert reference is not None
        self.gen.update(torch.tensor(generated.frames.reshape(-1, 3).mean(0), dtype=torch.float64)[None])
        self.ref.update(torch.tensor(reference.frames.reshape(-1, 3).mean(0), dtype=torch.float64)[None])
        return {}

    def compute(self) -> dict[str, float]:
        g, r = self.gen.compute().reshape(-1, 3).numpy(), self.ref.compute().reshape(-1, 3).numpy()
        if len(g) < 2:
            raise MetricInputError(f"Fréchet distance needs >= 2 videos per side, got {len(g)}")
        from scipy.linalg import sqrtm

        s1, s2 = np.cov(g, rowvar=False), np.cov(r, rowvar=False)
        covmean = np.real(sqrtm(s1 @ s2))
        return {"fd": float(((g.mean(0) - r.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))}

    def protocol(self) -> dict:
        return {"features": "per-video mean RGB"}

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.gen, self.ref]


class AudioAdapter(MetricAdapter):
    """Needs audio: a video without any is a declared skip."""

    name = "audio"
    higher_is_better = True
    needs_reference = False

    def __init__(self) -> None:
        self.total = torchmetrics.SumMetric(sync_on_compute=False).set_dtype(torch.float64)

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        if generated.audio is None:
            raise VideoSkipped(generated.name, "no audio")
        rms = float(np.sqrt(np.mean(generated.audio.astype(np.float64) ** 2)))
        self.total.update(torch.tensor(rms, dtype=torch.float64))
        return {"rms": rms}

    def compute(self) -> dict[str, float]:
        return {"rms_sum": float(self.total.compute())}

    def protocol(self) -> dict:
        return {}

    def metric_states(self) -> list[torchmetrics.Metric]:
        return [self.total]


class NaNAdapter(ProbeAdapter):
    name = "nan"

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        return {"x": float("nan")}


# --------------------------------------------------------------------------- fixtures
def _frames(seed: int, n: int = T, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(1, size // 8, size // 8, 3)).repeat(8, 1).repeat(8, 2)
    ramp = np.arange(n)[:, None, None, None] * 3
    return np.clip(base + ramp, 0, 255).astype(np.uint8)


def _tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_dataset(root: Path, names=("a", "b", "c", "d", "e")) -> tuple[Path, Path]:
    gen, ref = root / "gen", root / "ref"
    for i, name in enumerate(names):
        frames = _frames(i)
        write_video(ref / f"{name}.mp4", frames)
        shifted = np.clip(frames.astype(int) + 10 * (i + 1), 0, 255).astype(np.uint8)
        write_video(gen / f"{name}.mp4", shifted, audio=_tone(T / 25) if i % 2 == 0 else None)
    return gen, ref


def _metrics() -> dict:
    return {"mad": MadAdapter(), "probe": ProbeAdapter(), "colour_fd": ColourFrechetAdapter()}


def _expected_mad(gen: Path, ref: Path, names) -> float:
    total, count = 0.0, 0
    for n in names:
        g = read_video(gen / f"{n}.mp4").frames.astype(np.float64)
        r = read_video(ref / f"{n}.mp4").frames.astype(np.float64)
        total += np.abs(g - r).sum()
        count += g.size
    return total / count


def _no_nan(obj) -> None:
    if isinstance(obj, float):
        assert not math.isnan(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _no_nan(v)
    elif isinstance(obj, list):
        for v in obj:
            _no_nan(v)


# --------------------------------------------------------------------------- tests
def test_pairs_by_name_writes_results_and_tensorboard(tmp_path):
    gen, ref = make_dataset(tmp_path)
    np.save(gen / "a.npy", np.random.default_rng(0).random((T, 134, 3)).astype(np.float32))
    (gen / "b").mkdir()
    np.save(gen / "b" / "keypoints.npy", np.zeros((T, 134, 3), np.float32))
    write_audio(gen / "d.wav", _tone(0.2))  # d has no audio track: the sibling wav is used
    out = tmp_path / "out"
    res = evaluate(
        gen,
        ref,
        _metrics(),
        protocol=RunProtocol(seed=3, extra={"note": "test"}),
        results_path=out / "results.json",
        tensorboard_dir=out / "tb",
        tensorboard_step=7,
        weights={"fake": {"sha256": "0" * 64, "status": "unverified"}},
        progress=False,
    )
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == res
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # atomic write left no temp file
    names = ["a", "b", "c", "d", "e"]
    assert list(res["per_video"]) == names
    assert res["metrics"]["mad"]["status"] == "ok" and res["metrics"]["mad"]["n_videos"] == 5
    assert res["metrics"]["mad"]["values"]["mad"] == pytest.approx(_expected_mad(gen, ref, names), rel=1e-12)
    assert res["summary"]["mad/mad"] == res["metrics"]["mad"]["values"]["mad"]
    assert res["metrics"]["colour_fd"]["values"]["fd"] >= 0
    assert res["metrics"]["mad"]["protocol"]["definition"].startswith("mean |generated")
    per = res["per_video"]
    for i, n in enumerate(names):  # per-video scores kept; mad is ~ the brightness shift of that video
        assert per[n]["scores"]["mad"]["mad"] == pytest.approx(10 * (i + 1), abs=3)
        assert per[n]["generated"]["n_frames"] == T and per[n]["reference"]["size"] == [SIZE, SIZE]
    assert per["a"]["scores"]["probe"]["kp_frames"] == T and per["b"]["scores"]["probe"]["kp_frames"] == T
    assert per["c"]["scores"]["probe"]["kp_frames"] == -1
    assert per["c"]["scores"]["probe"]["has_ref"] == 1  # optional for it, but given when there is one
    assert per["a"]["generated"]["audio"] == "track" and per["b"]["generated"]["audio"] is None
    assert per["d"]["generated"]["audio"].endswith("d.wav")
    assert per["d"]["scores"]["probe"]["audio_s"] == pytest.approx(0.2)
    assert res["protocol"] == {
        "name": "default",
        "seed": 3,
        "max_frames": None,
        "resize": None,
        "note": "test",
    }
    assert res["weights"]["fake"]["status"] == "unverified"
    assert res["versions"]["torch"] and res["versions"]["torchmetrics"] and res["versions"]["python"]
    assert len(res["git"]["commit"]) == 40  # the tests run from the git checkout
    assert res["counts"]["n_pairs"] == 5 and res["skips"] == [] and res["failed_metrics"] == []
    _no_nan(res)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    events = acc.Scalars("eval/mad/mad")
    assert len(events) == 1 and events[0].step == 7
    assert events[0].value == pytest.approx(res["summary"]["mad/mad"], rel=1e-6)
    assert acc.Scalars("eval_counts/mad/n_videos")[0].value == 5


def test_unmatched_names_are_listed_or_skipped(tmp_path):
    gen, ref = make_dataset(tmp_path, names=("a", "b", "c"))
    write_video(gen / "only_gen.mp4", _frames(7))
    write_video(ref / "sub" / "only_ref.mp4", _frames(8))
    with pytest.raises(PairingError) as e:
        evaluate(gen, ref, _metrics(), progress=False)
    msg = str(e.value)
    assert "only_gen" in msg and "sub/only_ref" in msg and "unmatched=skip" in msg

    res = evaluate(gen, ref, _metrics(), unmatched="skip", progress=False)
    assert res["metrics"]["mad"]["n_videos"] == 3 and res["metrics"]["mad"]["n_skipped"] == 1
    assert res["per_video"]["only_gen"]["scores"].keys() == {"probe"}  # reference-free metric still ran
    assert res["per_video"]["only_gen"]["scores"]["probe"]["has_ref"] == 0
    kinds = {(s["video"], s["metric"]): s["kind"] for s in res["skips"]}
    assert kinds[("only_gen", "mad")] == "unpaired"
    assert kinds[("sub/only_ref", None)] == "unpaired_reference"
    with pytest.raises(EvaluationError, match="need reference videos"):
        evaluate(gen, None, _metrics(), progress=False)
    assert evaluate(gen, None, {"probe": ProbeAdapter()}, progress=False)["metrics"]["probe"]["n_videos"] == 4


def test_manifest_pairing_csv_and_jsonl(tmp_path):
    gen, ref = make_dataset(tmp_path, names=("a", "b"))
    (ref / "a.mp4").rename(ref / "ref_a.mp4")
    (ref / "b.mp4").rename(ref / "ref_b.mp4")
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("generated,reference\na.mp4,ref_a.mp4\nb.mp4,ref_b.mp4\n")
    pairs, _ = pair_videos(gen, ref, csv_path)
    assert [(p.name, p.reference.path.name) for p in pairs] == [("a", "ref_a.mp4"), ("b", "ref_b.mp4")]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        json.dumps({"name": "x", "generated": "a.mp4", "reference": "ref_a.mp4"})
        + "\n"
        + json.dumps({"name": "y", "generated": "b.mp4", "reference": "ref_b.mp4"})
        + "\n"
    )
    res = evaluate(gen, ref, {"mad": MadAdapter()}, pairing=jsonl, progress=False)
    assert list(res["per_video"]) == ["x", "y"] and res["pairing"] == str(jsonl)
    bad = tmp_path / "bad.csv"
    bad.write_text("generated,reference\na.mp4,missing.mp4\n")
    with pytest.raises(PairingError, match="missing.mp4"):
        pair_videos(gen, ref, bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairingError, match="no videos found"):
        pair_videos(tmp_path / "empty")


def _write_raw(path: Path, codec: str, pix_fmt: str, fmt_in: str, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format=fmt_in)):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_bad_input_is_declared_or_an_error(tmp_path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    base = _frames(1)
    write_video(ref / "ok.mp4", base)
    write_video(gen / "ok.mp4", base)
    write_video(ref / "ok2.mp4", _frames(2))
    write_video(gen / "ok2.mp4", _frames(3))
    # grayscale and RGBA generated videos: decoded to RGB, conversion declared
    gray = _frames(4)[..., 0]
    write_video(ref / "gray.mp4", np.repeat(gray[..., None], 3, axis=-1))
    _write_raw(gen / "gray.mkv", "ffv1", "gray", "gray", gray)
    rgba = np.concatenate([_frames(5), np.full((T, SIZE, SIZE, 1), 128, np.uint8)], axis=-1)
    write_video(ref / "rgba.mp4", rgba[..., :3])
    _write_raw(gen / "rgba.mov", "png", "rgba", "rgba", rgba)
    # mismatched frame count (adapter input error), a too-short pair (declared skip), an unreadable file
    write_video(ref / "count.mp4", _frames(6))
    write_video(gen / "count.mp4", _frames(6, n=T - 4))
    write_video(ref / "short.mp4", _frames(7, n=3))
    write_video(gen / "short.mp4", _frames(7, n=3))
    write_video(ref / "broken.mp4", _frames(8))
    (gen / "broken.mp4").write_bytes(b"not a video at all" * 10)
    np.save(gen / "ok2.npy", np.zeros((T, 17, 3), np.float32))  # malformed keypoints: keypoint metrics skip
    write_video(ref / "nan.mp4", _frames(9))
    write_video(gen / "nan.mp4", _frames(9))
    np.save(gen / "nan.npy", np.full((T, 134, 3), np.nan, np.float32))  # NaN keypoints: the same
    np.save(gen / "ok.npy", np.full((T, 134, 3), 0.5, np.float32))

    metrics = {"mad": MadAdapter(min_frames=5), "audio": AudioAdapter(), "kp": KeypointFramesAdapter()}
    res = evaluate(gen, ref, metrics, progress=False, results_path=tmp_path / "r.json")
    per, skips = res["per_video"], res["skips"]
    assert per["gray"]["generated"]["conversions"][0].startswith("grayscale video (gray)")
    assert "alpha dropped" in per["rgba"]["generated"]["conversions"][0]
    assert per["gray"]["scores"]["mad"]["mad"] < 1.5  # ffv1 is lossless; the H.264 reference is close
    assert sum(res["counts"]["conversions"].values()) == 2
    kinds = {(s["video"], s["metric"]): s["kind"] for s in skips}
    assert kinds[("count", "mad")] == "input_error"
    assert kinds[("short", "mad")] == "skipped"
    assert kinds[("broken", None)] == "unreadable"
    assert kinds[("ok", "audio")] == "skipped"  # no audio track, no wav: declared, never NaN
    reasons = {(s["video"], s["metric"]): s["reason"] for s in skips}
    assert "broken.mp4" in reasons[("broken", None)]
    # invalid keypoints skip only the keypoint metric, naming the file; pixel metrics still score the pair
    assert kinds[("ok2", "kp")] == "skipped" and kinds[("nan", "kp")] == "skipped"
    assert "ok2.npy" in reasons[("ok2", "kp")] and "(T, 134, 3)" in reasons[("ok2", "kp")]
    assert "nan.npy" in reasons[("nan", "kp")] and "NaN" in reasons[("nan", "kp")]
    assert "mad" in per["nan"]["scores"] and per["nan"]["generated"]["keypoints_error"]
    assert per["ok"]["scores"]["kp"] == {"kp_frames": float(T)}
    assert "vs reference" in reasons[("count", "mad")]
    assert res["metrics"]["mad"]["n_videos"] == 5 and res["metrics"]["mad"]["n_skipped"] == 3
    # every video lacks audio: the metric fails visibly instead of reporting NaN
    assert res["metrics"]["audio"]["status"] == "failed" and "values" not in res["metrics"]["audio"]
    assert res["failed_metrics"] == ["audio"]
    _no_nan(json.loads((tmp_path / "r.json").read_text()))

    with pytest.raises(EvaluationError, match="strict"):
        evaluate(gen, ref, {"mad": MadAdapter(min_frames=5)}, strict=True, progress=False)


def test_too_few_videos_for_frechet_and_nan_are_errors(tmp_path):
    gen, ref = make_dataset(tmp_path, names=("a",))
    res = evaluate(gen, ref, {"colour_fd": ColourFrechetAdapter(), "mad": MadAdapter()}, progress=False)
    fd = res["metrics"]["colour_fd"]
    assert fd["status"] == "failed" and ">= 2 videos" in fd["error"] and "values" not in fd
    assert res["metrics"]["mad"]["status"] == "ok"
    with pytest.raises(EvaluationError, match="metrics failed: colour_fd"):
        evaluate(gen, ref, {"colour_fd": ColourFrechetAdapter()}, strict=True, progress=False)
    with pytest.raises(EvaluationError, match="metric nan on video a: per-video score 'x' is NaN"):
        evaluate(gen, None, {"nan": NaNAdapter()}, progress=False)
    probe = ProbeAdapter()
    probe.mean = torchmetrics.MeanMetric()  # would sync inside compute: the runner syncs states itself
    with pytest.raises(ValueError, match="probe: MeanMetric is built with sync_on_compute=True"):
        evaluate(gen, None, {"probe": probe}, progress=False)


def test_protocol_max_frames_and_resize(tmp_path):
    gen, ref = make_dataset(tmp_path, names=("a", "b"))
    res = evaluate(
        gen,
        ref,
        {"mad": MadAdapter(), "probe": ProbeAdapter()},
        protocol=RunProtocol(max_frames=5, resize=16),
        progress=False,
    )
    a = res["per_video"]["a"]
    assert a["generated"]["n_frames"] == 5 and a["generated"]["size"] == [16, 16]
    assert a["generated"]["conversions"] == ["resized 32x32 -> 16x16 (cv2.INTER_AREA)"]
    assert a["scores"]["probe"]["audio_s"] == pytest.approx(5 / 25, abs=0.01)
    assert res["protocol"]["resize_interpolation"] == "cv2.INTER_AREA"


# --------------------------------------------------------------------------- 2 processes (gloo) vs 1
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, gen: str, ref: str, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from mmgt_eval.distributed import init_distributed

    assert init_distributed("auto") == (rank, world)
    try:
        # torchmetrics' own compute() syncs states across ranks once the process group exists
        probe = torchmetrics.SumMetric()
        probe.update(torch.tensor(float(rank + 1)))
        auto_synced = float(probe.compute())
        res = evaluate(gen, ref, _metrics(), results_path=out, progress=False, protocol=RunProtocol(seed=3))
        Path(f"{out}.rank{rank}").write_text(json.dumps({"summary": res["summary"], "auto": auto_synced}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    gen, ref = make_dataset(tmp_path)
    one = evaluate(gen, ref, _metrics(), progress=False, protocol=RunProtocol(seed=3))
    out = tmp_path / "two.json"
    mp.spawn(_worker, args=(2, _free_port(), str(gen), str(ref), str(out)), nprocs=2, join=True)
    two = json.loads(out.read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    for rank in (0, 1):
        from_rank = json.loads(Path(f"{out}.rank{rank}").read_text())
        assert from_rank["summary"] == two["summary"]  # every rank returns the results
        assert from_rank["auto"] == 3.0  # 1 + 2: SumMetric.compute() synced by itself
    assert two["per_video"].keys() == one["per_video"].keys()
    for name, v in one["per_video"].items():
        assert two["per_video"][name]["scores"] == v["scores"]  # incl. the seeded random draw
    assert two["summary"].keys() == one["summary"].keys()
    for k, v in one["summary"].items():
        assert two["summary"][k] == pytest.approx(v, rel=1e-9), k
    for m in one["metrics"]:
        assert two["metrics"][m]["n_videos"] == one["metrics"][m]["n_videos"] == 5


# --------------------------------------------------------------------------- Hydra CLI
@pytest.fixture
def metric_conf(tmp_path, monkeypatch):
    """A config folder whose ``metrics`` group holds this file's adapters (``metrics/<name>.yaml``);
    MMGT_WEIGHTS restored afterwards."""
    monkeypatch.setenv("MMGT_WEIGHTS", str(tmp_path / "no_weights"))
    folder = tmp_path / "metric_conf"
    (folder / "metrics").mkdir(parents=True)
    mod = MadAdapter.__module__
    write_metric(folder, "mad", f"_target_: {mod}.MadAdapter\nweights: fgd_autoencoder\nmin_frames: 1\n")
    write_metric(folder, "probe", f"_target_: {mod}.ProbeAdapter\n")
    return folder


def write_metric(folder: Path, name: str, body: str) -> None:
    """``<folder>/metrics/<name>.yaml``: a metric config in package ``metrics.<name>``."""
    (folder / "metrics" / f"{name}.yaml").write_text(f"# @package metrics.{name}\n{body}")


def searchpath(folder: Path) -> str:
    """The override that adds ``folder`` to mmgt-eval's config search path (composed configs; the CLI
    takes ``--config-dir folder``)."""
    return f"hydra.searchpath=[pkg://mmgt.conf.eval,file://{folder}]"


def test_cli_run_composes_metrics_resolves_weights(tmp_path, metric_conf):
    from mmgt_eval.cli import run

    gen, ref = make_dataset(tmp_path, names=("a", "b"))
    wdir = tmp_path / "weights"
    wdir.mkdir()
    (wdir / "fgd_autoencoder.pt").write_bytes(b"checkpoint bytes written by the test")
    cfg = compose_config(
        "eval",
        [
            f"generated={gen}",
            f"reference={ref}",
            "metrics=[mad,probe]",
            searchpath(metric_conf),
            f"weights_dir={wdir}",
            "+metric_args.mad.min_frames=2",
            "protocol=smoke",
            "progress=false",
        ],
        output_dir=tmp_path / "run",
    )
    assert cfg.protocol.name == "smoke" and cfg.protocol.max_frames == 50
    res = run(cfg)
    results = Path(cfg.results)
    assert results.is_file() and json.loads(results.read_text())["summary"] == res["summary"]
    assert (Path(cfg.tensorboard_dir)).is_dir()
    w = res["weights"]["fgd_autoencoder"]
    assert w["status"] == "unverified" and w["metric"] == "mad" and len(w["sha256"]) == 64
    assert res["metrics"]["mad"]["protocol"]["weights_path"] == str(wdir / "fgd_autoencoder.pt")
    assert res["config"]["metrics"]["mad"]["min_frames"] == 2
    assert res["protocol"]["name"] == "smoke" and res["protocol"]["resize"] == 128
    assert res["per_video"]["a"]["generated"]["size"] == [128, 128]

    with pytest.raises(Exception, match="nope"):  # Hydra lists the metrics group's options
        compose_config("eval", [f"generated={gen}", searchpath(metric_conf), "metrics=[nope]"])
    with open_dict(cfg):
        cfg.metrics = {"_target_": "x.Y"}  # a file without its `# @package metrics.<name>` header
    with pytest.raises(ValueError, match="package header"):
        run(cfg)


def test_cli_missing_weights_fail_that_metric_and_wrong_weights_are_refused(tmp_path, metric_conf):
    from mmgt_eval.cli import run
    from mmgt_eval.weights import WeightsChecksumError

    gen, ref = make_dataset(tmp_path, names=("a", "b"))
    write_metric(
        metric_conf, "mad", f"_target_: {MadAdapter.__module__}.MadAdapter\nweights: lpips_alexnet\n"
    )
    wdir = tmp_path / "weights"
    wdir.mkdir()
    overrides = [
        f"generated={gen}",
        f"reference={ref}",
        "metrics=[mad]",
        f"weights_dir={wdir}",
        "progress=false",
    ]
    overrides.append(searchpath(metric_conf))
    cfg = compose_config("eval", overrides, output_dir=tmp_path / "run")
    res = run(cfg)  # the only metric cannot be built: recorded, no video decoded for nothing
    assert res["failed_metrics"] == ["mad"] and res["summary"] == {}
    assert "alexnet-owt-7be5be79.pth" in res["metrics"]["mad"]["error"]
    assert res["counts"]["n_pairs"] == 2 and res["counts"]["n_videos_loaded"] == 0
    (wdir / "alexnet-owt-7be5be79.pth").write_bytes(b"not alexnet")
    with pytest.raises(WeightsChecksumError, match="prefix mismatch"):  # a wrong file is refused
        run(cfg)


def test_missing_lpips_weights_fail_lpips_and_psnr_is_still_scored(tmp_path, monkeypatch):
    """The library's lpips (its AlexNet backbone absent: an empty weights folder and torch hub) next to
    psnr: lpips is failed with the file and the mmgt-weights command, psnr has its values."""
    from mmgt_eval.cli import run

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no torch hub cache either
    gen, ref = make_dataset(tmp_path, names=("a", "b"))
    overrides = [f"generated={gen}", f"reference={ref}", "metrics=[lpips,psnr]", "progress=false"]
    cfg = compose_config("eval", [*overrides, f"weights_dir={tmp_path / 'empty'}"], tmp_path / "run")
    res = run(cfg)
    assert res["failed_metrics"] == ["lpips"]
    lpips = res["metrics"]["lpips"]
    assert lpips["status"] == "failed" and lpips["n_videos"] == 0
    assert "alexnet-owt-7be5be79.pth" in lpips["error"]
    assert "`mmgt-weights fetch lpips_alexnet`" in lpips["error"]
    assert lpips["missing_weights"]["command"] == "mmgt-weights fetch lpips_alexnet"
    assert res["metrics"]["psnr"]["status"] == "ok" and res["metrics"]["psnr"]["n_videos"] == 2
    assert "psnr/psnr" in res["summary"] and res["config"]["metrics"]["lpips"]["net"] == "alex"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["failed_metrics"] == ["lpips"] and "psnr/psnr" in saved["summary"]


def test_mmgt_eval_exits_non_zero_when_no_metric_produced_a_value(tmp_path, monkeypatch, capsys):
    """Generated videos of another size than their references: every psnr pair is skipped; the entry point
    exits 1 and the results say why. With the protocol's resize both are brought to one size: exit 0."""
    import sys

    from mmgt_eval.cli import main

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    for i, name in enumerate(("a", "b")):
        write_video(ref / f"{name}.mp4", _frames(i, size=64))
        write_video(gen / f"{name}.mp4", _frames(i, size=32))

    def mmgt_eval(out: Path, *extra: str) -> int:
        argv = ["mmgt-eval", f"generated={gen}", f"reference={ref}", "metrics=[psnr]", f"hydra.run.dir={out}"]
        monkeypatch.setattr(sys, "argv", [*argv, "progress=false", *extra])
        try:
            main()
        except SystemExit as e:
            return int(e.code or 0)
        return 0

    assert mmgt_eval(tmp_path / "native") == 1
    assert "no metric produced a value" in capsys.readouterr().out
    res = json.loads((tmp_path / "native" / "results.json").read_text())
    assert res["failed_metrics"] == ["psnr"] and {s["kind"] for s in res["skips"]} == {"input_error"}
    assert mmgt_eval(tmp_path / "resized", "protocol.resize=32") == 0
    res = json.loads((tmp_path / "resized" / "results.json").read_text())
    assert res["protocol"]["resize"] == 32 and res["metrics"]["psnr"]["n_videos"] == 2


@pytest.mark.slow
def test_torchrun_cli_two_processes_equal_one(tmp_path, metric_conf):
    """``torchrun --nproc_per_node=2 -m mmgt_eval.cli`` (gloo) equals 1 process (incl. library PSNR)."""
    import subprocess
    import sys

    gen, ref = make_dataset(tmp_path)
    write_metric(metric_conf, "mad", f"_target_: {MadAdapter.__module__}.MadAdapter\n")
    common = [
        "--config-dir",  # options before the overrides
        str(metric_conf),
        f"generated={gen}",
        f"reference={ref}",
        "metrics=[mad,probe,psnr]",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    runs = {}
    for label, launcher in {
        "one": [sys.executable, "-m", "mmgt_eval.cli"],
        "two": [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",  # torchrun picks a free rendezvous port itself
            "--nproc_per_node=2",
            "-m",
            "mmgt_eval.cli",
        ],
    }.items():
        run_dir = tmp_path / label
        cmd = [*launcher, *common, f"hydra.run.dir={run_dir}", "progress=false"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
        assert proc.returncode == 0, (
            f"{label}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
        runs[label] = json.loads((run_dir / "results.json").read_text())
    assert runs["two"]["world_size"] == 2 and runs["one"]["world_size"] == 1
    for name, v in runs["one"]["per_video"].items():
        assert runs["two"]["per_video"][name]["scores"] == v["scores"]
    assert runs["one"]["summary"].keys() == runs["two"]["summary"].keys()
    for k, v in runs["one"]["summary"].items():
        assert runs["two"]["summary"][k] == pytest.approx(v, rel=1e-9), k
    assert runs["two"]["metrics"]["psnr"]["values"]["psnr_videos"] == 5


def test_eval_gpu_launcher_composes(tmp_path):
    """docs/experiments.md "Evaluating on GPUs": mmgt-eval with the SLURM GPU launcher, one GPU per job."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    over = ["hydra/launcher=submitit_slurm_gpu", "hydra.launcher.partition=gpu"]
    cfg = compose_config("eval", ["generated=outputs/gen_motion", *over], output_dir=tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert (launcher.gpus_per_node, launcher.tasks_per_node) == (1, 1) and cfg.device == "auto"


def test_protocol_files_compose_and_reach_metric_configs(tmp_path):
    """Every protocol composes; its metric_args (with ${protocol.seed}) are merged into the metric's node."""
    from mmgt.config import CONFIG_DIR
    from mmgt_eval.cli import metric_node

    for path in sorted((CONFIG_DIR / "eval" / "protocol").glob("*.yaml")):
        cfg = compose_config("eval", ["generated=x", f"protocol={path.stem}"], output_dir=tmp_path)
        assert cfg.protocol.name == path.stem
    cfg = compose_config(
        "eval",
        ["generated=x", "protocol=stylegan_v_128f_subsample8f", "protocol.seed=5", "metrics=[fvd,diversity]"],
        output_dir=tmp_path,
    )
    node = metric_node(cfg, "fvd")
    assert node.protocol.frame_stride == 8 and node.protocol.seed == 5 and node.protocol.n_frames == 16
    assert metric_node(cfg, "diversity").seed == 5


def test_cli_with_library_psnr_ssim(tmp_path):
    """The default metrics (conf/eval/metrics/psnr.yaml, ssim.yaml) through the CLI; PSNR checked by hand."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from mmgt_eval.cli import run

    gen, ref = make_dataset(tmp_path, names=("a", "b", "c"))
    write_video(gen / "short.mp4", _frames(9, n=T - 2))  # frame count differs from its reference
    write_video(ref / "short.mp4", _frames(9))
    cfg = compose_config("eval", [f"generated={gen}", f"reference={ref}", "progress=false"], tmp_path / "run")
    assert list(cfg.metrics) == ["psnr", "ssim"]  # the default selection
    res = run(cfg)
    assert res["failed_metrics"] == []
    for m in ("psnr", "ssim"):
        assert res["metrics"][m]["n_videos"] == 3 and res["metrics"][m]["n_skipped"] == 1
        assert res["metrics"][m]["protocol"]["data_range"] == 1.0
    assert {(s["video"], s["metric"], s["kind"]) for s in res["skips"]} == {
        ("short", "psnr", "input_error"),
        ("short", "ssim", "input_error"),
    }
    per_video = []
    for n in ("a", "b", "c"):
        g = torch.from_numpy(read_video(gen / f"{n}.mp4").frames).permute(0, 3, 1, 2).double() / 255
        r = torch.from_numpy(read_video(ref / f"{n}.mp4").frames).permute(0, 3, 1, 2).double() / 255
        frames = [peak_signal_noise_ratio(g[i : i + 1], r[i : i + 1], data_range=1.0) for i in range(len(g))]
        per_video.append(float(torch.stack(frames).mean()))
        assert res["per_video"][n]["scores"]["psnr"]["psnr"] == pytest.approx(per_video[-1], rel=1e-9)
    assert res["metrics"]["psnr"]["values"]["psnr"] == pytest.approx(np.mean(per_video), rel=1e-9)


def test_every_metric_config_names_registered_weights_and_an_adapter(tmp_path):
    """conf/eval/metrics/*.yaml: importable _target_, `weights` keys hold registry names."""
    import hydra.utils
    from omegaconf import OmegaConf

    from mmgt_eval.cli import _weight_keys, available_metrics, metric_node
    from mmgt_eval.weights import REGISTRY

    names = available_metrics()
    assert {"psnr", "ssim"} <= set(names)  # the default metric set exists
    cfg = compose_config("eval", ["generated=x", f"metrics=[{','.join(names)}]"], output_dir=tmp_path)
    for name in names:
        node = OmegaConf.to_container(metric_node(cfg, name), resolve=True)
        assert callable(hydra.utils.get_object(node["_target_"])), name
        for key in _weight_keys(node):
            assert node[key] is None or node[key] in REGISTRY, f"{name}.{key}={node[key]!r} is not registered"
