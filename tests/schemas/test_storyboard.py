"""Storyboard v3: documents written to the contract load; every single-field break is one clear line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project, load_storyboard, validate_folder
from reelflow.schemas.storyboard import Approach

from projects import storyboard, write_project

Edit = Callable[[dict[str, Any]], None]


def shot_edit(index: int, **changes: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is DELETE:
                del doc["shots"][index][key]
            else:
                doc["shots"][index][key] = value
    return edit


DELETE = object()

# (edit, shot named in the message, field named in the message)
BREAKS: dict[str, tuple[Edit, str | None, str]] = {
    "schema_version 2": (lambda d: d.update(schema_version=2), None, "schema_version"),
    "schema_version string": (lambda d: d.update(schema_version="3"), None, "schema_version"),
    "episode mismatch": (lambda d: d.update(episode=2), None, "episode"),
    "episode zero": (lambda d: d.update(episode=0), None, "episode"),
    "title missing": (lambda d: d.pop("title"), None, "title"),
    "shots empty": (lambda d: d.update(shots=[]), None, "shots"),
    "shots missing": (lambda d: d.pop("shots"), None, "shots"),
    "shot number missing": (shot_edit(1, shot=DELETE), "shot at position 2", "shot"),
    "shot number string": (shot_edit(1, shot="2"), "shot at position 2", "shot"),
    "shot number zero": (shot_edit(1, shot=0), "shot 0", "shot"),
    "shot number gap": (shot_edit(3, shot=5), "shot 5", "shot"),
    "shot number twice": (shot_edit(3, shot=3), "shot 3", "shot"),
    "duration missing": (shot_edit(1, duration_s=DELETE), "shot 2", "duration_s"),
    "duration too short": (shot_edit(1, duration_s=0.4), "shot 2", "duration_s"),
    "duration too long": (shot_edit(1, duration_s=31), "shot 2", "duration_s"),
    "duration string": (shot_edit(1, duration_s="5"), "shot 2", "duration_s"),
    "duration bool": (shot_edit(1, duration_s=True), "shot 2", "duration_s"),
    "approach missing": (shot_edit(2, generation_approach=DELETE), "shot 3", "generation_approach"),
    "approach unknown": (shot_edit(2, generation_approach="montage"), "shot 3", "generation_approach"),
    "characters missing": (shot_edit(0, characters_in_shot=DELETE), "shot 1", "characters_in_shot"),
    "characters not a list": (shot_edit(0, characters_in_shot="ANA"), "shot 1", "characters_in_shot"),
    "character unknown": (shot_edit(0, characters_in_shot=["ANA", "ZED"]), "shot 1", "characters_in_shot"),
    "location missing": (shot_edit(1, location=DELETE), "shot 2", "location"),
    "location unknown": (shot_edit(1, location="MARS"), "shot 2", "location"),
    "camera not an object": (shot_edit(0, camera="wide"), "shot 1", "camera"),
    "camera lens number": (shot_edit(0, camera={"lens": 35}), "shot 1", "camera.lens"),
    "lighting number": (shot_edit(0, lighting=5), "shot 1", "lighting"),
    "seed string": (shot_edit(1, seed="abc"), "shot 2", "seed"),
    "seed float": (shot_edit(1, seed=1.5), "shot 2", "seed"),
    "triptych_prompt missing": (shot_edit(0, triptych_prompt=DELETE), "shot 1", "triptych_prompt"),
    "triptych_prompt blank": (shot_edit(0, triptych_prompt="  "), "shot 1", "triptych_prompt"),
    "hero_frame missing": (shot_edit(0, hero_frame=DELETE), "shot 1", "hero_frame.prompt"),
    "hero_frame prompt missing": (shot_edit(0, hero_frame={}), "shot 1", "hero_frame.prompt"),
    "motion_prompt missing (triptych)": (shot_edit(0, motion_prompt=DELETE), "shot 1", "motion_prompt"),
    "first_frame_prompt missing (flf)": (shot_edit(1, first_frame_prompt=DELETE), "shot 2", "first_frame_prompt"),
    "last_frame_prompt missing": (shot_edit(1, last_frame_prompt=DELETE), "shot 2", "last_frame_prompt"),
    "motion_prompt missing (flf)": (shot_edit(1, motion_prompt=DELETE), "shot 2", "motion_prompt"),
    "first_frame_prompt missing (push)": (shot_edit(2, first_frame_prompt=DELETE), "shot 3", "first_frame_prompt"),
    "first_frame_prompt missing (static)": (shot_edit(3, first_frame_prompt=DELETE), "shot 4", "first_frame_prompt"),
    "negative_prompt number": (shot_edit(3, negative_prompt=3), "shot 4", "negative_prompt"),
    "asset_name wrong": (shot_edit(1, asset_name="TST_EP001_S02_T01_ANA"), "shot 2", "asset_name"),
}


def test_contract_document_loads(tmp_path: Path) -> None:
    folder = load_project(write_project(tmp_path))
    board = load_storyboard(folder, 1)
    assert [s.generation_approach for s in board.shots] == list(Approach)
    assert board.shots[0].model_extra == {"director_mood": "tense"}
    assert board.shots[0].keyframe_roles == ("first", "hero", "last")


def test_matching_asset_name_is_accepted(tmp_path: Path) -> None:
    doc = storyboard()
    doc["shots"][1]["asset_name"] = "TST_EP001_S02_T01_BO"
    doc["shots"][2]["asset_name"] = "TST_EP001_S03_T01_ENV"
    assert load_storyboard(load_project(write_project(tmp_path, doc)), 1).shots[2].asset_name


def test_cut_order_is_list_order(tmp_path: Path) -> None:
    doc = storyboard()
    doc["shots"].reverse()
    board = load_storyboard(load_project(write_project(tmp_path, doc)), 1)
    assert [s.shot for s in board.shots] == [4, 3, 2, 1]


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_single_field_break_is_one_line_naming_file_shot_and_field(tmp_path: Path, case: str) -> None:
    edit, shot, field = BREAKS[case]
    doc = storyboard()
    edit(doc)
    root = write_project(tmp_path, doc if "episode" in doc else {**doc, "episode": 1})
    if case.startswith("episode"):
        written = root / "storyboards" / f"storyboard_ep_{doc['episode']:03d}.json"
        written.rename(root / "storyboards" / "storyboard_ep_001.json")
    folder = load_project(root)
    with pytest.raises(ContractError) as raised:
        load_storyboard(folder, 1)
    message = str(raised.value)
    assert "\n" not in message, message
    assert message.startswith("storyboard_ep_001.json: "), message
    if shot:
        assert f": {shot}:" in message, message
    assert field in message, message


def test_validate_folder_lists_every_problem(tmp_path: Path) -> None:
    doc = storyboard()
    doc["shots"][1]["location"] = "MARS"
    doc["shots"][3]["characters_in_shot"] = ["ZED"]
    root = write_project(tmp_path, doc)
    (root / "storyboards" / "storyboard_ep_002.json").write_text(json.dumps(storyboard(2)))
    checked, problems = validate_folder(root)
    assert checked == 2
    assert problems == [
        "storyboard_ep_001.json: shot 2: location: 'MARS' is not a location in breakdown.json",
        "storyboard_ep_001.json: shot 4: characters_in_shot: 'ZED' is not a character in breakdown.json",
    ]


def test_invalid_json_names_the_file_and_line(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    (root / "storyboards" / "storyboard_ep_001.json").write_text('{"schema_version": 3,\n "episode": }')
    with pytest.raises(ContractError, match=r"^storyboard_ep_001.json: not valid JSON \(line 2"):
        load_storyboard(load_project(root), 1)


def test_three_independent_faults_are_three_lines_in_one_pass(tmp_path: Path) -> None:
    doc = storyboard()
    doc["shots"][0]["location"] = "MARS"  # an id the breakdown lacks
    doc["shots"][1]["duration_s"] = "2"  # a field of the wrong type
    doc["shots"][3]["shot"] = 3  # a number given twice
    root = write_project(tmp_path, doc)
    checked, problems = validate_folder(root)
    assert checked == 1
    assert len(problems) == 3, problems
    assert problems[0] == "storyboard_ep_001.json: shot 1: location: 'MARS' is not a location in breakdown.json"
    assert problems[1].startswith("storyboard_ep_001.json: shot 2: duration_s: ")
    assert problems[2] == "storyboard_ep_001.json: shot 3: shot: number 3 appears twice"
