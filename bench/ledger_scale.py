"""Benchmark: does the ledger slow down as a project ages? A pending lookup and a cached re-render, measured with
100 and with 100,000 rows in the project's ledger, in one run; flat means a ratio near 1 (the bar is 1.5).

    .venv/bin/python bench/ledger_scale.py [--episode 2] [--lookups 2000]
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

from reelflow.state.db import database
from reelflow.state.ledger import Ledger

REELFLOW = Path(sys.executable).with_name("reelflow")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leviathan"
SIZES = (100, 100_000)


def grow_ledger(state_dir: Path, rows: int) -> None:
    """Fill the ledger with settled requests of other keys until it holds `rows` rows."""
    db = database(state_dir)
    have = int(db.row("SELECT COUNT(*) AS n FROM requests")["n"])  # type: ignore[index]
    now = time.time()
    with db.write() as sql:
        sql.executemany(
            "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, cost_usd, run, stage, "
            "episode, shot, submitted_at, settled_at) VALUES (?, 'fal', 'fal-ai/flux-2/lora', ?, 'completed', 0.02, 0.02, "
            "'old-run', 'keyframes', 1, 1, ?, ?)",
            ((f"old-{n:064d}", f"req-{n}", now, now) for n in range(have, rows)),
        )


def pending_lookup_s(state_dir: Path, lookups: int) -> float:
    """Mean seconds of one `pending` lookup for a key that has a pending request."""
    ledger = Ledger.at(state_dir)
    ledger.ticket("bench-key", "fal").submitted("fal-ai/flux-2/lora", f"bench-{time.time_ns()}")
    started = time.perf_counter()
    for _ in range(lookups):
        assert ledger.pending("bench-key") is not None
    return (time.perf_counter() - started) / lookups


def cached_render_s(project: Path, episode: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(REELFLOW), "render", str(project), "--episode", str(episode), "--json"],
                          capture_output=True, text=True, env=os.environ | {"PREFECT_LOGGING_TO_API_ENABLED": "false"})
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or json.loads(done.stdout)["provider_calls"] != 0:
        sys.exit(f"the cached re-render failed or called a provider: {done.stderr.strip()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episode", type=int, default=2)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / EXAMPLE.name
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("assets", ".reelflow", "previz", "dailies_*"))
        state_dir = project / ".reelflow"
        first = subprocess.run([str(REELFLOW), "render", str(project), "--episode", str(args.episode), "--json"],
                               capture_output=True, text=True)
        if first.returncode != 0:
            sys.exit(f"the first render failed: {first.stderr.strip()[-500:]}")
        lookup, render = {}, {}
        for size in SIZES:
            grow_ledger(state_dir, size)
            lookup[size] = pending_lookup_s(state_dir, args.lookups)
            render[size] = min(cached_render_s(project, args.episode) for _ in range(2))
    small, large = SIZES
    print(f"ledger rows          {small:>10,d} {large:>10,d}   ratio")
    print(f"pending lookup (ms)  {lookup[small] * 1e3:10.4f} {lookup[large] * 1e3:10.4f}   {lookup[large] / lookup[small]:.2f}")
    print(f"cached re-render (s) {render[small]:10.2f} {render[large]:10.2f}   {render[large] / render[small]:.2f}")


if __name__ == "__main__":
    main()
