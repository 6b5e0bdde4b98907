"""The sample project: valid, rich enough to show every approach, and its EP1 renders and re-renders from cache."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from checks import check_episode
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


def test_episode_one_renders_then_comes_from_cache(prefect_api: str, tmp_path: Path) -> None:
    root = tmp_path / "leviathan"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("assets", ".reelflow"))
    first = run_cli("render", str(root), "--episode", "1", "--json")
    assert first.code == 0, first.stderr
    report = first.json()
    assert report["shots"] == {"total": 21, "rendered": 21, "cached": 0, "failed": 0}
    assert report["cost_usd"] > 0
    check_episode(root, 1)

    again = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_LATENCY": "0.5"})
    assert again.code == 0, again.stderr
    assert again.json()["provider_calls"] == 0
    assert again.json()["shots"] == {"total": 21, "rendered": 0, "cached": 21, "failed": 0}
