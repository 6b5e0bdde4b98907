"""A person's decision made while a render runs is never overwritten by the render's end."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import apply_decisions
from reelflow.state.ledger import Ledger

from conftest import REELFLOW, run_cli
from projects import saved, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
HELD = (3, 4)


def _wait_for_new_request(root: Path, before: int, render: subprocess.Popen[str], deadline_s: float = 60) -> None:
    """Until the running render has submitted a request past the `before` ledger rows (so it read the dailies)."""
    deadline = time.monotonic() + deadline_s
    while len(Ledger.at(root / ".reelflow").rows()) <= before:
        assert render.poll() is None, render.communicate()
        assert time.monotonic() < deadline, "the render never submitted a request"
        time.sleep(0.05)


def test_approve_and_retake_during_a_slow_render_both_stand(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=HELD))
    first = run_cli("render", str(root), "--episode", "1", "--json")
    assert first.code == 0, first.stderr
    board = storyboard(only=HELD)
    board["shots"][1]["first_frame_prompt"] = "Ana alone at the window, rain on the glass"
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))
    before = len(Ledger.at(root / ".reelflow").rows())

    # Shot 2 re-renders slowly (three calls of a second each); meanwhile shot 1 is approved and shot 2 sent back.
    env = os.environ | {"REELFLOW_LOCAL_LATENCY": "1", "REELFLOW_RETRY_DELAY_S": "0.01",
                        "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    render = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_new_request(root, before, render)
    folder = load_project(root)
    apply_decisions(folder, load_storyboard(folder, 1), {1: "approved", 2: "retake"}, by="director", note="mid-render")
    assert render.poll() is None, "the render ended before the decisions: the test proves nothing"
    out, err = render.communicate(timeout=240)
    assert render.returncode == 0, err

    report = json.loads(out)
    assert [line["status"] for line in report["lines"]] == ["cached", "rendered"]
    assert report["decisions_kept"] == [
        "shot 1: approved by director during the render: the decision stands (T01's checks added)",
        "shot 2: retake by director during the render: the decision stands (T01's checks added)",
    ]
    shots = saved(root)
    assert (shots[1]["status"], shots[1]["approved_take"]) == ("approved", 1)
    assert (shots[2]["status"], shots[2]["take"], shots[2]["note"]) == ("retake", 1, "mid-render")
    assert shots[2]["history"][-1]["by"] == "director"
    # The new take's checks are still recorded: shot 2's keyframe tries now include the edited prompt's.
    assert len(shots[2]["gates"]) == 1 and shots[2]["clip_checks"][-1]["passed"] is True

    # The next render honours both: shot 1 stays as approved, shot 2 renders its retake T02.
    again = run_cli("render", str(root), "--episode", "1", "--json")
    assert again.code == 0, again.stderr
    lines = {line["shot"]: line for line in again.json()["lines"]}
    assert (lines[1]["status"], lines[2]["status"], lines[2]["take"]) == ("kept", "rendered", 2)
