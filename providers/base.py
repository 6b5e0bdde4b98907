"""The small protocols every provider implements, and how stages find a provider by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from reelflow.schemas.requests import (
    EditRequest,
    Generation,
    ImageRequest,
    JudgeRequest,
    TrainedLora,
    TrainRequest,
    UpscaleRequest,
    Verdict,
    VideoRequest,
    _Request,
)


@runtime_checkable
class Provider(Protocol):
    """What every provider has: a name, a default model per stage, and what its outputs depend on."""

    name: str
    default_models: dict[str, str]

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """The request fields this provider's output depends on (input files excluded)."""


@runtime_checkable
class ImageGenerator(Provider, Protocol):
    def generate_image(self, request: ImageRequest, out: Path) -> Generation: ...


@runtime_checkable
class ImageEditor(Provider, Protocol):
    def edit_image(self, request: EditRequest, out: Path) -> Generation: ...

    def upscale_image(self, request: UpscaleRequest, out: Path) -> Generation: ...


@runtime_checkable
class FrameToVideo(Provider, Protocol):
    def first_last_video(self, request: VideoRequest, out: Path) -> Generation: ...


@runtime_checkable
class LoraTrainer(Provider, Protocol):
    def train_lora(self, request: TrainRequest) -> TrainedLora: ...


@runtime_checkable
class VisionJudge(Provider, Protocol):
    def judge_image(self, request: JudgeRequest) -> Verdict: ...
