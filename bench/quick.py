"""The quick set `make bench` runs, in the order and company that keep each figure a measure.

1. The episode benchmark's Prefect server starts (10-15 s of CPU) while `bench/media.py` times the operations
   without a target (triptych split, Ken Burns push, shot clip: both sides alternate, so both see the same load).
2. `bench/episode.py --quick` on that server, with `bench/faults.py --quick --jobs 1` beside it at the lowest CPU
   priority: the faults check bytes and payments, not speed.
3. `bench/media.py --only "episode concat" --repeat 9`, alone: it takes 0.1-0.3 s a side, and a 20 % target on it
   does not survive other work on two cores (beside a Prefect server's start it read 1.21).
4. `bench/report.py`: docs/benchmarks.md's results and plot.

Each script prints its own figures; the exit status is non-zero when any of them failed.

    .venv/bin/python bench/quick.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from reelflow.cli.server import start_server, stop_server

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CONCAT_REPEAT = 9  # 0.1-0.3 s a side: a median of 9 holds still where one of 3 read 1.01-1.14 in three runs


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
    with tempfile.TemporaryDirectory() as home:
        server = threading.Thread(target=start_server, args=(Path(home),))
        server.start()
        (RESULTS / "media.json").unlink(missing_ok=True)
        if step(str(BENCH / "media.py"), "--repeat", "3", "--only", "triptych split", "--only", "ken burns push",
                "--only", "shot clip"):
            failed.append("media")
        server.join()
        try:
            with (RESULTS / "faults.txt").open("w") as log:
                faults = subprocess.Popen([sys.executable, str(BENCH / "faults.py"), "--quick", "--jobs", "1"],
                                          stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(19))
                if step(str(BENCH / "episode.py"), "--quick", "--home", home):
                    failed.append("episode")
                if faults.wait():
                    failed.append("faults")
        finally:
            stop_server(Path(home))
    print((RESULTS / "faults.txt").read_text(), end="")
    if step(str(BENCH / "media.py"), "--repeat", str(CONCAT_REPEAT), "--only", "episode concat"):
        failed.append("media")
    if step(str(BENCH / "report.py")):
        failed.append("report")
    print(f"make bench: {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
