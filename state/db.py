"""The project's state database: `.reelflow/state.db` (SQLite, the default), or Postgres past one machine.

It holds the ledger of paid requests, the cache index, recorded rejections, budget reservations, pods, the files
reelflow wrote among the project's inputs, and (in Postgres) the episodes' dailies and manifests; content blobs stay
files addressed by sha256 (state/store.py, state/blobs.py). One set of SQL serves both engines: `?` placeholders,
ON CONFLICT upserts, RETURNING, no engine-only functions; the DDL below is SQLite's, and Postgres gets it with
`DOUBLE PRECISION` for REAL and identity columns for integer keys. The schema is versioned: `MIGRATIONS[n]` takes
version n to n + 1, on either engine.

SQLite: WAL mode (readers never wait on the writer), a busy timeout (writers queue instead of failing) and one
immediate transaction per write, so a process killed mid-write leaves the last committed state.

Postgres (`REELFLOW_STATE_URL` or project.json's `state_url`): each project is a schema of its own,
`reelflow_<code>`, so one database holds many projects and every query reads as it does on SQLite. Every write
transaction of a project first takes the project's transaction-level advisory lock: writes of one project are
serialised as SQLite's are (a budget check and its reservation stay one step on every host), and other projects
never wait on them. A connection pool per process (psycopg_pool) serves the threads of a render.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from reelflow.schemas.env import env_number, project_setting, state_url
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
        'CREATE TABLE pod_users (pod TEXT NOT NULL, "user" TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (pod, "user"))',
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
    [
        # Leases: a reservation, a cache key's lock and a provider slot belong to one process (`holder`) and last
        # while it renews them (state/leases.py); a dead host's expire on every other host.
        "ALTER TABLE reservations ADD COLUMN holder TEXT",
        "ALTER TABLE reservations ADD COLUMN lease_until REAL",
        "CREATE TABLE key_locks (cache_key TEXT PRIMARY KEY, holder TEXT NOT NULL, lease_until REAL NOT NULL)",
        # Shared state's documents: an episode's dailies and manifest (kind `dailies` / `manifest`), the truth every
        # host reads; the files in a checkout are their exports.
        "CREATE TABLE documents (kind TEXT NOT NULL, episode INTEGER NOT NULL, body TEXT NOT NULL, at REAL NOT NULL, "
        "PRIMARY KEY (kind, episode))",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)
LEASE_VAR = "REELFLOW_LEASE_S"
POOL_VAR = "REELFLOW_PG_POOL"
CONNECT_TIMEOUT_S = 15
SHARED_SCHEMA = "reelflow"  # what projects share in Postgres: provider slots, keyed by account
SHARED_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SHARED_SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SHARED_SCHEMA}.slots (
        account TEXT NOT NULL, idx INTEGER NOT NULL, holder TEXT NOT NULL, lease_until DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account, idx))""",
]


class Cursor(Protocol):
    """What a statement returns on either engine."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Sql(Protocol):
    """A write transaction's handle on either engine: `execute(sql, args)` with `?` placeholders."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Cursor: ...


def migrate(sql: Sql, has_meta: bool, where: str, translate: Callable[[str], str] = str) -> None:
    """Take the schema from the version its `meta` table records (0 without one) to SCHEMA_VERSION, in `sql`'s
    transaction; each statement as `translate` writes it for the engine."""
    version = 0
    if has_meta:
        found = sql.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        version = int(found["value"]) if found else 0
    if version > SCHEMA_VERSION:
        raise ReelflowError(f"{where}: schema version {version} is newer than this reelflow ({SCHEMA_VERSION})")
    for statements in MIGRATIONS[version:]:
        for statement in statements:
            sql.execute(translate(statement))
    if version < SCHEMA_VERSION:
        sql.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))


