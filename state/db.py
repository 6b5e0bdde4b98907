"""The project's state database, `.reelflow/state.db`: one SQLite file shared by every process of a studio.

WAL mode (readers never wait on the writer), a busy timeout (writers queue instead of failing) and one
transaction per write, so a process killed mid-write leaves the last committed state. It holds the ledger of
paid requests, the cache index, recorded rejections, budget reservations and the files reelflow wrote among the
project's inputs; content blobs stay files, addressed by sha256. The SQL is portable (no SQLite-only types or
upserts beyond ON CONFLICT), so a Postgres URL can be added later. The schema is versioned:
`MIGRATIONS[n]` takes version n to n + 1.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from reelflow.schemas.errors import ReelflowError
from reelflow.state.legacy import import_legacy

FILE_NAME = "state.db"
T = TypeVar("T")
BUSY_TIMEOUT_S = 60.0

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            cache_key TEXT NOT NULL,
            provider TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            request_id TEXT NOT NULL,
            status TEXT NOT NULL,
            price_usd REAL NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            shadow INTEGER NOT NULL DEFAULT 0,
            run TEXT,
            stage TEXT,
            episode INTEGER,
            shot INTEGER,
            detail TEXT NOT NULL DEFAULT '',
            submitted_at REAL NOT NULL,
            settled_at REAL
        )""",
        "CREATE INDEX requests_by_key ON requests (cache_key, status)",
        "CREATE INDEX requests_by_run ON requests (run)",
        "CREATE INDEX requests_by_request_id ON requests (request_id)",
        "CREATE TABLE cache (cache_key TEXT PRIMARY KEY, record TEXT NOT NULL, created_at REAL NOT NULL)",
        "CREATE TABLE rejections (cache_key TEXT PRIMARY KEY, provider TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL)",
        """CREATE TABLE reservations (
            id INTEGER PRIMARY KEY,
            run TEXT NOT NULL,
            price_usd REAL NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            at REAL NOT NULL
        )""",
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ],
    [
        # What the service said it billed (None: it did not say), the run a subflow's calls count toward, and
        # billed failures a person allowed to be paid again (`reelflow ledger --forget-billed-failures`).
        "ALTER TABLE requests ADD COLUMN billed_usd REAL",
        "ALTER TABLE requests ADD COLUMN parent_run TEXT",
        "ALTER TABLE requests ADD COLUMN forgiven INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE reservations ADD COLUMN parent_run TEXT",
        "CREATE INDEX requests_by_parent_run ON requests (parent_run)",
    ],
    [
        # A graph run on a rented pod: its GPU seconds' share of the pod's row, shown by shot and stage, never added
        # to totals (the pod's own row is the money). Pods this project started, and the runs using each.
        "ALTER TABLE requests ADD COLUMN share INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE pods (
            name TEXT PRIMARY KEY,
            id TEXT,
            project TEXT NOT NULL,
            gpu TEXT NOT NULL,
            cost_per_hr REAL NOT NULL,
            idle_stop_s REAL NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            lease_until REAL NOT NULL,
            stopped_at REAL,
            run TEXT,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE TABLE pod_users (pod TEXT NOT NULL, user TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (pod, user))",
        # A reservation's id is never used again: SQLite reuses the largest rowid once its row is deleted (the
        # reservation became its ledger row), and the call that held it releases that id when it ends, which then
        # dropped another call's reservation and let two calls past the cap together.
        """CREATE TABLE reservations_once (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run TEXT NOT NULL,
            price_usd REAL NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            at REAL NOT NULL,
            parent_run TEXT
        )""",
        "INSERT INTO reservations_once (id, run, price_usd, host, pid, at, parent_run) "
        "SELECT id, run, price_usd, host, pid, at, parent_run FROM reservations",
        "DROP TABLE reservations",
        "ALTER TABLE reservations_once RENAME TO reservations",
    ],
    [
        # Files reelflow wrote among the project's inputs (candidates, weights, the LoRA registry under visual/), by
        # their path in the project, with the sha256 last written: a checkout counts them as outputs while they still
        # hold it (state/generated.py).
        "CREATE TABLE generated (path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, at REAL NOT NULL)",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


def _patiently(step: Callable[[], T]) -> T:
    """`step`, tried again while SQLite answers "locked" or "busy" without waiting (a stale WAL snapshot, a
    checkpoint or recovery in another process), for up to the busy timeout."""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_S, 0.005
    while True:
        try:
            return step()
        except sqlite3.OperationalError as error:
            text = str(error).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(0.1, pause * 2)


class Database:
    """A connection per thread to one state database; `write()` is one immediate transaction."""

    def __init__(self, path: Path, schema: str | None = None) -> None:
        self.path, self.schema = path, schema
        self._local = threading.local()
        # This process's writers queue here and are woken the moment the writer before them commits; SQLite's busy
        # handler (which still serves other processes) sleeps up to 100 ms between tries.
        self._writer = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        # WAL stays set in the file; switching again would take an exclusive lock that other threads' readers refuse
        # at once ("database is locked"), busy timeout or not.
        if _patiently(lambda: connection.execute("PRAGMA journal_mode").fetchone()[0]) != "wal":
            _patiently(lambda: connection.execute("PRAGMA journal_mode = WAL"))
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    @property
    def connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    @contextmanager
    def write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock from its first statement: all of it commits, or none.

        A durable transaction is on disk when it returns, power cut or not (`synchronous=FULL`: a paid request, its
        settlement, its cache entry). Others (the local provider's shadow rows, media operations, which are free to
        make again) survive a crash of the process but may be lost with the machine's power (`NORMAL`): 4.5 ms of
        fsync each, saved hundreds of times per episode.
        """
        connection = self.connection
        level = "FULL" if durable else "NORMAL"
        with self._writer:
            if getattr(self._local, "synchronous", "FULL") != level:
                connection.execute(f"PRAGMA synchronous = {level}")
                self._local.synchronous = level
            _patiently(lambda: connection.execute("BEGIN IMMEDIATE"))
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return _patiently(lambda: self.connection.execute(sql, args).fetchall())

    def row(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        """The first row; the statement is closed at once, so no read transaction stays open behind it (a later
        write on this connection would then be refused at once, busy timeout or not)."""

        def first() -> sqlite3.Row | None:
            cursor = self.connection.execute(sql, args)
            try:
                return cursor.fetchone()
            finally:
                cursor.close()

        return _patiently(first)

    def meta(self, name: str) -> str | None:
        found = self.row("SELECT value FROM meta WHERE name = ?", (name,))
        return None if found is None else str(found["value"])

    @classmethod
    def plain(cls, path: Path, schema: str) -> Database:
        """A small database of its own (one object per path and process), made by `schema` where it is new."""
        return _plain(path.resolve(), schema)

    def _migrate(self) -> None:
        if self.schema is not None:
            with self.write() as connection:
                connection.execute(self.schema)
            return
        with self.write() as connection:
            exists = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            version = 0
            if exists:
                found = connection.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
                version = int(found["value"]) if found else 0
            if version > SCHEMA_VERSION:
                raise ReelflowError(f"{self.path}: schema version {version} is newer than this reelflow ({SCHEMA_VERSION})")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    connection.execute(statement)
            if version < SCHEMA_VERSION:
                connection.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )


def database(state_dir: Path) -> Database:
    """The state database of the project whose state folder is `state_dir` (one object per process)."""
    return _open(_resolved(state_dir) if state_dir.is_absolute() else state_dir.resolve())


@cache
def _resolved(state_dir: Path) -> Path:
    return state_dir.resolve()


@cache
def _open(state_dir: Path) -> Database:
    db = Database(state_dir / FILE_NAME)
    import_legacy(db, state_dir)
    return db


@cache
def _plain(path: Path, schema: str) -> Database:
    return Database(path, schema)
