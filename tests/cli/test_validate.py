"""A typo never pays: validate, render and estimate refuse near misses of a field with exit 2, before any work."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli
from projects import PROJECT, storyboard, write_project

TYPOS = [
    'error: project.json: "budjet_usd": unknown key; did you mean "budget_usd"?',
    'error: storyboard_ep_001.json: shot 3: "sed": unknown key; did you mean "seed"?',
]


def files(root: Path) -> set[Path]:
    return {path.relative_to(root) for path in root.rglob("*")}


def test_typos_exit_2_naming_file_key_and_field_and_nothing_is_made(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][2]["sed"] = 4417
    root = write_project(tmp_path / "proj", board, PROJECT | {"budjet_usd": 10})
    before = files(root)
    for command in (["validate", str(root)], ["render", str(root), "--episode", "1"],
                    ["estimate", str(root), "--episode", "1"]):
        result = run_cli(*command)
        assert result.code == 2, (command, result.stdout, result.stderr)
        assert result.stderr.splitlines() == TYPOS, (command, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
    assert files(root) == before


def test_creative_notes_are_listed_and_validate_still_passes(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][2]["mood"] = "eerie"
    root = write_project(tmp_path, board)
    result = run_cli("validate", str(root))
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        'note: storyboard_ep_001.json: shot 1: "director_mood": not a storyboard field (kept as a creative note)',
        'note: storyboard_ep_001.json: shot 3: "mood": not a storyboard field (kept as a creative note)',
        f"ok {root}: project, breakdown and 1 storyboard(s) are valid",
    ]
