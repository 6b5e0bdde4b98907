"""The quick set `make bench` runs, in the order and company that keep each figure a measure.

1. `bench/media.py --repeat 3`, alone: its episode concat takes 0.1 s a side, and a 10 % target on it does not
   survive other work on two cores (beside a Prefect server's start it read 1.21).
2. `bench/episode.py --quick`, with `bench/faults.py --quick --jobs 1` beside it at the lowest CPU priority: the
   faults check bytes and payments, not speed.
3. `bench/report.py`: docs/benchmarks.md's results and plot.

Each script prints its own figures; the exit status is non-zero when any of them failed.

    .venv/bin/python bench/quick.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"


def step(*args: str) -> int:
    """Run a bench script in the foreground, its output printed as it comes, then its wall time."""
    started = time.perf_counter()
    code = subprocess.run([sys.executable, *args]).returncode
    print(f"[{Path(args[0]).name}: {time.perf_counter() - started:.0f} s]", flush=True)
    return code


def main() -> None:
    started = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    failed: list[str] = []
    if step(str(BENCH / "media.py"), "--repeat", "3"):
        failed.append("media")
    with (RESULTS / "faults.txt").open("w") as log:
        faults = subprocess.Popen([sys.executable, str(BENCH / "faults.py"), "--quick", "--jobs", "1"],
                                  stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(19))
        if step(str(BENCH / "episode.py"), "--quick"):
            failed.append("episode")
        if faults.wait():
            failed.append("faults")
    print((RESULTS / "faults.txt").read_text(), end="")
    if step(str(BENCH / "report.py")):
        failed.append("report")
    print(f"make bench: {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
