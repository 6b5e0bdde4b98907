"""Project state in Postgres: the ledger's rules, budgets, cache-key locks and provider slots hold across processes
and hosts (each "host" here is a connection pool of its own), leases of the dead expire, and the dailies one
checkout records are what another reads."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.budget import BudgetExceeded, Budgets, Caps
from reelflow.state.dailies import apply_decisions, changing_dailies, now, read_dailies
from reelflow.state.db import SCHEMA_VERSION, PostgresDatabase, database, schema_name
from reelflow.state.leases import key_lock, renew, slot
from reelflow.state.ledger import Charge, Ledger
from reelflow.state.pods import PodBook

from conftest import run_cli
from postgres import free_port
from projects import PROJECT, storyboard, write_project

FORK = multiprocessing.get_context("fork")


def host(url: str, code: str = "TST") -> PostgresDatabase:
    """The project's state as another host opens it: a pool of its own."""
    return PostgresDatabase(url, schema_name(code))


def test_the_ledger_keeps_its_rules_in_postgres(state_url: str) -> None:
    ledger = Ledger(host(state_url))
    paid = ledger.ticket("key-1", "fal", Charge(run="r1", price_usd=0.5, episode=1, shot=2))
    with paid.sending("endpoint") as sending:
        sending.accepted("req-1")
    assert ledger.pending("key-1") == "req-1"
    paid.completed("endpoint", "req-1", 0.4)
    lost = ledger.ticket("key-2", "fal", Charge(run="r1", price_usd=0.25, episode=1, shot=3))
    with pytest.raises(TimeoutError), lost.sending("endpoint"):
        raise TimeoutError("no answer after sending")
    report = ledger.report()
    assert report.spent_usd == 0.65  # what it cost, and the lost answer at its price
    assert [row.status for row in report.unknown] == ["unknown"]
    assert ledger.run_spend("r1") == {2: (1, 0.4), 3: (1, 0.25)}
    assert ledger.billed_failures("key-2") == 1
    other = Ledger(host(state_url))  # another host reads the same rows, the types intact
    assert [(row.price_usd, row.spent_usd, row.shadow) for row in other.rows()] == [(0.5, 0.4, False), (0.25, 0.25, False)]


def test_one_database_holds_many_projects_each_in_its_schema(state_url: str) -> None:
    first, second = host(state_url, "AAA"), host(state_url, "BBB")
    Ledger(first).ticket("k", "fal", Charge(price_usd=1.0)).submitted("e", "r")
    assert len(Ledger(first).rows()) == 1 and Ledger(second).rows() == []
    assert host(state_url, "AAA").meta("schema_version") == str(SCHEMA_VERSION)  # migrated once, opened again


