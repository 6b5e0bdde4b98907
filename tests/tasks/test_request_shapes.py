"""Every storyboard shape builds requests fal's published schemas accept: both aspect ratios, every approach, 0 to 3
characters with and without LoRAs, short and long shots. What a schema refuses is one line naming shot and field."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelflow.flows.render import shot_jobs
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.tasks.shot import request_problems

from projects import BREAKDOWN, PROJECT

CHARACTERS = ["ANA", "BO", "CY"]
CAST = [*CHARACTERS, "DI"]
APPROACHES = ["triptych_split_flf", "standard_flf", "held_frame_push", "held_frame_static"]
FAL = {"default": "fal", "qc": "local"}


def _adapters(name: str) -> list[dict[str, Any]]:
    low = name.lower()
    return [
        {"base_model": "flux-2", "path": f"https://w/{low}-flux2.safetensors", "trigger": f"{low}_tok"},
        {"base_model": "z-image", "path": f"https://w/{low}-z.safetensors"},
        {"base_model": "wan-2.2", "path": f"https://w/{low}-wan-high.safetensors", "noise": "high"},
        {"base_model": "wan-2.2", "path": f"https://w/{low}-wan-low.safetensors", "noise": "low"},
    ]


def _shot(number: int, approach: str, characters: list[str], duration: float) -> dict[str, Any]:
    shot: dict[str, Any] = {"shot": number, "duration_s": duration, "generation_approach": approach,
                            "characters_in_shot": characters, "location": "DECK", "motion_prompt": "they move"}
    if approach == "triptych_split_flf":
        shot |= {"triptych_prompt": "Triptych: three beats", "hero_frame": {"prompt": "the hero beat"}}
    else:
        shot |= {"first_frame_prompt": "the first frame"}
        if approach == "standard_flf":
            shot["last_frame_prompt"] = "the last frame"
    return shot


def _problems(root: Path, aspect: str, fps: int, shots: list[dict[str, Any]], with_loras: list[str]) -> list[str]:
    (root / "storyboards").mkdir(parents=True, exist_ok=True)
    (root / "visual").mkdir(exist_ok=True)
    breakdown = BREAKDOWN | {"characters": [{"id": c, "name": c.title(), "height_cm": 170, "description": "crew"}
                                            for c in CAST]}
    (root / "project.json").write_text(json.dumps(PROJECT | {"aspect_ratio": aspect, "fps": fps, "providers": FAL}))
    (root / "breakdown.json").write_text(json.dumps(breakdown))
    (root / "storyboards" / "storyboard_ep_001.json").write_text(json.dumps({"schema_version": 3, "episode": 1,
                                                                              "title": "T", "shots": shots}))
    registry = {"characters": {name: _adapters(name) for name in with_loras}}
    (root / "visual" / "lora_registry.json").write_text(json.dumps(registry))
    folder = load_project(root)
    board = load_storyboard(folder, 1)
    return request_problems(shot_jobs(folder, board, {shot.shot: 1 for shot in board.shots}, run="check"))


@pytest.fixture(autouse=True)
def fal_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "check-only")


shot_shapes = st.tuples(st.sampled_from(APPROACHES), st.lists(st.sampled_from(CHARACTERS), max_size=3, unique=True),
                        st.sampled_from([0.5, 1.0, 2.5, 5.0, 12.0, 30.0]))


@settings(max_examples=20, deadline=None)
@given(aspect=st.sampled_from(["9:16", "16:9"]), fps=st.sampled_from([8, 16, 24, 30, 60]),
       shapes=st.lists(shot_shapes, min_size=1, max_size=4), with_loras=st.lists(st.sampled_from(CHARACTERS), unique=True))
def test_every_storyboard_shape_builds_valid_requests(aspect: str, fps: int, shapes: list[tuple[str, list[str], float]],
                                                      with_loras: list[str]) -> None:
    shots = [_shot(number, *shape) for number, shape in enumerate(shapes, start=1)]
    with tempfile.TemporaryDirectory() as scratch:
        assert _problems(Path(scratch), aspect, fps, shots, with_loras) == []


def test_what_a_schema_refuses_is_one_line_per_shot_naming_the_field(tmp_path: Path) -> None:
    crowded = dict(_shot(1, "held_frame_static", ["ANA", "BO", "CY"], 2.0), characters_in_shot=["ANA", "BO", "CY", "DI"])
    problems = _problems(tmp_path, "16:9", 16, [crowded, _shot(2, "standard_flf", ["ANA"], 2.0)], ["ANA", "BO", "CY", "DI"])
    assert len(problems) == 1 and problems[0].startswith("shot 1: keyframes: fal: fal-ai/flux-2/lora: loras: [4 items]: ")
    assert "at most 3" in problems[0]
    fast = _problems(tmp_path / "fast", "9:16", 120, [_shot(1, "standard_flf", [], 2.0)], [])
    assert fast == [], "WAN is asked for its own 16 fps whatever the project's (fal allows 4..60): the clip is fitted"
