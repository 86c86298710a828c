"""Automatic splits (mmgt_prep.splits): counts per number of groups, deterministic assignment, stability when
groups are added, and the policy's validation through the composed prep configs."""

from __future__ import annotations

from collections import Counter

import pytest

from mmgt.clipstore import ClipRecord
from mmgt_prep.cli import build_source
from mmgt_prep.splits import (
    DEFAULT_FRACTIONS,
    SplitPolicy,
    assign_splits,
    plan_splits,
    split_counts,
)
from tests.helpers.shared import compose_config


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, {"train": 0, "test": 0, "val": 0}),
        (1, {"train": 1, "test": 0, "val": 0}),
        (2, {"train": 1, "test": 1, "val": 0}),  # no val: training validates on test
        (3, {"train": 1, "test": 1, "val": 1}),
        (6, {"train": 4, "test": 1, "val": 1}),
        (10, {"train": 8, "test": 1, "val": 1}),
        (25, {"train": 20, "test": 3, "val": 2}),  # 2.5 / 2.5: the remainder goes to test first
        (100, {"train": 80, "test": 10, "val": 10}),
    ],
)
def test_counts_follow_the_fractions_and_give_every_split_a_group_when_possible(
    n: int, expected: dict[str, int]
) -> None:
    assert split_counts(n, DEFAULT_FRACTIONS) == expected
    assert sum(expected.values()) == n


def test_counts_of_other_fractions_and_names() -> None:
    assert split_counts(10, {"train": 0.7, "val": 0.3, "test": 0.0}) == {"train": 7, "val": 3}
    assert split_counts(4, {"train": 0.5, "dev": 0.25, "test": 0.25}) == {"train": 2, "test": 1, "dev": 1}
    assert split_counts(5, {"train": 1.0}) == {"train": 5}


def test_assignment_is_deterministic_and_matches_the_counts() -> None:
    groups = [f"spk/video_{i}.mp4" for i in range(6)]
    first = assign_splits(groups, DEFAULT_FRACTIONS, seed=0)
    assert first == assign_splits(list(reversed(groups)), DEFAULT_FRACTIONS, seed=0)  # order-free
    assert Counter(first.values()) == {"train": 4, "val": 1, "test": 1}
    other_seed = assign_splits(groups, DEFAULT_FRACTIONS, seed=1)
    assert Counter(other_seed.values()) == {"train": 4, "val": 1, "test": 1}
    draws = {tuple(sorted(assign_splits(groups, DEFAULT_FRACTIONS, seed=s).items())) for s in range(8)}
    assert len(draws) > 1  # the seed draws other groups


def test_groups_in_the_store_keep_their_split_and_new_ones_fill_the_counts() -> None:
    old = [f"v{i}.mp4" for i in range(6)]
    before = assign_splits(old, DEFAULT_FRACTIONS)
    records = {
        f"{g}-{w}": ClipRecord(id=f"{g}-{w}", speaker="spk", split=before[g], source=g)
        for g in old
        for w in range(3)
    }
    new = [f"new{i}.mp4" for i in range(6)]
    policy = SplitPolicy()
    after = plan_splits(policy, old + new, records, lambda r: r.source)
    assert {g: after[g] for g in old} == before  # nothing already in the store moves
    assert Counter(after.values()) == split_counts(12, DEFAULT_FRACTIONS)  # 10 / 1 / 1 in all
    # a store made with everything in train (an older prep, split=train): the new groups get val and test
    all_train = {
        k: ClipRecord(id=k, speaker="spk", split="train", source=r.source) for k, r in records.items()
    }
    grown = plan_splits(policy, old + new[:2], all_train, lambda r: r.source)
    assert {grown[g] for g in old} == {"train"} and {grown[g] for g in new[:2]} == {"val", "test"}
    # resplit: recomputed from scratch, as for a fresh store
    fresh = plan_splits(SplitPolicy(resplit=True), old, all_train, lambda r: r.source)
    assert fresh == before


def test_policy_rejects_bad_fractions_and_keys() -> None:
    with pytest.raises(ValueError, match="add up to 0.9"):
        SplitPolicy(fractions={"train": 0.8, "val": 0.1})
    with pytest.raises(ValueError, match="non-negative"):
        SplitPolicy(fractions={"train": 1.2, "val": -0.2})
    with pytest.raises(ValueError, match="split_by='person'"):
        SplitPolicy(by="person")


@pytest.mark.parametrize("source", ["videos", "dwpose"])
def test_split_keys_compose_and_fractions_are_overridden_key_by_key(source: str) -> None:
    cfg = compose_config("prep", [f"source={source}", "input=/data", "out=/tmp/s"])
    assert build_source(cfg).split_policy == SplitPolicy()
    keys = [
        "split_fractions.train=0.7",
        "split_fractions.val=0",
        "split_fractions.test=0.3",
        "split_by=speaker",
    ]
    policy = build_source(compose_config("prep", [f"source={source}", "input=/data", *keys])).split_policy
    assert dict(policy.fractions) == {"train": 0.7, "val": 0.0, "test": 0.3} and policy.by == "speaker"
    assert split_counts(4, policy.fractions) == {"train": 3, "test": 1}
    merged = compose_config(
        "prep", [f"source={source}", "input=/data", "split_fractions={train: 0.7, test: 0.3}"]
    )
    with pytest.raises(ValueError, match="add up to 1.1.*key by key"):  # Hydra merges dicts: val stays 0.1
        build_source(merged)
