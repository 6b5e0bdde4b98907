"""Stopping a request a service still holds: ask it to cancel, then ask how the request ended.

A provider whose service documents a cancel implements `Cancellable`; the rules for what each answer means for the
money are tasks/cancel.py's. A provider without one is not asked: its open requests are counted at their price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

# removed: taken off the queue before it ran (nothing billed); requested: it was running and was asked to stop (it
# may still finish and bill); completed / failed: it ended (billed, with a result or an error); running: not ended
# yet; forgotten: the service no longer knows it; silent: no answer came.
Said = Literal["removed", "requested", "completed", "failed", "running", "forgotten", "silent"]


@dataclass(frozen=True)
class Answer:
    """What the service said about one request, and in its words for the ledger's detail."""

    said: Said
    detail: str = ""


@runtime_checkable
class Cancellable(Protocol):
    """A provider whose service can be asked to stop a request, and how a request ended."""

    name: str

    def cancel_request(self, endpoint: str, request_id: str, timeout_s: float) -> Answer:
        """Ask the service to stop the request: removed, requested, completed, forgotten or silent."""

    def request_state(self, endpoint: str, request_id: str, timeout_s: float) -> Answer:
        """How the request stands now: completed, failed, running, forgotten or silent."""
