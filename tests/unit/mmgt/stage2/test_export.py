"""Stage2Export: the typed mmgt_stage2.json (defaults once, unknown keys kept) and the allow-listed
model_index.json (the round trip through real networks is in test_stage2_module / test_stage2_cli)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmgt.stage2.export import (
    COMPONENT_CLASSES,
    DEFAULT_INFERENCE,
    MODEL_INDEX,
    Stage2Export,
    component_classes,
)
from mmgt.stage2.guidance import StaticMaskGuidance
from mmgt.untrusted import UntrustedFileError


def test_metadata_round_trip_keeps_unknown_keys_and_fills_defaults_once() -> None:
    data = {
        "size": 64,
        "audio_features": "baseline",
        "inference": {"steps": 7, "decode_chunk": None},  # None: the default
        "mask_guidance": StaticMaskGuidance(expand_ratio=1.5).config(),
        "future_key": [1, 2],
    }
    export = Stage2Export.from_json(data)
    assert export.inference == {**DEFAULT_INFERENCE, "steps": 7}
    assert export.settings(steps=None, guidance_scale=1.0)["guidance_scale"] == 1.0
    assert export.to_json()["future_key"] == [1, 2] and "source" not in export.to_json()
    assert Stage2Export.from_json(export.to_json()) == export
    guidance = export.guidance()
    assert type(guidance) is StaticMaskGuidance and guidance.kwargs["expand_ratio"] == 1.5
    with pytest.raises(ValueError, match="not a Stage II export"):
        Stage2Export.from_json({"size": 64})
    with pytest.raises(UntrustedFileError, match="mask_guidance: class 'os.system' is not allowed"):
        Stage2Export(size=64, audio_features="baseline", mask_guidance={"_target_": "os.system"}).guidance()


def test_model_index_names_only_allow_listed_classes(tmp_path: Path) -> None:
    defaults = {name: cls for name, allowed in COMPONENT_CLASSES.items() for cls in allowed.values()}
    assert component_classes(tmp_path) == defaults  # an export written before model_index.json
    index = {"_class_name": "Stage2Pipeline", **{n: list(k) for n, a in COMPONENT_CLASSES.items() for k in a}}
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["denoiser"] == ["mmgt.stage2.denoiser", "MMGTDenoiser"]
    (tmp_path / MODEL_INDEX).write_text(json.dumps(index))
    assert component_classes(tmp_path) == defaults
    (tmp_path / MODEL_INDEX).write_text(json.dumps({**index, "pose_guider": ["os", "system"]}))
    with pytest.raises(UntrustedFileError, match=r"pose_guider \['os', 'system'\] is not allowed"):
        component_classes(tmp_path)
