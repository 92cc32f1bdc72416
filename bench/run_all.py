"""Run every benchmark in ``bench/`` one after the other (``make bench``).

Each script prints its own side-by-side ratios; pass ``--quick`` for short runs. Scripts run in
separate processes so one's memory or thread settings cannot leak into the next.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = (
    "bench_forward.py",
    "bench_smoothing.py",
    "bench_sequential.py",
    "bench_attacks.py",
    "bench_yopo.py",
)


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    failed = []
    for name in SCRIPTS:
        print(f"\n=== {name} {' '.join(argv)}", flush=True)
        if subprocess.run([sys.executable, str(here / name), *argv]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
