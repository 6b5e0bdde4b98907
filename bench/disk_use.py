"""Benchmark: what a cold render of an episode leaves on disk, and the cut's bitrate.

Renders a copy of the project and prints the assets folder's size, the assets and `.reelflow/` together (a file
hard-linked into both counts once) and their ratio, the cut's bitrate and the wall time, e.g.
    python bench/disk_use.py --episode 1
The x264 preset is the product's unless REELFLOW_X264_PRESET is set.
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

from reelflow.media.ffmpeg import x264_settings
from reelflow.media.probe import probe_video

REELFLOW = Path(sys.executable).with_name("reelflow")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "leviathan"


def disk_bytes(*folders: Path) -> int:
    """Bytes of every file under `folders`, each inode counted once (as `du -sb` given all of them)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for path in folder.rglob("*"):
            info = path.lstat()
            if path.is_file() and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=EXAMPLE)
    parser.add_argument("--episode", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / args.project.name
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("assets", ".reelflow", "previz"))
        started = time.perf_counter()
        done = subprocess.run(
            [str(REELFLOW), "render", str(project), "--episode", str(args.episode), "--json"],
            capture_output=True, text=True, env=os.environ,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"render failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        cut = Path(json.loads(done.stdout)["output"])
        assets = disk_bytes(cut.parent)
        together = disk_bytes(cut.parent, project / ".reelflow")
        seconds = probe_video(cut).duration_s or 0.0
        cut_bytes = cut.stat().st_size
    print(f"episode {args.episode}: x264 {x264_settings()}, render {elapsed:.1f} s")
    print(f"assets            {assets / 1e6:9.1f} MB")
    print(f"assets+.reelflow  {together / 1e6:9.1f} MB  = {together / assets:.3f} x assets")
    print(f"cut               {cut_bytes / 1e6:9.1f} MB  {seconds:.1f} s  {cut_bytes * 8 / seconds / 1e6:.2f} Mb/s")


if __name__ == "__main__":
    main()
