"""Answers about a file, kept per process while the file keeps its identity on disk."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FileMemo(Generic[T]):
    """Answers kept by a file's identity (device, inode, size, modification time): a rename or a hard link keeps it,
    any rewrite changes it. At most `limit` are kept; past that the memo starts again."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._known: dict[tuple[int, int, int, int], T] = {}
        self._lock = threading.Lock()

    def get(self, stat: os.stat_result, compute: Callable[[], T]) -> T:
        """The answer kept for the file `stat` describes, else `compute()`'s, kept."""
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if identity in self._known:
                return self._known[identity]
        answer = compute()
        with self._lock:
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[identity] = answer
        return answer
