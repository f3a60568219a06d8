"""Run every benchmark in turn (``make bench``); each prints its own table.

Results worth keeping go into ``benchmarks/README.md`` by hand, with the machine and the date: the
numbers depend on the machine, and speed is reported as ratios against a baseline measured in the
same run, never asserted in tests.

Run: ``.venv/bin/python benchmarks/run_all.py [--quick]`` (``--quick``: smaller inputs, for a smoke run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (smoke run)")
    args = parser.parse_args()
    runs = {
        "curation": ["--duration-s", "60" if args.quick else "600"],
        # lhotse is installed in the project environment (interop extra): compare in-process env
        "mixing": ["--lhotse-python", sys.executable]
        + (["--count", "50", "--rounds", "2"] if args.quick else []),
        "fetch": ["--urls", "5", "--rounds", "1"] if args.quick else [],
        "metrics": ["--rounds", "2"] if args.quick else [],
        "training": ["--skip-paper-model"]
        + (["--steps", "2", "--loader-batches", "2"] if args.quick else []),
    }
    failed = []
    for name, extra in runs.items():
        cmd = [sys.executable, str(HERE / f"{name}.py"), *extra]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
