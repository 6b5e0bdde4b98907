"""Rented GPU pods: recorded before anyone waits on them, leased while work runs, and money from the first second.

A pod is written down (name, $/hr, when it started, its lease) *before* RunPod is asked for it, in the project's
state database and in the machine's `REELFLOW_HOME/pods.db`, so a command without a project (`reelflow gpu reap`)
finds every pod this machine started, whatever happened to the process that started it. Its ledger row is the
money: pending at $/hr x (time so far + the idle lease) while it runs, settled at $/hr x its lifetime when it stops.
The lease is `idle_stop_s` long and renewed while work runs; a pod past its lease is terminated by whoever looks
next (the `reap-gpu` flow, `reelflow gpu reap`). The runs using a pod are its users: when the last one ends, it stops.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reelflow.state.db import Database, database

PodStatus = Literal["creating", "starting", "running", "stopping", "terminated"]
LIVE: tuple[PodStatus, ...] = ("creating", "starting", "running", "stopping")  # billing, or may be
LIVE_SQL = f"({', '.join(repr(status) for status in LIVE)})"
MACHINE_FILE = "pods.db"
STAGE = "gpu"  # the ledger stage of a pod's own row
PROVIDER = "runpod"
MACHINE_SCHEMA = """CREATE TABLE IF NOT EXISTS pods (
    name TEXT PRIMARY KEY,
    id TEXT,
    project TEXT NOT NULL,
    state_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    cost_per_hr REAL NOT NULL,
    started_at REAL NOT NULL,
    lease_until REAL NOT NULL,
    stopped_at REAL
)"""


@dataclass(frozen=True)
class PodRecord:
    """One pod as reelflow recorded it."""

    name: str
    id: str | None
    project: str
    gpu: str
    cost_per_hr: float
    idle_stop_s: float
    status: PodStatus
    started_at: float
    lease_until: float
    stopped_at: float | None
    run: str | None
    detail: str

    @classmethod
    def of(cls, row: Any) -> PodRecord:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def cost_usd(self, now: float | None = None) -> float:
        """What the pod has cost: its $/hr over its lifetime (until now while it runs)."""
        end = self.stopped_at if self.stopped_at is not None else (time.time() if now is None else now)
        return round(self.cost_per_hr * max(0.0, end - self.started_at) / 3600, 6)


def pod_key(name: str) -> str:
    """The ledger's cache key of a pod's own row."""
    return f"pod:{name}"


def project_tag(project: Path) -> str:
    """8 hex of the project folder's path: pods of two projects with one code never share a name."""
    return hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:8]


