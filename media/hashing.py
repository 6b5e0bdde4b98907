"""Content hashes of files: how every asset is identified."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_CHUNK = 1 << 20
_KNOWN_MAX = 65536
_known: dict[tuple[int, int, int, int, int], str] = {}
_known_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_unchanged(path: Path) -> str:
    """sha256_file, read once per process while the file keeps its identity on disk (device, inode, size,
    modification and change times: any write or rename over it changes them)."""
    stat = path.stat()
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    with _known_lock:
        known = _known.get(identity)
    if known is not None:
        return known
    digest = sha256_file(path)
    with _known_lock:
        if len(_known) >= _KNOWN_MAX:
            _known.clear()
        _known[identity] = digest
    return digest
