"""The project's content-addressed store: blobs by sha256 (files, and S3 where the project has a blob URL), the cache
index and rejections (the state database)."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from reelflow.media.hashing import sha256_file, sha256_unchanged
from reelflow.schemas.assets import MediaInfo, Provenance
from reelflow.state.blobs import BlobStoreError, remote_for, warn
from reelflow.state.db import Sql, StateDatabase, database
from reelflow.state.leases import key_lock

BLOB_MODE = 0o444  # blobs are never written after they are stored, and hard-linked assets share their bytes
FICLONE = 0x40049409  # Linux's ioctl that reflinks one file to another (fcntl.FICLONE from Python 3.12)


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
    """Blobs under `.reelflow/blobs` (a read-through cache of S3 where the project has a blob URL), the cache index in
    `.reelflow/state.db`, locks beside them."""

    def __init__(self, state_dir: Path, db: StateDatabase | None = None) -> None:
        self.root = state_dir
        self.db = db or database(state_dir)
        self.blobs = state_dir / "blobs"
        self.remote = remote_for(state_dir)
        self._unsent = state_dir / "unsent"  # blobs whose upload failed, sent with the next
        self.scratch = state_dir / "tmp"
        self._locks_dir = state_dir / "locks"
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def blob_path(self, sha256: str, ext: str) -> Path:
        return self.blobs / sha256[:2] / f"{sha256}.{ext}"

    def is_intact(self, stored: StoredFile) -> bool:
        """The blob exists and still hashes to what was recorded (read once per process while it is unchanged), here
        or in S3: then it is downloaded here, and kept only if it hashes right."""
        path = self.blob_path(stored.sha256, stored.ext)
        if path.is_file() and sha256_unchanged(path) == stored.sha256:
            return True
        if self.remote is None or not self.remote.fetch_blob(stored.sha256, stored.ext, path):
            return False
        path.chmod(BLOB_MODE)
        return True

    def put(self, source: Path) -> tuple[str, Path]:
        """Move a finished file into the store, read-only (assets may share its bytes), and upload it where the project
        keeps blobs in S3 (always: only new content is put, and uploading it again mends a corrupted object); returns
        its sha256 and path."""
        sha, ext = sha256_file(source), source.suffix.lstrip(".").lower()
        target = self.blob_path(sha, ext)
        if target.is_file() and sha256_unchanged(target) == sha:
            source.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        target.chmod(BLOB_MODE)
        if self.remote is not None:
            self._send(f"{sha}.{ext}")
        return sha, target

    def _send(self, name: str) -> None:
        """Upload the blob `name` (sha256.ext), and those whose upload failed before. One that fails again waits in
        `.reelflow/unsent` for the next put: the work it holds was paid for, and stays indexed here."""
        assert self.remote is not None
        with self._guard:
            waiting = set(self._unsent.read_text().split()) if self._unsent.is_file() else set()
        failed: set[str] = set()
        for blob in sorted(waiting | {name}):
            sha, ext = blob.split(".", 1)
            path = self.blob_path(sha, ext)
            if not path.is_file():
                continue
            try:
                self.remote.upload(path, self.remote.blob_key(sha, ext))
            except BlobStoreError as error:
                failed.add(blob)
                warn(f"{error}; kept here, sent with the next blob")
        with self._guard:
            now = set(self._unsent.read_text().split()) if self._unsent.is_file() else set()
            left = (now - (waiting | {name})) | failed
            if left:
                write_atomic(self._unsent, "\n".join(sorted(left)).encode())
            else:
                self._unsent.unlink(missing_ok=True)

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

    def save(self, record: CacheRecord, *, durable: bool = True,
             also: Callable[[Sql], None] | None = None) -> None:
        """Index a made operation, and do `also` in the same transaction (settle the request that made it);
        `durable` where losing the entry would mean paying for it again."""
        with self.db.write(durable=durable) as sql:
            if also is not None:
                also(sql)
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
        """Hold `key` against other threads and processes (and hosts, in shared state), so one generation is never
        made twice at once."""
        with self._guard:
            thread_lock = self._thread_locks.setdefault(key, threading.Lock())
        with thread_lock:
            if self.db.engine == "postgres":  # every host: a lease in the shared database
                with key_lock(self.db, key):
                    yield
                return
            self._locks_dir.mkdir(parents=True, exist_ok=True)
            with (self._locks_dir / f"{key}.lock").open("w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def held(state_dir: Path, name: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the project-wide lock `name` against other threads and processes (the kernel frees a dead one's); a
    `shared` hold excludes only exclusive ones."""
    lock_path = state_dir / "locks" / f"{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
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


def _clone(blob: Path, temporary: Path) -> bool:
    """Make `temporary` a reflink of the blob (its own file sharing the blob's extents), if the filesystem can."""
    with blob.open("rb") as source, temporary.open("xb") as clone:
        try:
            fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
            return True
        except OSError:
            pass
    temporary.unlink()
    return False


def _link(blob: Path, temporary: Path) -> bool:
    """Make `temporary` a hard link to the blob, read-only like every blob, if the filesystem allows it."""
    try:
        blob.chmod(BLOB_MODE)  # a blob stored before blobs were read-only
        os.link(blob, temporary)
        return True
    except OSError:
        return False


def _same_file(blob: Path, target: Path) -> bool:
    """Whether `target` is the blob itself (a hard link to it)."""
    try:
        return os.path.samefile(blob, target)
    except OSError:
        return False


def materialise(blob: Path, sha256: str, target: Path) -> None:
    """Make `target` hold the blob's content unless it already does: a reflink, else a hard link, else a copy.

    The target is written under a temporary name and renamed over whatever was there, so readers never see half a
    file. A hard-linked asset is the blob itself and read-only like it: most tools refuse to write it. One forced to
    write in place (a chmod, then an editor that overwrites the file) alters the blob and every asset linked to it;
    the cache then finds the blob no longer hashes to its name and makes it again, and the next render links the
    new blob here. Tools that save by writing a new file and renaming it leave the blob alone. Root ignores the
    read-only bit.
    """
    if target.is_file() and (_same_file(blob, target) or sha256_unchanged(target) == sha256):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        if not (_clone(blob, temporary) or _link(blob, temporary)):
            shutil.copyfile(blob, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@cache
def store_for(state_dir: Path) -> AssetStore:
    """One store per project in a process, so its locks are shared by every shot."""
    return AssetStore(state_dir)
