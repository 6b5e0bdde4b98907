"""Cancel stops the spend: every request a stopped run left open is cancelled at its service and settled in the ledger.

For the ledger runs given (a render's own run; a run over several episodes covers the runs that are part of it), this
process first stops sending anything for them, then settles each request still open, none left pending:

- submitting (its sending was cut off: there is no id to cancel it by): unknown, at its price;
- shadow (the local provider, which ran inside the stopped process and charges nothing): cancelled;
- a provider with no cancel (providers/cancel.py), or that cannot be set up here: unknown, at its price;
- the rest are asked to cancel. Removed from the queue before it ran: cancelled, nothing billed; no longer known:
  unknown. Otherwise its status is asked until REELFLOW_CANCEL_WAIT_S (60 s) has passed for the whole run: completed
  is settled at its cost (it ran, and was billed; its result is not fetched, so a later render pays for it again),
  ended in an error is failed at its cost (billed), and one still running or unanswered at the deadline is unknown,
  at its price.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelflow.providers.cancel import Answer, Cancellable
from reelflow.providers.registry import get_provider
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import ReelflowError
from reelflow.state.ledger import Ledger, LedgerRow, Status, stop_runs
from reelflow.tasks.job import run_logger

WAIT_ENV = "REELFLOW_CANCEL_WAIT_S"
WAIT_S = 60.0
POLL_S = 1.0
ANSWER_S = (0.5, 10.0)  # how long one cancel or status call may wait for its answer: at least, at most
Outcome = Literal["cancelled", "settled", "unknown"]
Log = logging.Logger | logging.LoggerAdapter[Any]
OUTCOMES: dict[Status, Outcome] = {"cancelled": "cancelled", "completed": "settled", "failed": "settled",
                                   "unknown": "unknown"}


@dataclass(frozen=True)
class Stopped:
    """What stopping did to one request: cancelled (nothing billed), settled (it ran: at its cost) or unknown (at its
    price), and the ledger's row as it stands after."""

    outcome: Outcome
    row: LedgerRow

    def words(self) -> str:
        """One line for a log or a terminal."""
        row = self.row
        where = " ".join(part for part in (
            None if row.episode is None else f"ep{row.episode:03d}", None if row.shot is None else f"S{row.shot:02d}",
            row.stage) if part)
        return (f"{self.outcome}: {row.provider} {row.endpoint} request {row.request_id}"
                f"{f' ({where})' if where else ''}, ${row.spent_usd:.3f}: {row.detail.removeprefix('unknown: ')}")


@dataclass(frozen=True)
class _Asked:
    """A request asked to cancel whose end is not known yet: its service, and what it said last."""

    row: LedgerRow
    provider: Cancellable
    last: Answer


def _answer_s(deadline: float) -> float:
    low, high = ANSWER_S
    return max(low, min(high, deadline - time.monotonic()))


def _outcome(row: LedgerRow | None) -> Stopped | None:
    """What a settled row came to; None for a row gone (a send the service refused: nothing ran)."""
    return None if row is None else Stopped(OUTCOMES.get(row.status, "unknown"), row)


def _settle(ledger: Ledger, row: LedgerRow, status: Status, detail: str) -> Stopped | None:
    """Settle the row unless another process stopping it settled it first; its outcome either way."""
    cost = 0.0 if status == "cancelled" else row.price_usd
    return _outcome(ledger.settle_open(row.id, status, cost, detail))


