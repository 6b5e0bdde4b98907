"""Progress events of a render, for the CLI's live view in the same process.

Only for showing progress: a run's calls and cost come from the ledger, whichever process made them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reelflow.state.cache import is_dry_run

# done: made now; cached: found in the cache; held: stopped after its keyframes for a person to review them
Status = Literal["running", "cached", "done", "held", "failed"]


@dataclass(frozen=True)
class StageEvent:
    run: str
    shot: int
    stage: str
    status: Status
    provider_calls: int = 0
    cost_usd: float = 0.0
    detail: str = ""
    shadow: bool = False  # cost_usd is the local provider's shadow cost: nothing charged


Listener = Callable[[StageEvent], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Receive every event from now on; call the returned function to stop."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(event: StageEvent) -> None:
    """Tell every listener; a dry run (an estimate, the request check before a render) makes nothing to show."""
    if is_dry_run():
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(event)
