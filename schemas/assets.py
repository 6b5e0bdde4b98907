"""Asset references and manifests: what every stage returns and what a render records."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class MediaInfo(BaseModel):
    """What a person or a check needs to know about an image or a video file."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["image", "video", "data"]
    width: int
    height: int
    frames: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    codec: str | None = None


class AssetRef(BaseModel):
    """A file on disk and the hash it must still have; stages pass these, never bytes."""

    model_config = ConfigDict(frozen=True)

    path: Path
    sha256: str
    media: MediaInfo


class InputRef(BaseModel):
    """An input of a generation: its content hash and, where it has one, its asset name."""

    sha256: str
    name: str | None = None


class Provenance(BaseModel):
    """How an asset was made: enough to make it again."""

    stage: str
    stage_version: int
    provider: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    inputs: list[InputRef] = Field(default_factory=list)
    cost_usd: float = 0.0
    request_id: str | None = None
    seconds: float = 0.0


class ManifestEntry(Provenance):
    """One asset of an episode: its name (None for intermediates), hash, media info and provenance."""

    name: str | None = None
    shot: int | None = None
    take: int | None = None
    sha256: str
    media: MediaInfo


class TakeInputs(BaseModel):
    """What one take of a shot was made from, as a fingerprint of its own inputs apart from reelflow's code."""

    shot: int
    take: int
    inputs: str  # sha256: see reelflow.tasks.upgrades.shot_inputs
    seed: int | None = None  # the seed it was made with; None: recorded before seeds were (its take's own, shot_seed)


class Manifest(BaseModel):
    """`manifest.json` of an episode's asset folder."""

    project: str
    episode: int
    cut: str | None = None
    assets: list[ManifestEntry] = Field(default_factory=list)
    intermediates: list[ManifestEntry] = Field(default_factory=list)
    takes: list[TakeInputs] = Field(default_factory=list, description="each take's inputs, where they were recorded")

    def take_assets(self, shot: int, take: int) -> list[ManifestEntry]:
        """The named assets of one take of a shot (entries written before takes were recorded are take 1)."""
        return [entry for entry in self.assets if entry.shot == shot and (entry.take or 1) == take and entry.name]

    def take_entries(self, shot: int, take: int) -> list[ManifestEntry]:
        """Every entry of one take of a shot, named or intermediate."""
        return [entry for entry in self.assets + self.intermediates if entry.shot == shot and (entry.take or 1) == take]

    def take_inputs(self, shot: int, take: int) -> str | None:
        """The inputs fingerprint recorded for one take of a shot (None: made before inputs were recorded)."""
        return next((record.inputs for record in self.takes if (record.shot, record.take) == (shot, take)), None)

    def take_seed(self, shot: int, take: int) -> int | None:
        """The seed one take of a shot was made with, where the manifest records it."""
        return next((record.seed for record in self.takes if (record.shot, record.take) == (shot, take)), None)
