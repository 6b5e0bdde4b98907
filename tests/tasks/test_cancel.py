"""stop_spend: a stopped run's open requests are cancelled at fal (the fake) and each settled in the ledger, within
a bounded wait, with nothing left pending and no request paid or counted twice."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reelflow.providers.registry import get_provider
from reelflow.schemas.pricing import load_prices
from reelflow.state.ledger import Charge, Ledger, RunStopped
from reelflow.tasks.cancel import stop_spend

from fakes.fal import FakeFal

ENDPOINT = "fal-ai/z-image/turbo"
BODY = {"prompt": "the flight deck at night", "image_size": {"width": 1024, "height": 1024}}
PRICE = load_prices().cost(ENDPOINT, size=(1024, 1024))


@pytest.fixture
def fal_here(fal: FakeFal, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFal]:
    """The fake fal, as this process's fal provider (what a worker's hook uses) sees it."""
    for name, value in fal.env().items():
        monkeypatch.setenv(name, value)
    get_provider.cache_clear()
    yield fal
    get_provider.cache_clear()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at(tmp_path / ".reelflow")


@pytest.fixture
def run() -> str:
    """A ledger run of its own (a stopped run stays stopped in this process, as run ids are never reused)."""
    return uuid.uuid4().hex


def in_flight(fal: FakeFal, ledger: Ledger, run: str, *, polls: int = 0, shot: int = 1,
              parent_run: str | None = None) -> str:
    """One request submitted to fal as a render submits it (its row pending under `run`), then polled `polls` times:
    0 leaves it in fal's queue, 2 running."""
    ticket = ledger.ticket(uuid.uuid4().hex, "fal", Charge(run=run, parent_run=parent_run, stage="keyframes",
                                                          episode=1, shot=shot, price_usd=PRICE))
    auth = {"Authorization": f"Key {fal.key}"}
    with ticket.sending(ENDPOINT) as sent:
        request_id = httpx.post(f"{fal.url}/queue/{ENDPOINT}", json=BODY, headers=auth).json()["request_id"]
        sent.accepted(request_id)
    for _ in range(polls):
        httpx.get(f"{fal.url}/queue/fal-ai/z-image/requests/{request_id}/status", headers=auth).raise_for_status()
    return request_id


def row_of(ledger: Ledger, request_id: str) -> tuple[str, float]:
    """The request's status and what the ledger counts it as spent."""
    [row] = ledger.rows("request_id = ?", (request_id,))
    return row.status, row.spent_usd


def test_a_request_still_in_fals_queue_is_cancelled_and_never_billed(fal_here: FakeFal, ledger: Ledger, run: str,
                                                                      tmp_path: Path) -> None:
    queued = in_flight(fal_here, ledger, run)
    [stopped] = stop_spend(tmp_path / ".reelflow", [run], wait_s=2)

    assert fal_here.cancels == [queued] and fal_here.state_of(queued) == "REMOVED"
    assert stopped.outcome == "cancelled" and row_of(ledger, queued) == ("cancelled", 0.0)
    assert fal_here.billed_usd == 0.0 and ledger.spent(run) == 0.0
    assert fal_here.status_polls[queued] == 0, "removed from the queue: nothing to wait for"


def test_a_running_request_that_finishes_anyway_is_settled_at_what_fal_billed(fal_here: FakeFal, ledger: Ledger, run: str,
                                                                             tmp_path: Path) -> None:
    fal_here.run_past_cancel = True  # the app was asked to stop, and finished instead
    running = in_flight(fal_here, ledger, run, polls=2)
    assert fal_here.state_of(running) == "IN_PROGRESS"
    [stopped] = stop_spend(tmp_path / ".reelflow", [run], wait_s=5)

    assert fal_here.cancels == [running] and fal_here.state_of(running) == "COMPLETED"
    assert stopped.outcome == "settled" and row_of(ledger, running) == ("completed", PRICE)
    assert fal_here.billed_usd == pytest.approx(PRICE) and ledger.spent(run) == pytest.approx(fal_here.billed_usd)


@pytest.mark.parametrize("silent", [True, False], ids=["status never answered", "asked to stop, never ends"])
def test_a_request_fal_does_not_say_the_end_of_is_unknown_at_its_price_after_a_bounded_wait(
    fal_here: FakeFal, ledger: Ledger, run: str, tmp_path: Path, silent: bool
) -> None:
    running = in_flight(fal_here, ledger, run, polls=2)
    if silent:
        fal_here.silent_status.add(running)
    started = time.monotonic()
    [stopped] = stop_spend(tmp_path / ".reelflow", [run], wait_s=0.6)

    assert time.monotonic() - started < 0.6 + 5, "the wait is bounded"
    assert fal_here.cancels == [running]
    assert stopped.outcome == "unknown" and row_of(ledger, running) == ("unknown", PRICE)
    assert "cancelled" in stopped.row.detail and "did not say how it ended within 0.6 s" in stopped.row.detail
    assert ledger.spent(run) == PRICE, "an answer that never came is counted at its price"


