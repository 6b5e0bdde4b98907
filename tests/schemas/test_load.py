"""The loader refuses near misses of a field in one pass with the other problems; other unknown keys are notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import key_notes, load_episode, load_project, load_storyboard, validate_folder

from projects import BREAKDOWN, PROJECT, storyboard, write_project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"


def test_a_misspelled_seed_is_refused_naming_file_shot_and_field(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][2]["sed"] = 4417
    folder = load_project(write_project(tmp_path, board))
    with pytest.raises(ContractError) as raised:
        load_storyboard(folder, 1)
    assert str(raised.value) == 'storyboard_ep_001.json: shot 3: "sed": unknown key; did you mean "seed"?'


def test_near_misses_at_every_level_come_with_field_errors_in_one_pass(tmp_path: Path) -> None:
    board = storyboard()
    board["tilte"] = "Pilot"
    board["shots"][0]["camera"]["lense"] = "50mm"
    board["shots"][0]["hero_frame"]["promt"] = "x"
    board["shots"][1]["frist_frame_prompt"] = board["shots"][1].pop("first_frame_prompt")
    board["shots"][3]["duration_s"] = 31
    root = write_project(tmp_path, board)
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN | {"locatons": []}))
    checked, problems = validate_folder(root)
    assert checked == 1
    assert problems == [
        'breakdown.json: "locatons": unknown key; did you mean "locations"?',
        'storyboard_ep_001.json: "tilte": unknown key; did you mean "title"?',
        'storyboard_ep_001.json: shot 1: camera: "lense": unknown key; did you mean "lens"?',
        'storyboard_ep_001.json: shot 1: hero_frame: "promt": unknown key; did you mean "prompt"?',
        "storyboard_ep_001.json: shot 2: first_frame_prompt is required for standard_flf",
        'storyboard_ep_001.json: shot 2: "frist_frame_prompt": unknown key; did you mean "first_frame_prompt"?',
        "storyboard_ep_001.json: shot 4: duration_s: 31: input should be less than or equal to 30",
    ]


def test_project_and_storyboard_problems_come_in_one_pass(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][1]["sed"] = 4417
    board["shots"][3]["location"] = "MARS"
    project = PROJECT | {"budjet_usd": 10, "providers": {"video": {"use": "fal", "fallbak": "runpod"}}}
    root = write_project(tmp_path, board, project)
    expected = [
        'project.json: providers.video: "fallbak": unknown key; did you mean "fallback"?',
        'project.json: "budjet_usd": unknown key; did you mean "budget_usd"?',
        'storyboard_ep_001.json: shot 2: "sed": unknown key; did you mean "seed"?',
        "storyboard_ep_001.json: shot 4: location: 'MARS' is not a location in breakdown.json",
    ]
    assert validate_folder(root) == (1, expected)
    with pytest.raises(ContractError) as raised:
        load_episode(root, 1)
    assert str(raised.value).splitlines() == expected
    with pytest.raises(ContractError) as raised:
        load_project(root)
    assert str(raised.value).splitlines() == expected[:2]


def test_a_project_with_invalid_fields_still_gets_its_storyboards_checked(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][0]["sed"] = 1
    root = write_project(tmp_path, board, PROJECT | {"aspect_ratio": "4:3"})
    assert validate_folder(root) == (1, [
        "project.json: aspect_ratio: '4:3': input should be '9:16' or '16:9'",
        'storyboard_ep_001.json: shot 1: "sed": unknown key; did you mean "seed"?',
    ])


def test_a_breakdown_with_invalid_fields_stops_before_the_storyboards(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][0]["sed"] = 1
    root = write_project(tmp_path, board)
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN | {"characters": [{"id": "ana"}]}))
    checked, problems = validate_folder(root)
    assert checked == 0
    assert len(problems) == 1 and problems[0].startswith("breakdown.json: characters[0].id: 'ana': "), problems
    with pytest.raises(ContractError, match=r"^breakdown.json: characters\[0\]\.id: 'ana': string should match"):
        load_episode(root, 1)


def test_a_model_that_keeps_no_unknown_keys_lists_its_keys(tmp_path: Path) -> None:
    root = write_project(tmp_path, project=PROJECT | {"qc": {"pass_a": 0.5, "colour": "red"}})
    with pytest.raises(ContractError) as raised:
        load_project(root)
    first, second = str(raised.value).splitlines()
    assert first == 'project.json: qc: "pass_a": unknown key; did you mean "pass_at"?'
    assert second.startswith('project.json: qc: "colour": unknown key (keys: pass_at, reject_below, ')


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda board, project: board["shots"][2].update(generation_approach="montage"),
     "storyboard_ep_001.json: shot 3: generation_approach: 'montage': input should be 'triptych_split_flf', "
     "'standard_flf', 'held_frame_push' or 'held_frame_static'"),
    (lambda board, project: board.update(schema_version=2), "storyboard_ep_001.json: schema_version: 2: input should be 3"),
    (lambda board, project: board["shots"][1].update(duration_s=True),
     "storyboard_ep_001.json: shot 2: duration_s: true: input should be a valid number"),
    (lambda board, project: project.update(aspect_ratio="4:3"),
     "project.json: aspect_ratio: '4:3': input should be '9:16' or '16:9'"),
    (lambda board, project: project.update(providers={"default": "openai"}),
     "project.json: providers.default.use: 'openai': input should be 'local', 'fal', 'gemini', 'runpod' or 'comfyui'"),
    (lambda board, project: project.update(concurrency={"openai": 2}),
     "project.json: concurrency.openai[key]: 'openai': input should be 'local', 'fal', 'gemini', 'runpod' or 'comfyui'"),
    (lambda board, project: project.update(providers={"sound": "local"}),
     "project.json: providers: unknown stage 'sound' (stages: default, candidates, training, previz, keyframes, upscale, "
     "video, qc)"),
])
def test_an_error_names_the_bad_value_and_the_valid_ones(tmp_path: Path, edit, expected: str) -> None:
    board, project = storyboard(), dict(PROJECT)
    edit(board, project)
    assert validate_folder(write_project(tmp_path, board, project))[1] == [expected]


def test_a_long_bad_value_is_cut_short(tmp_path: Path) -> None:
    root = write_project(tmp_path, project=PROJECT | {"code": "L" * 100})
    with pytest.raises(ContractError) as raised:
        load_project(root)
    assert str(raised.value).startswith(f"project.json: code: '{'L' * 36}...: string should match pattern")


def test_other_unknown_keys_are_kept_and_listed_as_notes(tmp_path: Path) -> None:
    board = storyboard()
    board["shots"][2] |= {"mood": "eerie", "music_cue": "low drone", "camera": {"lens": "24mm", "focus": "deep"}}
    board["director_comment"] = "keep it quiet"
    project = PROJECT | {"studio_notes": "kept"}
    root = write_project(tmp_path, board, project)
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN | {"locations": [{"id": "DECK", "tone": "cold"},
                                                                              {"id": "HOLD"}]}))
    folder, loaded = load_episode(root, 1)
    assert loaded.shots[2].model_extra == {"mood": "eerie", "music_cue": "low drone"}
    assert validate_folder(root) == (1, [])
    assert key_notes(root) == [
        'project.json: "studio_notes": not a project.json field (kept as a creative note)',
        'breakdown.json: locations[0]: "tone": not a breakdown.json field (kept as a creative note)',
        'storyboard_ep_001.json: "director_comment": not a storyboard field (kept as a creative note)',
        'storyboard_ep_001.json: shot 1: "director_mood": not a storyboard field (kept as a creative note)',
        'storyboard_ep_001.json: shot 3: "mood": not a storyboard field (kept as a creative note)',
        'storyboard_ep_001.json: shot 3: "music_cue": not a storyboard field (kept as a creative note)',
        'storyboard_ep_001.json: shot 3: camera: "focus": not a storyboard field (kept as a creative note)',
    ]


def test_notes_skip_files_that_cannot_be_read(tmp_path: Path) -> None:
    root = write_project(tmp_path, project=PROJECT | {"studio_notes": "kept"})
    (root / "breakdown.json").write_text("{")
    (root / "storyboards" / "storyboard_ep_001.json").unlink()
    assert key_notes(root) == ['project.json: "studio_notes": not a project.json field (kept as a creative note)']


def test_the_example_and_the_test_project_have_nothing_refused() -> None:
    assert validate_folder(EXAMPLE) == (2, [])
    assert key_notes(EXAMPLE) == []


def test_the_test_project_loads_with_its_creative_note(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    assert validate_folder(root) == (1, [])
    assert key_notes(root) == [
        'storyboard_ep_001.json: shot 1: "director_mood": not a storyboard field (kept as a creative note)']
