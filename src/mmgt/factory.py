"""The one way to rebuild an object from a stored ``_target_`` node (exports, metadata, manifests).

Configs are built by Hydra in the entry points (``hydra.utils.instantiate``). What an export *stores* is
the same kind of node, resolved to plain values (``{"_target_": "mmgt.x.Cls", "arg": 1, "sub": {...}}``);
:func:`build` rebuilds it without Hydra and without importing anything: every ``_target_`` in the node,
nested ones included, must be a key of the ``allowed`` mapping (class path -> class), so a downloaded file
cannot name a callable of its choosing.

Example::

    node = to_node(MotionMaskGuidance, regions=...)  # {"_target_": "mmgt.stage2.guidance.Motion...", ...}
    same = build(node, GUIDANCE_CLASSES, source="export/mmgt_stage2.json: mask_guidance")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmgt.untrusted import UntrustedFileError, class_path, resolve_class

TARGET = "_target_"
_IGNORED = frozenset({"_convert_", "_recursive_"})  # Hydra's instantiate options: harmless when rebuilding


def is_node(value: Any) -> bool:
    """Whether ``value`` is a mapping with a ``_target_`` key."""
    return isinstance(value, Mapping) and TARGET in value


def build(node: Any, allowed: Mapping[str, type], source: str) -> Any:
    """The object a stored node describes; nested nodes (in mappings and lists) are built first.

    Args:
        node: a ``_target_`` mapping (or a list / plain value holding some); plain values are returned as is.
        allowed: class path -> class: the only targets that may be named.
        source: the file (and key) the node came from, named by every error.

    Raises:
        UntrustedFileError: a target outside ``allowed``, an unknown ``_key_`` or arguments that do not fit.
    """
    if isinstance(node, list | tuple):
        return [build(v, allowed, source) for v in node]
    if not isinstance(node, Mapping):
        return node
    if TARGET not in node:
        return {k: build(v, allowed, source) for k, v in node.items()}
    cls = resolve_class(node[TARGET], allowed, source)
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        if key == TARGET or key in _IGNORED:
            continue
        if isinstance(key, str) and key.startswith("_") and key.endswith("_"):
            raise UntrustedFileError(f"{source}: {key!r} is not supported in a stored node")
        kwargs[str(key)] = build(value, allowed, f"{source}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise UntrustedFileError(f"{source}: arguments do not fit {cls.__name__}: {e}") from e


def registry(*classes: type) -> dict[str, type]:
    """An allow-list for :func:`build`: class path -> class."""
    return {class_path(c): c for c in classes}


def to_node(cls: type, **kwargs: Any) -> dict[str, Any]:
    """The node that :func:`build` turns back into ``cls(**kwargs)``."""
    return {TARGET: class_path(cls), **kwargs}


__all__ = ["TARGET", "build", "is_node", "registry", "to_node"]
