"""Directions of metric values (higher is better, lower is better, or none): one rule, one source.

The source is each metric adapter's declaration: ``value_higher_is_better`` ({value key: True | False |
None}) and ``higher_is_better`` for the keys it does not list (:func:`declared_direction`). The runner
resolves it into every results entry (:func:`mmgt_eval.metrics.base.value_directions`); the table reads it
back from there, and for an entry written before results carried it asks the library adapter of the same
name (:func:`library_declarations`). There is no list of value names here. Importing this module is light;
the adapters (torch) are imported only when such an older entry is met.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import pkgutil
from collections.abc import Mapping
from typing import Any

__all__ = ["declared_direction", "library_declarations", "value_direction"]

log = logging.getLogger("mmgt_eval")


def declared_direction(key: str, declared: Mapping[str, Any] | None, default: Any) -> bool | None:
    """``declared[key]`` when the mapping lists ``key``, else ``default``; None means no direction."""
    d = declared[key] if declared is not None and key in declared else default
    return None if d is None else bool(d)


@functools.cache
def library_declarations() -> dict[str, tuple[dict[str, bool | None], bool]]:
    """``{adapter name: (value_higher_is_better, higher_is_better)}`` of the adapters in the metrics package.

    The adapters are the classes of :mod:`mmgt_eval.metrics` with a class-level ``name`` and
    ``higher_is_better``.

    Imports every metric module (torch) on the first call; a module whose dependencies are missing is
    skipped.
    """
    import mmgt_eval.metrics as package

    found: dict[str, tuple[dict[str, bool | None], bool]] = {}
    for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}."):
        try:
            module = importlib.import_module(info.name)
        except ImportError as e:
            log.debug("directions: %s not importable (%s); its adapters are not consulted", info.name, e)
            continue
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            name, flag = getattr(cls, "name", None), getattr(cls, "higher_is_better", None)
            if isinstance(name, str) and name and isinstance(flag, bool):
                declared = getattr(cls, "value_higher_is_better", None)
                found[name] = (dict(declared) if isinstance(declared, Mapping) else {}, flag)
    return found


def value_direction(
    value: str, declared: Mapping[str, Any] | None, metric_flag: Any, metric: str | None = None
) -> bool | None:
    """Direction of ``value`` of one results entry.

    ``declared``: the entry's ``value_higher_is_better``; ``metric_flag``: its ``higher_is_better``. An entry
    without ``declared`` (results older than per-value directions) takes the declaration of the library
    adapter named ``metric``, when there is one. Keys not declared get ``metric_flag``.
    """
    if declared is None and metric is not None:
        library = library_declarations().get(metric)
        if library is not None:
            declared = library[0]
    return declared_direction(value, declared, metric_flag)