class MachinePods:
    """Every pod this machine started, in REELFLOW_HOME/pods.db: what `reelflow gpu` reads without a project."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.db = Database.plain(home / MACHINE_FILE, MACHINE_SCHEMA)

    def put(self, record: PodRecord, state_dir: Path) -> None:
        with self.db.write() as sql:
            sql.execute(
                "INSERT INTO pods (name, id, project, state_dir, status, cost_per_hr, started_at, lease_until, stopped_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET id = excluded.id, "
                "status = excluded.status, cost_per_hr = excluded.cost_per_hr, lease_until = excluded.lease_until, "
                "stopped_at = excluded.stopped_at",
                (record.name, record.id, record.project, str(state_dir), record.status, record.cost_per_hr,
                 record.started_at, record.lease_until, record.stopped_at),
            )

    def state_dirs(self) -> list[Path]:
        """The state folders of the projects whose pods this machine recorded."""
        rows = self.db.rows("SELECT DISTINCT state_dir FROM pods ORDER BY state_dir")
        return [Path(row["state_dir"]) for row in rows]


class PodBook:
    """One project's pods in its state database (mirrored to the machine's record) and their ledger rows."""

    def __init__(self, state_dir: Path, home: Path, project: Path | None = None) -> None:
        """The pods in `state_dir`; `project` (the folder) only where new ones are named and recorded."""
        self.db, self.state_dir, self.home, self.project = database(state_dir), state_dir, home, project

    def _mirror(self, name: str) -> PodRecord:
        record = self.get(name)
        assert record is not None, name
        MachinePods(self.home).put(record, self.state_dir)
        return record

    def get(self, name: str) -> PodRecord | None:
        row = self.db.row("SELECT * FROM pods WHERE name = ?", (name,))
        return None if row is None else PodRecord.of(row)

    def all(self) -> list[PodRecord]:
        return [PodRecord.of(row) for row in self.db.rows("SELECT * FROM pods ORDER BY started_at")]

    def made(self) -> list[PodRecord]:
        """Every pod RunPod made (or may have made): not those it refused to create."""
        return [record for record in self.all() if record.id is not None or record.status != "terminated"]

    def live(self) -> list[PodRecord]:
        return [record for record in self.all() if record.status in LIVE]

    def running(self) -> PodRecord | None:
        """The project's newest pod that is up (RUNNING, ComfyUI answering) and not being stopped."""
        row = self.db.row("SELECT * FROM pods WHERE status = 'running' ORDER BY started_at DESC LIMIT 1")
        return None if row is None else PodRecord.of(row)

    def next_name(self, code: str) -> str:
        """`reelflow-<CODE>-<8 hex of the project's path>-<n>`, n counting every pod the project ever had."""
        assert self.project is not None, "a book that records pods knows its project"
        row = self.db.row("SELECT COUNT(*) AS n FROM pods")
        return f"reelflow-{code}-{project_tag(self.project)}-{int(row['n'] if row else 0) + 1}"

    def creating(self, name: str, gpu: str, cost_per_hr: float, idle_stop_s: float, *, run: str | None,
                 parent_run: str | None, reservation: int | None) -> PodRecord:
        """Record the pod about to be asked for, and its ledger row at its price (its start-up's reservation
        becomes the row), before the create call leaves."""
        now = time.time()
        with self.db.write() as sql:
            sql.execute(
                "INSERT INTO pods (name, id, project, gpu, cost_per_hr, idle_stop_s, status, started_at, lease_until, run) "
                "VALUES (?, NULL, ?, ?, ?, ?, 'creating', ?, ?, ?)",
                (name, str(self.project), gpu, cost_per_hr, idle_stop_s, now, now + idle_stop_s, run),
            )
            sql.execute(
                "INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, run, parent_run, "
                "stage, submitted_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (pod_key(name), PROVIDER, f"pod:{gpu}", name, round(cost_per_hr * idle_stop_s / 3600, 6), run,
                 parent_run, STAGE, now),
            )
            if reservation is not None:
                sql.execute("DELETE FROM reservations WHERE id = ?", (reservation,))
        return self._mirror(name)

    def created(self, name: str, pod_id: str, cost_per_hr: float | None) -> PodRecord:
        """RunPod created the pod as `pod_id` (at its own $/hr where it said one)."""
        with self.db.write() as sql:
            sql.execute("UPDATE pods SET id = ?, status = 'starting', cost_per_hr = COALESCE(?, cost_per_hr) "
                        "WHERE name = ?", (pod_id, cost_per_hr, name))
        self.renew(name)
        return self._mirror(name)

    def ready(self, name: str) -> PodRecord:
        with self.db.write() as sql:
            sql.execute("UPDATE pods SET status = 'running' WHERE name = ? AND status = 'starting'", (name,))
        return self.renew(name)

    def renew(self, name: str) -> PodRecord:
        """Work runs: the lease ends `idle_stop_s` from now, and the row is priced to then."""
        now = time.time()
        with self.db.write() as sql:
            sql.execute("UPDATE pods SET lease_until = ? + idle_stop_s WHERE name = ? AND status IN "
                        "('creating', 'starting', 'running')", (now, name))
            sql.execute(
                "UPDATE requests SET price_usd = (SELECT ROUND(CAST(cost_per_hr * (? - started_at + idle_stop_s) / 3600 "
                "AS NUMERIC), 6) FROM pods WHERE name = ?) WHERE cache_key = ? AND status = 'pending'",
                (now, name, pod_key(name)),
            )
        return self._mirror(name)

    def use(self, name: str, user: str) -> None:
        with self.db.write() as sql:
            sql.execute('INSERT INTO pod_users (pod, "user", at) VALUES (?, ?, ?) ON CONFLICT (pod, "user") DO NOTHING',
                        (name, user, time.time()))

    def leave(self, name: str, user: str) -> int:
        """`user` is done with the pod; how many users it has left."""
        with self.db.write() as sql:
            sql.execute('DELETE FROM pod_users WHERE pod = ? AND "user" = ?', (name, user))
            row = sql.execute("SELECT COUNT(*) AS n FROM pod_users WHERE pod = ?", (name,)).fetchone()
        return int(row["n"])

    def used_by(self, user: str) -> list[PodRecord]:
        rows = self.db.rows('SELECT pods.* FROM pods JOIN pod_users ON pod_users.pod = pods.name WHERE pod_users."user" = ?',
                            (user,))
        return [PodRecord.of(row) for row in rows]

    def claim_stop(self, name: str, *, expired_only: bool, now: float | None = None) -> PodRecord | None:
        """Take the pod out of use before stopping it (its lease over, when `expired_only`); None if it is not live
        (already stopped) or its lease still runs."""
        now = time.time() if now is None else now
        condition = " AND lease_until <= ?" if expired_only else ""
        args: tuple[object, ...] = (name, now) if expired_only else (name,)
        with self.db.write() as sql:
            found = sql.execute(f"SELECT * FROM pods WHERE name = ? AND status IN {LIVE_SQL}{condition}",
                                args).fetchone()
            if found is None:
                return None
            # out of use at once (never renewed, reused or made ready again); a failed terminate is retried by the reaper
            sql.execute("UPDATE pods SET status = 'stopping', lease_until = ? WHERE name = ?", (now, name))
        return PodRecord.of(found)

    def terminated(self, name: str, detail: str, *, at: float | None = None) -> PodRecord:
        """The pod is gone (or was never made): its row settles at its $/hr over its lifetime."""
        now = time.time() if at is None else at
        with self.db.write() as sql:
            sql.execute("UPDATE pods SET status = 'terminated', stopped_at = COALESCE(stopped_at, ?), detail = ? "
                        "WHERE name = ?", (now, detail[:500], name))
            sql.execute("DELETE FROM pod_users WHERE pod = ?", (name,))
            sql.execute(
                "UPDATE requests SET status = 'completed', cost_usd = (SELECT ROUND(CAST(cost_per_hr * (stopped_at - "
                "started_at) / 3600 AS NUMERIC), 6) FROM pods WHERE name = ?), detail = ?, settled_at = ? "
                "WHERE cache_key = ? AND status = 'pending'",
                (name, detail[:500], now, pod_key(name)),
            )
        return self._mirror(name)

    def never_made(self, name: str, detail: str) -> PodRecord:
        """RunPod made no pod for the create (no capacity, a refusal): nothing ran, nothing billed."""
        now = time.time()
        with self.db.write() as sql:
            sql.execute("UPDATE pods SET status = 'terminated', stopped_at = started_at, detail = ? WHERE name = ?",
                        (detail[:500], name))
            sql.execute("UPDATE requests SET status = 'cancelled', cost_usd = 0, detail = ?, settled_at = ? "
                        "WHERE cache_key = ? AND status = 'pending'", (detail[:500], now, pod_key(name)))
        return self._mirror(name)
