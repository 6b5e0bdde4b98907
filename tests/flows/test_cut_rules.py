"""The cut is made only from clips that match the current storyboard; without one, the manifest names no cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from projects import storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
HELD = (3, 4)  # two held-frame shots (push, static): quick to render, cut like any other
BANNED = {"REELFLOW_LOCAL_BANNED_WORDS": "contraband"}


def _manifest(root: Path) -> dict:
    return json.loads((root / "storyboards" / "assets" / "ep_001" / "manifest.json").read_text())


def _edit(root: Path, shot: int, prompt: str) -> None:
    board = storyboard(only=HELD)
    board["shots"][shot - 1]["first_frame_prompt"] = prompt
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps(board))


def test_a_failed_shot_never_gives_its_old_clip_to_a_new_cut(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=HELD))
    first = run_cli("render", str(root), "--episode", "1", "--json")
    assert first.code == 0, first.stderr
    assert _manifest(root)["cut"] == "ep_001.mp4"

    # Shot 2's new prompt is refused by the provider (no fallback): the shot fails, its old clip is pre-edit.
    _edit(root, 2, "Ana alone at the window, a crate of contraband behind her")
    failed = run_cli("render", str(root), "--episode", "1", "--json", env=BANNED)
    assert failed.code == 1
    report = failed.json()
    assert report["output"] is None and report["stale_shots"] == []
    assert report["cut_skipped"] == ("no cut: shots 2 have only clips of an older storyboard "
                                     "(render them, or cut with --allow-stale)")
    manifest = _manifest(root)
    assert manifest["cut"] is None
    assert not [entry for entry in manifest["assets"] if entry["shot"] is None]
    assert (root / "storyboards" / "assets" / "ep_001" / "ep_001.mp4").is_file()  # made earlier, not deleted

    allowed = run_cli("render", str(root), "--episode", "1", "--json", "--allow-stale", env=BANNED)
    assert allowed.code == 1
    report = allowed.json()
    assert report["output"].endswith("ep_001.mp4") and report["stale_shots"] == [2]
    assert _manifest(root)["cut"] == "ep_001.mp4"


def test_rendering_one_shot_cuts_the_others_only_as_the_storyboard_stands(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=HELD))
    assert run_cli("render", str(root), "--episode", "1", "--json").code == 0
    _edit(root, 2, "Ana alone at the window, rain on the glass")

    # Only shot 1 is asked for; shot 2 was edited and not rendered: its clip is stale, so no cut.
    one = run_cli("render", str(root), "--episode", "1", "--shots", "1", "--json")
    assert one.code == 0, one.stderr
    assert one.json()["cut_skipped"].startswith("no cut: shots 2 have only clips of an older storyboard")
    assert _manifest(root)["cut"] is None
    # Shot 1 unchanged and cached, shot 2 rendered now: both current, so the cut is made.
    two = run_cli("render", str(root), "--episode", "1", "--shots", "2", "--json")
    assert two.code == 0, two.stderr
    assert two.json()["output"].endswith("ep_001.mp4") and two.json()["cut_skipped"] is None
