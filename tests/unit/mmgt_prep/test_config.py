"""The prep sources are Hydra nodes (``conf/source/*.yaml``) that ``mmgt_prep.cli.build_source`` builds:
each source's defaults come from its YAML, and a bad or missing value fails at once naming the key."""

from __future__ import annotations

import pytest

from mmgt_prep.cli import build_source
from mmgt_prep.importers import DwposeImport
from mmgt_prep.toy import ToyStore
from mmgt_prep.videos_config import VideoPrepConfig
from tests.helpers.shared import compose_config


@pytest.mark.parametrize(
    ("source", "cls"), [("toy", ToyStore), ("videos", VideoPrepConfig), ("dwpose", DwposeImport)]
)
def test_every_source_builds_from_its_yaml(source: str, cls: type) -> None:
    inputs = [] if source == "toy" else ["input=/data"]
    built = build_source(compose_config("prep", [f"source={source}", *inputs, "out=/s", "size=64"]))
    assert type(built) is cls and built.out == "/s" and built.size == 64 and callable(built.run)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["source=videos"], r"^input=: required"),
        (["source=dwpose"], r"^input=: required"),
        (["source=videos", "input=/d", "workers=two"], r"^workers='two': expected an int"),
        (["source=videos", "input=/d", "crop=diagonal"], r"^crop='diagonal': expected one of center"),
        (["source=videos", "input=/d", "left_ratios.seth=left"], r"^left_ratios.seth='left'"),
        (["source=videos", "input=/d", "window=-1"], r"^window=-1.0: must be positive"),
        (["source=dwpose", "input=/d", "split_by=person"], r"^split_by='person'"),
        (["source=dwpose", "input=/d", "canvas=[1]"], r"^canvas=\[1\]: expected an int"),
        (["source=toy", "seconds=long"], r"^seconds='long': expected a float"),
        (["source=toy", "+speed=2"], r"unexpected keyword argument 'speed'"),
    ],
)
def test_a_bad_value_names_its_key(overrides: list[str], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build_source(compose_config("prep", overrides))
