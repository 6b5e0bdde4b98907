"""`visual/lora_registry.json`: trained character LoRAs, written by training, read by keyframe stages."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from reelflow.schemas import gpu
from reelflow.schemas.requests import LoraRef
from reelflow.schemas.wire.fal import (
    FLUX2_LORA,
    FLUX2_TRAINER,
    WAN22_TRAINER,
    WAN_FLF,
    Z_IMAGE_TRAINER,
    Z_IMAGE_TURBO,
    Z_IMAGE_TURBO_LORA,
)

# The base model each endpoint's LoRAs must fit (an endpoint not listed takes no LoRAs), and what each trainer makes.
LORA_BASES: dict[str, str] = {
    FLUX2_LORA: "flux-2",
    Z_IMAGE_TURBO: "z-image",
    Z_IMAGE_TURBO_LORA: "z-image",
    WAN_FLF: "wan-2.2",
    gpu.FLUX2_DEV: "flux-2",
    gpu.Z_IMAGE_TURBO: "z-image",
    gpu.WAN_FLF: "wan-2.2",
}
TRAINED_BASES: dict[str, str] = {FLUX2_TRAINER: "flux-2", Z_IMAGE_TRAINER: "z-image", WAN22_TRAINER: "wan-2.2"}


def is_url(location: str) -> bool:
    """Whether a registry location is a URL (a cloud trainer's, or an upload) rather than a path in the project."""
    return location.startswith(("https://", "http://"))


class LoraEntry(BaseModel):
    """One trained adapter: which base model it fits, where its weights are, its trigger word.

    `base_model`, `path`, `trigger`, `scale` and `noise` are what a person may write by hand; training adds the
    record of how the adapter was made, and a render on fal records `url` when it uploads the weights again.
    """

    base_model: str
    path: str  # the weights' URL (a cloud trainer's) or a path under the project folder
    trigger: str | None = None
    scale: float = 1.0
    noise: Literal["high", "low"] | None = None
    type: str | None = None  # z_image, flux2 or wan22
    provider: str | None = None
    trainer: str | None = None  # the trainer endpoint
    steps: int | None = None
    dataset_sha256: str | None = None
    request_id: str | None = None
    cost_usd: float | None = None
    trained_at: str | None = None
    sha256: str | None = None  # the weight file's
    file: str | None = None  # a copy of the weights under the project folder, where `path` is a URL
    url: str | None = None  # where fal serves the weights now, when a render uploaded them again
    url_at: str | None = None  # when `url` (or a URL `path`) was made; `trained_at` where unset

    @property
    def local(self) -> str | None:
        """The project's copy of the weights, relative to the project folder (None: only a URL)."""
        return self.file or (None if is_url(self.path) else self.path)

    def ref(self, character: str, scale: float, root: Path | None) -> LoraRef:
        """The adapter as a request takes it, at `scale`; `root` (the project folder) locates the local copy."""
        local = self.local
        return LoraRef(path=self.path, scale=scale, trigger=self.trigger, character=character, transformer=self.noise,
                       sha256=self.sha256, url=self.url, url_at=self.url_at or self.trained_at,
                       file=None if local is None or root is None else root / local, project=root)


class LoraRegistry(BaseModel):
    characters: dict[str, list[LoraEntry]] = Field(default_factory=dict)
    retired: dict[str, list[LoraEntry]] = Field(default_factory=dict)  # entries a newer training replaced

    def for_model(self, characters: list[str], model: str, *, shared: float | None = None,
                  root: Path | None = None) -> tuple[LoraRef, ...]:
        """The adapters of a shot's characters that fit `model`'s base model (none if it takes no LoRAs)."""
        base_model = LORA_BASES.get(model)
        return () if base_model is None else self.for_shot(characters, base_model, shared=shared, root=root)

    def entries(self) -> list[LoraEntry]:
        """Every entry, current and retired."""
        return [entry for group in (self.characters, self.retired) for entries in group.values() for entry in entries]

    def register(self, character: str, entries: list[LoraEntry]) -> None:
        """Make `entries` the character's adapters for their base model; the ones they replace are kept as retired."""
        bases, paths = {entry.base_model for entry in entries}, {entry.path for entry in entries}
        current = self.characters.get(character, [])
        self.retired.setdefault(character, []).extend(
            entry for entry in current if entry.base_model in bases and entry.path not in paths)
        if not self.retired[character]:
            del self.retired[character]
        self.characters[character] = [entry for entry in current if entry.base_model not in bases] + entries

    def for_shot(self, characters: list[str], base_model: str, *, shared: float | None = None,
                 root: Path | None = None) -> tuple[LoraRef, ...]:
        """The adapters for a shot's characters; several characters share the strength: `shared` each (project.json
        `shared_lora_scale`), by default an equal part (0.5 each for two). `root` is the project folder the
        registry belongs to.

        A WAN 2.2 adapter's `noise` label says which expert loads it: "high" or "low" (unlabelled: both).
        """
        entries = [
            (char, entry)
            for char in characters
            for entry in self.characters.get(char, [])
            if entry.base_model == base_model
        ]
        count = len({char for char, _ in entries})
        share = 1.0 if count <= 1 else shared if shared is not None else 1.0 / count
        return tuple(entry.ref(char, round(entry.scale * share, 4), root) for char, entry in entries)
