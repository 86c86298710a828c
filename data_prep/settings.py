"""Typed plain-value settings: the base of the prep sources' Hydra nodes (``conf/source/*.yaml``).

A :class:`Settings` dataclass checks every field against its annotation when it is built, so a bad
value from the command line fails at once with its key: ``workers='two': expected an int``. Values are
normalised on the way: an int where a float is expected becomes a float, a path where a ``str`` is
expected becomes a string, a mapping a ``dict``, a sequence (or a single string) a ``tuple``; the
containers Hydra passes (``DictConfig``, ``ListConfig``) arrive as plain ``dict`` / ``tuple``.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Base of frozen settings dataclasses whose fields are type-checked (and normalised) when built."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, hints[f.name], getattr(self, f.name)))


def _describe(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    name = getattr(typing.get_origin(annotation) or annotation, "__name__", str(annotation))
    return {"dict": "a mapping", "tuple": "a list", "int": "an int"}.get(name, f"a {name}")


_MISMATCH = object()


def _scalar(annotation: Any, value: Any) -> Any:
    """``value`` as the scalar type ``annotation`` (bool, int, float, str, None), or :data:`_MISMATCH`."""
    if annotation is type(None):
        return None if value is None else _MISMATCH
    if annotation is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if annotation in (int, float):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return annotation(value) if number and annotation(value) == value else _MISMATCH
    if annotation is str:
        return os.fspath(value) if isinstance(value, (str, os.PathLike)) else _MISMATCH
    return value if annotation is Any or isinstance(value, annotation) else _MISMATCH


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """``value`` as the plain type ``annotation`` describes; a ValueError naming ``name`` otherwise."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    out: Any = _MISMATCH
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(name, option, value)
            except ValueError:
                continue
    elif origin is dict:
        if isinstance(value, Mapping):
            out = {_coerce(name, args[0], k): _coerce(f"{name}.{k}", args[1], v) for k, v in value.items()}
    elif origin is tuple:
        items = (value,) if isinstance(value, str) else value
        if isinstance(items, Sequence):
            out = tuple(_coerce(name, args[0], v) for v in items)
    else:
        out = _scalar(annotation, value)
    if out is _MISMATCH:
        raise ValueError(f"{name}={value!r}: expected {_describe(annotation)}")
    return out


__all__ = ["Settings"]
