"""The common request and result shapes every provider translates to its wire and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FrameRole = Literal["first", "hero", "last", "strip", "previz"]


class LoraRef(BaseModel):
    """A trained character adapter to apply: weights location, strength and trigger word."""

    model_config = ConfigDict(frozen=True)

    path: str
    scale: float = 1.0
    trigger: str | None = None
    character: str | None = None
    transformer: Literal["high", "low", "both"] | None = None


class FrameNotes(BaseModel):
    """What a frame is for; offline providers draw it, cloud providers ignore it."""

    model_config = ConfigDict(frozen=True)

    project: str
    episode: int
    shot: int
    approach: str
    role: FrameRole
    characters: tuple[str, ...] = ()
    location: str = ""


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    seed: int = 0

    def input_paths(self) -> dict[str, Path]:
        """Input files by field (`references[1]` for lists): cache keys use their content, never their paths."""
        paths: dict[str, Path] = {}
        for name, value in self:
            if isinstance(value, Path):
                paths[name] = value
            elif isinstance(value, tuple) and value and all(isinstance(item, Path) for item in value):
                paths.update({f"{name}[{index}]": item for index, item in enumerate(value)})
        return paths

    def params(self) -> dict[str, Any]:
        """Every field but input files, as JSON-ready values."""
        files = {name.split("[")[0] for name in self.input_paths()}
        return self.model_dump(mode="json", exclude=files)


class ImageRequest(_Request):
    """Text to image, with character LoRAs."""

    prompt: str
    negative_prompt: str | None = None
    width: int
    height: int
    steps: int = 28
    loras: tuple[LoraRef, ...] = ()
    notes: FrameNotes | None = None


class UpscaleRequest(_Request):
    """Resample an image to a target size, keeping its content."""

    image: Path
    width: int
    height: int
    prompt: str | None = None


class EditRequest(_Request):
    """Edit an image by instruction (identity, background), or turn the camera around it (angles)."""

    image: Path
    prompt: str
    references: tuple[Path, ...] = ()
    width: int | None = None
    height: int | None = None
    horizontal_angle: float | None = None
    vertical_angle: float | None = None
    zoom: float | None = None

    def output_size(self, source: tuple[int, int]) -> tuple[int, int]:
        """The requested size; a missing side follows the source's aspect; neither means the source's size."""
        width, height = source
        if self.width and self.height:
            return self.width, self.height
        if self.width:
            return self.width, max(1, round(self.width * height / width))
        if self.height:
            return max(1, round(self.height * width / height)), self.height
        return width, height


class VideoRequest(_Request):
    """First-last-frame image-to-video: motion from `first` to `last` in exactly `num_frames` frames."""

    first: Path
    last: Path
    prompt: str
    negative_prompt: str | None = None
    num_frames: int = Field(ge=2)
    fps: int
    width: int
    height: int
    loras: tuple[LoraRef, ...] = ()
    notes: FrameNotes | None = None


class TrainRequest(_Request):
    """Train a character LoRA from a zip of captioned images."""

    images_zip: Path
    trigger: str
    steps: int = 1000


class JudgeRequest(_Request):
    """Score an image against what the shot asks for."""

    image: Path
    prompt: str
    characters: tuple[str, ...] = ()
    location: str = ""


class Generation(BaseModel):
    """What a provider call produced: files it wrote and what the call cost."""

    provider: str
    model: str
    files: list[Path]
    cost_usd: float = 0.0
    request_id: str | None = None
    seconds: float = 0.0


class TrainedLora(BaseModel):
    """A trained adapter: where its weights are (`files`: written into the caller's folder, in `weights` order)."""

    provider: str
    model: str
    weights: list[str]
    trigger: str
    files: list[Path] = Field(default_factory=list)
    cost_usd: float = 0.0
    request_id: str | None = None


class Verdict(BaseModel):
    """A vision judge's score (0..1) with its reasons."""

    score: float = Field(ge=0, le=1)
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    cost_usd: float = 0.0
