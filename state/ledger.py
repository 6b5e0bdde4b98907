"""The ledger of paid requests: a row per request, written before anyone waits on it, so nothing is paid twice.

A request is `pending` from the moment the provider accepts it until the provider settles it: `completed`
(with what it billed), `failed` (with what it billed anyway: an unusable output, a 422 fal may bill) or
`cancelled` (confirmed before it ran). The next attempt for the same cache key finds a pending request with
one indexed lookup and polls it instead of submitting again. A pending request counts against budgets at its
price; a settled one at what it cost. The local provider writes rows like any other, marked `shadow`: priced as
the cloud would bill, charged nothing.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelflow.schemas.report import GroupSpend, LedgerReport, LedgerRequest
from reelflow.state.db import Database, database

Status = Literal["pending", "completed", "failed", "cancelled"]
SETTLED_COST = "CASE WHEN status = 'pending' THEN price_usd ELSE cost_usd END"


@dataclass(frozen=True)
class Charge:
    """Who is paying for a request: the run, the shot and stage it is for, and its price."""

    run: str | None = None
    stage: str | None = None
    episode: int | None = None
    shot: int | None = None
    price_usd: float = 0.0
    shadow: bool = False
    reservation: int | None = None


@dataclass(frozen=True)
class LedgerRow:
    """One request as the ledger holds it."""

    cache_key: str
    provider: str
    endpoint: str
    request_id: str
    status: Status
    price_usd: float
    cost_usd: float
    shadow: bool
    run: str | None
    stage: str | None
    episode: int | None
    shot: int | None
    detail: str
    submitted_at: float
    settled_at: float | None

    @classmethod
    def of(cls, row: sqlite3.Row) -> LedgerRow:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        return cls(**values | {"shadow": bool(values["shadow"])})


class Ledger:
    """The `requests` table of a project's state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def at(cls, state_dir: Path) -> Ledger:
        """The ledger of the project whose state folder is `state_dir`."""
        return cls(database(state_dir))

    def rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[LedgerRow]:
        """Requests in the order they were submitted, optionally filtered by an SQL condition."""
        sql = "SELECT * FROM requests" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        return [LedgerRow.of(row) for row in self.db.rows(sql, args)]

    def pending(self, key: str, endpoint: str | None = None) -> str | None:
        """The request id of the newest unsettled request for `key` (and `endpoint`), if any."""
        sql = "SELECT request_id FROM requests WHERE cache_key = ? AND status = 'pending'"
        args: tuple[str, ...] = (key,)
        if endpoint is not None:
            sql, args = sql + " AND endpoint = ?", (key, endpoint)
        row = self.db.row(sql + " ORDER BY id DESC LIMIT 1", args)
        return None if row is None else str(row["request_id"])

    def billed_failures(self, key: str, run: str) -> int:
        """How many requests for `key` this run paid for and could not use."""
        row = self.db.row(
            "SELECT COUNT(*) AS n FROM requests WHERE cache_key = ? AND run = ? AND status = 'failed' AND cost_usd > 0",
            (key, run),
        )
        return int(row["n"]) if row else 0

    def ticket(self, key: str, provider: str, charge: Charge | None = None, *, deferred: bool = False) -> Ticket:
        return Ticket(self, key, provider, charge or Charge(), deferred=deferred)

    def run_spend(self, run: str) -> dict[int | None, tuple[int, float]]:
        """Per shot of a run: (requests made, what they cost or, while pending, their price)."""
        rows = self.db.rows(
            f"SELECT shot, COUNT(*) AS calls, SUM({SETTLED_COST}) AS cost FROM requests WHERE run = ? GROUP BY shot", (run,)
        )
        return {row["shot"]: (int(row["calls"]), round(float(row["cost"] or 0.0), 6)) for row in rows}

    def run_shadow(self, run: str) -> float:
        """The part of a run's spend the local provider priced as the cloud and charged nothing for."""
        row = self.db.row(f"SELECT SUM({SETTLED_COST}) AS cost FROM requests WHERE run = ? AND shadow = 1", (run,))
        return round(float(row["cost"] or 0.0), 6) if row else 0.0

    def report(self, episode: int | None = None) -> LedgerReport:
        """Spend by provider, stage, episode and day (UTC), pending requests and billed failures."""
        rows = self.rows("episode = ?", (episode,)) if episode is not None else self.rows()
        report = LedgerReport(episode=episode, requests=len(rows))
        for row in rows:
            cost = row.price_usd if row.status == "pending" else row.cost_usd
            day = time.strftime("%Y-%m-%d", time.gmtime(row.submitted_at))
            episode_key = "none" if row.episode is None else str(row.episode)
            for groups, name in ((report.by_provider, row.provider), (report.by_stage, row.stage or "none"),
                                 (report.by_episode, episode_key), (report.by_day, day)):
                spend = groups.setdefault(name, GroupSpend())
                spend.requests += 1
                spend.spent_usd = round(spend.spent_usd + cost, 6)
            report.spent_usd = round(report.spent_usd + cost, 6)
            if row.shadow:
                report.shadow_usd = round(report.shadow_usd + cost, 6)
            else:
                report.charged_usd = round(report.charged_usd + cost, 6)
            request = LedgerRequest(**{name: getattr(row, name) for name in LedgerRequest.model_fields})
            if row.status == "pending":
                report.pending.append(request)
            elif row.status == "failed" and row.cost_usd > 0:
                report.billed_failures.append(request)
        return report

    def spent(self, run: str | None = None) -> float:
        """What the project (or one run) has spent: settled costs, plus pending requests at their price."""
        sql = f"SELECT SUM({SETTLED_COST}) AS total FROM requests"
        row = self.db.row(sql + " WHERE run = ?", (run,)) if run is not None else self.db.row(sql)
        return round(float(row["total"] or 0.0), 6) if row else 0.0


