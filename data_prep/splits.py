"""Automatic train/val/test splits of a clip store, by group (source video or speaker), deterministic.

``split=auto`` (the default of ``source=videos`` and ``source=dwpose``) gives every *group* one split, so the
clips of one source video (its windows, its interval-list rows) never land in two splits. A group is a
source file (``split_by=video``) or a speaker (``split_by=speaker``).

Counts (:func:`split_counts`): ``n`` groups get ``fractions x n`` groups per split, rounded by largest
remainder; every split with a non-zero fraction then gets at least one group, taken from the largest
split, when there are at least as many groups as such splits. With fewer groups the splits are served in
:data:`PRIORITY` order (train, then test, then val: a training run validates on ``test`` when there is no
``val``), e.g. 1 group -> train; 2 -> train + test; 3 -> one each; 6 -> 4 / 1 / 1 (0.8 / 0.1 / 0.1).

Assignment (:func:`assign_splits`): groups are taken in the order of ``sha1("<seed>:<key>")`` and each goes
to the split furthest below its count (ties in :data:`PRIORITY` order). Groups that already have ok clips
in the store keep their recorded split (``fixed``) and count towards it, so adding sources never moves a
clip that is already in the store; ``resplit=true`` recomputes every group and rewrites the rows whose
split changed (:func:`resplit_rows`).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mmgt.clipstore import STATUS_OK, ClipRecord
from mmgt_prep.settings import Settings

AUTO = "auto"
"""The ``split`` value that asks for automatic splits."""
SPLIT_BY = ("video", "speaker")
PRIORITY = ("train", "test", "val")
"""Splits served first when there are fewer groups than splits (other names follow, sorted)."""
DEFAULT_FRACTIONS: Mapping[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def _order(names: Iterable[str]) -> list[str]:
    names = list(names)
    return [p for p in PRIORITY if p in names] + sorted(n for n in names if n not in PRIORITY)


@dataclass(frozen=True)
class SplitPolicy:
    """How clips without a given split get one (the ``split*`` keys of ``conf/source/{videos,dwpose}.yaml``).

    Args:
        split: ``auto``, or the name every clip without a CSV ``split`` value gets (e.g. ``train``).
        fractions: split name -> fraction of the groups (``split=auto``); non-negative, summing to 1.
        by: ``video`` (a group = a source file) or ``speaker``.
        seed: changes the (deterministic) draw of which groups go where.
        resplit: recompute the split of clips already in the store.
    """

    split: str = AUTO
    fractions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_FRACTIONS))
    by: str = "video"
    seed: int = 0
    resplit: bool = False

    def __post_init__(self) -> None:
        if not self.split:
            raise ValueError("split: give a split name or 'auto'")
        if self.by not in SPLIT_BY:
            raise ValueError(f"split_by={self.by!r}: expected one of {', '.join(SPLIT_BY)}")
        bad = {k: v for k, v in self.fractions.items() if not (isinstance(v, (int, float)) and v >= 0)}
        if bad or not self.fractions:
            raise ValueError(f"split_fractions={dict(self.fractions)}: need non-negative numbers per split")
        total = sum(float(v) for v in self.fractions.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"split_fractions={dict(self.fractions)}: the fractions add up to {total:g}, not 1. On the "
                "command line they override the default {train: 0.8, val: 0.1, test: 0.1} key by key: set "
                "each one, e.g. split_fractions.train=0.7 split_fractions.val=0.15 split_fractions.test=0.15 "
                "(0 drops a split)"
            )
        if AUTO in self.fractions:
            raise ValueError(f"split_fractions: {AUTO!r} is not a split name")

    @property
    def auto(self) -> bool:
        """Whether the splits are planned (``split=auto``) rather than one fixed split."""
        return self.split == AUTO

    def group_of(self, source: str, speaker: str) -> str:
        """The group key of a clip (its source path relative to the input, or its speaker)."""
        return source if self.by == "video" else speaker


def split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Groups per split for ``n`` groups (see the module docstring); the values add up to ``n``."""
    names = _order(k for k, v in fractions.items() if v > 0)
    counts = dict.fromkeys(names, 0)
    if n <= 0 or not names:
        return counts
    if n < len(names):
        for name in names[:n]:
            counts[name] = 1
        return counts
    raw = {k: fractions[k] * n for k in names}
    counts = {k: int(math.floor(raw[k] + 1e-9)) for k in names}
    by_remainder = sorted(names, key=lambda k: (-(raw[k] - counts[k]), names.index(k)))
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    for k in names:
        if counts[k] == 0:  # every non-zero fraction gets a group: from the largest split
            donor = max(names, key=lambda d: (counts[d], -names.index(d)))
            counts[donor] -= 1
            counts[k] = 1
    return counts