def test_pods_price_their_time_in_postgres(state_url: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    book = PodBook(root / ".reelflow", tmp_path / "home", root)
    name = book.next_name("TST")
    book.creating(name, "RTX 4090", 0.72, 300, run="r", parent_run=None, reservation=None)
    book.created(name, "pod-1", None)
    book.use(name, "run-a")
    assert book.leave(name, "run-a") == 0
    record = book.terminated(name, "done", at=book.get(name).started_at + 3600)  # type: ignore[union-attr]
    assert record.status == "terminated"
    assert Ledger(database(root / ".reelflow")).rows()[0].cost_usd == 0.72


def reserve_and_die(url: str, ready: multiprocessing.synchronize.Event) -> None:
    os.environ["REELFLOW_STATE_URL"] = url
    Budgets(host(url)).reserve("dying-run", 0.8, Caps(project_usd=1.0))
    ready.set()
    time.sleep(60)


def test_a_budget_holds_across_hosts_and_a_dead_hosts_reservation_expires(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELFLOW_LEASE_S", "2")
    ready = FORK.Event()
    child = FORK.Process(target=reserve_and_die, args=(state_url, ready))
    child.start()
    assert ready.wait(30)
    os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
    child.join()
    budgets = Budgets(host(state_url))
    with pytest.raises(BudgetExceeded):  # its reservation holds until its lease ends
        budgets.reserve("mine", 0.5, Caps(project_usd=1.0))
    deadline = time.monotonic() + 20
    while True:
        try:
            budgets.reserve("mine", 0.5, Caps(project_usd=1.0))
            break
        except BudgetExceeded:
            assert time.monotonic() < deadline, "the dead host's reservation never expired"
            time.sleep(0.2)

    # Two hosts reserving at once never pass the cap together; a live holder's reservation is renewed past its lease.
    hosts = [Budgets(host(state_url)), Budgets(host(state_url))]
    won: list[int] = []

    def take(budgets: Budgets) -> None:
        for _ in range(10):
            try:
                budgets.reserve("race", 0.05, Caps(project_usd=1.0))
                won.append(1)
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=take, args=(budgets,)) for budgets in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 10  # 0.5 held + 10 × 0.05 = the cap
    # A live holder's leases are pushed on before they end (by its keeper thread, every third of a lease).
    db = hosts[0].db
    with db.write() as sql:
        sql.execute(f"UPDATE reservations SET lease_until = {db.clock} + 0.5")
    renew(db)
    time.sleep(0.6)
    with pytest.raises(BudgetExceeded):
        hosts[0].reserve("late", 0.05, Caps(project_usd=1.0))
    assert any(thread.name == "reelflow-leases" for thread in threading.enumerate())


def test_a_cache_key_is_held_on_one_host_at_a_time_and_a_dead_lock_expires(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELFLOW_LEASE_S", "1")
    first, second = host(state_url), host(state_url)
    order: list[str] = []
    with key_lock(first, "content"):
        waiter = threading.Thread(target=lambda: key_lock(second, "content").__enter__() or order.append("second"))
        waiter.start()
        time.sleep(0.3)
        order.append("first done")
    waiter.join(5)
    assert order == ["first done", "second"]
    # The second "host" died holding it (its lease is never renewed again): the lock frees within the lease.
    with psycopg.connect(state_url, autocommit=True) as connection:
        connection.execute(f"UPDATE {schema_name('TST')}.key_locks SET holder = 'dead-host'")
    started = time.monotonic()
    with key_lock(first, "content"):
        assert time.monotonic() - started < 3


def test_a_provider_accounts_slots_are_shared_by_every_host_and_project(state_url: str) -> None:
    dbs = [host(state_url, "AAA"), host(state_url, "BBB"), host(state_url, "AAA")]
    inside, most = 0, 0
    guard = threading.Lock()

    def call(db: PostgresDatabase) -> None:
        nonlocal inside, most
        with slot(db, "fal:0123456789abcdef", 2):
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=call, args=(dbs[i % 3],)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 2


def test_decisions_made_in_one_checkout_are_read_in_another(state_url: str, tmp_path: Path) -> None:
    board = storyboard(1, only=(3, 4))
    here, there = write_project(tmp_path / "a", board, PROJECT), write_project(tmp_path / "b", board, PROJECT)
    folder_here = load_project(here)
    with changing_dailies(folder_here, load_storyboard(folder_here, 1)) as dailies:  # a render on this host
        dailies.shot(2).rendered(1, "pass", at=now())
    apply_decisions(folder_here, load_storyboard(folder_here, 1), {2: "retake"}, by="cli", note="too dark")
    folder_there = load_project(there)
    seen = read_dailies(folder_there, load_storyboard(folder_there, 1))
    assert seen.shot(2).status == "retake" and seen.shot(2).history[-1].note == "too dark"
    assert (here / "storyboards" / "dailies_ep_001.json").is_file()  # the file is the decision's export


def test_a_state_database_out_of_reach_is_one_line_without_its_password(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("ledger", str(root), env={"REELFLOW_STATE_URL": f"postgresql://studio:s3cret@127.0.0.1:{free_port()}/db"})
    assert result.code == 1 and result.stdout == ""
    assert re.match(r"^error: state: postgresql://studio:\*\*\*@127\.0\.0\.1:\d+/db: connection failed: .+\n$", result.stderr)
    assert "s3cret" not in result.stderr
