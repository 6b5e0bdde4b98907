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
        "storyboard_ep_001.json: S01 triptych_split_flf 2.5 s: 2 segments (21+21 frames, split at the hero frame) @16 fps",
        "storyboard_ep_001.json: S02 standard_flf 2.0 s: 1 segment of 33 frames @16 fps",
        "storyboard_ep_001.json: S03 held_frame_push 1.5 s: no video model",
        "storyboard_ep_001.json: S04 held_frame_static 1.0 s: no video model",
        f"ok {root}: project, breakdown and 1 storyboard(s) are valid",
    ]


def test_validate_says_how_each_shot_will_be_made_at_the_models_frame_rate(tmp_path: Path) -> None:
    board = storyboard()
    durations = {1: 25.0, 2: 14.0, 3: 4.0, 4: 0.8}
    board["shots"][3] = board["shots"][1] | {"shot": 4}  # a second standard FLF shot
    for shot in board["shots"]:
        shot["duration_s"] = durations[shot["shot"]]
    root = write_project(tmp_path / "proj", board)
    result = run_cli("validate", str(root))
    assert result.code == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("storyboard_ep_001.json: S")] == [
        "storyboard_ep_001.json: S01 triptych_split_flf 25.0 s: 4 consecutive segments (101+101+101+101 frames, "
        "split at the hero frame, 2 intermediate keyframes) @16 fps",
        "storyboard_ep_001.json: S02 standard_flf 14.0 s: 2 consecutive segments (113+113 frames, 1 intermediate "
        "keyframe) @16 fps",
        "storyboard_ep_001.json: S03 held_frame_push 4.0 s: no video model",
        "storyboard_ep_001.json: S04 standard_flf 0.8 s: 1 segment of 17 frames @16 fps, trimmed from 17 frames to 13 "
        "(at least 17 a segment)",
    ]
    report = run_cli("validate", str(root), "--json")
    assert report.code == 0, report.stderr
    data = report.json()
    assert (data["valid"], data["storyboards"]) == (True, 1)
    assert data["notes"] == ['storyboard_ep_001.json: shot 1: "director_mood": not a storyboard field (kept as a creative note)']
    by_shot = {shot["shot"]: shot for shot in data["shots"]}
    assert by_shot[1]["keyframes"] == ["first", "mid1", "hero", "mid2", "last"]
    assert by_shot[2]["video"] == {
        "model": "WAN 2.2", "fps": 16, "frames_shown": 224, "frames_made": 225, "trimmed": 1,
        "intermediate_keyframes": ["mid1"],
        "segments": [{"name": "seg1", "frames": 113, "first": "first", "last": "mid1"},
                     {"name": "seg2", "frames": 113, "first": "seg1", "last": "last"}],
        "describe": "2 consecutive segments (113+113 frames, 1 intermediate keyframe) @16 fps",
    }
    assert (by_shot[3]["video"]["segments"], by_shot[3]["keyframes"]) == ([], ["first"])
    assert by_shot[4]["video"]["frames_shown"] == 13 and by_shot[4]["video"]["trimmed"] == 4