class Ticket:
    """What one provider call writes to the ledger: its request id before waiting, how it settled after."""

    def __init__(self, ledger: Ledger, key: str, provider: str, charge: Charge, *, deferred: bool = False) -> None:
        self.ledger, self.key, self.provider, self.charge = ledger, key, provider, charge
        # Deferred: a completion waits to be written in the transaction that indexes its output (`commit`), so a crash
        # between the two leaves the request pending (polled by the next run) rather than paid with nothing to show.
        self.deferred = deferred
        self._completion: tuple[str, str, float, float] | None = None

    def resume(self, endpoint: str) -> str | None:
        """The id of a request for this key and endpoint that is still pending: poll it, do not submit.

        A resumed request is charged to the run that resumes it; its budget reservation is no longer needed.
        """
        request_id = self.ledger.pending(self.key, endpoint)
        if request_id is not None:
            charge = self.charge
            with self.ledger.db.write(durable=not self.charge.shadow) as sql:
                sql.execute(
                    "UPDATE requests SET run = COALESCE(?, run), stage = COALESCE(?, stage), episode = COALESCE(?, episode), "
                    "shot = COALESCE(?, shot) "
                    "WHERE cache_key = ? AND request_id = ? AND status = 'pending'",
                    (charge.run, charge.stage, charge.episode, charge.shot, self.key, request_id),
                )
                _release(sql, charge.reservation)
        return request_id

    def submitted(self, endpoint: str, request_id: str) -> None:
        """The provider accepted the request: it is pending, at its price, and the reservation becomes this row."""
        charge = self.charge
        with self.ledger.db.write(durable=not self.charge.shadow) as sql:
            sql.execute(
                "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, shadow, run, stage, "
                "episode, shot, submitted_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (self.key, self.provider, endpoint, request_id, charge.price_usd, int(charge.shadow), charge.run,
                 charge.stage, charge.episode, charge.shot, time.time()),
            )
            _release(sql, charge.reservation)

    def _settle(self, status: Status, endpoint: str, request_id: str, cost_usd: float, detail: str) -> None:
        with self.ledger.db.write(durable=not self.charge.shadow) as sql:
            self._settle_in(sql, status, endpoint, request_id, cost_usd, detail)

    def _settle_in(self, sql: sqlite3.Connection, status: Status, endpoint: str, request_id: str, cost_usd: float,
                   detail: str, at: float | None = None) -> None:
        """Settle in `sql`'s transaction; `at` is when the provider answered (default: now)."""
        now = time.time() if at is None else at
        updated = sql.execute(
            "UPDATE requests SET status = ?, cost_usd = ?, detail = ?, settled_at = ? "
            "WHERE cache_key = ? AND endpoint = ? AND request_id = ? AND status = 'pending'",
            (status, round(cost_usd, 6), detail, now, self.key, endpoint, request_id),
        ).rowcount
        if not updated:
            # Settled without a submitted row (a provider that settles at once): record it whole.
            charge = self.charge
            sql.execute(
                "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, cost_usd, shadow, "
                "run, stage, episode, shot, detail, submitted_at, settled_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.key, self.provider, endpoint, request_id, status, charge.price_usd, round(cost_usd, 6),
                 int(charge.shadow), charge.run, charge.stage, charge.episode, charge.shot, detail, now, now),
            )
        _release(sql, self.charge.reservation)

    def completed(self, endpoint: str, request_id: str, cost_usd: float) -> None:
        if self.deferred:
            self._completion = (endpoint, request_id, cost_usd, time.time())
            return
        self._settle("completed", endpoint, request_id, cost_usd, "")

    def commit(self, sql: sqlite3.Connection) -> None:
        """Write a deferred completion in the caller's transaction (the one that indexes the output)."""
        if self._completion is not None:
            endpoint, request_id, cost_usd, at = self._completion
            self._settle_in(sql, "completed", endpoint, request_id, cost_usd, "", at)
            self._completion = None

    def flush(self) -> None:
        """Write a deferred completion on its own: the output will not be indexed (it failed a check after)."""
        if self._completion is not None:
            with self.ledger.db.write(durable=not self.charge.shadow) as sql:
                self.commit(sql)

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        """The request ended in an error; `cost_usd` is what the provider bills for it anyway."""
        self._settle("failed", endpoint, request_id, cost_usd, detail)

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        """The provider confirmed the request was cancelled before it ran: nothing billed."""
        self._settle("cancelled", endpoint, request_id, 0.0, detail)

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        """A cancel was asked for but not confirmed: the request stays pending (it may still run and bill)."""
        with self.ledger.db.write(durable=not self.charge.shadow) as sql:
            sql.execute(
                "UPDATE requests SET detail = ? WHERE cache_key = ? AND endpoint = ? AND request_id = ? AND status = 'pending'",
                (detail, self.key, endpoint, request_id),
            )


def _release(sql: sqlite3.Connection, reservation: int | None) -> None:
    if reservation is not None:
        sql.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
