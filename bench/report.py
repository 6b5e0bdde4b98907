"""Turn the benchmarks' JSON (bench/results/) into docs/benchmarks.png: wall / bound per episode and concurrency.

    .venv/bin/python bench/report.py

Drawn with Pillow (already a dependency): one bar per run, the 1.15 target as a line.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

RESULTS = Path(__file__).with_name("results")
PLOT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.png"
TARGET = 1.15
SIZE = (900, 420)
MARGIN = 60


def plot(rows: list[dict], out: Path) -> None:
    """Bars of wall / bound (log-free, capped at the largest ratio), labelled `EP<n> c<conc>`."""
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    top = max([TARGET * 1.2, *(row["ratio"] for row in rows)])
    width, height = SIZE[0] - 2 * MARGIN, SIZE[1] - 2 * MARGIN

    def y(value: float) -> float:
        return SIZE[1] - MARGIN - value / top * height

    draw.line((MARGIN, y(0), SIZE[0] - MARGIN, y(0)), fill="black")
    draw.line((MARGIN, y(TARGET), SIZE[0] - MARGIN, y(TARGET)), fill="red")
    draw.text((SIZE[0] - MARGIN - 90, y(TARGET) - 14), f"target {TARGET}", fill="red")
    step = width / max(1, len(rows))
    for index, row in enumerate(rows):
        left = MARGIN + index * step + step * 0.15
        right = left + step * 0.7
        colour = (60, 140, 80) if row["ratio"] <= TARGET else (200, 90, 60)
        draw.rectangle((left, y(row["ratio"]), right, y(0)), fill=colour)
        draw.text((left, y(row["ratio"]) - 14), f"{row['ratio']:.2f}", fill="black")
        draw.text((left, y(0) + 6), f"EP{row['episode']} c{row['concurrency']}", fill="black")
    draw.text((MARGIN, 16), "wall / bound per episode (shots) and concurrency; bound = max(critical path, work / concurrency)",
              fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> None:
    episode = RESULTS / "episode.json"
    if not episode.is_file():
        raise SystemExit(f"{episode}: run bench/episode.py first")
    rows = json.loads(episode.read_text())["rows"]
    plot(rows, PLOT)
    print(f"wrote {PLOT}")


if __name__ == "__main__":
    main()
