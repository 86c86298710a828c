"""A non-editable install stands on its own: the wheel holds every subpackage and the Hydra configs, and every
entry point runs from a folder outside the checkout.

How: the checkout's sources are copied to a temporary folder and built into a wheel there (``pip wheel``, so
no ``build/`` or ``*.egg-info`` lands in the checkout); a fresh virtualenv outside the checkout gets ONLY
that wheel, installed non-editable with ``--no-deps``. The dependencies are not installed a second time (a
full install takes ~4 min here, torch alone is 1 GB): one ``.pth`` line in the fresh venv appends the dev
venv's site-packages to ``sys.path``. A directory added that way is not a site directory, so its own
``.pth`` files are not processed and the dev venv's editable finder (which maps ``mmgt`` to the checkout)
never activates; the fresh venv's site-packages also comes first on ``sys.path``. What this leaves
untested is dependency resolution itself; instead ``pip check`` verifies that the wheel's ``Requires-Dist``
are satisfied by what the venv sees. ``test_packages_come_from_the_fresh_venv`` proves that ``mmgt``,
``mmgt_eval``, ``mmgt_prep`` and the configs are the venv's copies, not the checkout's. Every command runs
from a temporary working directory without ``PYTHONPATH``, so the checkout is not importable.

Cost: ~50 s of CPU (build + venv + install ~5 s, the six ``--help`` ~25 s, the toy step ~18 s), 1-1.5 min
of wall time on the shared 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SOURCES = ("pyproject.toml", "README.md", "src", "eval", "data_prep", "conf")
"""What the wheel is built from (the package-dir roots, the metadata files)."""
ENTRY_POINTS: dict[str, str] = PYPROJECT["project"]["scripts"]
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _package_dirs() -> dict[str, Path]:
    """Import package name -> its folder: every folder holding a .py file under a package-dir root
    (``"" = "src"``, ``"mmgt.conf" = "conf"``, ``mmgt_eval = "eval"``, ...)."""
    found: dict[str, Path] = {}
    for prefix, folder in SETUPTOOLS["package-dir"].items():
        root = REPO / folder
        for module in root.rglob("*.py"):
            rel = module.parent.relative_to(root).parts
            if "__pycache__" not in rel:
                found.setdefault(".".join(p for p in (prefix, *rel) if p), module.parent)
    return found


def test_pyproject_lists_every_package() -> None:
    """Every folder with Python files is in ``[tool.setuptools] packages`` (else wheels silently drop it)."""
    on_disk = set(_package_dirs())
    assert set(SETUPTOOLS["packages"]) == on_disk, (
        f"missing: {sorted(on_disk - set(SETUPTOOLS['packages']))}, "
        f"stale: {sorted(set(SETUPTOOLS['packages']) - on_disk)}"
    )


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if str(REPO) not in p)
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def _run(cmd: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(**env), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{tail}"
    return proc


def _build_flags() -> list[str]:
    """``--no-build-isolation --no-index`` when this environment already meets ``[build-system] requires``
    (torch pins setuptools >= 77, so it does): nothing is downloaded; else pip builds in an isolated
    environment from the index."""
    for req in map(Requirement, PYPROJECT["build-system"]["requires"]):
        try:
            if not req.specifier.contains(metadata.version(req.name), prereleases=True):
                return []
        except metadata.PackageNotFoundError:
            return []
    return ["--no-build-isolation", "--no-index"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "local")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist")]
    _run([*cmd, *_build_flags(), str(src)], cwd=work)
    (built,) = (work / "dist").glob("mmgt-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv holding only the wheel (non-editable), seeing the dev venv's dependencies."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
    python = root / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=root.parent)  # fmt: skip
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=root.parent).stdout.strip())  # fmt: skip
    dev = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "_mmgt_test_dependencies.pth").write_text("".join(f"{p}\n" for p in dev))
    return root


@pytest.mark.slow
def test_wheel_holds_every_module_and_config(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for package, folder in _package_dirs().items():
        base = package.replace(".", "/")
        expected |= {f"{base}/{p.name}" for p in folder.glob("*.py")}
    conf = REPO / SETUPTOOLS["package-dir"]["mmgt.conf"]
    expected |= {
        f"mmgt/conf/{p.relative_to(conf).as_posix()}"
        for p in conf.rglob("*")
        if p.suffix in (".yaml", ".md") and p.relative_to(conf).parts[0] != "local"
    }
    assert expected <= names, sorted(expected - names)
    assert not [n for n in names if n.startswith("mmgt/conf/local/")]
    assert {"mmgt/conf/train.yaml", "mmgt/conf/eval/protocol/default.yaml", "mmgt/stage2/module.py"} <= names


@pytest.mark.slow
def test_packages_come_from_the_fresh_venv(venv, tmp_path) -> None:
    """mmgt, mmgt_eval, mmgt_prep and the configs are the installed copies; no editable finder is active."""
    names = sorted(_package_dirs())  # found, not imported (importing stage2 alone takes seconds)
    code = (
        "import json, sys\nfrom importlib.util import find_spec\nfrom mmgt.config import CONFIG_DIR\n"
        f"print(json.dumps({{'files': [find_spec(n).origin for n in {names!r}], 'conf': str(CONFIG_DIR),"
        " 'path': sys.path, 'editable': [m for m in sys.modules if 'editable' in m]}))\n"
    )
    out = json.loads(_run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path).stdout)
    for path in [*out["files"], out["conf"]]:
        assert Path(path).resolve().is_relative_to(venv.resolve()), path
        assert not Path(path).resolve().is_relative_to(REPO), path
    assert out["editable"] == [] and not any(p and Path(p).resolve() == REPO for p in out["path"])
    # every Requires-Dist of the wheel is met by what the venv sees (dev deps through the .pth line)
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "check"], cwd=tmp_path)


@pytest.mark.slow
def test_every_entry_point_answers_help_from_a_temp_folder(venv, tmp_path) -> None:
    """``<script> --help`` for every console script (Hydra ones compose their primary config to answer)."""
    procs = {
        name: subprocess.Popen([str(venv / "bin" / name), "--help"], cwd=tmp_path, env=_clean_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ENTRY_POINTS
    }  # fmt: skip
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} --help: exit {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}"
        if name == "mmgt-weights":
            assert "usage: mmgt-weights" in out
        else:  # Hydra's help: the groups it found through the installed package and the composed config
            assert "== Configuration groups ==" in out and "paths: default" in out, (name, out[-2000:])
        if name == "mmgt-eval":  # its protocol group comes from the pkg://mmgt.conf.eval search path
            assert "\nprotocol:\n  name: default\n" in out, out[-2000:]
    assert not list(tmp_path.iterdir())  # --help writes nothing


@pytest.mark.slow
def test_one_toy_training_step_from_a_temp_folder(venv, tmp_path) -> None:
    """``mmgt-train experiment=smga_toy`` for one step: the toy store and run folder land under the cwd."""
    overrides = [
        "experiment=smga_toy", "data.prepare.n_speakers=2", "data.prepare.clips_per_speaker=3",
        "data.prepare.seconds=4", "data.prepare.size=32", "data.batch_size=4", "data.stride=20",
        "trainer.max_steps=1", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    proc = _run([str(venv / "bin" / "mmgt-train"), *overrides], cwd=tmp_path, timeout=600)
    result = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    run = Path(result["output_dir"])
    assert run.parent == tmp_path / "outputs" / "train" / "runs"
    assert (run / "export" / "mmgt_stage1.json").is_file() and list((run / "checkpoints").glob("*.ckpt"))
    assert result["metrics"]["train/loss"] > 0
    store = tmp_path / "outputs" / "data" / "toy_speakers_smga"
    assert (store / "manifest.jsonl").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]
