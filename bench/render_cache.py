"""Benchmark: a cold render of an episode against the same render again (all cached).

Prints wall times and their ratio measured in one run, e.g.
    python bench/render_cache.py --latency 0.5 --episode 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REELFLOW = Path(sys.executable).with_name("reelflow")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leviathan"


def timed_render(project: Path, episode: int, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(REELFLOW), "render", str(project), "--episode", str(episode), "--json"],
        capture_output=True, text=True, env=os.environ | env,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"render failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=EXAMPLE)
    parser.add_argument("--episode", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.5, help="REELFLOW_LOCAL_LATENCY for both runs")
    parser.add_argument("--faults", default="", help="REELFLOW_LOCAL_FAULTS for both runs")
    args = parser.parse_args()
    env = {"REELFLOW_LOCAL_LATENCY": str(args.latency), "REELFLOW_LOCAL_FAULTS": args.faults}
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / args.project.name
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("assets", ".reelflow"))
        cold, cold_report = timed_render(project, args.episode, env)
        warm, warm_report = timed_render(project, args.episode, env)
    print(f"episode {args.episode}: {cold_report['shots']['total']} shots, latency {args.latency}s/call")
    print(f"cold  {cold:7.2f} s  provider calls {cold_report['provider_calls']:4d}  cost ${cold_report['cost_usd']:.3f}")
    print(f"warm  {warm:7.2f} s  provider calls {warm_report['provider_calls']:4d}  cached {warm_report['shots']['cached']}")
    print(f"warm / cold = {warm / cold:.3f}")


if __name__ == "__main__":
    main()
