"""Every import rule of ARCHITECTURE.md, checked on the source (every ``import`` statement, lazy ones too).

The runtime checks (what importing a package loads) are in ``test_packages.py``; the untrusted-loading rule
is in ``test_untrusted.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.shared import REPO

SRC, PREP, EVAL = REPO / "src" / "mmgt", REPO / "data_prep", REPO / "eval"
PACKAGES = {"mmgt": SRC, "mmgt_prep": PREP, "mmgt_eval": EVAL}

FLOOR = (
    "mmgt.schema", "mmgt.io", "mmgt.io_common", "mmgt.io_audio", "mmgt.io_video", "mmgt.untrusted",
    "mmgt.atomic", "mmgt.digest", "mmgt.dsp", "mmgt.factory",
)  # fmt: skip
NOT_NETWORKS = ("module", "evaluate", "pipeline", "loading", "export", "__init__")
HYDRA_ENTRY_POINTS = {
    "mmgt.train", "mmgt.generate", "mmgt.sweep", "mmgt_prep.cli", "mmgt_eval.cli", "mmgt_eval.table_cli",
}  # fmt: skip
OMEGACONF_OUTSIDE_ENTRY_POINTS = {
    "mmgt.config": "the ${mmgt_*:...} resolvers",
    "mmgt.demo": "reads the sweep's multirun.yaml",
    # debt of the one-factory redesign: these accept a DictConfig and convert it to plain values
    "mmgt.data.video": "_plain()",
    "mmgt.stage2.loading": "_plain()",
    "mmgt.stage2.evaluate": "reads an export's config.yaml",
}


def _module_name(path: Path) -> str:
    for package, root in PACKAGES.items():
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            return ".".join((package, *parts))
    raise ValueError(path)


def _imports(path: Path) -> set[str]:
    """Every absolute module named by an import in ``path`` (``from a.b import c`` gives a.b and a.b.c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def _violations(files: list[Path], bad) -> list[str]:  # noqa: ANN001 - bad: (module, imported) -> bool
    return [
        f"{_module_name(p)} imports {name}"
        for p in files
        for name in sorted(_imports(p))
        if bad(_module_name(p), name)
    ]


def test_mmgt_never_imports_mmgt_prep() -> None:
    assert _violations(_files(SRC), lambda _m, n: _top(n) == "mmgt_prep") == []


def test_mmgt_eval_has_no_lightning_and_hydra_only_in_its_entry_points() -> None:
    def bad(module: str, name: str) -> bool:
        return _top(name) in ("pytorch_lightning", "lightning") or (
            _top(name) == "hydra" and module not in HYDRA_ENTRY_POINTS
        )

    assert _violations(_files(EVAL), bad) == []


def test_the_floor_imports_only_the_floor() -> None:
    files = [SRC / f"{m.split('.')[1]}.py" for m in FLOOR]

    def bad(_module: str, name: str) -> bool:
        outside = _top(name) == "mmgt" and not name.startswith(FLOOR)
        return outside or _top(name) in ("pytorch_lightning", "lightning", "hydra", "omegaconf", "diffusers")

    assert _violations(files, bad) == []


def _networks() -> list[Path]:
    stage2 = [p for p in sorted((SRC / "stage2").glob("*.py")) if p.stem not in NOT_NETWORKS]
    return [SRC / "stage1" / "network.py", SRC / "stage1" / "positions.py", *stage2]


def test_networks_import_no_lightning_hydra_or_file_io() -> None:
    """Networks: torch, diffusers, transformers, mmgt.schema/masks (and mmgt.untrusted's / mmgt.factory's
    class allow-lists), their own stage; no Lightning, Hydra, clip store, media IO or image files."""
    allowed = ("mmgt.schema", "mmgt.masks", "mmgt.untrusted", "mmgt.factory")
    io_packages = ("pytorch_lightning", "lightning", "hydra", "omegaconf", "av", "soundfile", "cv2", "PIL")

    def bad(module: str, name: str) -> bool:
        stage = ".".join(module.split(".")[:2])
        own_stage = name.startswith(stage + ".")
        return _top(name) in io_packages or (
            _top(name) == "mmgt" and not name.startswith(allowed) and not own_stage
        )

    assert len(_networks()) >= 8
    assert _violations(_networks(), bad) == []


def test_stage2_never_imports_stage1_and_back() -> None:
    stage1, stage2 = _files(SRC / "stage1"), _files(SRC / "stage2")
    assert _violations(stage2, lambda _m, n: n.startswith("mmgt.stage1")) == []
    assert _violations(stage1, lambda _m, n: n.startswith("mmgt.stage2")) == []


def test_mmgt_prep_imports_no_training_code() -> None:
    training = ("mmgt.stage1", "mmgt.stage2", "mmgt.data", "mmgt.train", "mmgt.callbacks", "mmgt.tb")

    def bad(_module: str, name: str) -> bool:
        return name.startswith(training) or _top(name) in ("pytorch_lightning", "lightning")

    assert _violations(_files(PREP), bad) == []


def test_hydra_only_in_entry_points_and_omegaconf_only_where_listed() -> None:
    files = [p for root in PACKAGES.values() for p in _files(root)]
    hydra = _violations(files, lambda m, n: _top(n) == "hydra" and m not in HYDRA_ENTRY_POINTS)
    omegaconf = _violations(
        files,
        lambda m, n: (
            _top(n) == "omegaconf" and m not in HYDRA_ENTRY_POINTS | OMEGACONF_OUTSIDE_ENTRY_POINTS.keys()
        ),
    )
    assert hydra == [] and omegaconf == []


@pytest.mark.parametrize("module", sorted(OMEGACONF_OUTSIDE_ENTRY_POINTS))
def test_listed_omegaconf_exceptions_are_still_needed(module: str) -> None:
    """An exception that no longer imports omegaconf is taken off the list (the list only shrinks)."""
    package, *rest = module.split(".")
    path = PACKAGES[package].joinpath(*rest).with_suffix(".py")
    assert any(_top(n) == "omegaconf" for n in _imports(path)), f"{module} no longer needs its exception"
