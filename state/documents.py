"""An episode's dailies and manifest in shared state (Postgres): the truth every host reads and changes; the files a
checkout holds (`storyboards/dailies_ep_NNN.json`, `…/assets/ep_NNN/manifest.json`) are their exports.

On a project's own SQLite file (one machine, one checkout) the files stay the truth and nothing here is used. A
change holds the document's lease lock (state/leases.py) on every host, beside the checkout's own file lock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reelflow.state.db import database, is_shared
from reelflow.state.leases import key_lock
from reelflow.state.store import write_atomic

Kind = str  # "dailies" or "manifest"


def shared(state_dir: Path) -> bool:
    """Whether the project's documents live in shared state (its state is in Postgres)."""
    return is_shared(state_dir)


def read_document(state_dir: Path, kind: Kind, episode: int, export: Path) -> bytes | None:
    """The document: on the project's own SQLite file, the checkout's file; in shared state, what it holds (the
    first time, the checkout's file: a project moving to shared state). None when neither exists."""
    if not shared(state_dir):
        return export.read_bytes() if export.is_file() else None
    db = database(state_dir)
    row = db.row("SELECT body FROM documents WHERE kind = ? AND episode = ?", (kind, episode))
    if row is not None:
        return str(row["body"]).encode()
    return export.read_bytes() if export.is_file() else None


def write_document(state_dir: Path, kind: Kind, episode: int, body: bytes, export: Path) -> None:
    """Record the document in shared state, then export it to the checkout's file."""
    with database(state_dir).write() as sql:
        sql.execute(
            "INSERT INTO documents (kind, episode, body, at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, episode) DO UPDATE SET body = excluded.body, at = excluded.at",
            (kind, episode, body.decode(), time.time()),
        )
    write_atomic(export, body)


@contextmanager
def document_held(state_dir: Path, kind: Kind, episode: int) -> Iterator[None]:
    """Hold the document against writers on every host sharing the project's state."""
    with key_lock(database(state_dir), f"document:{kind}:{episode}"):
        yield
