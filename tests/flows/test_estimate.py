"""`reelflow estimate` prices what a render would submit now; `--max-cost` stops paid calls at the cap."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from fakes.fal import FakeFal
from projects import PROJECT, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


# budgets count money: the local provider's shadow cost is not; fal has no judge, so its frames would wait for review
FAL = PROJECT | {"providers": {"default": "fal"}, "review": {"keyframes": "none"}}
SHOTS = ("--shots", "2,4")  # a standard FLF shot and a static hold keep these renders short


def estimate(root: Path, *shots: str) -> dict:
    """What `reelflow estimate --json` prints, computed in this process (the CLI's own output is tested elsewhere)."""
    from reelflow.flows.estimate import estimate_episode

    numbers = [int(n) for n in shots[1].split(",")] if shots else None
    result = estimate_episode(root, 1, numbers)
    return {"total_usd": result.total_usd, "by_stage": result.by_stage}


def test_estimate_equals_the_render_cost_and_is_zero_after(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    # video: WAN at 16 fps for each shot's duration, shot 1's 2.5 s in two halves of 21 frames, shot 2's 2 s in 33
    by_stage = {"keyframes": 0.126, "qc": 0.0119, "upscale": 0.469, "video": 0.375}
    assert estimate(root) == {"total_usd": 0.9819, "by_stage": by_stage}
    before = estimate(root, *SHOTS)
    assert before == {"total_usd": 0.4341, "by_stage": {"keyframes": 0.063, "qc": 0.0051, "upscale": 0.201, "video": 0.165}}
    assert not (root / "storyboards" / "assets").exists(), "an estimate makes nothing"
    render = run_cli("render", str(root), "--episode", "1", "--json", *SHOTS)
    assert render.code == 0, render.stderr
    assert render.json()["cost_usd"] == before["total_usd"]
    assert estimate(root, *SHOTS)["total_usd"] == 0
    assert estimate(root)["total_usd"] == pytest.approx(0.9819 - 0.4341)


@pytest.fixture
def on_fal(fal: FakeFal, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFal]:
    """The fake fal, with this process's fal provider pointed at it (estimates run here)."""
    from reelflow.providers.registry import get_provider

    for name, value in fal.env().items():
        monkeypatch.setenv(name, value)
    get_provider.cache_clear()
    yield fal
    get_provider.cache_clear()


def test_budget_cap_refuses_to_submit_past_it(tmp_path: Path, on_fal: FakeFal) -> None:
    fal = on_fal
    root = write_project(tmp_path / "proj", project=FAL)
    hold = ("--shots", "4")  # a static hold: keyframe $0.021, then its $0.001 SeedVR upscale passes the cap
    total = estimate(root, *hold)["total_usd"]
    assert total > 0.0215
    capped = run_cli("render", str(root), "--episode", "1", "--json", "--max-cost", "0.0215", *hold, env=fal.env())
    assert capped.code == 1
    report = capped.json()
    assert report["budget_usd"] == 0.0215 and report["cost_usd"] == pytest.approx(0.021) == fal.billed_usd
    assert report["failures"] and all("budget: this run's cap (--max-cost) $0.02 reached" in f["reason"]
                                      for f in report["failures"])
    assert report["budget"] | {"stopped": None} == {
        "project_usd": None, "run_cap_usd": 0.0215, "spent_run_usd": 0.021, "spent_project_usd": 0.021,
        "remaining_usd": pytest.approx(0.0005), "stopped": None, "shadow_stop": None}
    assert capped.stderr.strip().splitlines()[-1] == f"error: {report['budget']['stopped']}"
    left = estimate(root, *hold)["total_usd"]
    assert left == pytest.approx(total - report["cost_usd"])

    uncapped = run_cli("render", str(root), "--episode", "1", "--json", *hold, env=fal.env())
    assert uncapped.code == 0 and uncapped.json()["cost_usd"] == pytest.approx(left)
    assert fal.billed_usd == pytest.approx(total)


def test_project_budget_is_the_total_over_every_run(tmp_path: Path, fal: FakeFal) -> None:
    root = write_project(tmp_path / "proj", project=FAL | {"budget_usd": 0.05})
    first = run_cli("render", str(root), "--episode", "1", "--json", "--shots", "4", env=fal.env())
    spent = first.json()["cost_usd"]
    assert first.code == 0 and spent > 0.021
    assert first.json()["budget"]["remaining_usd"] == pytest.approx(0.05 - spent)
    # Shot 2 needs $0.021 keyframes twice, then more: the second run stops where the project's total reaches $0.05.
    second = run_cli("render", str(root), "--episode", "1", "--json", "--shots", "2", env=fal.env())
    assert second.code == 1
    report = second.json()
    assert report["budget_usd"] == 0.05 and report["cost_usd"] <= 0.05 - spent + 1e-9
    assert report["budget"]["spent_project_usd"] == pytest.approx(spent + report["cost_usd"])
    assert report["budget"]["spent_project_usd"] <= 0.05 + 1e-9
    assert "budget: the project's budget (budget_usd) $0.05 reached" in report["budget"]["stopped"]
