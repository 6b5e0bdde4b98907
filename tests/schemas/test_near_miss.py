"""Near misses: a key a few edits from a field of its level is a typo; fields, aliases and creative notes are not."""

from __future__ import annotations

import pytest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from reelflow.schemas.near_miss import edit_distance, json_keys, near_miss, spelling, unknown_keys
from reelflow.schemas.project import Breakdown, Project
from reelflow.schemas.storyboard import Shot, Storyboard

from projects import BREAKDOWN, PROJECT, storyboard

SHOT_FIELDS = tuple(json_keys(Shot))


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("seed", "seed", 0),
    ("sed", "seed", 1),  # a deletion
    ("seeed", "seed", 1),  # an insertion
    ("seef", "seed", 1),  # a substitution
    ("frist", "first", 1),  # adjacent letters swapped: one edit
    ("budjet_usd", "budget_usd", 1),
    ("kitten", "sitting", 3),
    ("", "abc", 3),
])
def test_edit_distance(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance == edit_distance(b, a)


@pytest.mark.parametrize("key", ["firstFramePrompt", "First-Frame-Prompt", "first frame prompt", "FIRST_FRAME_PROMPT"])
def test_spelling_reads_camel_case_dashes_and_capitals_as_snake_case(key: str) -> None:
    assert spelling(key) == "first_frame_prompt"


@pytest.mark.parametrize(("key", "field"), [
    ("sed", "seed"),
    ("Seed", "seed"),
    ("frist_frame_prompt", "first_frame_prompt"),
    ("firstFramePrompt", "first_frame_prompt"),
    ("lightning", "lighting"),
    ("duration", "duration_s"),  # two edits from a field of 8 letters or more
    ("negative_promt", "negative_prompt"),
    ("locaton", "location"),
    ("shots", "shot"),
])
def test_a_near_miss_names_the_field(key: str, field: str) -> None:
    assert near_miss(key, SHOT_FIELDS) == field


@pytest.mark.parametrize("key", [
    *SHOT_FIELDS,  # a field itself is never a miss
    "mood", "music_cue", "director_comment", "director_mood", "dialogue", "sfx", "palette", "tone", "beat",
    "camera_b",  # two edits from a field of 6 letters: a note of its own, not a typo
    "feed", "need",  # one edit from `seed`, but not its first letter
])
def test_fields_and_creative_notes_are_no_near_miss(key: str) -> None:
    assert near_miss(key, SHOT_FIELDS) is None


def test_fields_shorter_than_three_letters_take_only_a_change_of_case() -> None:
    assert near_miss("ID", ("id", "name")) == "id"
    assert near_miss("ix", ("id", "name")) is None


def test_the_closest_field_wins_and_the_first_on_a_tie() -> None:
    assert near_miss("lens", ("lenses", "lens_x", "len")) == "len"
    assert near_miss("seea", ("seed", "seen")) == "seed"


class Aliased(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    first_frame: str | None = Field(None, alias="firstFrame")
    hero: str | None = Field(None, validation_alias=AliasChoices("hero", "heroFrame"))


def test_names_and_aliases_are_the_keys_users_write() -> None:
    assert list(json_keys(Aliased)) == ["firstFrame", "first_frame", "hero", "heroFrame"]
    assert unknown_keys(Aliased, {"firstFrame": "a", "first_frame": "b", "heroFrame": "c", "hero": "d"}) == []
    assert [found.suggestion for found in unknown_keys(Aliased, {"firstFrme": "a"})] == ["firstFrame"]


def test_unknown_keys_are_found_at_every_level_that_has_a_schema() -> None:
    board = storyboard()
    board["tilte"] = "Pilot"
    board["shots"][0]["camera"]["lense"] = "50mm"
    board["shots"][0]["hero_frame"]["promt"] = "x"
    board["shots"][2]["sed"] = 4417
    board["shots"][3]["music_cue"] = "low drone"
    found = [(u.loc, u.key, u.suggestion, u.refused) for u in unknown_keys(Storyboard, board)]
    assert found == [
        (("shots", 0, "camera"), "lense", "lens", True),
        (("shots", 0, "hero_frame"), "promt", "prompt", True),
        (("shots", 0), "director_mood", None, False),
        (("shots", 2), "sed", "seed", True),
        (("shots", 3), "music_cue", None, False),
        ((), "tilte", "title", True),
    ]


def test_project_and_breakdown_levels_dicts_and_lists() -> None:
    project = PROJECT | {"budjet_usd": 10, "studio_notes": "kept",
                         "providers": {"default": "local", "video": {"use": "fal", "fallbak": "runpod"}}}
    found = [(u.loc, u.key, u.suggestion) for u in unknown_keys(Project, project)]
    assert found == [(("providers", "video"), "fallbak", "fallback"), ((), "budjet_usd", "budget_usd"),
                     ((), "studio_notes", None)]
    breakdown = BREAKDOWN | {"characters": [{"id": "ANA", "hieght_cm": 170, "voice": "low"}]}
    found = [(u.loc, u.key, u.suggestion) for u in unknown_keys(Breakdown, breakdown)]
    assert found == [(("characters", 0), "hieght_cm", "height_cm"), (("characters", 0), "voice", None)]


def test_a_union_of_models_reads_the_object_as_the_choice_it_fits() -> None:
    serverless = {"mode": "serverless", "endpoint_id": "ep1", "price_per_s": 0.0003, "ttl_sx": 5}
    pod = {"mode": "pod", "gpu_types": ["NVIDIA L40S"], "idel_stop_s": 60}
    for runpod, key, suggestion in ((serverless, "ttl_sx", "ttl_s"), (pod, "idel_stop_s", "idle_stop_s")):
        found = [(u.loc, u.key, u.suggestion) for u in unknown_keys(Project, PROJECT | {"comfyui": {"runpod": runpod}})]
        assert found == [(("comfyui", "runpod"), key, suggestion)]


def test_a_model_that_keeps_no_unknown_keys_refuses_every_one() -> None:
    found = unknown_keys(Project, PROJECT | {"qc": {"pass_a": 0.5, "colour": "red"}})
    assert [(u.loc, u.key, u.suggestion, u.refused) for u in found] == [
        (("qc",), "pass_a", "pass_at", True), (("qc",), "colour", None, True)]
    assert "reject_below" in found[1].fields


@pytest.mark.parametrize("document", [None, [], "storyboard", {"shots": "none"}, {"shots": [1, None, "x"]}])
def test_documents_of_the_wrong_shape_have_no_unknown_keys(document: object) -> None:
    assert unknown_keys(Storyboard, document) == []
