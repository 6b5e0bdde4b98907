"""Cancel stops the spend: renders on the fal fake stopped with requests in flight (a cancel, a crash, Ctrl-C); each
request is cancelled, settled at its cost, or after a bounded wait counted at its price, and none is left pending.

fal's account runs two requests at once here (`running_limit`), so three in flight are two running and one queued;
a running one asked to stop finishes anyway (`run_past_cancel`: fal leaves that to the app) and the other's status is
never answered (`silent_status`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelling

from reelflow.flows.cancel import ledger_run, stop_render_spend
from reelflow.flows.changed import render_changed
from reelflow.flows.gpu import release_gpu
from reelflow.flows.pending import render_pending
from reelflow.flows.previz import previz_episode
from reelflow.flows.render import render_episode
from reelflow.providers.registry import get_provider
from reelflow.state.ledger import Ledger, LedgerRow

from conftest import REELFLOW, render_killed_in_flight
from fakes.fal import FakeFal
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
FAL_ONLY = PROJECT | {"providers": {"default": "fal"}}
THREE_HELD_FRAMES = (3, 4, 3)  # three shots whose first call is one keyframe each: three requests in flight at once
WAIT_S = "3"


@pytest.fixture
def fal_queue() -> Iterator[FakeFal]:
    """fal running two requests at once, each for a minute: a third waits in the queue."""
    with FakeFal(slow_s=60.0) as fake:
        fake.running_limit = 2
        yield fake


@pytest.fixture
def fal_here(fal_queue: FakeFal, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFal]:
    """The fake, as this process's fal provider sees it (a worker running a flow's hooks)."""
    for name, value in (fal_queue.env() | {"REELFLOW_CANCEL_WAIT_S": WAIT_S}).items():
        monkeypatch.setenv(name, value)
    get_provider.cache_clear()
    yield fal_queue
    get_provider.cache_clear()


def three_ways(fal: FakeFal, rows: list[LedgerRow], *, finishing: bool = True) -> tuple[str, str, str]:
    """Of three requests in flight: the one queued, one running that finishes when asked to stop (with `finishing`),
    one running whose status is never answered again."""
    states = {row.request_id: fal.state_of(row.request_id) for row in rows}
    queued = [request for request, state in states.items() if state == "IN_QUEUE"]
    running = [request for request, state in states.items() if state == "IN_PROGRESS"]
    assert len(queued) == 1 and len(running) == 2, states
    fal.run_past_cancel = finishing
    fal.silent_status.add(running[1])
    return queued[0], running[0], running[1]


def assert_stopped(ledger: Ledger, fal: FakeFal, queued: str, finished: str, silent: str) -> None:
    """Each request as fal left it, in the ledger at what it cost, and nothing open."""
    rows = {row.request_id: row for row in ledger.rows() if row.request_id in (queued, finished, silent)}
    assert not ledger.rows("status IN ('submitting', 'pending')"), "nothing left pending"
    assert sorted(fal.cancels) == sorted([queued, finished, silent])
    assert (rows[queued].status, rows[queued].cost_usd) == ("cancelled", 0.0)
    assert fal.state_of(queued) == "REMOVED" and fal.jobs[queued].billed_usd == 0.0, "removed from the queue, unbilled"
    assert rows[finished].status == "completed" and fal.jobs[finished].billed_usd > 0
    assert rows[finished].cost_usd == pytest.approx(fal.jobs[finished].billed_usd), "settled at what fal billed"
    assert rows[silent].status == "unknown" and rows[silent].spent_usd == rows[silent].price_usd > 0
    assert "cancelled" in rows[silent].detail and f"did not say how it ended within {WAIT_S} s" in rows[silent].detail
    assert ledger.spent(shadow=False) == pytest.approx(fal.billed_usd + rows[silent].price_usd)


def read_flow_run(run: str) -> tuple[FlowRun, str]:
    """The Prefect flow run whose id is the ledger run `run`, and its flow's name."""
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(run))
        return flow_run, client.read_flow(flow_run.flow_id).name


def test_every_render_flow_stops_its_spend_when_cancelled_and_gives_its_pods_back() -> None:
    for flow in (render_episode, render_pending, render_changed, previz_episode):
        assert flow.on_cancellation_hooks == [stop_render_spend, release_gpu], flow.name
        assert flow.on_crashed_hooks == [release_gpu], flow.name  # a crash's requests are resumed by the next render
        assert flow.on_completion_hooks == [release_gpu] and flow.on_failure_hooks == [release_gpu], flow.name


def test_the_ledger_run_is_the_flow_runs_id_inside_a_flow_run_and_new_outside() -> None:
    from prefect import flow

    @flow
    def probe() -> str:
        return ledger_run()

    state = probe(return_state=True)
    assert state.result() == state.state_details.flow_run_id.hex
    assert ledger_run() != ledger_run() and len(ledger_run()) == 32


