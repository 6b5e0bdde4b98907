"""The small protocols every provider implements.

A provider translates one common request shape (schemas/requests.py) to its wire and back, writes
its output to `out`, verifies it, and reports cost from the price table. What each answer of the
service means goes to the call's `ticket`; the ledger's rules for every provider live in one place
(state/ledger.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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


class Sent(Protocol):
    """A request on its way out (`Ticket.sending`)."""

    def accepted(self, request_id: str) -> None:
        """The service accepted the request as `request_id`: it is pending until settled."""


class Ticket(Protocol):
    """Where a provider says what each answer of the service meant; the ledger's rules (state/ledger.py) do the rest.

    A provider speaks only its wire: it resumes an open request instead of submitting, sends inside `sending` (the
    row is written before the request leaves; an OutcomeUnknown raised there leaves it unknown, at its price), and
    settles what the service answered: completed, failed (billed or not), unknown, cancelled.
    """

    def resume(self, endpoint: str, *, pollable: bool = True) -> str | None:
        """The id of this call's request still open at the service: poll it instead of submitting. Without
        `pollable` (a synchronous service) an open request cannot be asked about: it becomes unknown."""

    def sending(self, endpoint: str) -> AbstractContextManager[Sent]: ...

    def completed(self, endpoint: str, request_id: str, cost_usd: float, billed_usd: float | None = None) -> None:
        """A usable output; `billed_usd` where the service said what it billed."""

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        """The request ended in an error; `cost_usd` is what the provider bills for it anyway."""

    def unknown(self, endpoint: str, request_id: str, detail: str) -> None:
        """No answer will say how the request ended (the service no longer knows it): counted at its price."""

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        """The provider confirmed the request was removed before it ran: nothing was billed."""

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        """A cancel was asked for and not confirmed: the request stays pending."""


class _NotSent:
    def accepted(self, request_id: str) -> None:
        return None


class Unrecorded:
    """The ticket of a call made outside any ledger (a provider used on its own): every line is dropped."""

    def resume(self, endpoint: str, *, pollable: bool = True) -> str | None:
        return None

    @contextmanager
    def sending(self, endpoint: str) -> Iterator[Sent]:
        yield _NotSent()

    def completed(self, endpoint: str, request_id: str, cost_usd: float, billed_usd: float | None = None) -> None:
        return None

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        return None

    def unknown(self, endpoint: str, request_id: str, detail: str) -> None:
        return None

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        return None

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        return None


UNRECORDED = Unrecorded()


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