def _ask_to_cancel(ledger: Ledger, listed: LedgerRow, deadline: float) -> Stopped | _Asked | None:
    """Settle what needs no answer, or what the cancel's answer settles; else the request to wait on."""
    row = ledger.row(listed.id)  # a send under way when the run was listed may have been accepted since, or refused
    if row is None or row.status not in ("submitting", "pending"):
        return _outcome(row)
    if row.status == "submitting":
        return _settle(ledger, row, "unknown", "unknown: cancelled while it was being sent (no id to cancel it by); "
                                               "the service may have run and billed it")
    if row.shadow:
        return _settle(ledger, row, "cancelled", "it ran in the stopped process, and stopped with it; nothing charged")
    try:
        provider = get_provider(row.provider)
    except ReelflowError as error:
        return _settle(ledger, row, "unknown", f"unknown: cancelled; {row.provider} cannot be asked to stop it "
                                               f"({error}); it may have run and billed")
    if not isinstance(provider, Cancellable):
        return _settle(ledger, row, "unknown", f"unknown: cancelled; {row.provider} has no way to stop it or say how "
                                               "it ended; it may have run and billed")
    answer = provider.cancel_request(row.endpoint, row.request_id, _answer_s(deadline))
    if answer.said == "removed":
        return _settle(ledger, row, "cancelled", f"{answer.detail}; nothing billed")
    if answer.said == "forgotten":
        return _settle(ledger, row, "unknown", f"unknown: cancelled; {answer.detail}; it may have run and billed")
    return _Asked(row, provider, answer)


def _end(answer: Answer) -> tuple[Status, str] | None:
    """How a status answer settles the request (status and detail); None while it has not ended."""
    if answer.said == "completed":
        return "completed", f"cancelled too late: {answer.detail}; billed"
    if answer.said == "failed":
        return "failed", f"cancelled, then {answer.detail}; billed"
    if answer.said == "forgotten":
        return "unknown", f"unknown: cancelled; {answer.detail}; it may have run and billed"
    return None


def stop_spend(state_dir: Path, runs: Iterable[str], *, wait_s: float | None = None,
               logger: Log | None = None) -> list[Stopped]:
    """Stop what `runs` (and the runs that are part of them) spend: send nothing more for them from this process,
    cancel each open request and settle it in the project's ledger (in `state_dir`) within `wait_s` (default
    REELFLOW_CANCEL_WAIT_S, 60 s). Returns what happened to each request, each one also logged."""
    runs = [run for run in runs if run]
    stop_runs(runs)
    ledger = Ledger.at(state_dir)
    wait = env_number(WAIT_ENV, WAIT_S) if wait_s is None else wait_s
    deadline = time.monotonic() + wait
    done: list[Stopped] = []
    waiting: list[_Asked] = []
    for row in reversed(ledger.open_requests(runs)):  # newest first: fal runs its queue oldest first, so those still
        first = _ask_to_cancel(ledger, row, deadline)  # waiting go before a runner they would take frees up
        if isinstance(first, _Asked):
            waiting.append(first)
        elif first is not None:
            done.append(first)
    while waiting:
        still = []
        for asked in waiting:
            answer = asked.provider.request_state(asked.row.endpoint, asked.row.request_id, _answer_s(deadline))
            end = _end(answer)
            if end is None:
                still.append(_Asked(asked.row, asked.provider, answer))
            elif (stopped := _settle(ledger, asked.row, *end)) is not None:
                done.append(stopped)
        waiting = still
        left = deadline - time.monotonic()
        if not waiting or left <= 0:
            break
        time.sleep(min(POLL_S, max(wait / 10, 0.01), left))
    for asked in waiting:
        last = _settle(ledger, asked.row, "unknown", f"unknown: cancelled; {asked.row.provider} did not say how it "
                                                     f"ended within {wait:g} s ({asked.last.detail}); it may have run "
                                                     "and billed")
        if last is not None:
            done.append(last)
    _log(logger or run_logger(), done)
    return done


def _log(logger: Log, stopped: list[Stopped]) -> None:
    """Each request's outcome (money spent is a warning), then the whole in one line."""
    for each in stopped:
        logger.log(logging.INFO if each.outcome == "cancelled" else logging.WARNING, "%s", each.words())
    if stopped:
        counts = {outcome: [s for s in stopped if s.outcome == outcome] for outcome in ("cancelled", "settled", "unknown")}
        logger.warning("stopped %s open request(s): %s cancelled, %s settled ($%.3f), %s unknown ($%.3f at their price)",
                       len(stopped), len(counts["cancelled"]), len(counts["settled"]),
                       sum(s.row.spent_usd for s in counts["settled"]), len(counts["unknown"]),
                       sum(s.row.spent_usd for s in counts["unknown"]))
