"""Per-provider concurrency: at most N calls in flight to each provider, across every shot of a run.

Prefect's global concurrency limits poll with second-long backoff (12 calls of 0.2 s under a limit
of 2 took 11 s instead of 1.2 s here), so embedded runs bound calls with in-process semaphores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

DEFAULT_LIMITS: dict[str, int] = {"local": 4, "fal": 8, "gemini": 4, "runpod": 1}

_semaphores: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_guard = threading.Lock()


@contextmanager
def provider_slot(provider: str, limits: dict[str, int]) -> Iterator[None]:
    """Hold one of the provider's slots while a call is in flight."""
    limit = limits.get(provider, DEFAULT_LIMITS.get(provider, 4))
    with _guard:
        semaphore = _semaphores.setdefault((provider, limit), threading.BoundedSemaphore(limit))
    with semaphore:
        yield
