"""``mmgt-table``: results.json files or run folders -> one table (Markdown, CSV, LaTeX, plot).

Hydra: ``conf/table.yaml``; the table itself is built by :func:`mmgt_eval.table.run` (no Hydra there).

    mmgt-table runs=outputs/train/multiruns/<sweep> formats=[md,csv] plot=table.png
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from mmgt_eval.table import TableError, run


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point ``mmgt-table`` (Hydra, ``conf/table.yaml``); ``argv`` replaces the command line."""
    import hydra

    from mmgt.config import CONFIG_DIR

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="table")
    def _entry(cfg: Any) -> None:
        try:
            result = run(cfg)
        except TableError as e:
            raise SystemExit(f"mmgt-table: error: {e}") from None
        print(result["markdown"], end="")
        for fmt, path in result["paths"].items():
            print(f"{fmt}: {path}")

    if argv is None:
        _entry()
        return
    saved = sys.argv
    sys.argv = [saved[0] if saved else "mmgt-table", *argv]
    try:
        _entry()
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
