"""Retry policy shared by every stage: only unbilled, retryable errors; exponential backoff with jitter."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from reelflow.schemas.env import env_number
from reelflow.schemas.errors import is_retryable


def retry_delays(retries: int, base_s: float, cap_s: float = 60.0) -> list[float]:
    """base, 2·base, 4·base … capped: the wait before each retry (jitter is added by Prefect)."""
    return [min(cap_s, base_s * 2**attempt) for attempt in range(retries)]


def should_retry(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry rate limits, server errors, timeouts and transport errors only."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_retryable(error)


# reelflow's own cache keys each operation by content; Prefect's (a hash of the task's inputs and source on every
# call) would cost CPU for a key that cannot see file contents, and its result files would copy ours.
NOT_CACHED: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def stage_task_options() -> dict[str, Any]:
    """Options for every stage task, read from REELFLOW_RETRIES and REELFLOW_RETRY_DELAY_S."""
    retries = int(env_number("REELFLOW_RETRIES", 8))
    return NOT_CACHED | {
        "retries": retries,
        "retry_delay_seconds": retry_delays(retries, env_number("REELFLOW_RETRY_DELAY_S", 2.0)),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": should_retry,
    }
