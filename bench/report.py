"""Turn the benchmarks' JSON (bench/results/) into docs/benchmarks.md's results section and docs/benchmarks.png.

    .venv/bin/python bench/report.py

The section between `<!-- results -->` and `<!-- /results -->` is rewritten; the analysis around it is kept.
The plot (Pillow, already a dependency) has one bar of wall / bound per episode and concurrency, and the target.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from PIL import Image, ImageDraw

RESULTS = Path(__file__).with_name("results")
DOCS = Path(__file__).resolve().parent.parent / "docs"
TARGET = 1.15
SIZE = (900, 420)
MARGIN = 60
START, END = "<!-- results -->", "<!-- /results -->"


def plot(rows: list[dict], out: Path) -> None:
    """Bars of wall / bound, labelled `<shots> c<concurrency>`, green at or under the target, red over it."""
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    top = max([TARGET * 1.2, *(row["ratio"] for row in rows)])
    height = SIZE[1] - 2 * MARGIN

    def y(value: float) -> float:
        return SIZE[1] - MARGIN - value / top * height

    draw.line((MARGIN, y(0), SIZE[0] - MARGIN, y(0)), fill="black")
    draw.line((MARGIN, y(TARGET), SIZE[0] - MARGIN, y(TARGET)), fill="red")
    draw.text((SIZE[0] - MARGIN - 90, y(TARGET) - 14), f"target {TARGET}", fill="red")
    step = (SIZE[0] - 2 * MARGIN) / max(1, len(rows))
    for index, row in enumerate(rows):
        left = MARGIN + index * step + step * 0.15
        colour = (60, 140, 80) if row["ratio"] <= TARGET else (200, 90, 60)
        draw.rectangle((left, y(row["ratio"]), left + step * 0.7, y(0)), fill=colour)
        draw.text((left, y(row["ratio"]) - 14), f"{row['ratio']:.2f}", fill="black")
        draw.text((left, y(0) + 6), f"{row['shots']} c{row['concurrency']}", fill="black")
    draw.text((MARGIN, 16), "wall / bound by shots and concurrency; bound = max(critical path, work / concurrency)",
              fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def episode_tables(episode: dict) -> list[str]:
    lines = [f"Latency profile: {episode['latency']}.", "",
             "| shots | concurrency | latency | wall s | bound s | wall / bound | speed-up | CPU s | server CPU s | "
             "CPU / cores s |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['shots']} | {r['concurrency']} | `{r.get('latency', episode['latency'])}` | {r['wall_s']:.2f} | "
              f"{r['bound_s']:.2f} | {r['ratio']:.2f} | {r['speedup']:.2f} | {r['cpu_s']:.1f} | "
              f"{r.get('server_cpu_s', 0.0):.1f} | {r['cpu_floor_s']:.1f} |" for r in episode["rows"]]
    lines += ["", "| shots | cached re-render s | its task runs | ms per stage task run | peak RSS MB | "
              "start-up s (not counted) |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {s['shots']} | {s['cached_s']:.2f} | {s['task_runs']} | "
              f"{'' if s['ms_per_task'] is None else format(s['ms_per_task'], '.1f')} | {s['peak_rss_mb']:.0f} | "
              f"{s['startup_s']:.1f} |" for s in episode["sizes"]]
    return lines


def target(value: float | None) -> str:
    return f"≤ {value:.2f}" if value else ""


def media_table(media: dict) -> list[str]:
    lines = ["| operation | reelflow s | ffmpeg CLI s | ratio | target |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {o['name']} | {o['reelflow_s']:.3f} | {o['ffmpeg_s']:.3f} | {o['ratio']:.2f} | "
              f"{target(o.get('target'))} |" for o in media["operations"]]
    return lines


def faults_table(faults: dict) -> list[str]:
    lines = ["| scenario | wall s | identical to clean | paid submits | clean's paid submits | duplicate paid submits |",
             "|---|---:|---|---:|---:|---:|"]
    for row in faults["scenarios"]:
        lines.append(f"| {row['scenario']} | {row['wall_s']:.1f} | {'yes' if row['identical'] else 'no'} | "
                     f"{row['paid_submits']} | {row['clean_paid_submits']} | {row['duplicates']} |")
    return lines


def results_section() -> str:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    lines = [START, "", f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine} "
             "(`make bench`, written by bench/report.py).", ""]
    episode, media, faults = _load("episode"), _load("media"), _load("faults")
    if episode:
        lines += ["### Episode against its bound", "", "![wall / bound](benchmarks.png)", "", *episode_tables(episode), ""]
    if media:
        lines += ["### Media against the ffmpeg command line", "", *media_table(media), ""]
    if faults:
        lines += ["### Faults", "", *faults_table(faults), ""]
    return "\n".join([*lines, END])


def main() -> None:
    episode = _load("episode")
    if episode:
        plot(episode["rows"], DOCS / "benchmarks.png")
    doc = DOCS / "benchmarks.md"
    text = doc.read_text() if doc.is_file() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + results_section() + tail)
    print(f"wrote {doc}" + (" and docs/benchmarks.png" if episode else ""))


if __name__ == "__main__":
    main()
