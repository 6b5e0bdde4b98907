"""Retries go only to unbilled, retryable errors, with exponential backoff; provider calls are bounded."""

from __future__ import annotations

import pytest

from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
    UnusableOutput,
)
from reelflow.tasks.retry import retry_delays, should_retry, stage_task_options


class FinalState:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def result(self, raise_on_failure: bool = True) -> BaseException | None:
        if self.error is not None and raise_on_failure:
            raise self.error
        return self.error


@pytest.mark.parametrize(("error", "retried"), [
    (RateLimited("429"), True),
    (ServerError("503"), True),
    (ProviderTimeout("deadline"), True),
    (TransportError("reset"), True),
    (ContentRejected("policy"), False),
    (BadRequest("width"), False),
    (ValueError("bug"), False),
    (UnusableOutput("billed, does not decode"), False),
    (BadRequest("422", request_id="r1", billed=True), False),
    (ServerError("answered 200, then unreadable", billed=True), False),
])
def test_only_retryable_errors_are_retried(error: BaseException, retried: bool) -> None:
    assert should_retry(None, None, FinalState(error)) is retried


def test_backoff_doubles_up_to_the_cap() -> None:
    assert retry_delays(5, 2.0) == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert retry_delays(3, 40.0) == [40.0, 60.0, 60.0]


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFLOW_RETRIES", "3")
    monkeypatch.setenv("REELFLOW_RETRY_DELAY_S", "0.5")
    options = stage_task_options()
    assert options["retries"] == 3 and options["retry_delay_seconds"] == [0.5, 1.0, 2.0]
    assert options["retry_jitter_factor"] > 0 and options["retry_condition_fn"] is should_retry
