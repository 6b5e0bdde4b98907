"""Within a shot, independent calls run at once: a triptych's three judges and three upscales, its two segments;
shots in flight follow the provider limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelflow.schemas.load import load_project
from reelflow.state.ledger import Ledger

from checks import calls_in_flight
from conftest import run_cli
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_triptych_shot_makes_its_independent_calls_at_once(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=(1,)), PROJECT | {"concurrency": {"local": 4}})
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_LATENCY": "0.4"})
    assert result.code == 0, result.stderr
    rows = Ledger.at(root / ".reelflow").rows()
    by_stage = {stage: [row for row in rows if row.stage == stage] for stage in ("keyframes", "qc", "upscale", "video")}
    assert {stage: len(found) for stage, found in by_stage.items()} == {"keyframes": 1, "qc": 3, "upscale": 3, "video": 2}
    assert calls_in_flight(by_stage["qc"]) == 3, "the three panels are judged at once"
    assert calls_in_flight(by_stage["upscale"]) == 3, "and upscaled at once"
    assert calls_in_flight(by_stage["video"]) == 2, "the two halves of a split FLF are made at once"
    serial = sum((row.settled_at or 0.0) - row.submitted_at for row in rows)
    span = max(row.settled_at or 0.0 for row in rows) - min(row.submitted_at for row in rows)
    assert span < 0.75 * serial, "the shot's calls overlap: well under their sum"


def test_shots_in_flight_follow_the_provider_limits(tmp_path: Path) -> None:
    from reelflow.flows.render import SHOT_WORKERS, shots_in_flight

    offline = write_project(tmp_path / "offline")
    assert shots_in_flight(load_project(offline)) == min(SHOT_WORKERS, 2 * 4), "local takes 4 calls at once by default"
    cloud = write_project(tmp_path / "cloud", project=PROJECT | {
        "providers": {"default": "fal", "upscale": "gemini", "qc": "gemini"}, "concurrency": {"fal": 40, "gemini": 6}})
    assert shots_in_flight(load_project(cloud)) == min(SHOT_WORKERS, 2 * (40 + 6))
    assert shots_in_flight(load_project(cloud), ("previz",)) == min(SHOT_WORKERS, 2 * 40)