def test_a_cancelled_render_cancels_settles_or_counts_each_request_it_left_in_flight(
    tmp_path: Path, fal_here: FakeFal
) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=THREE_HELD_FRAMES), project=FAL_ONLY)
    ledger = Ledger.at(root / ".reelflow")
    render_killed_in_flight(root, fal_here, 3)  # the worker killed the flow run's process
    rows = ledger.rows("status = 'pending'")
    queued, finished, silent = three_ways(fal_here, rows)
    [run] = {row.run for row in rows}
    flow_run, flow_name = read_flow_run(run)
    assert flow_name == "render-episode" and flow_run.id.hex == run, "the ledger run is the flow run"

    state = Cancelling(message="cancelled from the UI")
    started = time.monotonic()
    for hook in render_episode.on_cancellation_hooks:  # as the worker runs them, by keyword
        hook(flow=render_episode, flow_run=flow_run, state=state)

    assert time.monotonic() - started < float(WAIT_S) + 10, "the wait for fal's answers is bounded"
    assert_stopped(ledger, fal_here, queued, finished, silent)
    assert fal_here.total_submits() == 3


def test_a_cancelled_render_pending_settles_the_requests_of_its_episodes(tmp_path: Path, fal_here: FakeFal) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=THREE_HELD_FRAMES), project=FAL_ONLY)
    ledger = Ledger.at(root / ".reelflow")
    script = "import sys; from reelflow.flows.pending import render_pending; render_pending(sys.argv[1])"
    process = started_in_flight([sys.executable, "-c", script, str(root)], ledger, fal_here, 3)
    os.killpg(process.pid, signal.SIGKILL)  # the worker killed the cancelled run's process
    process.wait()
    rows = ledger.rows("status = 'pending'")
    queued, finished, silent = three_ways(fal_here, rows)
    [parent] = {row.parent_run for row in rows}
    [episode_run] = {row.run for row in rows}
    flow_run, flow_name = read_flow_run(parent)
    assert flow_name == "render-pending" and read_flow_run(episode_run)[1] == "render-episode"

    state = Cancelling(message="cancelled from the UI")
    for hook in render_pending.on_cancellation_hooks:
        hook(flow=render_pending, flow_run=flow_run, state=state)

    assert_stopped(ledger, fal_here, queued, finished, silent)


def test_ctrl_c_of_reelflow_render_stops_its_spend_and_exits_130(tmp_path: Path, fal_queue: FakeFal) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=THREE_HELD_FRAMES), project=FAL_ONLY)
    ledger = Ledger.at(root / ".reelflow")
    process = started_in_flight([str(REELFLOW), "render", str(root), "--episode", "1"], ledger, fal_queue, 3,
                                env={"REELFLOW_CANCEL_WAIT_S": WAIT_S})
    rows = ledger.rows("status = 'pending'")
    # The render's own threads keep polling fal until the process ends: the running requests never end here (one
    # asked to stop keeps its runner), so the one queued stays queued whichever is cancelled first.
    queued, stopping, silent = three_ways(fal_queue, rows, finishing=False)

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in its terminal
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"still running a minute after Ctrl-C: {process.communicate()[1]}")

    assert process.returncode == 130, stderr
    assert not ledger.rows("status IN ('submitting', 'pending')"), "nothing left pending"
    assert sorted(fal_queue.cancels) == sorted([queued, stopping, silent])
    settled = {row.request_id: (row.status, row.spent_usd) for row in ledger.rows()}
    assert settled[queued] == ("cancelled", 0.0) and fal_queue.billed_usd == 0.0
    prices = {row.request_id: row.price_usd for row in rows}
    assert settled[stopping] == ("unknown", prices[stopping]) and settled[silent] == ("unknown", prices[silent])
    lines = stderr.splitlines()
    assert any(line.startswith("stopping: cancelling this render's provider requests") for line in lines), stderr
    assert [line.split(" ", 1)[0] for line in lines if queued in line] == ["cancelled:"], stderr
    assert [line.split(" ", 1)[0] for line in lines if stopping in line or silent in line] == ["unknown:"] * 2, stderr
    flow_run, _ = read_flow_run(rows[0].run or "")
    assert flow_run.state is not None and flow_run.state.is_cancelled()
    assert fal_queue.total_submits() == 3, "nothing more was sent"


def started_in_flight(argv: list[str], ledger: Ledger, fal: FakeFal, submits: int,
                      env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `argv` in a session of its own and return once fal holds `submits` requests, each written down as
    pending (none being sent) and polled since (as conftest's render_killed_in_flight waits)."""
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    process = subprocess.Popen(argv, env=environment | fal.env() | (env or {}), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        held, pending = fal.total_submits(), ledger.rows("status = 'pending'")
        polled = all(fal.status_polls[row.request_id] >= 2 for row in pending)
        if held >= submits and not ledger.rows("status = 'submitting'") and len(pending) == held and polled:
            return process
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"{submits} requests never in flight: {process.communicate()}")
