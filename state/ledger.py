"""The ledger of paid requests, and the one set of rules every provider's calls follow, so nothing is paid twice.

A row is written as `submitting` *before* the request leaves the process. It becomes `pending` when the service
accepts it (its request id recorded), and is settled once: `completed` (at what it cost), `failed` (at what the
service bills anyway: an unusable output, a 422 fal may bill; $0 when it billed nothing), `cancelled` (confirmed
before it ran) or `unknown`. Unknown is money: a request whose answer never came (a lost response, a timeout after
the body was sent, a process that died mid-send, a request the service no longer knows) may have run and been
billed, so it counts at its price in every report and budget, and the work is submitted again only within the
project's `billed_retries`, counted per cache key across every run.

A pending request counts at its price, a settled one at what it cost. The local provider writes rows like any
other, marked `shadow`: priced as the cloud would bill, charged nothing, and never counted against a budget.
A run being stopped (cancelled, crashed, Ctrl-C) sends nothing more; tasks/cancel.py settles its open requests.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelflow.schemas.errors import OutcomeUnknown, ProviderError
from reelflow.schemas.report import GroupSpend, LedgerReport, LedgerRequest
from reelflow.state.db import Sql, StateDatabase, database

Status = Literal["submitting", "pending", "completed", "failed", "cancelled", "unknown"]
AT_PRICE: tuple[Status, ...] = ("submitting", "pending", "unknown")  # counted at their price until settled
SETTLED_COST = "CASE WHEN status IN ('submitting', 'pending', 'unknown') THEN price_usd ELSE cost_usd END"
# Paid for with nothing to show: a billed failure, or an answer that never came. Counted against billed_retries.
PAID_FOR_NOTHING = "((status = 'failed' AND cost_usd > 0) OR status = 'unknown') AND forgiven = 0"
CUT_OFF = "unknown: sending was cut off (the process stopped); the service may have run and billed it"
NOT_POLLABLE = "unknown: a synchronous request was cut off; the service may have run and billed it"

# The runs this process is stopping (tasks/cancel.py): nothing more is sent for them, and a provider thread still
# waiting on one of their requests writes nothing of how it ended: their stopper settles it, from what the service
# says (a thread's answer racing the stopper's could otherwise count a request twice, or a cancelled one as unknown).
_stopping: set[str] = set()
_stopping_lock = threading.Lock()


class RunStopped(ProviderError):
    """The run is being stopped (cancelled, crashed, Ctrl-C): nothing more is sent for it."""

    kind = "stopped"


def stop_runs(runs: Iterable[str]) -> None:
    """From now on this process sends nothing for `runs` (nor for the runs that are part of them)."""
    with _stopping_lock:
        _stopping.update(runs)


def is_stopping(charge: Charge) -> bool:
    """Whether the run paying for `charge` (or the run it is part of) is being stopped in this process."""
    with _stopping_lock:
        return bool({charge.run, charge.parent_run} & _stopping)


@dataclass(frozen=True)
class Charge:
    """Who is paying for a request: the run (and the run it is part of), the shot and stage, and its price."""

    run: str | None = None
    stage: str | None = None
    episode: int | None = None
    shot: int | None = None
    price_usd: float = 0.0
    shadow: bool = False
    reservation: int | None = None
    parent_run: str | None = None
    share: bool = False  # a graph's share of a rented pod's row: reported by shot and stage, never in totals


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
    billed_usd: float | None
    shadow: bool
    run: str | None
    parent_run: str | None
    stage: str | None
    episode: int | None
    shot: int | None
    detail: str
    submitted_at: float
    settled_at: float | None
    forgiven: bool
    share: bool
    id: int

    @classmethod
    def of(cls, row: Any) -> LedgerRow:
        values = {name: row[name] for name in cls.__dataclass_fields__}
        flags = {name: bool(values[name]) for name in ("shadow", "forgiven", "share")}
        return cls(**values | flags)

    @property
    def spent_usd(self) -> float:
        """What the row counts as spent: its price until settled (or unknown), else what it cost."""
        return self.price_usd if self.status in AT_PRICE else self.cost_usd


def _shot_label(row: LedgerRow) -> str:
    """`ep001-S07` for a shot's request, `ep001` for an episode's, `none` for the rest (characters, training)."""
    if row.episode is None:
        return "none"
    return f"ep{row.episode:03d}" + ("" if row.shot is None else f"-S{row.shot:02d}")


def run_filter(run: str) -> tuple[str, tuple[str, str]]:
    """Rows of `run` and of every run it is part of (a render-pending run's episode subflows)."""
    return "(run = ? OR parent_run = ?)", (run, run)


class Ledger:
    """The `requests` table of a project's state database."""

    def __init__(self, db: StateDatabase) -> None:
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
        """The request id of the newest request for `key` (and `endpoint`) the service accepted and has not settled."""
        sql = "SELECT request_id FROM requests WHERE cache_key = ? AND status = 'pending'"
        args: tuple[str, ...] = (key,)
        if endpoint is not None:
            sql, args = sql + " AND endpoint = ?", (key, endpoint)
        row = self.db.row(sql + " ORDER BY id DESC LIMIT 1", args)
        return None if row is None else str(row["request_id"])

    def open_requests(self, runs: Iterable[str]) -> list[LedgerRow]:
        """The requests of `runs` (and of the runs that are part of them) not settled yet: submitting or pending."""
        rows: dict[int, LedgerRow] = {}
        for run in runs:
            condition, args = run_filter(run)
            rows |= {row.id: row for row in self.rows(f"{condition} AND status IN ('submitting', 'pending')", args)}
        return [rows[key] for key in sorted(rows)]

    def row(self, row_id: int) -> LedgerRow | None:
        """The request of row `row_id` as it stands now; None once removed (a send the service refused)."""
        rows = self.rows("id = ?", (row_id,))
        return rows[0] if rows else None

    def settle_open(self, row_id: int, status: Status, cost_usd: float, detail: str) -> LedgerRow | None:
        """Settle the request of row `row_id` if it is still open; returns the row as it stands after (settled
        meanwhile by another process that was stopping it, it keeps what that one wrote)."""
        with self.db.write() as sql:
            sql.execute(
                "UPDATE requests SET status = ?, cost_usd = ?, detail = ?, settled_at = ? "
                "WHERE id = ? AND status IN ('submitting', 'pending')",
                (status, round(cost_usd, 6), detail[:500], time.time(), row_id),
            )
        return self.row(row_id)

    def billed_failures(self, key: str) -> int:
        """How many requests for `key` were paid for with nothing to show (billed failures and unknown outcomes),
        over every run, less those a person forgave."""
        row = self.db.row(f"SELECT COUNT(*) AS n FROM requests WHERE cache_key = ? AND {PAID_FOR_NOTHING}", (key,))
        return int(row["n"]) if row else 0

    def forget_billed_failures(self, episode: int | None = None, shot: int | None = None) -> int:
        """Let the content of billed failures and unknown outcomes be paid for again (the rows stay money);
        returns how many were forgiven."""
        where, args = PAID_FOR_NOTHING, ()
        if episode is not None:
            where, args = where + " AND episode = ?", (*args, episode)
        if shot is not None:
            where, args = where + " AND shot = ?", (*args, shot)
        with self.db.write() as sql:
            return sql.execute(f"UPDATE requests SET forgiven = 1 WHERE {where}", args).rowcount

    def ticket(self, key: str, provider: str, charge: Charge | None = None, *, deferred: bool = False) -> LedgerTicket:
        return LedgerTicket(self, key, provider, charge or Charge(), deferred=deferred)

    def run_spend(self, run: str) -> dict[int | None, tuple[int, float]]:
        """Per shot of a run: (requests made, what they cost or, until settled, their price)."""
        rows = self.db.rows(
            f"SELECT shot, COUNT(*) AS calls, SUM({SETTLED_COST}) AS cost FROM requests WHERE run = ? AND share = 0 "
            "GROUP BY shot", (run,)
        )
        return {row["shot"]: (int(row["calls"]), round(float(row["cost"] or 0.0), 6)) for row in rows}

    def mean_seconds(self, providers: tuple[str, ...], endpoint: str) -> float | None:
        """How long the providers' completed requests to `endpoint` took on average, from submit to settle; None
        before any."""
        marks = ", ".join("?" for _ in providers)
        row = self.db.row(f"SELECT AVG(settled_at - submitted_at) AS seconds FROM requests WHERE endpoint = ? AND "
                          f"provider IN ({marks}) AND status = 'completed'", (endpoint, *providers))
        return None if row is None or row["seconds"] is None else round(float(row["seconds"]), 3)

    def run_shadow(self, run: str) -> float:
        """The part of a run's spend the local provider priced as the cloud and charged nothing for."""
        return self.spent(run, shadow=True)

    def report(self, episode: int | None = None) -> LedgerReport:
        """Spend by provider, stage, episode, shot and day (UTC); pending and unknown requests; billed failures."""
        rows = self.rows("episode = ?", (episode,)) if episode is not None else self.rows()
        report = LedgerReport(episode=episode, requests=len(rows))
        for row in rows:
            cost = row.spent_usd
            if row.share:  # a share of a pod's row: where the GPU time went, not money of its own
                for groups, name in ((report.by_stage, row.stage or "none"), (report.by_shot, _shot_label(row))):
                    spend = groups.setdefault(name, GroupSpend())
                    spend.requests += 1
                    spend.spent_usd = round(spend.spent_usd + cost, 6)
                continue
            day = time.strftime("%Y-%m-%d", time.gmtime(row.submitted_at))
            episode_key = "none" if row.episode is None else str(row.episode)
            for groups, name in ((report.by_provider, row.provider), (report.by_stage, row.stage or "none"),
                                 (report.by_episode, episode_key), (report.by_day, day),
                                 (report.by_shot, _shot_label(row))):
                spend = groups.setdefault(name, GroupSpend())
                spend.requests += 1
                spend.spent_usd = round(spend.spent_usd + cost, 6)
            report.spent_usd = round(report.spent_usd + cost, 6)
            if row.status != "cancelled":
                report.estimated_usd = round(report.estimated_usd + row.price_usd, 6)
            if row.billed_usd is not None:
                report.billed_usd = round(report.billed_usd + row.billed_usd, 6)
            if row.shadow:
                report.shadow_usd = round(report.shadow_usd + cost, 6)
            else:
                report.charged_usd = round(report.charged_usd + cost, 6)
            request = LedgerRequest(**{name: getattr(row, name) for name in LedgerRequest.model_fields})
            if row.status in ("pending", "submitting"):
                report.pending.append(request)
            elif row.status == "unknown":
                report.unknown.append(request)
            elif row.status == "failed" and row.cost_usd > 0:
                report.billed_failures.append(request)
        return report

    def spent(self, run: str | None = None, *, shadow: bool | None = None) -> float:
        """What the project (or one run, with the runs it is part of) has spent: settled costs, the rest at their
        price; only the charged rows (`shadow=False`) or only the shadow ones (`True`), else all."""
        conditions, args = ["share = 0"], ()
        if run is not None:
            condition, args = run_filter(run)
            conditions.append(condition)
        if shadow is not None:
            conditions.append(f"shadow = {int(shadow)}")
        row = self.db.row(f"SELECT SUM({SETTLED_COST}) AS total FROM requests WHERE {' AND '.join(conditions)}", args)
        return round(float(row["total"] or 0.0), 6) if row else 0.0


class Sending:
    """A request on its way out: `accepted` once the service has given it an id."""

    def __init__(self, ticket: LedgerTicket, endpoint: str, provisional: str) -> None:
        self.ticket, self.endpoint, self.provisional = ticket, endpoint, provisional
        self.request_id: str | None = None

    def accepted(self, request_id: str) -> None:
        """The service accepted the request as `request_id`: it is pending until settled."""
        self.request_id = request_id
        with self.ticket.ledger.db.write(durable=not self.ticket.charge.shadow) as sql:
            sql.execute(
                "UPDATE requests SET status = 'pending', request_id = ? "
                "WHERE cache_key = ? AND endpoint = ? AND request_id = ? AND status = 'submitting'",
                (request_id, self.ticket.key, self.endpoint, self.provisional),
            )


class LedgerTicket:
    """One provider call's rows in the ledger, written by the rules above whatever the provider."""

    def __init__(self, ledger: Ledger, key: str, provider: str, charge: Charge, *, deferred: bool = False) -> None:
        self.ledger, self.key, self.provider, self.charge = ledger, key, provider, charge
        # Deferred: a completion waits to be written in the transaction that indexes its output (`commit`), so a crash
        # between the two leaves the request pending (polled by the next run) rather than paid with nothing to show.
        self.deferred = deferred
        self._completion: tuple[str, str, float, float | None, float] | None = None

    def _write(self) -> Any:
        return self.ledger.db.write(durable=not self.charge.shadow)

    def _refuse_if_stopping(self) -> None:
        if is_stopping(self.charge):
            raise RunStopped(f"{self.provider}: the run is being stopped; nothing more is sent", provider=self.provider)

    def resume(self, endpoint: str, *, pollable: bool = True) -> str | None:
        """The id of this key's request the service accepted and has not settled: poll it, do not submit.

        A request whose sending was cut off becomes `unknown`, and so does an open one the service cannot be asked
        about (`pollable=False`: a synchronous call). A resumed request is charged to the run that resumes it; its
        budget reservation is no longer needed.
        """
        charge = self.charge
        self._refuse_if_stopping()
        with self._write() as sql:
            open_rows = sql.execute(
                "SELECT id, request_id, status FROM requests WHERE cache_key = ? AND endpoint = ? "
                "AND status IN ('submitting', 'pending') ORDER BY id DESC",
                (self.key, endpoint),
            ).fetchall()
            resumed = None
            for row in open_rows:
                if row["status"] == "pending" and pollable:
                    resumed = resumed or str(row["request_id"])
                    continue
                detail = CUT_OFF if row["status"] == "submitting" else NOT_POLLABLE
                sql.execute("UPDATE requests SET status = 'unknown', detail = ?, settled_at = ? WHERE id = ?",
                            (detail, time.time(), row["id"]))
            if resumed is not None:
                sql.execute(
                    "UPDATE requests SET run = COALESCE(?, run), parent_run = COALESCE(?, parent_run), "
                    "stage = COALESCE(?, stage), episode = COALESCE(?, episode), shot = COALESCE(?, shot) "
                    "WHERE cache_key = ? AND request_id = ? AND status = 'pending'",
                    (charge.run, charge.parent_run, charge.stage, charge.episode, charge.shot, self.key, resumed),
                )
                _release(sql, charge.reservation)
        return resumed

    def submitted(self, endpoint: str, request_id: str) -> None:
        """Record a request the service has already accepted as `request_id` (pending), in one write."""
        with self._write() as sql:
            self._open_row(sql, endpoint, request_id, "pending")

    def _open_row(self, sql: Sql, endpoint: str, request_id: str, status: Status) -> None:
        """Insert the request's row; the call's budget reservation becomes it."""
        charge = self.charge
        sql.execute(
            "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, shadow, run, "
            "parent_run, stage, episode, shot, submitted_at, share) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.key, self.provider, endpoint, request_id, status, charge.price_usd, int(charge.shadow), charge.run,
             charge.parent_run, charge.stage, charge.episode, charge.shot, time.time(), int(charge.share)),
        )
        _release(sql, charge.reservation)

    @contextmanager
    def sending(self, endpoint: str) -> Iterator[Sending]:
        """Write the row as `submitting` before the request leaves; the block sends it and calls `accepted`.

        If the block raises before `accepted`: a ProviderError other than OutcomeUnknown means the service answered
        (a refusal, a rate limit: nothing billed) or the request never left, and the row is removed; anything else
        (OutcomeUnknown: no answer after sending; an unexpected error) leaves it `unknown`, at its price.
        """
        self._refuse_if_stopping()
        provisional = f"submitting-{uuid.uuid4().hex}"
        with self._write() as sql:
            self._open_row(sql, endpoint, provisional, "submitting")
        sent = Sending(self, endpoint, provisional)
        try:
            yield sent
        except BaseException as error:
            if sent.request_id is None:
                answered = isinstance(error, ProviderError) and not isinstance(error, OutcomeUnknown)
                with self._write() as sql:
                    if answered:
                        sql.execute("DELETE FROM requests WHERE cache_key = ? AND request_id = ?", (self.key, provisional))
                    else:
                        detail = f"unknown: {error}" if isinstance(error, OutcomeUnknown) else (
                            f"unknown: {type(error).__name__}: {error}")
                        sql.execute(
                            "UPDATE requests SET status = 'unknown', detail = ?, settled_at = ? "
                            "WHERE cache_key = ? AND request_id = ?",
                            (detail[:500], time.time(), self.key, provisional),
                        )
            raise

    def _settle_in(self, sql: Sql, status: Status, endpoint: str, request_id: str, cost_usd: float,
                   detail: str, billed_usd: float | None = None, at: float | None = None) -> None:
        """Settle in `sql`'s transaction; `at` is when the provider answered (default: now)."""
        if is_stopping(self.charge):  # its stopper settles it
            return
        now = time.time() if at is None else at
        billed = None if billed_usd is None else round(billed_usd, 6)
        updated = sql.execute(
            "UPDATE requests SET status = ?, cost_usd = ?, billed_usd = ?, detail = ?, settled_at = ? "
            "WHERE cache_key = ? AND endpoint = ? AND request_id = ? AND status IN ('submitting', 'pending')",
            (status, round(cost_usd, 6), billed, detail, now, self.key, endpoint, request_id),
        ).rowcount
        if not updated:
            # Settled without an open row (a request the service answered at once): record it whole.
            charge = self.charge
            sql.execute(
                "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, cost_usd, billed_usd, "
                "shadow, run, parent_run, stage, episode, shot, detail, submitted_at, settled_at, share) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.key, self.provider, endpoint, request_id, status, charge.price_usd, round(cost_usd, 6), billed,
                 int(charge.shadow), charge.run, charge.parent_run, charge.stage, charge.episode, charge.shot, detail,
                 now, now, int(charge.share)),
            )
        _release(sql, self.charge.reservation)

    def _settle(self, status: Status, endpoint: str, request_id: str, cost_usd: float, detail: str,
                billed_usd: float | None = None) -> None:
        with self._write() as sql:
            self._settle_in(sql, status, endpoint, request_id, cost_usd, detail, billed_usd)

    def completed(self, endpoint: str, request_id: str, cost_usd: float, billed_usd: float | None = None) -> None:
        """The request finished with a usable output; `billed_usd` is what the service said it billed, if it did
        (then it is the cost)."""
        cost = cost_usd if billed_usd is None else billed_usd
        if self.deferred:
            self._completion = (endpoint, request_id, cost, billed_usd, time.time())
            return
        self._settle("completed", endpoint, request_id, cost, "", billed_usd)

    def commit(self, sql: Sql) -> None:
        """Write a deferred completion in the caller's transaction (the one that indexes the output)."""
        if self._completion is not None:
            endpoint, request_id, cost_usd, billed_usd, at = self._completion
            self._settle_in(sql, "completed", endpoint, request_id, cost_usd, "", billed_usd, at)
            self._completion = None

    def flush(self) -> None:
        """Write a deferred completion on its own: the output will not be indexed (it failed a check after)."""
        if self._completion is not None:
            with self._write() as sql:
                self.commit(sql)

    def failed(self, endpoint: str, request_id: str, detail: str, cost_usd: float = 0.0) -> None:
        """The request ended in an error; `cost_usd` is what the provider bills for it anyway."""
        self._settle("failed", endpoint, request_id, cost_usd, detail)

    def unknown(self, endpoint: str, request_id: str, detail: str) -> None:
        """No answer will say how the request ended (the service no longer knows it): counted at its price."""
        self._settle("unknown", endpoint, request_id, self.charge.price_usd, f"unknown: {detail}")

    def cancelled(self, endpoint: str, request_id: str, detail: str) -> None:
        """The provider confirmed the request was removed before it ran: nothing billed."""
        self._settle("cancelled", endpoint, request_id, 0.0, detail)

    def cancel_requested(self, endpoint: str, request_id: str, detail: str) -> None:
        """A cancel was asked for but not confirmed: the request stays pending (it may still run and bill)."""
        if is_stopping(self.charge):  # its stopper settles it
            return
        with self._write() as sql:
            sql.execute(
                "UPDATE requests SET detail = ? WHERE cache_key = ? AND endpoint = ? AND request_id = ? AND status = 'pending'",
                (detail, self.key, endpoint, request_id),
            )


def _release(sql: Sql, reservation: int | None) -> None:
    if reservation is not None:
        sql.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
