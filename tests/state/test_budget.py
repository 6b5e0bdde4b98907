"""Budgets across processes: a paid call reserves its price under the project's and the run's caps first."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from reelflow.state.budget import BudgetExceeded, Budgets, Caps
from reelflow.state.db import FILE_NAME, Database, database
from reelflow.state.ledger import Charge, Ledger

# Children are forked, so they start at once with reelflow already imported (a fresh interpreter spends about two
# seconds importing prefect). Each opens its own Database: a connection is never carried across a fork.
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / ".reelflow"


def held(db: Database) -> list[tuple[str, float, int]]:
    """The open reservations: (run, price, pid)."""
    rows = db.rows("SELECT run, price_usd, pid FROM reservations ORDER BY id")
    return [(row["run"], row["price_usd"], row["pid"]) for row in rows]


def test_no_cap_reserves_nothing(state_dir: Path) -> None:
    budgets = Budgets(database(state_dir))
    assert budgets.reserve("r1", 100.0, Caps()) is None
    assert held(budgets.db) == [] and budgets.spend("r1", Caps()).remaining_usd is None


def test_the_project_cap_refuses_the_call_that_would_pass_it(state_dir: Path) -> None:
    db = database(state_dir)
    Ledger(db).ticket("k0", "fal", Charge(run="earlier", price_usd=0.5)).completed("e", "req-0", 0.5)
    budgets, caps = Budgets(db), Caps(project_usd=1.0)
    assert budgets.reserve("r1", 0.25, caps) is not None
    assert budgets.reserve("r2", 0.25, caps) is not None  # another run: the project's cap counts every run
    with pytest.raises(BudgetExceeded) as caught:
        budgets.reserve("r1", 0.01, caps)
    message = str(caught.value)
    assert message.startswith("budget: the project's budget (budget_usd) $1.00 reached: $1.000 spent") and "\n" not in message
    assert "not submitted" in message
    assert held(db) == [("r1", 0.25, os.getpid()), ("r2", 0.25, os.getpid())]  # the refused call holds nothing
    assert budgets.spend("r1", caps).remaining_usd == 0.0 and budgets.spend("r1", caps).project_usd == 1.0


def test_the_run_cap_refuses_only_its_own_run(state_dir: Path) -> None:
    db = database(state_dir)
    ledger = Ledger(db)
    ledger.ticket("k0", "fal", Charge(run="r1", price_usd=0.2)).submitted("e", "pending-0")  # pending: at its price
    budgets, caps = Budgets(db), Caps(project_usd=10.0, run_usd=0.5)
    assert budgets.reserve("r1", 0.3, caps) is not None
    with pytest.raises(BudgetExceeded, match=r"^budget: this run's cap \(--max-cost\) \$0\.50 reached: \$0\.500 spent, "
                                              r"the next call needs \$0\.010; not submitted$"):
        budgets.reserve("r1", 0.01, caps)
    assert budgets.reserve("r2", 0.5, caps) is not None
    spend = budgets.spend("r1", caps)
    assert (spend.run_usd, spend.project_usd, spend.remaining_usd) == (0.5, 1.0, 0.0)
    ledger.ticket("k0", "fal", Charge(run="r1")).completed("e", "pending-0", 0.1)  # billed less than its price
    assert budgets.reserve("r1", 0.1, caps) is not None


def test_a_reservation_becomes_the_ledger_row_or_is_released(state_dir: Path) -> None:
    db = database(state_dir)
    budgets, caps = Budgets(db), Caps(run_usd=1.0)
    accepted = budgets.reserve("r1", 0.6, caps)
    Ledger(db).ticket("k1", "fal", Charge(run="r1", price_usd=0.6, reservation=accepted)).submitted("e", "req-1")
    assert held(db) == [] and budgets.spend("r1", caps).run_usd == 0.6  # now counted as the pending row
    refused_at_submit = budgets.reserve("r1", 0.4, caps)
    assert held(db) == [("r1", 0.4, os.getpid())]
    budgets.release(refused_at_submit)
    budgets.release(refused_at_submit)  # releasing twice (or after the row took it over) is a no-op
    assert held(db) == [] and budgets.spend("r1", caps).remaining_usd == 0.4


def test_a_released_reservation_never_takes_another_calls_hold_with_it(state_dir: Path) -> None:
    db = database(state_dir)
    budgets, caps = Budgets(db), Caps(project_usd=1.0)
    first = budgets.reserve("r1", 0.3, caps)
    Ledger(db).ticket("k1", "fal", Charge(run="r1", price_usd=0.3, reservation=first)).submitted("e", "req-1")
    second = budgets.reserve("r2", 0.6, caps)  # another call, while the first is still in flight
    assert second != first, "an id is never used again"
    budgets.release(first)  # the first call ends: its (already converted) reservation is released
    assert held(db) == [("r2", 0.6, os.getpid())], "the second call's hold stands"
    with pytest.raises(BudgetExceeded):
        budgets.reserve("r3", 0.2, caps)  # 0.3 pending + 0.6 held + 0.2 > 1.0


def _leave() -> None:
    """End a forked child at once: the exit handlers it inherited drain the parent's Prefect services (a process that
    ran a flow), which fails in the child and would make its exit code 1."""
    os._exit(0)


def _reserve_and_die(path: str, price: float) -> None:
    Budgets(Database(Path(path))).reserve("dead-run", price, Caps(project_usd=1.0))
    _leave()


def test_a_reservation_left_by_a_dead_process_is_dropped(state_dir: Path) -> None:
    path = state_dir / FILE_NAME
    db = Database(path)
    child = FORK.Process(target=_reserve_and_die, args=(str(path), 1.0))
    child.start()
    child.join()  # reaped: its pid no longer exists
    assert child.exitcode == 0 and held(db) == [("dead-run", 1.0, child.pid)]
    budgets = Budgets(db)
    assert budgets.reserve("r1", 1.0, Caps(project_usd=1.0)) is not None  # the dead one's hold is gone
    assert held(db) == [("r1", 1.0, os.getpid())]
    with pytest.raises(BudgetExceeded):  # a live process's reservation is kept
        budgets.reserve("r1", 0.5, Caps(project_usd=1.0))


def _reserve_many(path: str, attempts: int, start: Event, finish: Event, results: multiprocessing.Queue) -> None:
    budgets = Budgets(Database(Path(path)))
    start.wait(10)
    won = 0
    for _ in range(attempts):
        try:
            budgets.reserve(f"run-{os.getpid()}", 1.0, Caps(project_usd=15.0))
            won += 1
        except BudgetExceeded:
            pass
    results.put(won)
    finish.wait(10)  # stay alive while the parent counts: a dead process's reservations are dropped
    _leave()


def test_two_processes_reserving_at_once_never_pass_the_cap_together(state_dir: Path) -> None:
    path = state_dir / FILE_NAME
    db = Database(path)
    start, finish, results = FORK.Event(), FORK.Event(), FORK.Queue()
    children = [FORK.Process(target=_reserve_many, args=(str(path), 20, start, finish, results)) for _ in range(2)]
    for child in children:
        child.start()
    try:
        start.set()
        won = [results.get(timeout=10) for _ in children]
        assert sum(won) == 15, won
        reservations = held(db)
        assert len(reservations) == 15 and sum(price for _, price, _ in reservations) == 15.0
        assert {pid for _, _, pid in reservations} <= {child.pid for child in children}
    finally:
        finish.set()
        for child in children:
            child.join(10)
    assert [child.exitcode for child in children] == [0, 0]
    assert Budgets(db).reserve("after", 15.0, Caps(project_usd=15.0)) is not None  # both exited: their holds are dropped