def test_every_open_request_of_the_run_and_its_episodes_is_settled_and_others_are_left_alone(
    fal_here: FakeFal, ledger: Ledger, run: str, tmp_path: Path
) -> None:
    fal_here.run_past_cancel = True
    queued = in_flight(fal_here, ledger, "episode-1", parent_run=run, shot=1)
    finished = in_flight(fal_here, ledger, "episode-2", parent_run=run, polls=2, shot=2)
    silent = in_flight(fal_here, ledger, "episode-2", parent_run=run, polls=2, shot=3)
    fal_here.silent_status.add(silent)
    other = in_flight(fal_here, ledger, "someone-elses-run", shot=4)
    with ledger.db.write() as sql:  # the row a process killed while sending a request leaves
        sql.execute("INSERT INTO requests (cache_key, provider, endpoint, request_id, status, price_usd, run, "
                    "parent_run, submitted_at) VALUES ('k-cut', 'fal', ?, 'submitting-1', 'submitting', 0.04, "
                    "'episode-2', ?, 0)", (ENDPOINT, run))
    shadow = ledger.ticket("k-local", "local", Charge(run="episode-1", parent_run=run, price_usd=0.01,
                                                      shadow=True))
    with shadow.sending("local/keyframes") as sent:
        sent.accepted("local-abc")
    no_cancel = ledger.ticket("k-pod", "comfyui", Charge(run="episode-1", parent_run=run, price_usd=0.03))
    with no_cancel.sending("comfyui/wan") as sent:
        sent.accepted("prompt-7")

    logs = logging.getLogger("test.stop")
    stopped = stop_spend(tmp_path / ".reelflow", [run], wait_s=3, logger=logs)

    outcomes = {each.row.request_id: each.outcome for each in stopped}
    assert outcomes[queued] == "cancelled" and outcomes[finished] == "settled" and outcomes[silent] == "unknown"
    assert outcomes["local-abc"] == "cancelled" and outcomes["prompt-7"] == "unknown"
    [cut_row] = ledger.rows("cache_key = 'k-cut'")
    assert cut_row.status == "unknown" and cut_row.spent_usd == 0.04 and "being sent" in cut_row.detail
    assert len(stopped) == 6 and not ledger.open_requests([run]), "nothing left pending"
    assert row_of(ledger, other) == ("pending", PRICE) and other not in fal_here.cancels, "another run's request"
    assert sorted(fal_here.cancels) == sorted([queued, finished, silent])
    charged = ledger.spent(run, shadow=False)
    assert fal_here.billed_usd == pytest.approx(PRICE), "the request that finished"
    assert charged == pytest.approx(fal_here.billed_usd + PRICE + 0.04 + 0.03), "what fal billed; unknowns at price"


def test_each_outcome_is_logged(fal_here: FakeFal, ledger: Ledger, run: str, tmp_path: Path,
                                caplog: pytest.LogCaptureFixture) -> None:
    queued = in_flight(fal_here, ledger, run)
    running = in_flight(fal_here, ledger, run, polls=2, shot=2)
    with caplog.at_level(logging.INFO, logger="test.stop"):
        stop_spend(tmp_path / ".reelflow", [run], wait_s=0.3, logger=logging.getLogger("test.stop"))
    lines = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "test.stop"]
    [(level, cancelled)] = [(level, message) for level, message in lines if queued in message]
    assert level == "INFO" and cancelled.startswith("cancelled: fal")
    [(level, unknown)] = [(level, message) for level, message in lines if running in message]
    assert level == "WARNING" and unknown.startswith("unknown: fal") and "did not say how it ended" in unknown
    assert lines[-1] == ("WARNING", f"stopped 2 open request(s): 1 cancelled, 0 settled ($0.000), 1 unknown "
                                    f"(${PRICE:.3f} at their price)")


def test_a_stopped_run_sends_nothing_more_and_a_late_answer_adds_no_row(fal_here: FakeFal, ledger: Ledger, run: str,
                                                                        tmp_path: Path) -> None:
    queued = in_flight(fal_here, ledger, run)
    late = ledger.ticket("any", "fal", Charge(run=run, price_usd=PRICE))
    stop_spend(tmp_path / ".reelflow", [run], wait_s=1)

    with pytest.raises(RunStopped), late.sending(ENDPOINT):
        pytest.fail("a stopped run sends nothing")
    with pytest.raises(RunStopped):
        late.resume(ENDPOINT)
    [row] = ledger.rows()
    # A thread still waiting on the request hears fal forgot it (it was removed): the row stop_spend wrote stands.
    ledger.ticket(row.cache_key, "fal", Charge(run=run, price_usd=PRICE)).unknown(ENDPOINT, queued, "404")
    assert ledger.rows() == [row] and row.status == "cancelled"
    assert fal_here.total_submits() == 1
