"""The ledger of paid requests: written before waiting on one, so a retry, crash or re-run never pays twice.

One append-only JSON-lines file per project (`.reelflow/ledger.jsonl`), each line fsynced under a
file lock. A request submitted and not yet finished is *pending*: the next attempt for the same
cache key resumes polling it instead of submitting again.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

Event = Literal["submitted", "completed", "failed", "cancelled"]


class LedgerLine(BaseModel):
    event: Event
    key: str
    provider: str
    endpoint: str
    request_id: str
    cost_usd: float = 0.0
    detail: str = ""
    at: float


class Ledger:
    """Reads and appends `ledger.jsonl`; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def lines(self) -> list[LedgerLine]:
        if not self.path.is_file():
            return []
        with self.path.open(encoding="utf-8") as handle:
            return [LedgerLine.model_validate_json(line) for line in handle if line.strip()]

    def append(self, line: LedgerLine) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (line.model_dump_json() + "\n").encode()
        with self._lock, self.path.open("ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pending(self, key: str) -> LedgerLine | None:
        """The newest request for `key` that was submitted and has not finished, if any."""
        open_requests: dict[str, LedgerLine] = {}
        for line in self.lines():
            if line.key != key:
                continue
            if line.event == "submitted":
                open_requests[line.request_id] = line
            else:
                open_requests.pop(line.request_id, None)
        return list(open_requests.values())[-1] if open_requests else None

    def total_cost(self) -> float:
        return round(sum(line.cost_usd for line in self.lines() if line.event in ("completed", "failed")), 6)

    def ticket(self, key: str, provider: str) -> Ticket:
        return Ticket(self, key, provider)


class Ticket:
    """What one provider call writes to the ledger: its request id before waiting, its end after."""

    def __init__(self, ledger: Ledger, key: str, provider: str) -> None:
        self.ledger, self.key, self.provider = ledger, key, provider

    def resume(self, endpoint: str) -> str | None:
        """The id of a request for this key and endpoint that is still pending: poll it, do not submit."""
        line = self.ledger.pending(self.key)
        return line.request_id if line is not None and line.endpoint == endpoint else None

    def _write(self, event: Event, endpoint: str, request_id: str, cost_usd: float = 0.0, detail: str = "") -> None:
        self.ledger.append(LedgerLine(
            event=event, key=self.key, provider=self.provider, endpoint=endpoint, request_id=request_id,
            cost_usd=cost_usd, detail=detail, at=time.time(),
        ))

    def submitted(self, endpoint: str, request_id: str) -> None:
        self._write("submitted", endpoint, request_id)

    def completed(self, endpoint: str, request_id: str, cost_usd: float) -> None:
        self._write("completed", endpoint, request_id, cost_usd)

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        """The request ended in an error; `cost_usd` is what the provider bills for it anyway."""
        self._write("failed", endpoint, request_id, cost_usd, detail)

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        self._write("cancelled", endpoint, request_id, detail=detail)


@cache
def ledger_for(path: Path) -> Ledger:
    """One ledger object per file in a process, so its thread lock is shared."""
    return Ledger(path)
