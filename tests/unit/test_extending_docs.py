"""docs/extending.md stays true: every name it cites exists, and each recipe's selection composes."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.helpers.shared import REPO, compose_config

DOC = REPO / "docs" / "extending.md"


def _resolve(dotted: str) -> object:
    """The module or attribute ``dotted`` names (the longest importable module prefix, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_python_name_the_doc_cites_exists() -> None:
    cited = r"\b((?:mmgt|mmgt_eval|mmgt_prep|tests\.helpers)\.[A-Za-z_][\w.]*\w)"
    names = set(re.findall(cited, DOC.read_text()))
    assert len(names) > 10
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert missing == []


def test_every_file_the_doc_cites_exists() -> None:
    paths = set(re.findall(r"`((?:conf|src|eval|data_prep|tests)/[\w/.]+\.(?:py|yaml))`", DOC.read_text()))
    assert len(paths) > 5
    assert [p for p in sorted(paths) if not (REPO / p).is_file()] == []


@pytest.mark.parametrize(
    ("config", "overrides", "check"),
    [
        ("eval", ["generated=/g", "metrics=[psnr,ssim]"], lambda c: set(c.metrics) == {"psnr", "ssim"}),
        (
            "train",
            ["experiment=smga_toy", "audio_encoder@data.audio_features=logmel"],
            lambda c: c.data.audio_features._target_.endswith("LogMelExtractor"),
        ),
        (
            "train",
            ["experiment=stage2_image_toy", "model/stage2/mask_guidance=static"],
            lambda c: c.model.mask_guidance._target_.endswith("StaticMaskGuidance"),
        ),
        ("train", ["experiment=smga_toy", "model.net.positional=absolute"], lambda c: c.model.net.positional),
        (
            "train",
            ["experiment=smga_toy", "model/stage1=smga_reference"],
            lambda c: c.model.net._target_.endswith("SMGAReferenceTransformer"),
        ),
    ],
)
def test_the_selections_of_the_recipes_compose(config: str, overrides: list[str], check) -> None:
    assert check(compose_config(config, overrides))
