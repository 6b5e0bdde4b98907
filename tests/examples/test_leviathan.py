"""The sample project: valid, rich enough to show every approach, and an episode renders on fal and Gemini (fakes).

The cloud render takes EP2 (8 shots, every approach): EP1's 21 shots cost a minute more of the 5-minute suite and
add no path EP2 does not take; `make demo` renders EP1 on the local provider.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from reelflow.providers.ledger import Ledger

from checks import check_episode
from conftest import run_cli
from fakes.fal import FakeFal
from fakes.gemini import FakeGemini

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"
CLOUD = {"default": "fal", "upscale": "gemini", "qc": "gemini"}



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


def test_episode_two_on_fal_and_gemini_then_from_cache(
    prefect_api: str, tmp_path: Path, fal: FakeFal, gemini: FakeGemini
) -> None:
    root = tmp_path / "leviathan"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("assets", ".reelflow"))
    project = json.loads((root / "project.json").read_text()) | {"providers": CLOUD}
    (root / "project.json").write_text(json.dumps(project))
    env = fal.env() | gemini.env()
    estimate = run_cli("estimate", str(root), "--episode", "2", "--json", env=env).json()["total_usd"]

    result = run_cli("render", str(root), "--episode", "2", "--json", env=env)
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["shots"] == {"total": 8, "rendered": 8, "cached": 0, "failed": 0, "kept": 0}
    assert {line["review"] for line in report["lines"]} == {"pass"}, "every keyframe judged by Gemini and passed"
    check_episode(root, 2)
    assert set(fal.submits_by_body.values()) == {1}, "exactly one submit per generation"
    assert fal.total_submits() + sum(gemini.calls_per_model().values()) == report["provider_calls"]
    ledger_cost = Ledger(root / ".reelflow" / "ledger.jsonl").total_cost()
    assert estimate == pytest.approx(ledger_cost) == pytest.approx(report["cost_usd"])

    again = run_cli("render", str(root), "--episode", "2", "--json", env=env)
    assert again.code == 0, again.stderr
    assert again.json()["provider_calls"] == 0
    assert again.json()["shots"] == {"total": 8, "rendered": 0, "cached": 8, "failed": 0, "kept": 0}
