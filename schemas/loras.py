"""`visual/lora_registry.json`: trained character LoRAs, written by training, read by keyframe stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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
}
TRAINED_BASES: dict[str, str] = {FLUX2_TRAINER: "flux-2", Z_IMAGE_TRAINER: "z-image", WAN22_TRAINER: "wan-2.2"}


class LoraEntry(BaseModel):
    """One trained adapter: which base model it fits, where its weights are, its trigger word."""

    base_model: str
    path: str
    trigger: str | None = None
    scale: float = 1.0
    noise: Literal["high", "low"] | None = None


class LoraRegistry(BaseModel):
    characters: dict[str, list[LoraEntry]] = Field(default_factory=dict)

    def for_model(self, characters: list[str], model: str) -> tuple[LoraRef, ...]:
        """The adapters of a shot's characters that fit `model`'s base model (none if it takes no LoRAs)."""
        base_model = LORA_BASES.get(model)
        return () if base_model is None else self.for_shot(characters, base_model)

    def for_shot(self, characters: list[str], base_model: str) -> tuple[LoraRef, ...]:
        """The adapters for a shot's characters; several characters share the strength (0.5 each for two).

        A WAN 2.2 adapter's `noise` label says which expert loads it: "high" or "low" (unlabelled: both).
        """
        entries = [
            (char, entry)
            for char in characters
            for entry in self.characters.get(char, [])
            if entry.base_model == base_model
        ]
        share = 1.0 / max(1, len({char for char, _ in entries}))
        return tuple(
            LoraRef(path=entry.path, scale=round(entry.scale * share, 4), trigger=entry.trigger, character=char,
                    transformer=entry.noise)
            for char, entry in entries
        )
