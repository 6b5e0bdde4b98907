"""Budgets held across every process of a studio: the project's `budget_usd` and one run's `--max-cost`.

Budgets count money: settled costs, pending and unknown requests at their price, and open reservations. The local
provider's shadow cost is reported beside them and never refuses a call. A run's cap counts the run and every run
that is part of it (a render-pending run's episode subflows). A paid call reserves its price first, in one
transaction that checks both caps, so two processes can never overspend together; the reservation becomes the
call's ledger row when its request is written, and is released when the call fails before that. A reservation
is leased to the process that holds it (state/leases.py): one left by a process or host that died expires within a
lease, on every host; on a project's own SQLite file (one machine) a dead process's is dropped at once.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from reelflow.schemas.errors import ReelflowError
from reelflow.state.db import Sql, StateDatabase
from reelflow.state.leases import leased
from reelflow.state.ledger import Ledger, run_filter


class BudgetExceeded(ReelflowError):
    """A paid call would take the project or the run past its cap; nothing was submitted."""


@dataclass(frozen=True)
class Caps:
    """The project's total budget and one run's cap (None: no cap)."""

    project_usd: float | None = None
    run_usd: float | None = None


@dataclass(frozen=True)
class Spend:
    """Spent in this run, spent in the project, and what remains under the tighter cap (None: no cap)."""

    run_usd: float
    project_usd: float
    remaining_usd: float | None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Budgets:
    """Reservations and spend in a project's state database."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db
        self.host = socket.gethostname()

    def _spent(self, run: str | None) -> float:
        """The ledger's charged spend (of the project, or one run with its subflows) plus the reservations held."""
        live = f"(lease_until IS NULL OR lease_until >= {self.db.clock})"  # an expired lease holds nothing
        where, args = f"WHERE {live}", ()
        if run is not None:
            condition, args = run_filter(run)
            where = f"{where} AND {condition}"
        held = self.db.row(f"SELECT SUM(price_usd) AS total FROM reservations {where}", args)
        return round(Ledger(self.db).spent(run, shadow=False) + float(held["total"] or 0.0), 6)  # type: ignore[index]

    def _drop_dead(self, sql: Sql) -> None:
        """Drop the reservations whose lease ran out; on one machine's SQLite, also those of processes gone."""
        sql.execute(f"DELETE FROM reservations WHERE lease_until < {self.db.clock}")
        if self.db.engine != "sqlite":
            return  # another host may share this host's name, and its processes are not ours to look at
        for row in sql.execute("SELECT id, pid FROM reservations WHERE host = ?", (self.host,)).fetchall():
            if not _alive(int(row["pid"])):
                sql.execute("DELETE FROM reservations WHERE id = ?", (row["id"],))

    def reserve(self, run: str, price_usd: float, caps: Caps, *, parent_run: str | None = None) -> int | None:
        """Hold `price_usd` for a call of `run` (part of `parent_run`, whose cap it shares), or raise BudgetExceeded;
        returns the reservation's id (None: no cap)."""
        if caps.project_usd is None and caps.run_usd is None:
            return None
        capped = parent_run or run
        holder, lease = leased(self.db)
        with self.db.write() as sql:
            self._drop_dead(sql)
            for cap, spent, what in (
                (caps.run_usd, lambda: self._spent(capped), "this run's cap (--max-cost)"),
                (caps.project_usd, lambda: self._spent(None), "the project's budget (budget_usd)"),
            ):
                if cap is None:
                    continue
                so_far = spent()
                if so_far + price_usd > cap + 1e-9:
                    raise BudgetExceeded(
                        f"budget: {what} ${cap:.2f} reached: ${so_far:.3f} spent, "
                        f"the next call needs ${price_usd:.3f}; not submitted"
                    )
            row = sql.execute(
                "INSERT INTO reservations (run, parent_run, price_usd, host, pid, at, holder, lease_until) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, {self.db.clock} + ?) RETURNING id",
                (run, parent_run, price_usd, self.host, os.getpid(), time.time(), holder, lease),
            ).fetchone()
            return int(row["id"])

    def release(self, reservation: int | None) -> None:
        """Give back a reservation whose call was never accepted (a no-op once it became a ledger row)."""
        if reservation is None:
            return
        with self.db.write() as sql:
            sql.execute("DELETE FROM reservations WHERE id = ?", (reservation,))

    def shadow_stop(self, run: str, caps: Caps) -> str | None:
        """Where a cap would have stopped the run had the local provider's shadow cost been charged; None if nowhere."""
        ledger = Ledger(self.db)
        for cap, scope, what in ((caps.run_usd, run, "this run's cap (--max-cost)"),
                                 (caps.project_usd, None, "the project's budget (budget_usd)")):
            if cap is None:
                continue
            charged, shadow = self._spent(scope), ledger.spent(scope, shadow=True)
            if shadow and charged + shadow > cap + 1e-9:
                return (f"budget: {what} ${cap:.2f} would have stopped this run on the cloud: ${charged:.3f} charged "
                        f"+ ${shadow:.3f} shadow (local, not charged)")
        return None

    def spend(self, run: str, caps: Caps) -> Spend:
        run_spent, project_spent = self._spent(run), self._spent(None)
        left = [cap - spent for cap, spent in ((caps.run_usd, run_spent), (caps.project_usd, project_spent)) if cap is not None]
        return Spend(run_usd=run_spent, project_usd=project_spent, remaining_usd=round(max(0.0, min(left)), 6) if left else None)
