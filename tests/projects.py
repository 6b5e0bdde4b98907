"""Small projects written on the fly for tests: one shot of each generation approach."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

PROJECT = {"code": "TST", "title": "Test Reel", "aspect_ratio": "9:16", "fps": 16, "providers": {"default": "local"}}
BREAKDOWN = {
    "characters": [
        {"id": "ANA", "name": "Ana", "height_cm": 170, "description": "pilot"},
        {"id": "BO", "name": "Bo", "height_cm": 180, "description": "engineer"},
    ],
    "locations": [
        {"id": "DECK", "zone": "ship", "description": "flight deck"},
        {"id": "HOLD", "zone": "ship", "description": "cargo hold"},
    ],
    "props": [],
}


def shots() -> list[dict[str, Any]]:
    return [
        {
            "shot": 1, "duration_s": 2.5, "generation_approach": "triptych_split_flf",
            "characters_in_shot": ["ANA", "BO"], "location": "DECK",
            "camera": {"shot_type": "medium", "lens": "35mm", "movement": "slow push"},
            "triptych_prompt": "Triptych, three frames: Ana reaches for the throttle",
            "hero_frame": {"prompt": "Ana grips the throttle as alarms flash red across the deck"},
            "motion_prompt": "she pushes the throttle forward", "director_mood": "tense",
        },
        {
            "shot": 2, "duration_s": 2, "generation_approach": "standard_flf",
            "characters_in_shot": ["BO"], "location": "HOLD",
            "first_frame_prompt": "Bo kneels by a crate", "last_frame_prompt": "Bo stands holding a wrench",
            "motion_prompt": "he rises", "seed": 1234,
        },
        {
            "shot": 3, "duration_s": 1.5, "generation_approach": "held_frame_push",
            "characters_in_shot": [], "location": "HOLD", "first_frame_prompt": "Empty hold, lights swinging",
        },
        {
            "shot": 4, "duration_s": 1, "generation_approach": "held_frame_static",
            "characters_in_shot": ["ANA"], "location": "DECK", "first_frame_prompt": "Ana alone at the window",
        },
    ]


def storyboard(episode: int = 1, only: tuple[int, ...] | None = None) -> dict[str, Any]:
    """The four-shot storyboard, or `only` those shots (renumbered from 1, in that order) for a quicker render."""
    chosen = shots() if only is None else [shots()[number - 1] for number in only]
    return {"schema_version": 3, "episode": episode, "title": "Pilot",
            "shots": [shot | {"shot": index} for index, shot in enumerate(chosen, 1)]}


def write_project(root: Path, board: dict[str, Any] | None = None, project: dict[str, Any] | None = None) -> Path:
    """Write a project folder and return it."""
    (root / "storyboards").mkdir(parents=True, exist_ok=True)
    (root / "project.json").write_text(json.dumps(project or PROJECT))
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN))
    board = board or storyboard()
    (root / "storyboards" / f"storyboard_ep_{board['episode']:03d}.json").write_text(json.dumps(board))
    return root


ANA_REFS = {"flightsuit_front": (200, 40, 40), "flightsuit_3q_right": (200, 90, 40), "flightsuit_back": (200, 140, 40),
            "oilskin_front": (240, 220, 30)}
DECK_REFS = {"deck": (20, 60, 200), "deck_b": (20, 160, 200)}


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> Path:
    """A one-colour PNG at `path`."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def refs_project(root: Path, board: dict[str, Any] | None = None, project: dict[str, Any] | None = None) -> Path:
    """A project with reference images: ANA's two wardrobes (`flightsuit`, her default_wardrobe, from three angles;
    `oilskin` from the front) and two set images of DECK. Without `board`, the four-shot storyboard with shot 4 (ANA
    on DECK) in her oilskin."""
    if board is None:
        board = storyboard()
        board["shots"][3]["wardrobe"] = {"ANA": "oilskin"}
    write_project(root, board, project)
    characters = [character | {"default_wardrobe": "flightsuit"} if character["id"] == "ANA" else character
                  for character in BREAKDOWN["characters"]]
    (root / "breakdown.json").write_text(json.dumps(BREAKDOWN | {"characters": characters}))
    for name, colour in ANA_REFS.items():
        png(root / "visual" / "characters" / "ANA" / "refs" / f"{name}.png", colour)
    for name, colour in DECK_REFS.items():
        png(root / "visual" / "locations" / "DECK" / "refs" / f"{name}.png", colour)
    return root


def dailies_path(root: Path, episode: int = 1) -> Path:
    return root / "storyboards" / f"dailies_ep_{episode:03d}.json"


def saved(root: Path, episode: int = 1) -> dict[int, dict[str, Any]]:
    """The dailies file as written, by shot number."""
    return {shot["shot"]: shot for shot in json.loads(dailies_path(root, episode).read_text())["shots"]}


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def git(repo: Path, *args: str) -> str:
    """`git -C repo args…` as a test's committer; its output."""
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=os.environ | GIT_IDENTITY)
    return done.stdout.strip()
