"""The common request and result shapes every provider translates to its wire and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, StringConstraints, model_serializer

# What a frame is in its shot; `mid1`, `mid2`, … are a long shot's intermediate keyframes (schemas/segments.py).
FrameRole = Annotated[str, StringConstraints(pattern=r"^(first|hero|last|strip|previz|mid[1-9][0-9]*)$")]


class LoraRef(BaseModel):
    """A trained character adapter to apply: weights location, strength and trigger word.

    Its dump (what request params and cache keys hold) names the weights by `sha256` where known, never by where
    they are: a new URL for the same weights makes nothing again. The fields after `sha256` say where a provider can
    read or upload the weights and are never dumped.
    """

    model_config = ConfigDict(frozen=True)

    path: str  # the registry's: a URL or a path under the project folder
    scale: float = 1.0
    trigger: str | None = None
    character: str | None = None
    transformer: Literal["high", "low", "both"] | None = None
    sha256: str | None = None  # the weights'
    url: str | None = Field(default=None, exclude=True)  # where the service reads the weights now, if not at `path`
    url_at: str | None = Field(default=None, exclude=True)  # when that URL (or a URL `path`) was made, ISO 8601
    file: Path | None = Field(default=None, exclude=True)  # the project's copy of the weights
    project: Path | None = Field(default=None, exclude=True)  # the project whose registry lists the adapter

    @model_serializer(mode="wrap")
    def _keyed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The weights' sha256 instead of their path; an adapter without one dumps as before sha256 was known."""
        data = handler(self)
        data.pop("sha256" if self.sha256 is None else "path", None)
        return data


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
    wardrobe: tuple[tuple[str, str], ...] = ()  # (character, wardrobe) whose reference images the request carries

    @model_serializer(mode="wrap")
    def _keyed(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without `wardrobe` when it is empty: the notes of a frame without references dump as before it existed."""
        data = handler(self)
        if not self.wardrobe:
            data.pop("wardrobe", None)
        return data


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
    """Text to image, with character LoRAs and the reference images (costume, set) the frame holds to."""

    prompt: str
    negative_prompt: str | None = None
    width: int
    height: int
    steps: int = 28
    loras: tuple[LoraRef, ...] = ()
    notes: FrameNotes | None = None
    references: tuple[Path, ...] = ()  # keyed by their content (the caller's inputs), never by their paths

    def params(self) -> dict[str, Any]:
        """As every request's, without `references` even when there are none (keys made before it existed stay valid)."""
        return {name: value for name, value in super().params().items() if name != "references"}


class UpscaleRequest(_Request):
    """Resample an image to a target size, keeping its content."""

    image: Path
    width: int
    height: int
    prompt: str | None = None
    # The image's size where it is known before the file exists (an estimate's planned keyframe): a service that
    # bills its output by the source's size is priced from it. Not a parameter: the image's content is in the key.
    source_size: tuple[int, int] | None = Field(default=None, exclude=True)


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
    # WAN's sampling (project.json `wan`) for the providers that take it; None leaves the service's own
    steps: int | None = None
    cfg: float | None = None
    shift: float | None = None

    def params(self) -> dict[str, Any]:
        """As every request's, without the sampling fields left unset (keys made before they existed stay valid)."""
        return {name: value for name, value in super().params().items()
                if name not in SAMPLING or value is not None}


SAMPLING = frozenset({"steps", "cfg", "shift"})  # VideoRequest's WAN sampling fields


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
