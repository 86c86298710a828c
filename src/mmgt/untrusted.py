"""Reading what comes from elsewhere: arrays, pickled pose files, names and class paths in manifests, exports.

Everything a user downloads (pose folders, clip stores, exports) is read through these functions, so that
nothing in a file can run code and every bad file is an error that names it:

* :func:`load_npy` - a plain ``.npy`` array (``allow_pickle=False``); truncated, empty or non-npy files and
  object arrays are an :class:`UntrustedFileError` naming the file.
* :func:`load_pickled_npy` - a ``.npy`` holding a pickled object (the DWPose / EchoMimicV2 per-frame pose
  dicts), unpickled by :class:`RestrictedUnpickler`: numpy arrays, dtypes and scalars and plain containers,
  nothing else. Any other global (``os.system``, ``builtins.exec``, a class of some module) is refused
  *before* anything is called.
* :func:`npy_header` - shape and dtype from the header only (format detection without unpickling).
* :func:`check_name` / :func:`inside` - manifest ids and speakers as single safe path components, and paths
  that must resolve inside a root (no ``..``, no absolute paths, no symlink escapes).
* :func:`resolve_class` - a ``_target_`` class path from an export resolved only against an allow-list.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | Path


class UntrustedFileError(ValueError):
    """A file (or a value read from one) that is malformed or not allowed; the message names it."""


# --------------------------------------------------------------------------- arrays
_NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2 writes these module names
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # protocol-2 pickles store bytes as encode(str, "latin1")
    }
)
"""The only globals :class:`RestrictedUnpickler` resolves: what numpy arrays, scalars and dicts need."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_NUMPY_GLOBALS`; anything else raises before it is called."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - pickle's hook
        if (module, name) not in _NUMPY_GLOBALS:
            raise UntrustedFileError(
                f"{self.source}: refused to unpickle {module}.{name} (only numpy arrays, scalars and plain "
                "containers are allowed in pose files; nothing in this file was run)"
            )
        return super().find_class(module, name)


def npy_header(path: PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file from its header alone; UntrustedFileError when it has none."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = np.lib.format._read_array_header(f, version)  # noqa: SLF001 - header only
    except OSError as e:
        raise UntrustedFileError(f"{p}: cannot read ({e.strerror or e})") from e
    except (ValueError, EOFError, SyntaxError) as e:
        raise UntrustedFileError(f"{p}: not a .npy file ({e})") from e
    return tuple(shape), dtype


def load_npy(path: PathLike, what: str = "array") -> np.ndarray:
    """A plain ``.npy`` array (never unpickles); errors name ``path`` and say what was wrong.

    Args:
        path: the ``.npy`` file.
        what: what the file should hold, for the message (e.g. "keypoints (T, 134, 3)").
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {what} file not found")
    shape, dtype = npy_header(p)
    if dtype.hasobject:
        raise UntrustedFileError(
            f"{p}: holds pickled Python objects (dtype {dtype}), expected a numeric {what}"
        )
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # truncated data: "cannot reshape array of size ..."
        size = p.stat().st_size
        raise UntrustedFileError(
            f"{p}: truncated or corrupt {what} (header says {shape} {dtype}, the file has {size} bytes: {e})"
        ) from e
    return arr


def load_pickled_npy(path: PathLike) -> Any:
    """The object in a ``.npy`` file that may hold a pickled object (0-d object array).

    Unpickled by :class:`RestrictedUnpickler`; numeric arrays come back as arrays. Errors name ``path``.
    """
    p = Path(path)
    shape, dtype = npy_header(p)
    if not dtype.hasobject:
        return load_npy(p)
    with p.open("rb") as f:
        version = np.lib.format.read_magic(f)
        np.lib.format._read_array_header(f, version)  # noqa: SLF001 - skip to the pickle stream
        data = f.read()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), str(p)).load()
    except UntrustedFileError:
        raise
    except Exception as e:  # noqa: BLE001 - pickle raises many types on junk
        raise UntrustedFileError(f"{p}: not a readable pickled .npy ({type(e).__name__}: {e})") from e
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.ndim == 0:
        return obj.item()
    return obj


# --------------------------------------------------------------------------- names and paths
def check_name(value: Any, what: str, source: str, extra: str = "") -> str:
    """``value`` as one safe path component.

    Allowed: [A-Za-z0-9._-] and the characters of ``extra``, not starting with '.', no ``..``, <= 200
    characters; an UntrustedFileError naming ``source`` (e.g. ``manifest.jsonl:12``) otherwise.
    """
    allowed = re.compile(rf"[A-Za-z0-9_\-][A-Za-z0-9._\-{re.escape(extra)}]{{0,199}}")
    if not isinstance(value, str) or not allowed.fullmatch(value) or ".." in value:
        raise UntrustedFileError(
            f"{source}: {what} {value!r} is not a safe name (letters, digits, '.', '_', '-'{extra and ', '}"
            f"{', '.join(repr(c) for c in extra)}, not starting with '.', no '..', at most 200 "
            "characters)"
        )
    return value


def inside(root: PathLike, relative: PathLike, source: str) -> Path:
    """``root / relative``, which must resolve inside ``root`` (symlinks followed).

    An UntrustedFileError naming ``source`` otherwise.
    """
    base = Path(root).resolve()
    rel = Path(relative)
    target = (base / rel).resolve()
    if rel.is_absolute() or not target.is_relative_to(base):
        raise UntrustedFileError(f"{source}: path {str(relative)!r} leads outside {base}")
    return base / rel


# --------------------------------------------------------------------------- classes
def class_path(cls: type) -> str:
    """``module.QualName`` of a class (what exports record as ``_target_``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_class(target: Any, allowed: Mapping[str, type], source: str) -> type:
    """The class named ``target`` when it is one of ``allowed`` (class path -> class); nothing is imported.

    Raises:
        UntrustedFileError: naming ``source`` and the allowed names otherwise.
    """
    cls = allowed.get(target) if isinstance(target, str) else None
    if cls is None:
        raise UntrustedFileError(
            f"{source}: class {target!r} is not allowed here; expected one of: {', '.join(sorted(allowed))}"
        )
    return cls


def split_fields(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored mapping split into ``cls``'s constructor arguments and the keys it does not know.

    The arguments are the fields of the dataclass ``cls`` but ``extra``; the unknown keys are kept in
    ``extra`` on a round trip.
    """
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return {k: v for k, v in data.items() if k in known}, {k: v for k, v in data.items() if k not in known}


__all__ = [
    "RestrictedUnpickler",
    "UntrustedFileError",
    "check_name",
    "class_path",
    "inside",
    "load_npy",
    "load_pickled_npy",
    "npy_header",
    "resolve_class",
    "split_fields",
]
