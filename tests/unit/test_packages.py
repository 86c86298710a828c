"""The three import packages exist, and mmgt_eval stays free of training code."""

from __future__ import annotations

import subprocess
import sys


def test_three_packages_import() -> None:
    import mmgt
    import mmgt_eval
    import mmgt_prep

    assert mmgt.__name__ == "mmgt" and mmgt_prep.__name__ == "mmgt_prep" and mmgt_eval.__name__ == "mmgt_eval"


def test_mmgt_eval_does_not_import_lightning() -> None:
    """No module of mmgt_eval imports Lightning; Hydra only in its entry point (``mmgt_eval.cli``)."""
    code = (
        "import sys, mmgt_eval, pkgutil, importlib\n"
        "def loaded(prefixes): return [m for m in sys.modules if m.split('.')[0] in prefixes]\n"
        "for m in pkgutil.walk_packages(mmgt_eval.__path__, 'mmgt_eval.'):\n"
        "    if m.name != 'mmgt_eval.cli': importlib.import_module(m.name)\n"
        "bad = loaded(('pytorch_lightning', 'lightning', 'hydra'))\n"
        "assert not bad, bad\n"
        "importlib.import_module('mmgt_eval.cli')\n"
        "bad = loaded(('pytorch_lightning', 'lightning'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mmgt_never_imports_mmgt_prep() -> None:
    code = (
        "import sys, importlib, pkgutil, mmgt\n"
        "for m in pkgutil.walk_packages(mmgt.__path__, 'mmgt.'): importlib.import_module(m.name)\n"
        "assert 'mmgt_prep' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
