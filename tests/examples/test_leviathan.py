"""The sample project: valid, and rich enough to show every approach.

`make demo` renders its EP1 on the local provider; tests/flows/test_cloud_render.py takes the same code paths on
fal and Gemini (fakes) with a four-shot project, inside the suite's five-minute budget.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"


def test_example_is_valid_and_covers_every_approach() -> None:
    result = run_cli("validate", str(EXAMPLE))
    assert result.code == 0, result.stderr
    assert "2 storyboard(s) are valid" in result.stdout
    board = json.loads((EXAMPLE / "storyboards" / "storyboard_ep_001.json").read_text())
    assert len(board["shots"]) == 21
    counts = Counter(shot["generation_approach"] for shot in board["shots"])
    assert counts["triptych_split_flf"] >= 5 and counts["standard_flf"] >= 5
    assert counts["held_frame_push"] >= 3 and counts["held_frame_static"] >= 2
    breakdown = json.loads((EXAMPLE / "breakdown.json").read_text())
    assert {c["id"] for c in breakdown["characters"]} == {"JINX", "KIAN", "VAREK"}
    assert len(breakdown["locations"]) >= 5
