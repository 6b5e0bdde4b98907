"""`reelflow estimate` prices what a render would submit now; `--max-cost` stops paid calls at the cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from projects import PROJECT, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


SHOTS = ("--shots", "2,4")  # a standard FLF shot and a static hold keep these renders short


def estimate(root: Path, *shots: str) -> dict:
    result = run_cli("estimate", str(root), "--episode", "1", "--json", *shots)
    assert result.code == 0, result.stderr
    return result.json()


def test_estimate_equals_the_render_cost_and_is_zero_after(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    by_stage = {"keyframes": 0.1, "qc": 0.007, "upscale": 0.273, "video": 0.16}
    assert estimate(root) == {"total_usd": 0.54, "by_stage": by_stage}
    before = estimate(root, *SHOTS)
    assert before == {"total_usd": 0.26, "by_stage": {"keyframes": 0.06, "qc": 0.003, "upscale": 0.117, "video": 0.08}}
    assert not (root / "storyboards" / "assets").exists(), "an estimate makes nothing"
    render = run_cli("render", str(root), "--episode", "1", "--json", *SHOTS)
    assert render.code == 0, render.stderr
    assert render.json()["cost_usd"] == before["total_usd"]
    assert estimate(root, *SHOTS)["total_usd"] == 0
    assert estimate(root)["total_usd"] == pytest.approx(0.54 - 0.26)


def test_budget_cap_refuses_to_submit_past_it(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    capped = run_cli("render", str(root), "--episode", "1", "--json", "--max-cost", "0.15", *SHOTS)
    assert capped.code == 1
    report = capped.json()
    assert report["budget_usd"] == 0.15 and report["cost_usd"] <= 0.15
    assert report["failures"] and all("budget $0.15 reached" in f["reason"] for f in report["failures"])
    left = estimate(root, *SHOTS)["total_usd"]
    assert left == pytest.approx(0.26 - report["cost_usd"])

    uncapped = run_cli("render", str(root), "--episode", "1", "--json", *SHOTS)
    assert uncapped.code == 0 and uncapped.json()["cost_usd"] == pytest.approx(left)


def test_project_budget_applies_without_the_flag(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"budget_usd": 0.05})
    result = run_cli("render", str(root), "--episode", "1", "--json", "--shots", "4")
    assert result.code == 1
    assert result.json()["cost_usd"] <= 0.05 and result.json()["budget_usd"] == 0.05
