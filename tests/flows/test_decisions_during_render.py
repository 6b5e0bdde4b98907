"""A person's decision made while a render runs is never overwritten by the render's end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
        "shot 2: retake by director during the render: the decision stands (T02's checks added)",
    ]
    shots = saved(root)
    assert (shots[1]["status"], shots[1]["approved_take"]) == ("approved", 1)
    assert (shots[2]["status"], shots[2]["take"], shots[2]["note"]) == ("retake", 1, "mid-render")
    assert shots[2]["history"][-1]["by"] == "director"
    # The edited prompt's footage is a new take, T02, beside the T01 the director sent back; its checks are recorded.
    assert [(t["take"], t["attempt"]) for t in shots[2]["gates"]] == [(1, 1), (2, 1)]
    assert shots[2]["clip_checks"][-1]["take"] == 2 and shots[2]["clip_checks"][-1]["passed"] is True

    # The next render honours both: shot 1 stays as approved, shot 2 renders its retake with a new seed: T02 already
    # holds the footage made while the retake was decided, so the retake is T03.
    again = run_cli("render", str(root), "--episode", "1", "--json")
    assert again.code == 0, again.stderr
    lines = {line["shot"]: line for line in again.json()["lines"]}
    assert (lines[1]["status"], lines[2]["status"], lines[2]["take"]) == ("kept", "rendered", 3)


def _assets(root: Path) -> Path:
    return root / "storyboards" / "assets" / "ep_001"


def _files(root: Path) -> dict[str, tuple[str, int, int]]:
    """Each asset file's sha256, inode and modification time: a file written again changes the last two."""
    return {path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_ino, path.stat().st_mtime_ns)
            for path in sorted(_assets(root).iterdir()) if path.is_file()}


def _cut_inputs(root: Path) -> list[str]:
    """The sha256 of every clip the episode's cut was made from, in cut order."""
    manifest = json.loads((_assets(root) / "manifest.json").read_text())
    cut = next(entry for entry in manifest["assets"] if entry["name"] == manifest["cut"])
    return [ref["sha256"] for ref in cut["inputs"]]


@pytest.fixture(scope="module")
def held_rendered(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """The two held-frame shots rendered once: T01 of each."""
    root = write_project(tmp_path_factory.mktemp("held") / "proj", storyboard(only=HELD))
    assert run_cli("render", str(root), "--episode", "1", "--json").code == 0
    return root


@pytest.fixture
def held(held_rendered: Path, tmp_path: Path) -> Path:
    """A copy of the rendered project, for one test to change."""
    return Path(shutil.copytree(held_rendered, tmp_path / "proj"))


def _edit_shot_2(root: Path, prompt: str) -> None:
    board = storyboard(only=HELD)
    board["shots"][1]["first_frame_prompt"] = prompt
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))


def test_a_take_approved_while_its_shot_renders_again_keeps_its_bytes_and_its_place_in_the_cut(held: Path) -> None:
    root = held
    t01 = _assets(root) / "TST_EP001_S02_T01_ANA_clip.mp4"
    approved_sha = hashlib.sha256(t01.read_bytes()).hexdigest()
    shot_1_clip = hashlib.sha256((_assets(root) / "TST_EP001_S01_T01_ENV_clip.mp4").read_bytes()).hexdigest()
    _edit_shot_2(root, "Ana alone at the window, rain on the glass")
    before = len(Ledger.at(root / ".reelflow").rows())

    # Shot 2 re-renders slowly for its new prompt; meanwhile the director approves the T01 they have been watching.
    env = os.environ | {"REELFLOW_LOCAL_LATENCY": "1", "REELFLOW_RETRY_DELAY_S": "0.01",
                        "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    render = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_new_request(root, before, render)
    folder = load_project(root)
    apply_decisions(folder, load_storyboard(folder, 1), {2: "approved"}, by="director")
    assert render.poll() is None, "the render ended before the approval: the test proves nothing"
    out, err = render.communicate(timeout=240)
    assert render.returncode == 0, err

    report = json.loads(out)
    line = report["lines"][1]
    assert (line["status"], line["take"]) == ("rendered", 2)
    assert line["reason"].startswith("approved by director during the render: the decision stands")
    assert hashlib.sha256(t01.read_bytes()).hexdigest() == approved_sha, "the approved clip is the footage approved"
    t02 = _assets(root) / "TST_EP001_S02_T02_ANA_clip.mp4"
    assert hashlib.sha256(t02.read_bytes()).hexdigest() != approved_sha, "the new prompt's footage went to T02"
    shot = saved(root)[2]
    assert (shot["status"], shot["approved_take"], shot["take"]) == ("approved", 1, 1)

    # The cut holds the approved T01 clip, though the storyboard has moved on: it is not stale, it is approved.
    assert report["output"] and report["stale_shots"] == [] and report["cut_skipped"] is None
    assert _cut_inputs(root) == [shot_1_clip, approved_sha]

    # And so do later renders: the approved shot is kept, its files untouched.
    files = _files(root)
    again = run_cli("render", str(root), "--episode", "1", "--json")
    assert again.code == 0, again.stderr
    assert [line["status"] for line in again.json()["lines"]] == ["cached", "kept"]
    assert _cut_inputs(root) == [shot_1_clip, approved_sha]
    assert {name: files[name] for name in files if "_T0" in name} == {
        name: value for name, value in _files(root).items() if "_T0" in name}


def test_an_unchanged_shot_renders_again_as_the_same_take_writing_nothing(held: Path) -> None:
    root = held
    _edit_shot_2(root, "Ana alone at the window, rain on the glass")
    edited = run_cli("render", str(root), "--episode", "1", "--json")
    assert edited.code == 0, edited.stderr
    assert [(line["status"], line["take"]) for line in edited.json()["lines"]] == [("cached", 1), ("rendered", 2)]
    files = _files(root)

    # Nothing changed since: every shot is cached at the take it has (T02 keeps the seed it was made with), no call
    # is made, and no asset file is written again, the takes' and the cut's alike.
    again = run_cli("render", str(root), "--episode", "1", "--json")
    assert again.code == 0, again.stderr
    report = again.json()
    assert [(line["status"], line["take"]) for line in report["lines"]] == [("cached", 1), ("cached", 2)]
    assert report["provider_calls"] == 0
    after = _files(root)
    assert {name: after[name] for name in after if name != "manifest.json"} == {
        name: files[name] for name in files if name != "manifest.json"}
    assert after["manifest.json"][0] == files["manifest.json"][0]
    assert saved(root)[2]["take"] == 2


def test_a_take_whose_files_hold_other_footage_is_never_written_over(held: Path) -> None:
    root = held
    files = _files(root)
    # A manifest that no longer records T01 (a render stopped before writing it): only the files on disk say what
    # T01 is, and shot 2's new prompt would make other bytes under its names.
    (_assets(root) / "manifest.json").unlink()
    _edit_shot_2(root, "Ana alone at the window, rain on the glass")

    done = run_cli("render", str(root), "--episode", "1", "--json")
    assert done.code == 0, done.stderr
    line = done.json()["lines"][1]
    assert (line["status"], line["take"]) == ("rendered", 2)
    assert line["reason"] == "TST_EP001_S02_T01_ANA_clip.mp4 holds other bytes, kept as it is: published as T02"
    after = _files(root)
    assert {name: after[name] for name in files if "_T01_" in name} == {
        name: value for name, value in files.items() if "_T01_" in name}, "every T01 file as it was"
    assert saved(root)[2]["take"] == 2