def _rank(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def assign_splits(
    groups: Iterable[str],
    fractions: Mapping[str, float],
    seed: int = 0,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Group key -> split for every group; ``fixed`` groups keep theirs and count towards their split."""
    fixed = dict(fixed or {})
    keys = sorted(set(groups) | set(fixed))
    target = split_counts(len(keys), fractions)
    names = _order(target)
    current = Counter(fixed.values())
    out = {k: v for k, v in fixed.items() if k in keys}
    for key in sorted((k for k in keys if k not in fixed), key=lambda k: _rank(k, seed)):
        name = max(names, key=lambda s: (target[s] - current[s], -names.index(s)))
        out[key] = name
        current[name] += 1
    return out


def recorded_splits(records: Iterable[ClipRecord], group_of: Callable[[ClipRecord], str]) -> dict[str, str]:
    """Group -> split of the ok clips already in a store.

    A group found in several splits gets its most frequent one, ties in :data:`PRIORITY` order.
    """
    seen: dict[str, Counter[str]] = {}
    for rec in records:
        if rec.status == STATUS_OK:
            seen.setdefault(group_of(rec), Counter())[rec.split] += 1
    out = {}
    for group, counts in seen.items():
        names = _order(counts)
        out[group] = max(names, key=lambda s: (counts[s], -names.index(s)))
    return out


def plan_splits(
    policy: SplitPolicy, groups: Iterable[str], records: Mapping[str, ClipRecord], group_of: Any
) -> dict[str, str]:
    """Group -> split for ``groups`` under ``policy`` (``split=auto``), given the store's ``records``.

    Groups with ok clips keep their recorded split unless ``policy.resplit``.
    """
    groups = set(groups)
    fixed = {} if policy.resplit else recorded_splits(records.values(), group_of)
    fixed = {k: v for k, v in fixed.items() if k in groups}
    return assign_splits(groups, policy.fractions, policy.seed, fixed)


def resplit_rows(
    writer: Any, records: Iterable[ClipRecord], wanted: Callable[[ClipRecord], str | None]
) -> int:
    """Give every ok clip of ``records`` the split ``wanted(record)``; returns the number changed.

    Only clips whose split differs are moved (:meth:`mmgt_prep.store.ClipStoreWriter.set_split`); a
    ``wanted`` of None leaves the clip as it is.
    """
    changed = 0
    for rec in records:
        split = wanted(rec)
        if rec.status == STATUS_OK and split is not None and split != rec.split:
            writer.set_split(rec, split)
            changed += 1
    return changed


def split_summary(records: Iterable[ClipRecord]) -> dict[str, int]:
    """Ok clips per split of a store (what the prep summary reports as ``splits``)."""
    counts = Counter(r.split for r in records if r.status == STATUS_OK)
    return {k: counts[k] for k in _order(counts)}


@dataclass(frozen=True)
class SplitSettings(Settings):
    """The ``split*`` keys of ``conf/source/{videos,dwpose}.yaml`` as fields of a source's settings.

    The values live in those files. Checked when built, and turned into a :class:`SplitPolicy` by
    :attr:`split_policy`.
    """

    split: str
    split_fractions: dict[str, float]
    split_by: str
    split_seed: int
    resplit: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        _ = self.split_policy  # validates the split keys

    @property
    def split_policy(self) -> SplitPolicy:
        """These settings as a :class:`SplitPolicy`."""
        return SplitPolicy(self.split, self.split_fractions, self.split_by, self.split_seed, self.resplit)


__all__ = [
    "AUTO",
    "DEFAULT_FRACTIONS",
    "PRIORITY",
    "SplitPolicy",
    "SplitSettings",
    "assign_splits",
    "plan_splits",
    "recorded_splits",
    "resplit_rows",
    "split_counts",
    "split_summary",
]
