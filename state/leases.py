"""Leases: what one process holds in shared state (a budget reservation, a cache key's lock, a provider slot) lasts
while that process lives, on any host.

A process is one `holder` (a random id). Each leased row carries its holder and `lease_until`, on the database's own
clock so hosts' clocks never disagree about it; a keeper thread renews every row of this process a third of a lease
(`REELFLOW_LEASE_S`, 60 s) before it ends. A process that dies, or a host that goes dark, stops renewing: its rows
expire within one lease, and the next taker removes them. Waiting for a held lock or slot polls the database, from
5 ms up to 250 ms between tries; a call of 30-300 s waits at most a quarter of a second past the moment it could start
(`bench/limits.py` measures it).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from reelflow.state.db import SHARED_SCHEMA, StateDatabase, lease_s

HOLDER = uuid.uuid4().hex  # this process (a forked child is a holder of its own: see _forked)
FIRST_POLL_S, MAX_POLL_S = 0.005, 0.25
SLOTS = f"{SHARED_SCHEMA}.slots"
# (table, key column) of every leased table a keeper renews
LEASED = (("reservations", "id"), ("key_locks", "cache_key"))


class _Keeper:
    """Renews this process's leases in every database it holds some in, from one daemon thread."""

    def __init__(self) -> None:
        self._dbs: weakref.WeakSet[StateDatabase] = weakref.WeakSet()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, db: StateDatabase) -> None:
        with self._guard:
            self._dbs.add(db)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="reelflow-leases", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(lease_s() / 3)
            with self._guard:
                dbs = list(self._dbs)
            for db in dbs:
                try:
                    renew(db)
                except Exception:  # noqa: BLE001 - an unreachable database: try again next round; the lease says when it ends
                    continue


_keeper = _Keeper()


def _forked() -> None:
    """A forked child holds nothing of its parent's, and renews nothing until it takes a lease itself."""
    global HOLDER, _keeper
    HOLDER, _keeper = uuid.uuid4().hex, _Keeper()


os.register_at_fork(after_in_child=_forked)


def renew(db: StateDatabase) -> None:
    """Push every lease this process holds in `db` one lease ahead."""
    with db.write(durable=False, serial=False) as sql:
        for table, _ in LEASED:
            sql.execute(f"UPDATE {table} SET lease_until = {db.clock} + ? WHERE holder = ?", (lease_s(), HOLDER))
        if db.engine == "postgres":
            sql.execute(f"UPDATE {SLOTS} SET lease_until = {db.clock} + ? WHERE holder = ?", (lease_s(), HOLDER))


def leased(db: StateDatabase) -> tuple[str, float]:
    """This process's holder id and a lease's length, with `db` under the keeper's watch."""
    _keeper.watch(db)
    return HOLDER, lease_s()


def _polling(take: Callable[[], bool]) -> None:
    """Call `take` until it says it took; sleeping longer between tries up to MAX_POLL_S."""
    pause = FIRST_POLL_S
    while not take():
        time.sleep(pause)
        pause = min(MAX_POLL_S, pause * 2)


@contextmanager
def key_lock(db: StateDatabase, key: str) -> Iterator[None]:
    """Hold `key` against every process on every host sharing `db`; a dead holder's lock expires with its lease."""
    holder, lease = leased(db)

    def take() -> bool:
        with db.write(durable=False, serial=False) as sql:
            sql.execute(f"DELETE FROM key_locks WHERE cache_key = ? AND lease_until < {db.clock}", (key,))
            return bool(sql.execute(
                f"INSERT INTO key_locks (cache_key, holder, lease_until) VALUES (?, ?, {db.clock} + ?) "
                "ON CONFLICT (cache_key) DO NOTHING", (key, holder, lease)).rowcount)

    _polling(take)
    try:
        yield
    finally:
        with db.write(durable=False, serial=False) as sql:
            sql.execute("DELETE FROM key_locks WHERE cache_key = ? AND holder = ?", (key, holder))


@contextmanager
def slot(db: StateDatabase, account: str, limit: int) -> Iterator[None]:
    """Hold one of `limit` slots of a provider account, shared by every project and host in the database."""
    holder, lease = leased(db)
    taken: list[int] = []

    def take() -> bool:
        with db.write(durable=False, serial=False) as sql:  # an account's slots are not the project's to serialise
            for index in range(limit):
                if sql.execute(
                    f"INSERT INTO {SLOTS} (account, idx, holder, lease_until) VALUES (?, ?, ?, {db.clock} + ?) "
                    "ON CONFLICT (account, idx) DO UPDATE SET holder = excluded.holder, "
                    f"lease_until = excluded.lease_until WHERE {SLOTS}.lease_until < {db.clock}",
                    (account, index, holder, lease),
                ).rowcount:
                    taken.append(index)
                    return True
        return False

    _polling(take)
    try:
        yield
    finally:
        with db.write(durable=False, serial=False) as sql:
            sql.execute(f"DELETE FROM {SLOTS} WHERE account = ? AND idx = ? AND holder = ?", (account, taken[0], holder))
