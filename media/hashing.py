"""Content hashes of files: how every asset is identified."""

from __future__ import annotations

import hashlib
from pathlib import Path

from reelflow.media.identity import FileMemo

_CHUNK = 1 << 20
_hashed: FileMemo[str] = FileMemo(65536)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_unchanged(path: Path) -> str:
    """sha256_file, read once per process while the file keeps its identity on disk (media/identity.py)."""
    return _hashed.get(path.stat(), lambda: sha256_file(path))
