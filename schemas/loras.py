"""`visual/lora_registry.json`: trained character LoRAs, written by training, read by keyframe stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reelflow.schemas.requests import LoraRef


class LoraEntry(BaseModel):
    """One trained adapter: which base model it fits, where its weights are, its trigger word."""

    base_model: str
    path: str
    trigger: str | None = None
    scale: float = 1.0
    noise: Literal["high", "low"] | None = None


class LoraRegistry(BaseModel):
    characters: dict[str, list[LoraEntry]] = Field(default_factory=dict)

    def for_shot(self, characters: list[str], base_model: str) -> tuple[LoraRef, ...]:
        """The adapters for a shot's characters; several characters share the strength (0.5 each for two)."""
        entries = [
            (char, entry)
            for char in characters
            for entry in self.characters.get(char, [])
            if entry.base_model == base_model
        ]
        share = 1.0 / max(1, len({char for char, _ in entries}))
        return tuple(
            LoraRef(path=entry.path, scale=round(entry.scale * share, 4), trigger=entry.trigger, character=char)
            for char, entry in entries
        )
