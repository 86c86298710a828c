"""mmgt.factory.build: stored ``_target_`` nodes rebuilt through an allow-list, nested nodes first."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from mmgt.factory import build, is_node, registry, to_node
from mmgt.untrusted import UntrustedFileError


@dataclass
class Leaf:
    value: int = 0


@dataclass
class Tree:
    left: Leaf
    right: list = field(default_factory=list)
    name: str = "t"


ALLOWED = registry(Leaf, Tree)


def test_a_nested_node_rebuilds_the_same_objects() -> None:
    node = to_node(Tree, left=to_node(Leaf, value=3), right=[to_node(Leaf, value=4), 5], name="x")
    assert is_node(node) and not is_node({"value": 1})
    assert build(node, ALLOWED, "meta.json") == Tree(Leaf(3), [Leaf(4), 5], "x")


def test_a_target_outside_the_allow_list_is_refused_before_anything_runs() -> None:
    node = to_node(Tree, left={"_target_": "os.system", "command": "touch /tmp/pwned"})
    with pytest.raises(UntrustedFileError, match=r"meta.json.left: class 'os.system' is not allowed"):
        build(node, ALLOWED, "meta.json")


def test_unknown_options_and_wrong_arguments_name_the_source() -> None:
    with pytest.raises(UntrustedFileError, match="'_partial_' is not supported"):
        build({**to_node(Leaf), "_partial_": True}, ALLOWED, "meta.json")
    with pytest.raises(UntrustedFileError, match="meta.json: arguments do not fit Leaf"):
        build(to_node(Leaf, colour="red"), ALLOWED, "meta.json")
