"""The state database under several writers: a read leaves nothing open, and a write waits its turn."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from reelflow.state import db as state_db
from reelflow.state.db import Database


def other_connection(path: Path) -> Database:
    """A second, independent connection to the same file (as another process would have)."""
    return Database(path)


def test_a_read_leaves_no_snapshot_that_refuses_the_next_write(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    with db.write() as sql:
        sql.executemany("INSERT INTO meta VALUES (?, 'v')", [(f"k{i}",) for i in range(5)])
    assert db.row("SELECT * FROM meta ORDER BY name")["name"] == "k0"  # many rows, the first read
    def commit_elsewhere() -> None:
        with other_connection(db.path).write() as sql:
            sql.execute("INSERT INTO meta VALUES ('elsewhere', 'v')")

    writer = threading.Thread(target=commit_elsewhere)
    writer.start()
    writer.join()
    with db.write() as sql:  # refused at once ("database is locked") if the read had stayed open
        sql.execute("INSERT INTO meta VALUES ('here', 'v')")
    assert {row["name"] for row in db.rows("SELECT name FROM meta")} >= {"elsewhere", "here"}


def test_locked_answers_are_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [sqlite3.OperationalError("database is locked"), sqlite3.OperationalError("database is busy"), "done"]

    def step() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert state_db._patiently(step) == "done" and not answers
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        state_db._patiently(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")))
