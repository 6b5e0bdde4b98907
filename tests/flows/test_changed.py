"""render-changed: the checkout goes to the pushed commit and only the episodes its inputs changed render."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from PIL import Image

from reelflow.schemas.errors import ContractError

from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

GIT_CONFIG = ("-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *GIT_CONFIG, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(repo: Path) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    return git(repo, "rev-parse", "HEAD")


def board_path(root: Path, episode: int) -> Path:
    return root / "storyboards" / f"storyboard_ep_{episode:03d}.json"


def test_a_commit_that_edits_episode_1_renders_only_episode_1_at_that_commit(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from reelflow.flows.changed import ChangedReport, render_changed

    top = tmp_path / "repo"
    root = write_project(top / "show", storyboard(1, only=(4,)), project=PROJECT | {"code": "CHG"})
    board_path(root, 2).write_text(json.dumps(storyboard(2, only=(4,))))
    (top / ".gitignore").write_text("storyboards/assets/\nstoryboards/dailies_ep_*.json\n.reelflow/\n")
    git(top, "init", "-q", "-b", "main")
    base = commit(top)
    edited = storyboard(1, only=(4,))
    edited["shots"][0]["first_frame_prompt"] = "Ana at the window, dawn breaking"
    board_path(root, 1).write_text(json.dumps(edited))
    head = commit(top)
    git(top, "reset", "-q", "--hard", base)  # the worker's checkout has not seen the push yet

    state = render_changed(str(root), head=head, base=base, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, ChangedReport) and (report.head, report.base) == (head, base)
    [row] = report.episodes
    assert (row.episode, row.state, row.rendered, row.failed) == (1, "Completed", 1, 0)
    assert row.cut == str(root / "storyboards" / "assets" / "ep_001" / "ep_001.mp4")
    assert git(top, "rev-parse", "HEAD") == head and git(top, "symbolic-ref", "--short", "HEAD") == "main"
    assert json.loads(board_path(root, 1).read_text())["shots"][0]["first_frame_prompt"].endswith("dawn breaking")
    assert not (root / "storyboards" / "assets" / "ep_002").exists()
    with get_client(sync_client=True) as client:
        episode_run = client.read_flow_run(UUID(row.flow_run_id))
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert episode_run.name.startswith("CHG-ep001-render-") and episode_run.parent_task_run_id is not None
    assert run.name.startswith("CHG-render-changed-")
    body = {"artifacts": {"key": {"any_": ["chg-render-changed"]}}, "sort": "CREATED_DESC", "limit": 1}
    markdown = httpx.post(f"{prefect_api}/artifacts/filter", json=body).json()[0]["data"]
    assert f"# CHG: render changed at `{head}`" in markdown and f"Episodes (changed since `{base}`): 1" in markdown
    assert f"| 1 | Completed | 1 | 0 | 0 | 0 | charged $0.000 · shadow cost ${row.shadow_usd:.3f}" in markdown

    # An uncommitted storyboard edit refuses the next run with one line, before the checkout moves.
    board_path(root, 2).write_text(json.dumps(storyboard(2, only=(3,))))
    refused = render_changed(str(root), head=base, episodes=[2], return_state=True)
    assert refused.is_failed()
    expected = (f"{root}: uncommitted changes to storyboards/storyboard_ep_002.json; commit or discard them "
                f"before checking out {base[:12]}")
    assert refused.message == expected
    error = refused.result(raise_on_failure=False)
    assert isinstance(error, ContractError) and str(error) == expected
    assert git(top, "rev-parse", "HEAD") == head

    without_base = render_changed(str(root), head=head, return_state=True)
    assert without_base.is_failed() and without_base.message.endswith("needs `base` (the commit to compare with) or `episodes`")


def test_candidates_made_in_the_studio_checkout_do_not_stop_the_next_push(tmp_path: Path) -> None:
    from reelflow.flows.changed import ChangedReport, render_changed
    from reelflow.flows.characters import build_character_dataset

    origin = write_project(tmp_path / "origin", storyboard(1, only=(4,)), project=PROJECT | {"code": "CND"})
    board_path(origin, 2).write_text(json.dumps(storyboard(2, only=(3,))))
    keystone = origin / "visual" / "lora_candidates" / "ANA" / "keystones" / "ana_front.png"
    keystone.parent.mkdir(parents=True)
    Image.new("RGB", (96, 160), (90, 70, 110)).save(keystone)
    (origin / ".gitignore").write_text(".reelflow/\nstoryboards/assets/\nstoryboards/dailies_ep_*.json\n")
    git(origin, "init", "-q", "-b", "main")
    base = commit(origin)
    studio = tmp_path / "studio"
    subprocess.run(["git", "clone", "-q", str(origin), str(studio)], check=True)

    made = build_character_dataset(str(studio), "ANA", count=2, return_state=True)
    assert made.is_completed(), made.message
    folder = studio / "visual" / "lora_candidates" / "ANA"
    generated = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert sorted(generated) == ["ANA_c001.png", "ANA_c002.png", "manifest.json"]

    edited = storyboard(1, only=(4,))
    edited["shots"][0]["first_frame_prompt"] = "Ana at the window, dawn breaking"
    board_path(origin, 1).write_text(json.dumps(edited))
    head = commit(origin)  # the push
    state = render_changed(str(studio), head=head, base=base, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, ChangedReport)
    [row] = report.episodes
    assert (row.episode, row.state, row.rendered) == (1, "Completed", 1)
    assert git(studio, "rev-parse", "HEAD") == head
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == generated, "still there"

    def refusal() -> str | None:
        refused = render_changed(str(studio), head=head, episodes=[1], return_state=True)
        assert refused.is_failed()
        return refused.message

    # A person's retouch of a candidate, and a person's new keystone, are inputs: refused, one line naming the file.
    (folder / "ANA_c001.png").write_bytes(generated["ANA_c002.png"])
    assert refusal() == (f"{studio}: uncommitted changes to visual/lora_candidates/ANA/ANA_c001.png; commit or "
                         f"discard them before checking out {head[:12]}")
    (folder / "ANA_c001.png").write_bytes(generated["ANA_c001.png"])  # put back: reelflow's own again
    (folder / "keystones" / "ana_profile_left.png").write_bytes(keystone.read_bytes())
    assert refusal() == (f"{studio}: uncommitted changes to visual/lora_candidates/ANA/keystones/ana_profile_left.png; "
                         f"commit or discard them before checking out {head[:12]}")
