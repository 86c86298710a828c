"""mmgt_eval benchmarks: FID feature extraction against the pytorch-fid CLI path, and Sync-C/D throughput.

    .venv/bin/python tests/benchmarks/bench_eval.py             # both, default settings (make bench)
    .venv/bin/python tests/benchmarks/bench_eval.py fid [...]   # images/s vs pytorch-fid (eval_fid.py)
    .venv/bin/python tests/benchmarks/bench_eval.py sync [...]  # s per video minute (eval_sync.py)

The arguments after the part's name go to that part (``--help`` lists them).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_fid  # noqa: E402
import eval_sync  # noqa: E402


def main(argv: list[str]) -> int:
    part, rest = (argv[0], argv[1:]) if argv and argv[0] in ("fid", "sync") else ("all", argv)
    if part in ("fid", "all"):
        print("== FID feature extraction: mmgt_eval vs pytorch-fid", flush=True)
        rc = eval_fid.main(rest if part == "fid" else [])
        if rc:
            return rc
    if part in ("sync", "all"):
        print("== Sync-C/D: seconds per video minute", flush=True)
        eval_sync.main(rest if part == "sync" else [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
