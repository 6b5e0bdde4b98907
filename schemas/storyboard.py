"""Storyboard v3 (`storyboards/storyboard_ep_NNN.json`), exactly as the contract defines it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from reelflow.schemas.segments import VideoPlan, plan_segments


class Approach(StrEnum):
    TRIPTYCH = "triptych_split_flf"
    STANDARD_FLF = "standard_flf"
    PUSH = "held_frame_push"
    STATIC = "held_frame_static"


REQUIRED_PROMPTS: dict[Approach, tuple[str, ...]] = {
    Approach.TRIPTYCH: ("triptych_prompt", "hero_frame.prompt", "motion_prompt"),
    Approach.STANDARD_FLF: ("first_frame_prompt", "last_frame_prompt", "motion_prompt"),
    Approach.PUSH: ("first_frame_prompt",),
    Approach.STATIC: ("first_frame_prompt",),
}

KEYFRAME_ROLES: dict[Approach, tuple[str, ...]] = {
    Approach.TRIPTYCH: ("first", "hero", "last"),
    Approach.STANDARD_FLF: ("first", "last"),
    Approach.PUSH: ("first",),
    Approach.STATIC: ("first",),
}


# A wardrobe's name, as its reference images are named (`visual/characters/<CHAR>/refs/<wardrobe>_<angle>.png`)
WARDROBE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
WardrobeName = Annotated[StrictStr, Field(pattern=WARDROBE_PATTERN)]


class _Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Camera(_Contract):
    shot_type: StrictStr | None = None
    lens: StrictStr | None = None
    movement: StrictStr | None = None


class HeroFrame(_Contract):
    prompt: StrictStr


class Shot(_Contract):
    shot: Annotated[StrictInt, Field(ge=1)]
    duration_s: Annotated[float, Field(ge=0.5, le=30)]
    generation_approach: Approach
    characters_in_shot: list[StrictStr]
    location: StrictStr
    camera: Camera | None = None
    lighting: StrictStr | None = None
    blocking: StrictStr | None = None
    notes: StrictStr | None = None
    seed: StrictInt | None = None
    first_frame_prompt: StrictStr | None = None
    last_frame_prompt: StrictStr | None = None
    hero_frame: HeroFrame | None = None
    triptych_prompt: StrictStr | None = None
    motion_prompt: StrictStr | None = None
    negative_prompt: StrictStr | None = None
    asset_name: StrictStr | None = None
    wardrobe: dict[StrictStr, WardrobeName] | None = None  # {CHAR: wardrobe}: which refs hold its costume

    @model_validator(mode="after")
    def _prompts_for_approach(self) -> Shot:
        for field in REQUIRED_PROMPTS[self.generation_approach]:
            if not (self.prompt(field) or "").strip():
                raise ValueError(f"{field} is required for {self.generation_approach.value}")
        return self

    def prompt(self, field: str) -> str | None:
        """A prompt by its contract name, including `hero_frame.prompt`."""
        if field == "hero_frame.prompt":
            return self.hero_frame.prompt if self.hero_frame else None
        return getattr(self, field)

    @property
    def hero_prompt(self) -> str:
        """The prompt of the shot's defining frame: the hero panel of a triptych, else its first frame."""
        field = "hero_frame.prompt" if self.generation_approach is Approach.TRIPTYCH else "first_frame_prompt"
        return self.prompt(field) or ""

    @property
    def video_plan(self) -> VideoPlan:
        """The shot's video segments at the video model's rate, through its approach's keyframes (schemas/segments.py)."""
        return plan_segments(KEYFRAME_ROLES[self.generation_approach], self.duration_s)

    @property
    def keyframe_roles(self) -> tuple[str, ...]:
        """Every keyframe the shot needs in shot order: its approach's, and the intermediate ones of a long shot."""
        return self.video_plan.keyframe_roles


class Storyboard(_Contract):
    schema_version: Literal[3]
    episode: Annotated[StrictInt, Field(ge=1, le=999)]
    title: StrictStr
    shots: Annotated[list[Shot], Field(min_length=1)]

    @model_validator(mode="after")
    def _numbered_one_to_n(self) -> Storyboard:
        count, seen = len(self.shots), set()
        for shot in self.shots:
            if shot.shot in seen:
                raise ValueError(f"shot {shot.shot}: shot: number {shot.shot} appears twice")
            if shot.shot > count:
                raise ValueError(f"shot {shot.shot}: shot: numbers must run 1..{count} without gaps")
            seen.add(shot.shot)
        return self

    def shot(self, number: int) -> Shot:
        for shot in self.shots:
            if shot.shot == number:
                return shot
        raise KeyError(number)
