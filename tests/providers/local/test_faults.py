"""Latency and injected faults of the local provider: parsing, classes, determinism, retries."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from reelflow.providers.local.faults import FaultSchedule, parse_faults, parse_seed
from reelflow.providers.local.latency import Latency
from reelflow.schemas.errors import (
    ContentRejected,
    ContractError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)

KEYS = [f"{index:064x}" for index in range(200)]


def call(plan: FaultSchedule, key: str, text: str = "") -> bool:
    """One call served by the plan, doing no work of its own; True once its work could run (no fault)."""
    with plan.serving(key, text):
        return True


def outcome(plan: FaultSchedule, key: str) -> str:
    """The kind of fault one call raised, or "ok"."""
    try:
        call(plan, key)
    except ProviderError as error:
        return error.kind
    return "ok"


def test_unset_or_blank_variables_mean_no_latency_and_no_faults() -> None:
    plan = FaultSchedule.from_env({})
    assert (plan.latency, plan.rates, plan.seed) == (0.0, {}, 0)
    blank = FaultSchedule.from_env({"REELFLOW_LOCAL_LATENCY": " ", "REELFLOW_LOCAL_FAULTS": "", "REELFLOW_LOCAL_FAULT_SEED": ""})
    assert (blank.latency, blank.rates, blank.seed) == (0.0, {}, 0)
    assert all(outcome(plan, key) == "ok" for key in KEYS)


def test_variables_are_parsed() -> None:
    plan = FaultSchedule.from_env({
        "REELFLOW_LOCAL_LATENCY": "0.25",
        "REELFLOW_LOCAL_FAULTS": "rate_limit=0.3, server_error=0.1,timeout=0.05,reject=0.02",
        "REELFLOW_LOCAL_FAULT_SEED": "42",
    })
    assert plan.latency == 0.25
    assert plan.rates == {"rate_limit": 0.3, "server_error": 0.1, "timeout": 0.05, "reject": 0.02}
    assert plan.seed == 42


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFLOW_LOCAL_FAULTS", "timeout=1")
    monkeypatch.setenv("REELFLOW_LOCAL_FAULT_SEED", "-3")
    plan = FaultSchedule.from_env()
    assert plan.rates == {"timeout": 1.0} and plan.seed == -3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo=0.1", "REELFLOW_LOCAL_FAULTS: unknown fault 'foo' "
                    "(use rate_limit, server_error, timeout, reject, off_model, off_location, stuck_video)"),
        ("rate_limit=1.5", "REELFLOW_LOCAL_FAULTS: rate_limit=1.5 is not a probability (use 0 to 1)"),
        ("reject=-0.1", "REELFLOW_LOCAL_FAULTS: reject=-0.1 is not a probability (use 0 to 1)"),
        ("timeout=nan", "REELFLOW_LOCAL_FAULTS: timeout=nan is not a probability (use 0 to 1)"),
        ("timeout=often", "REELFLOW_LOCAL_FAULTS: timeout=often is not a number"),
        ("server_error", "REELFLOW_LOCAL_FAULTS: server_error needs a probability, e.g. server_error=0.1"),
        ("reject=0.1,reject=0.2", "REELFLOW_LOCAL_FAULTS: reject is given twice"),
    ],
)
def test_bad_fault_lists_name_the_variable(value: str, message: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_faults(value)
    assert str(caught.value) == message


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan", "seed/0", "seed/x", "seed/-2"])
def test_bad_latency_names_the_variable(value: str) -> None:
    with pytest.raises(ContractError, match=r"^REELFLOW_LOCAL_LATENCY: ") as caught:
        Latency.parse(value)
    assert "\n" not in str(caught.value)


def test_bad_seed_names_the_variable() -> None:
    with pytest.raises(ContractError, match=r"^REELFLOW_LOCAL_FAULT_SEED: 'x1' is not an integer$"):
        parse_seed("x1")


def test_bad_environment_fails_when_the_plan_is_built() -> None:
    with pytest.raises(ContractError, match="REELFLOW_LOCAL_FAULTS"):
        FaultSchedule.from_env({"REELFLOW_LOCAL_FAULTS": "meteor=0.5"})


@pytest.mark.parametrize(
    ("fault", "error"),
    [("rate_limit", RateLimited), ("server_error", ServerError), ("timeout", ProviderTimeout), ("reject", ContentRejected)],
)
def test_rate_one_always_raises_that_fault(fault: str, error: type[ProviderError]) -> None:
    plan = FaultSchedule(rates={fault: 1.0})
    for key in KEYS[:50]:
        for _ in range(3):
            with pytest.raises(error) as caught:
                call(plan, key)
            assert caught.value.provider == "local"
            assert caught.value.request_id == f"local-{key[:16]}"
            assert caught.value.retryable is (fault != "reject")


def test_rate_zero_never_raises() -> None:
    plan = FaultSchedule(rates={"rate_limit": 0.0, "server_error": 0.0, "timeout": 0.0, "reject": 0.0}, seed=9)
    assert {outcome(plan, key) for key in KEYS for _ in range(3)} == {"ok"}


def test_same_environment_gives_the_same_sequence() -> None:
    env = {"REELFLOW_LOCAL_FAULTS": "rate_limit=0.3,server_error=0.2,timeout=0.1,reject=0.1", "REELFLOW_LOCAL_FAULT_SEED": "7"}
    calls = [key for key in KEYS[:60] for _ in range(3)]
    plan_a, plan_b = FaultSchedule.from_env(env), FaultSchedule.from_env(env)
    sequence = [outcome(plan_a, key) for key in calls]
    assert sequence == [outcome(plan_b, key) for key in calls]
    assert set(sequence) == {"ok", "rate_limit", "server_error", "timeout", "content_rejected"}
    other = FaultSchedule.from_env(env | {"REELFLOW_LOCAL_FAULT_SEED": "8"})
    assert [outcome(other, key) for key in calls] != sequence


def test_rates_are_roughly_what_was_asked() -> None:
    plan = FaultSchedule(rates={"rate_limit": 0.3})
    counts = Counter(outcome(plan, key) for key in KEYS for _ in range(5))
    assert 0.22 < counts["rate_limit"] / 1000 < 0.38


def test_a_retry_of_a_transient_fault_can_succeed() -> None:
    plan = FaultSchedule(rates={"rate_limit": 0.5, "server_error": 0.3})
    for key in KEYS[:20]:
        attempts = [outcome(plan, key) for _ in range(30)]
        assert "ok" in attempts and set(attempts) - {"ok"}


def test_reject_repeats_for_the_same_key() -> None:
    plan = FaultSchedule(rates={"reject": 0.5})
    verdicts = {key: [outcome(plan, key) for _ in range(5)] for key in KEYS[:80]}
    assert all(len(set(calls)) == 1 for calls in verdicts.values())
    rejected = {key for key, calls in verdicts.items() if calls[0] == "content_rejected"}
    assert 0 < len(rejected) < 80
    fresh = FaultSchedule(rates={"reject": 0.5})
    assert {key for key in KEYS[:80] if outcome(fresh, key) == "content_rejected"} == rejected


def test_attempts_are_counted_safely_across_threads() -> None:
    rates = {"rate_limit": 0.4, "timeout": 0.2}
    sequential = FaultSchedule(rates=rates, seed=3)
    expected = Counter(outcome(sequential, KEYS[0]) for _ in range(400))
    shared = FaultSchedule(rates=rates, seed=3)
    seen: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        results = [outcome(shared, KEYS[0]) for _ in range(50)]
        with lock:
            seen.extend(results)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(seen) == expected


def test_latency_is_waited_by_every_call_even_one_that_fails() -> None:
    plan = FaultSchedule(latency=0.05)
    started = time.monotonic()
    call(plan, KEYS[0])
    assert time.monotonic() - started >= 0.05
    failing = FaultSchedule(latency=0.05, rates={"server_error": 1.0})
    started = time.monotonic()
    with pytest.raises(ServerError):
        call(failing, KEYS[0])
    assert time.monotonic() - started >= 0.05


def test_the_calls_own_work_is_part_of_its_latency() -> None:
    plan = FaultSchedule(latency=0.3)
    started = time.monotonic()
    with plan.serving(KEYS[0]):
        time.sleep(0.2)  # drawing, encoding: a service's compute is inside its response time
    assert 0.3 <= time.monotonic() - started < 0.45


def test_banned_words_reject_prompts_that_hold_them() -> None:
    plan = FaultSchedule.from_env({"REELFLOW_LOCAL_BANNED_WORDS": "Gore, contraband"})
    assert plan.banned == ("gore", "contraband")
    call(plan, "k1", "Bo kneels by a crate")
    with pytest.raises(ContentRejected, match="contraband"):
        call(plan, "k2", "A crate of Contraband.")
