"""Keyframes first, video on approval: shots whose keyframes need a person's eye stop after their gates, before any
upscale or video is paid for, and their video is made from exactly the frames someone approved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelflow.schemas.dailies import Dailies
from reelflow.schemas.load import base_name
from reelflow.schemas.project import Project
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.ledger import Ledger
from reelflow.tasks.job import ShotJob
from reelflow.tasks.shot import held_for_review

from conftest import run_cli
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")

# Drawn in the wrong place with their characters right: a one-character shot scores 0.5 at Gate 2, between the
# default reject_below (0.4) and pass_at (0.6).
OFF_LOCATION = {"REELFLOW_LOCAL_FAULTS": "off_location=1"}


def shot_job(project: dict) -> ShotJob:
    board, settings = Storyboard.model_validate_json(json.dumps(storyboard())), Project.model_validate(project)
    return ShotJob(run="r", root=Path("/nowhere"), project=settings, episode=1, shot=board.shot(2),
                   name=base_name(settings, board, board.shot(2)), seed=1)


def dailies(root: Path) -> Dailies:
    return Dailies.model_validate_json((root / "storyboards" / "dailies_ep_001.json").read_bytes())


def stages_by_shot(root: Path) -> dict[int, set[str]]:
    """The stages the ledger holds calls of, by shot."""
    calls: dict[int, set[str]] = {}
    for row in Ledger.at(root / ".reelflow").rows():
        calls.setdefault(int(row.shot or 0), set()).add(str(row.stage))
    return calls


def test_keyframes_that_need_review_hold_their_video_until_approved(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    held = run_cli("render", str(root), "--episode", "1", "--shots", "2,4", "--json", env=OFF_LOCATION)
    assert held.code == 0, held.stderr
    report = held.json()
    lines = {line["shot"]: line for line in report["lines"]}
    assert {n: lines[n]["status"] for n in lines} == {2: "keyframes_review", 4: "keyframes_review"}
    assert report["shots"]["held"] == 2
    assert report["held_usd"] > 0, "the held upscale and video are priced"
    assert "wait for keyframe review" in report["cut_skipped"]
    made = stages_by_shot(root)
    assert made[2] == made[4] == {"keyframes", "qc"}, "no upscale or video call for a held shot"
    state = {review.shot: review for review in dailies(root).shots}
    assert (state[2].status, state[4].status, state[1].status) == ("keyframes_review", "keyframes_review", "pending")
    frames = {n: state[n].keyframes.frames for n in (2, 4)}
    assets = root / "storyboards" / "assets" / "ep_001"
    assert (assets / "TST_EP001_S02_T01_BO_rawfirst.png").is_file(), "the held frames are published for review"

    estimate = run_cli("estimate", str(root), "--episode", "1", "--shots", "2,4", "--json", env=OFF_LOCATION)
    priced = estimate.json()
    assert {shot["shot"] for shot in priced["held"]} == {2, 4}
    assert priced["held_usd"] == pytest.approx(report["held_usd"])
    assert priced["total_usd"] == 0, "a render would stop them again: nothing in the total"

    again = run_cli("render", str(root), "--episode", "1", "--shots", "2,4", "--json", env=OFF_LOCATION)
    assert [line["status"] for line in again.json()["lines"]] == ["keyframes_review"] * 2
    assert again.json()["provider_calls"] == 0, "unapproved, they stay where they are at no cost"

    refused = run_cli("dailies", str(root), "--episode", "1", "--approve", "2", "--json")
    assert refused.code == 2 and "approve its keyframes" in refused.stderr
    approved = run_cli("dailies", str(root), "--episode", "1", "--approve-keyframes", "2,4", "--json")
    assert approved.code == 0, approved.stderr
    assert {s["shot"]: (s["status"], s["take"]) for s in approved.json()["shots"] if s["shot"] in (2, 4)} == {
        2: ("keyframes_approved", 1), 4: ("keyframes_approved", 1)}, "approving keyframes is not approving the take"
    ledger = Ledger.at(root / ".reelflow")
    keyframe_calls = [row.id for row in ledger.rows() if row.stage == "keyframes" and row.shot in (2, 4)]

    video = run_cli("render", str(root), "--episode", "1", "--shots", "2,4", "--json", env=OFF_LOCATION)
    assert video.code == 0, video.stderr
    lines = {line["shot"]: line for line in video.json()["lines"]}
    assert (lines[2]["status"], lines[4]["status"]) == ("rendered", "rendered")
    assert [row.id for row in ledger.rows() if row.stage == "keyframes" and row.shot in (2, 4)] == keyframe_calls, \
        "0 keyframe calls: the approved frames are used as they are"
    assert {"upscale", "video"} <= stages_by_shot(root)[2]
    manifest = json.loads((assets / "manifest.json").read_text())
    for number in (2, 4):
        upscaled = [e for e in manifest["assets"] if e["shot"] == number and e["stage"] == "upscale"]
        assert {i["sha256"] for e in upscaled for i in e["inputs"]} == set(frames[number].values()), \
            "the video's frames are upscaled from exactly the approved keyframes"
    state = {review.shot: review for review in dailies(root).shots}
    assert state[2].status in ("generated", "needs_review") and state[2].take == 1


def test_until_keyframes_stops_every_shot_there(tmp_path: Path) -> None:
    """Shot 3's keyframes pass their gates: only `--until keyframes` stops it (test above: passing shots go on)."""
    root = write_project(tmp_path / "proj")
    stopped = run_cli("render", str(root), "--episode", "1", "--shots", "2,3", "--until", "keyframes", "--json")
    assert stopped.code == 0, stopped.stderr
    assert [(line["status"], line["review"]) for line in stopped.json()["lines"]] == [("keyframes_review", "pass")] * 2
    assert all(stages <= {"keyframes", "qc"} for stages in stages_by_shot(root).values())


@pytest.mark.parametrize(("setting", "route", "held"), [
    ({}, "review", True), ({}, "pass", False), ({"keyframes": "all"}, "pass", True),
    ({"keyframes": "none"}, "review", False),
])
def test_which_keyframes_wait(setting: dict[str, str], route: str, held: bool) -> None:
    job = shot_job(PROJECT | {"review": setting})
    assert held_for_review(job, route, {"first": "a"}, until_keyframes=False) is held
    approved = job.model_copy(update={"approved_frames": {"first": "a"}})
    assert held_for_review(approved, route, {"first": "a"}, until_keyframes=False) is False, "approved: made"
    assert held_for_review(approved, route, {"first": "b"}, until_keyframes=False) is held, "other frames: asked again"


def test_gate1_alone_passes_without_waiting() -> None:
    """`"qc": {"require_gate2": false}`: a try no judge scored passes on Gate 1, so it does not wait for review."""
    job = shot_job(PROJECT | {"qc": {"require_gate2": False}})
    route = job.project.qc.route([], [])
    assert route == "pass" and not held_for_review(job, route, {"first": "a"}, until_keyframes=False)
