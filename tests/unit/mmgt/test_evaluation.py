"""mmgt.evaluation: the protocol size both sides are scored at, and when an evaluation scored nothing - on
results written by the real runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmgt.evaluation import merge_results, nothing_scored, protocol_size
from mmgt.io import write_video
from mmgt_eval.metrics.image import PSNRAdapter
from mmgt_eval.runner import RunProtocol, evaluate


def test_protocol_size_declares_the_side_and_refuses_native_mismatches() -> None:
    side, overrides = protocol_size("generated", 64, [512, 512], "the training size")
    assert side == 64
    assert overrides == ["protocol.resize=64", "++protocol.size_from='generated: the training size'"]
    assert protocol_size(128, 64, [512], "x") == (
        128,
        ["protocol.resize=128", "++protocol.size_from='eval_size (configured)'"],
    )
    assert protocol_size(None, 64, [64, 0], "x") == (None, [])  # native sizes that match (0: unknown)
    with pytest.raises(
        ValueError, match=r"generated videos are 64x64 \(the training size\) and the references 512x512"
    ):
        protocol_size(None, 64, [512], "the training size")
    for bad in ("model", 0, True, 1.5):
        with pytest.raises(ValueError, match="eval_size must be 'generated', a positive int or null"):
            protocol_size(bad, 64, [64], "x")


def _pairs(root: Path, gen_size: int, ref_size: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for side, size in (("gen", gen_size), ("ref", ref_size)):
        for name in ("a", "b"):
            frames = rng.integers(0, 255, (6, size, size, 3), dtype=np.uint8)
            write_video(root / side / f"{name}.mp4", frames)
    return root / "gen", root / "ref"


def test_nothing_scored_is_every_own_metric_failing_with_the_first_skip(tmp_path: Path) -> None:
    gen, ref = _pairs(tmp_path, 32, 64)
    res = evaluate(gen, ref, {"psnr": PSNRAdapter()}, progress=False)
    reason = nothing_scored(res)
    assert reason is not None and reason.startswith("evaluation scored nothing, every metric failed: psnr:")
    assert "first skip: a:" in reason and "32" in reason and "64" in reason  # the size mismatch itself
    ok = evaluate(gen, ref, {"psnr": PSNRAdapter()}, protocol=RunProtocol(resize=32), progress=False)
    assert nothing_scored(ok) is None
    # a control condition that scored does not make up for the run's own videos
    assert nothing_scored(merge_results(res, ok, "shuffled")) is not None
    assert nothing_scored(merge_results(ok, res, "shuffled")) is None
    assert nothing_scored({"metrics": {}}) == "evaluation scored nothing: no metric was run"


def test_a_split_of_one_clip_is_scored_without_the_shuffled_control(caplog) -> None:
    from mmgt.evaluation import generation_conditions

    conds, note = generation_conditions(3, True, "split 'test'")
    assert conds == {"generated": [0, 1, 2], "generated_shuffled": [1, 2, 0]} and note == "ok"
    assert generation_conditions(3, False, "x") == ({"generated": [0, 1, 2]}, "off")
    conds, note = generation_conditions(1, True, "split 'test' of /s")
    assert conds == {"generated": [0]} and note.startswith("skipped: the shuffled-audio control needs >= 2")
    assert "split 'test' of /s has 1" in caplog.text
