"""The project's content-addressed store: blobs by sha256 (files), the cache index and rejections (the state database)."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from reelflow.media.hashing import sha256_file
from reelflow.schemas.assets import MediaInfo, Provenance
from reelflow.state.db import Database, database


class StoredFile(BaseModel):
    sha256: str
    ext: str
    media: MediaInfo


class CacheRecord(BaseModel):
    """What one cached operation produced, and how."""

    key: str
    outputs: list[StoredFile]
    provenance: Provenance


class AssetStore:
    """Blobs under `.reelflow/blobs`, the cache index in `.reelflow/state.db`, locks beside them."""

    def __init__(self, state_dir: Path, db: Database | None = None) -> None:
        self.root = state_dir
        self.db = db or database(state_dir)
        self.blobs = state_dir / "blobs"
        self.scratch = state_dir / "tmp"
        self._locks_dir = state_dir / "locks"
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def blob_path(self, sha256: str, ext: str) -> Path:
        return self.blobs / sha256[:2] / f"{sha256}.{ext}"

    def is_intact(self, stored: StoredFile) -> bool:
        """The blob exists and still hashes to what was recorded."""
        path = self.blob_path(stored.sha256, stored.ext)
        return path.is_file() and sha256_file(path) == stored.sha256

    def put(self, source: Path) -> tuple[str, Path]:
        """Move a finished file into the store; returns its sha256 and blob path."""
        sha = sha256_file(source)
        target = self.blob_path(sha, source.suffix.lstrip(".").lower())
        if target.is_file() and sha256_file(target) == sha:
            source.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        return sha, target

    def lookup(self, key: str) -> CacheRecord | None:
        """The cached record for `key`, trusted only if every output blob is intact."""
        row = self.db.row("SELECT record FROM cache WHERE cache_key = ?", (key,))
        if row is None:
            return None
        try:
            record = CacheRecord.model_validate_json(row["record"])
        except ValueError:
            return None
        return record if all(self.is_intact(out) for out in record.outputs) else None

    def rejection(self, key: str) -> str | None:
        """Why the provider rejected this exact request before, if it did (rejections may be billed)."""
        row = self.db.row("SELECT reason FROM rejections WHERE cache_key = ?", (key,))
        return None if row is None else str(row["reason"])

    def save_rejection(self, key: str, provider: str, reason: str) -> None:
        with self.db.write() as sql:
            sql.execute(
                "INSERT INTO rejections (cache_key, provider, reason, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (cache_key) DO UPDATE SET provider = excluded.provider, reason = excluded.reason, at = excluded.at",
                (key, provider, reason, time.time()),
            )

    def forget_rejections(self) -> int:
        """Let every request a provider rejected be submitted again; returns how many were forgotten."""
        with self.db.write() as sql:
            return int(sql.execute("DELETE FROM rejections").rowcount)

    def save(self, record: CacheRecord) -> None:
        with self.db.write() as sql:
            sql.execute(
                "INSERT INTO cache (cache_key, record, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (cache_key) DO UPDATE SET record = excluded.record, created_at = excluded.created_at",
                (record.key, record.model_dump_json(), time.time()),
            )

    @contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A private folder for a provider to write into; removed afterwards."""
        path = self.scratch / uuid.uuid4().hex
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold `key` against other threads and processes, so one generation is never made twice at once."""
        with self._guard:
            thread_lock = self._thread_locks.setdefault(key, threading.Lock())
        with thread_lock:
            self._locks_dir.mkdir(parents=True, exist_ok=True)
            with (self._locks_dir / f"{key}.lock").open("w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def materialise(blob: Path, sha256: str, target: Path) -> None:
    """Make `target` a copy of the blob unless it already holds exactly that content."""
    if target.is_file() and sha256_file(target) == sha256:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(blob, temporary)
    os.replace(temporary, target)


@cache
def store_for(state_dir: Path) -> AssetStore:
    """One store per project in a process, so its locks are shared by every shot."""
    return AssetStore(state_dir)
