"""The small protocols every provider implements.

A provider translates one common request shape (schemas/requests.py) to its wire and back, writes
its output to `out`, verifies it, and reports cost from the price table. Paid calls write their
request id to the ledger through `ticket` before waiting, and resume a pending one instead of
submitting again.
"""

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


class Ticket(Protocol):
    """Where a paid call writes its request: the id before waiting on it, then how the provider settled it."""

    def resume(self, endpoint: str) -> str | None:
        """The id of this call's request still pending at the provider: poll it instead of submitting."""

    def submitted(self, endpoint: str, request_id: str) -> None: ...

    def completed(self, endpoint: str, request_id: str, cost_usd: float) -> None: ...

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        """The request ended in an error; `cost_usd` is what the provider bills for it anyway."""

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        """The provider confirmed the cancel: nothing was billed."""

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        """A cancel was asked for and not confirmed: the request stays pending."""


@runtime_checkable
class Provider(Protocol):
    """What every provider has: a name, a default model per stage, and what its outputs depend on."""

    name: str
    default_models: dict[str, str]

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """The request fields this provider's output depends on (input files excluded)."""

    def estimate(self, request: _Request) -> float:
        """What the call would cost, from the price table, without making it."""

    def check(self, request: _Request) -> None:
        """Raise WireViolation (or BadRequest) if the service's published schema refuses what this request would
        send; no I/O, so it runs before any upload, reservation or submit."""


@runtime_checkable
class ImageGenerator(Provider, Protocol):
    def generate_image(self, request: ImageRequest, out: Path, *, ticket: Ticket | None = None) -> Generation: ...


@runtime_checkable
class ImageEditor(Provider, Protocol):
    def edit_image(self, request: EditRequest, out: Path, *, ticket: Ticket | None = None) -> Generation: ...

    def upscale_image(self, request: UpscaleRequest, out: Path, *, ticket: Ticket | None = None) -> Generation: ...


@runtime_checkable
class FrameToVideo(Provider, Protocol):
    def first_last_video(self, request: VideoRequest, out: Path, *, ticket: Ticket | None = None) -> Generation: ...


@runtime_checkable
class LoraTrainer(Provider, Protocol):
    def train_lora(self, request: TrainRequest, out: Path, *, ticket: Ticket | None = None) -> TrainedLora:
        """Train the adapter and write (or download) its weight files into the folder `out`."""


@runtime_checkable
class VisionJudge(Provider, Protocol):
    def judge_image(self, request: JudgeRequest, *, ticket: Ticket | None = None) -> Verdict: ...