def lease_s() -> float:
    """How long a lease lasts unless renewed (a reservation, a cache key's lock, a provider slot): 60 s, or
    REELFLOW_LEASE_S. Its holder renews it every third of that while it lives."""
    return env_number(LEASE_VAR, 60.0, positive=True)


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
    """A connection per thread to one SQLite state database; `write()` is one immediate transaction."""

    engine = "sqlite"
    # the database's clock in seconds since the epoch: leases are compared with one clock on every host
    clock = "((julianday('now') - 2440587.5) * 86400.0)"

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
    def write(self, *, durable: bool = True, serial: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock from its first statement: all of it commits, or none (every
        write here is `serial`: SQLite has one writer at a time).

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
            migrate(connection, exists is not None, str(self.path))


def _pg_ddl(statement: str) -> str:
    """A migration statement written for SQLite as Postgres takes it."""
    statement = re.sub(r"\bid INTEGER PRIMARY KEY( AUTOINCREMENT)?", "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                       statement)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", statement)


def _pg_sql(statement: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return statement.replace("%", "%%").replace("?", "%s")


def _lock_id(name: str) -> int:
    """A signed 64-bit advisory lock id for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def without_password(url: str) -> str:
    """`url` with its password, if it holds one, as `***` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class _PgSql:
    """A Postgres connection speaking the SQLite dialect's placeholders."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.connection.execute(_pg_sql(sql), tuple(args))


class PostgresDatabase:
    """One project's schema in a Postgres database; the same methods as `Database`."""

    engine = "postgres"
    clock = "extract(epoch from clock_timestamp())::double precision"

    def __init__(self, url: str, schema: str) -> None:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        self.url, self.schema = url, schema
        self._local = threading.local()
        self._lock = _lock_id(f"reelflow-project:{schema}")
        size = int(env_number(POOL_VAR, 8.0, positive=True))
        self.pool = ConnectionPool(url, min_size=0, max_size=size, open=False, name=f"reelflow-{schema}",
                                   kwargs={"autocommit": True, "row_factory": dict_row,
                                           "options": f"-c search_path={schema}"})
        _opened.add(self)
        try:
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S):  # the server's own words when it is out of reach
                pass
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            self._migrate()
        except Exception as error:  # psycopg's and the pool's errors: one line naming the database
            self.pool.close()
            text = " ".join(str(error).split()) or type(error).__name__
            raise ReelflowError(f"state: {without_password(url)}: {text}") from None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """This thread's transaction's connection if it is in one, else one from the pool."""
        current = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self.pool.connection() as connection:
            yield connection

    @contextmanager
    def write(self, *, durable: bool = True, serial: bool = True) -> Iterator[_PgSql]:
        """One transaction holding the project's write lock from its start: all of it commits, or none; not
        `durable`: committed without waiting for the disk (synchronous_commit off); not `serial`: without the lock,
        for a transaction that is one atomic statement per row (taking a lease)."""
        if getattr(self._local, "connection", None) is not None:
            raise RuntimeError("a write inside a write: one transaction at a time per thread")
        with self.pool.connection() as connection, connection.transaction():
            if serial:
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
            if not durable:
                connection.execute("SET LOCAL synchronous_commit = off")
            self._local.connection = connection
            try:
                yield _PgSql(connection)
            finally:
                self._local.connection = None

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._connection() as connection:
            return list(connection.execute(_pg_sql(sql), args).fetchall())

    def row(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        with self._connection() as connection:
            return connection.execute(_pg_sql(sql), args).fetchone()  # type: ignore[no-any-return]

    def meta(self, name: str) -> str | None:
        found = self.row("SELECT value FROM meta WHERE name = ?", (name,))
        return None if found is None else str(found["value"])

    def _migrate(self) -> None:
        with self.pool.connection() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id("reelflow-migrate"),))
            for statement in SHARED_DDL:
                connection.execute(statement)
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            exists = connection.execute("SELECT to_regclass(%s) AS found", (f"{self.schema}.meta",)).fetchone()
            migrate(_PgSql(connection), exists["found"] is not None, f"schema {self.schema}", _pg_ddl)


StateDatabase = Database | PostgresDatabase
_opened: weakref.WeakSet[PostgresDatabase] = weakref.WeakSet()


def close_all() -> None:
    """Close every Postgres pool this process opened (at exit: none is left retrying a server that went away)."""
    for db in list(_opened):
        db.pool.close(timeout=1)
    _open_postgres.cache_clear()


atexit.register(close_all)


def schema_name(code: str) -> str:
    """The Postgres schema of the project whose code is `code`."""
    return f"reelflow_{code.lower()}"


def database(state_dir: Path) -> StateDatabase:
    """The state database of the project whose state folder is `state_dir` (one object per process): Postgres when
    the project has a state URL, else its SQLite file."""
    state_dir = _resolved(state_dir) if state_dir.is_absolute() else state_dir.resolve()
    url = state_url(state_dir.parent)
    if url is None:
        return _open(state_dir)
    code = project_setting(state_dir.parent, "code")
    if code is None:
        raise ReelflowError(f"{state_dir.parent / 'project.json'}: code: a project in shared state needs its code")
    return _open_postgres(url, schema_name(code))


def is_shared(state_dir: Path) -> bool:
    """Whether the project's state is in a shared database (Postgres), not its own SQLite file."""
    return state_url(state_dir.resolve().parent) is not None


@cache
def _resolved(state_dir: Path) -> Path:
    return state_dir.resolve()


@cache
def _open(state_dir: Path) -> Database:
    db = Database(state_dir / FILE_NAME)
    import_legacy(db, state_dir)
    return db


@cache
def _open_postgres(url: str, schema: str) -> PostgresDatabase:
    return PostgresDatabase(url, schema)


@cache
def _plain(path: Path, schema: str) -> Database:
    return Database(path, schema)


# A forked child opens its own connections: its parent's pools' sockets stay the parent's.
os.register_at_fork(after_in_child=_open_postgres.cache_clear)
