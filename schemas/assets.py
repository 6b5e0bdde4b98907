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


class Manifest(BaseModel):
    """`manifest.json` of an episode's asset folder."""

    project: str
    episode: int
    cut: str | None = None
    assets: list[ManifestEntry] = Field(default_factory=list)
    intermediates: list[ManifestEntry] = Field(default_factory=list)

    def take_assets(self, shot: int, take: int) -> list[ManifestEntry]:
        """The named assets of one take of a shot (entries written before takes were recorded are take 1)."""
        return [entry for entry in self.assets if entry.shot == shot and (entry.take or 1) == take and entry.name]
