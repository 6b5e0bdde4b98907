"""Provider concurrency across processes: never more than N calls in flight to a provider, whoever makes them.

Each provider has N slot files under the project's `.reelflow/limits/`; a call holds an exclusive `flock` on
one of them while it is in flight. The kernel releases a dead process's locks, so a crash never leaks a slot,
and a freed slot is taken within one short poll. Prefect's global concurrency limits were measured for this
(`bench/limits.py`: 12 calls of 0.2 s under a limit of 2 take 3-6 s there, 1.24 s here): a waiter sleeps the
server's Retry-After estimate (from a 2 s default occupancy, with jitter) instead of being woken when a slot
frees, one request per process asks at a time, and a SQLite-backed server's lock contention adds 2 s retries.
The slot files need no server and hold for every process that renders the project. Within one process a gate of
the same size comes first: threads past the limit sleep on it until a call of theirs ends, instead of polling the
slot files (hundreds of waiting calls would otherwise spend the CPU the render needs). The gate serves its waiters
by `priority` (lower first, then in arrival order): a render gives each shot's calls its chain rank, so the calls
that lead to the longest videos never queue behind short ones and the episode does not end waiting on them.

A cloud provider's limit is its account's: the slots are keyed by a fingerprint of the API key (never the key), so
every project on one account shares them: slot files under this machine's REELFLOW_HOME/limits, or, in shared state
(Postgres), leased rows every host takes from (state/leases.py). The local provider's slots stay the project's.
"""

from __future__ import annotations

import fcntl
import hashlib
import heapq
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from reelflow.schemas.env import reelflow_home
from reelflow.state.db import database
from reelflow.state.leases import slot

DEFAULT_LIMITS: dict[str, int] = {"local": 4, "fal": 8, "gemini": 4, "runpod": 1}
POLL_S = 0.005
MAX_POLL_S = 0.05
# where each cloud provider's API key is read (the providers' own modules read it the same way): its account
ACCOUNT_KEYS: dict[str, tuple[str, ...]] = {"fal": ("FAL_KEY",), "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                                            "runpod": ("RUNPOD_API_KEY",)}


def account(provider: str) -> str | None:
    """`provider:<16 hex of its API key's sha256>`: the account whose limit a call counts against; None for a
    provider without one (local)."""
    for name in ACCOUNT_KEYS.get(provider, ()):
        key = os.environ.get(name, "").strip()
        if key:
            return f"{provider}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return None


def limit_for(provider: str, limits: dict[str, int]) -> int:
    return limits.get(provider, DEFAULT_LIMITS.get(provider, 4))


priority: ContextVar[int] = ContextVar("call_priority", default=0)  # lower is served first


class Gate:
    """At most `limit` holders at once in this process; a freed place goes straight to the waiter with the lowest
    priority (then the earliest), woken alone: hundreds of waiters cost nothing while they wait."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._free = limit
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._arrival = itertools.count()

    @contextmanager
    def held(self, rank: int) -> Iterator[None]:
        self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, rank: int) -> None:
        with self._lock:
            if self._free:
                self._free -= 1
                return
            entry = (rank, next(self._arrival), threading.Event())
            heapq.heappush(self._waiting, entry)
        try:
            entry[2].wait()
        except BaseException:
            with self._lock:
                handed = entry[2].is_set()
                if not handed:
                    self._waiting.remove(entry)
                    heapq.heapify(self._waiting)
            if handed:
                self._release()  # the place came with the interruption: pass it on
            raise

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._free += 1


_gates: dict[tuple[str, str, int], Gate] = {}
_gates_guard = threading.Lock()


def _gate(folder: Path, provider: str, limit: int) -> Gate:
    """This process's gate for the provider's slots in one project."""
    with _gates_guard:
        return _gates.setdefault((str(folder.resolve()), provider, limit), Gate(limit))


def _try_take(folder: Path, provider: str, limit: int) -> int | None:
    """An open, locked slot file descriptor, or None when all `limit` slots are held."""
    for index in range(limit):
        fd = os.open(folder / f"{provider}.{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextmanager
def provider_slot(state_dir: Path, provider: str, limits: dict[str, int]) -> Iterator[None]:
    """Hold one of the provider's slots (its account's, where it has one) while a call is in flight."""
    owner = account(provider)
    limit = limit_for(provider, limits)
    folder = state_dir / "limits" if owner is None else reelflow_home() / "limits" / owner.replace(":", "-")
    folder.mkdir(parents=True, exist_ok=True)
    if owner is not None and (db := database(state_dir)).engine == "postgres":
        with _gate(folder, provider, limit).held(priority.get()), slot(db, owner, limit):
            yield
        return
    with _gate(folder, provider, limit).held(priority.get()):
        wait = POLL_S
        while (fd := _try_take(folder, provider, limit)) is None:
            time.sleep(wait)
            wait = min(MAX_POLL_S, wait * 2)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
