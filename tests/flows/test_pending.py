"""render-pending: every episode with pending or retake shots renders, one after another, under the budget."""

from __future__ import annotations

import json
import re
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import changing_dailies, now

from fakes.fal import FakeFal
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


def episodes_project(root: Path, code: str, episodes: int, providers: dict[str, str] | None = None) -> Path:
    """A project of `episodes` one-shot episodes (a held frame each: the quickest render)."""
    chosen = providers or {"default": "local"}
    write_project(root, storyboard(1, only=(4,)), project=PROJECT | {"code": code, "providers": chosen})
    for episode in range(2, episodes + 1):
        (root / "storyboards" / f"storyboard_ep_{episode:03d}.json").write_text(json.dumps(storyboard(episode, only=(4,))))
    return root


def mark(root: Path, episode: int, decision: str | None) -> None:
    """Record a rendered take of the episode's shot, then `decision` on it (None: leave it generated)."""
    folder = load_project(root)
    with changing_dailies(folder, load_storyboard(folder, episode)) as dailies:
        dailies.shot(1).rendered(1, "pass", at=now())
        if decision is not None:
            dailies.shot(1).decide(decision, at=now(), by="test")


def latest_artifact(api: str, key: str) -> str:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    response = httpx.post(f"{api}/artifacts/filter", json=body)
    response.raise_for_status()
    return response.json()[0]["data"]


def test_only_episodes_with_pending_or_retake_shots_render(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from reelflow.flows.pending import PendingReport, pending_episodes, render_pending

    root = episodes_project(tmp_path / "proj", "PND", 3)
    mark(root, 1, "approved")
    mark(root, 3, None)  # rendered, waiting for review: nothing to render
    state = render_pending(str(root), return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, PendingReport)
    assert (report.project, report.up_to_date, report.not_rendered, report.stopped) == ("PND", [1, 3], [], None)
    [row] = report.episodes
    assert (row.episode, row.state, row.rendered, row.cached, row.failed) == (2, "Completed", 1, 0, 0)
    assert row.cut == str(root / "storyboards" / "assets" / "ep_002" / "ep_002.mp4") and Path(row.cut).is_file()
    assert row.charged_usd == 0 and row.shadow_usd > 0
    assert not (root / "storyboards" / "assets" / "ep_001").exists()

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        episode_run = client.read_flow_run(UUID(row.flow_run_id))
    assert re.fullmatch(r"PND-render-pending-\d{8}-\d{6}", run.name), run.name
    assert {"project:PND", "provider:local"} <= set(run.tags) and not any(t.startswith("episode:") for t in run.tags)
    assert episode_run.name.startswith("PND-ep002-render-") and episode_run.parent_task_run_id is not None

    markdown = latest_artifact(prefect_api, "pnd-render-pending")
    assert "Rendered: episodes 2 · nothing pending: 1, 3" in markdown
    assert (f"| 2 | Completed | 1 | 0 | 0 | 0 | charged $0.000 · shadow cost ${row.shadow_usd:.3f} "
            f"(local provider: nothing charged) | `{row.cut}` | `{row.flow_run_id}` |") in markdown

    assert pending_episodes(load_project(root)) == ([], [1, 2, 3])
    mark(root, 3, "retake")
    assert pending_episodes(load_project(root)) == ([3], [1, 2]), "a shot sent back for a retake is to render"


def test_a_budget_stop_ends_the_run_and_leaves_the_rest(
    prefect_api: str, tmp_path: Path, fal: FakeFal, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelflow.flows.pending import render_pending
    from reelflow.providers.registry import get_provider

    for name, value in fal.env().items():
        monkeypatch.setenv(name, value)
    get_provider.cache_clear()  # a fal provider pointed at this fake
    try:
        root = episodes_project(tmp_path / "proj", "PNB", 3, {"default": "local", "keyframes": "fal"})
        # The cap holds across the run's episodes: the first spends $0.021 of it, the second cannot spend $0.021 more.
        state = render_pending(str(root), max_cost_usd=0.03, return_state=True)
    finally:
        get_provider.cache_clear()
    assert state.is_failed() and state.message == "episodes 2 failed"
    report = state.result(raise_on_failure=False)
    first, second = report.episodes
    assert (first.episode, first.state, second.episode, second.state, second.failed) == (1, "Completed", 2, "Failed", 1)
    assert second.stopped and second.stopped.startswith("budget: this run's cap") and report.stopped == second.stopped
    assert report.not_rendered == [3] and fal.total_submits() == 1 and fal.billed_usd <= 0.03
    assert f"**Stopped:** {second.stopped}; not rendered: episodes 3" in latest_artifact(prefect_api, "pnb-render-pending")


def test_shadow_cost_never_stops_a_run(prefect_api: str, tmp_path: Path) -> None:
    from reelflow.flows.pending import render_pending

    root = episodes_project(tmp_path / "proj", "PNS", 2)
    report = render_pending(str(root), max_cost_usd=0.001)
    assert [row.state for row in report.episodes] == ["Completed", "Completed"] and report.stopped is None
    assert all(row.shadow_usd > 0.001 and row.charged_usd == 0 for row in report.episodes)


def test_a_rendered_shot_whose_storyboard_changed_is_rendered_again_and_an_approved_one_never(
        prefect_api: str, tmp_path: Path) -> None:
    """A push the studio missed left shots rendered from an older storyboard: the nightly run renders them."""
    from reelflow.flows.pending import pending_episodes, render_pending

    root = episodes_project(tmp_path / "proj", "CHN", 2)
    first = render_pending(str(root), return_state=True)
    assert first.is_completed(), first.message
    assert pending_episodes(load_project(root)) == ([], [1, 2]), "rendered, waiting for review"
    mark_approved = load_project(root)
    with changing_dailies(mark_approved, load_storyboard(mark_approved, 1)) as dailies:
        dailies.shot(1).decide("approved", at=now(), by="test")
    for episode in (1, 2):
        board = root / "storyboards" / f"storyboard_ep_{episode:03d}.json"
        edited = json.loads(board.read_text())
        edited["shots"][0]["first_frame_prompt"] = "Ana at the window, the lights out"
        board.write_text(json.dumps(edited))
    assert pending_episodes(load_project(root)) == ([2], [1]), "episode 1's only shot is approved: never again"
    state = render_pending(str(root), return_state=True)
    assert state.is_completed(), state.message
    [row] = state.result().episodes
    assert (row.episode, row.rendered, row.cached) == (2, 1, 0)
    assert pending_episodes(load_project(root)) == ([], [1, 2])
