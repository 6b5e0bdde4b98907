"""The quick set `make bench` runs, each part placed where it costs the least wall time on a small machine.

1. `bench/media.py --repeat 3` while the Prefect server of the episode benchmark starts on a fresh database (its
   migrations take one core for 8-18 s; media times its two sides alternately, so both see the same load).
2. `bench/episode.py --quick` against that server, with `bench/faults.py --quick --jobs 1` beside it at the lowest
   CPU priority: the faults check bytes and payments, not speed.
3. `bench/report.py`: docs/benchmarks.md's results and plot.

Each script prints its own figures; the exit status is non-zero when any of them failed.

    .venv/bin/python bench/quick.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SERVER = "import sys; from pathlib import Path; from reelflow.cli.server import {}; {}(Path(sys.argv[1]))"


def step(*args: str, env: dict[str, str] | None = None) -> int:
    """Run a bench script in the foreground, its output printed as it comes, then its wall time."""
    started = time.perf_counter()
    code = subprocess.run([sys.executable, *args], env=env).returncode
    print(f"[{Path(args[0]).name}: {time.perf_counter() - started:.0f} s]", flush=True)
    return code


def main() -> None:
    started = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reelflow-bench-home-") as home:
        env = os.environ | {"REELFLOW_HOME": home}
        errors = tempfile.TemporaryFile("w+")
        server = subprocess.Popen([sys.executable, "-c", SERVER.format("start_server", "start_server"), home],
                                  env=env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            if step(str(BENCH / "media.py"), "--repeat", "3"):
                failed.append("media")
            if server.wait():
                errors.seek(0)
                sys.exit(f"the Prefect server did not start: {errors.read().strip()[-800:]}")
            with (RESULTS / "faults.txt").open("w") as log:
                faults = subprocess.Popen([sys.executable, str(BENCH / "faults.py"), "--quick", "--jobs", "1"],
                                          stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(19))
                if step(str(BENCH / "episode.py"), "--quick", "--home", home, env=env):
                    failed.append("episode")
                if faults.wait():
                    failed.append("faults")
            print((RESULTS / "faults.txt").read_text(), end="")
        finally:
            server.wait()
            subprocess.run([sys.executable, "-c", SERVER.format("stop_server", "stop_server"), home], env=env,
                           capture_output=True)
    if step(str(BENCH / "report.py")):
        failed.append("report")
    print(f"make bench: {time.perf_counter() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
