"""The review loop end to end: gates route keyframes, every try is recorded, and the Prefect form decides."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from reelflow.schemas.dailies import Dailies
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import changing_dailies, now
from reelflow.state.db import database

from conftest import run_cli
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")


def assets(root: Path) -> Path:
    return root / "storyboards" / "assets" / "ep_001"


def dailies(root: Path) -> Dailies:
    return Dailies.model_validate_json((root / "storyboards" / "dailies_ep_001.json").read_bytes())


def manifest(root: Path) -> dict:
    return json.loads((assets(root) / "manifest.json").read_text())


def test_rejected_keyframes_are_made_again_with_new_seeds_and_each_try_is_recorded(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"qc": {"max_regenerations": 6}})
    env = {"REELFLOW_LOCAL_FAULTS": "off_model=0.5", "REELFLOW_LOCAL_FAULT_SEED": "35"}
    result = run_cli("render", str(root), "--episode", "1", "--shots", "3,4", "--json", env=env)
    assert result.code == 0, result.stderr
    assert [line["review"] for line in result.json()["lines"]] == ["pass"] * 2
    tries = {s.shot: s.gates for s in dailies(root).shots if s.gates}
    assert [t.route for t in tries[3]] == ["reject", "pass"], "fault seed 35 draws shot 3's first try off model"
    for shot_tries in tries.values():
        assert [t.attempt for t in shot_tries] == list(range(1, len(shot_tries) + 1))
        assert [t.route for t in shot_tries] == ["reject"] * (len(shot_tries) - 1) + ["pass"]
        assert len({t.seed for t in shot_tries}) == len(shot_tries)
        for rejected in shot_tries[:-1]:
            assert min(rejected.scores.values()) < 0.4 and rejected.reasons
    published = {e["shot"]: e["seed"] for e in manifest(root)["assets"] if e["stage"] == "keyframes" and e["name"]}
    assert published == {n: tries[n][-1].seed for n in published}, "the published keyframes are the passing try's"

    again = run_cli("render", str(root), "--episode", "1", "--shots", "3,4", "--json", env=env)
    assert again.json()["provider_calls"] == 0, "rejected tries and verdicts are cached too"


def test_keyframes_rejected_on_every_try_stop_the_shot_before_video(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"qc": {"max_regenerations": 1}})
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_FAULTS": "off_model=1"})
    assert result.code == 1
    report = result.json()
    assert report["shots"]["failed"] == 4
    assert {f["stage"] for f in report["failures"]} == {"gates"}
    assert all(f["reason"].startswith("keyframes rejected 2 times") for f in report["failures"])
    folder = assets(root)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"], "a failed shot publishes no asset"
    assert manifest(root)["assets"] == [] and manifest(root)["cut"] is None
    records = database(root / ".reelflow").rows("SELECT record FROM cache")
    stages = {json.loads(r["record"])["provenance"]["stage"] for r in records}
    assert stages == {"keyframes", "split", "gate1", "qc"}, "no video was made"
    for review in dailies(root).shots:
        assert review.status == "pending"
        assert [t.route for t in review.gates] == ["reject", "reject"]


def test_scores_between_the_thresholds_go_to_review_and_still_get_video_without_a_keyframe_stop(tmp_path: Path) -> None:
    settings = {"qc": {"reject_below": 0.0, "pass_at": 0.9}, "review": {"keyframes": "none"}}
    root = write_project(tmp_path / "proj", project=PROJECT | settings)
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,4", "--json",
                     env={"REELFLOW_LOCAL_FAULTS": "off_model=1"})
    assert result.code == 0, result.stderr
    assert [line["review"] for line in result.json()["lines"]] == ["review", "review"]
    shots = {s.shot: s for s in dailies(root).shots}
    assert (shots[2].status, shots[4].status, shots[1].status) == ("needs_review", "needs_review", "pending")
    assert (assets(root) / "TST_EP001_S02_T01_BO_clip.mp4").is_file()


def _paused_run(api: str, deadline_s: float = 60) -> str:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"like_": "ep001-review"}}}).json()
        paused = [run["id"] for run in runs if run["state_type"] == "PAUSED"]
        if paused:
            return paused[0]
        time.sleep(0.3)
    raise AssertionError("the review run never paused")


def test_prefect_pause_form_records_the_directors_decisions(tmp_path: Path, prefect_api: str) -> None:
    """`reelflow review` runs the flow in its own process, with no deployment: the run pauses there (a deployment's
    run suspends instead: tests/deployments/test_review_restart.py)."""
    from prefect.client.orchestration import get_client

    from reelflow.flows.review import review_episode

    root = write_project(tmp_path / "proj")
    folder = load_project(root)
    with changing_dailies(folder, load_storyboard(folder, 1)) as state:
        for number in (1, 2, 3):
            state.shot(number).rendered(1, "pass", at=now())
    statuses: dict[str, dict[int, str]] = {}
    runner = threading.Thread(
        target=lambda: statuses.update(result=review_episode(str(root), 1, timeout_s=120, poll_s=1)), daemon=True
    )
    runner.start()
    flow_run_id = _paused_run(prefect_api)
    inputs = httpx.post(f"{prefect_api}/flow_runs/{flow_run_id}/input/filter", json={"prefix": "paused"}).json()
    schema = next(json.loads(i["value"]) for i in inputs if i["key"].endswith("-schema"))
    assert {"approve", "retake", "needs_review", "note"} <= set(schema["properties"])

    # What the UI's form does: resume the run with the input (Prefect's client retries a busy server).
    with get_client(sync_client=True) as client:
        outcome = client.resume_flow_run(flow_run_id, run_input={"approve": [1, 2], "retake": [3], "note": "<i>ok</i>"})
    assert outcome.status.value == "ACCEPT", outcome
    runner.join(60)
    assert statuses["result"] == {1: "approved", 2: "approved", 3: "retake", 4: "pending"}
    shots = {s.shot: s for s in dailies(root).shots}
    assert shots[3].history[-1].by == "prefect ui" and shots[3].note == "<i>ok</i>"
    assert shots[1].approved_take == 1


def test_with_no_judge_every_shot_goes_to_review_and_none_passes(tmp_path: Path) -> None:
    from fakes.fal import FakeFal

    # Two held frames (quick to render): routing is the same for every approach.
    board = storyboard(only=(3, 4))
    root = write_project(tmp_path / "proj", board, PROJECT | {"providers": {"default": "local", "qc": "fal"}})
    with FakeFal() as fal:
        result = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
        assert result.code == 0, result.stderr
        assert fal.total_submits() == 0, "fal has no judge: nothing is sent to it"
    assert [line["review"] for line in result.json()["lines"]] == ["review"] * 2
    state = dailies(root)
    assert [shot.status for shot in state.shots] == ["keyframes_review"] * 2, "unjudged frames wait for a person"
    assert all("Gate 2 skipped: fal has no vision judge" in " ".join(shot.gates[-1].reasons) for shot in state.shots)

    opted = root / "project.json"
    opted.write_text(json.dumps(PROJECT | {"providers": {"default": "local", "qc": "fal"}, "qc": {"require_gate2": False}}))
    with FakeFal() as fal:
        again = run_cli("render", str(root), "--episode", "1", "--json", env=fal.env())
    assert again.code == 0 and [line["review"] for line in again.json()["lines"]] == ["pass"] * 2
    assert [line["status"] for line in again.json()["lines"]] == ["rendered"] * 2, "passed on Gate 1 alone: no wait"
