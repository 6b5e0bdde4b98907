"""A review run of a deployment waits for its form on the server, not in a process: its worker can stop and another
start before the director answers, and the run executed again records the answer without showing a new form."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import FlowRun
from prefect.workers.process import ProcessWorker

from reelflow.cli import studio
from reelflow.schemas.dailies import Dailies
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import changing_dailies, now

from projects import write_project

STAMP = r"\d{8}-\d{6}"


@pytest.fixture
def review_pool(prefect_api: str) -> Iterator[tuple[str, UUID]]:
    """A process pool of the test's own (no other test's worker takes its runs) and review-episode deployed on it as
    prefect.yaml deploys it; both deleted after the test."""
    pool = f"review-{uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                               base_job_template=ProcessWorker.get_default_base_job_template()))
        flow_id = client.create_flow_from_name("review-episode")
        deployment_id = client.create_deployment(
            flow_id, pool, entrypoint="reelflow.flows.review:review_episode", work_pool_name=pool, tags=["reelflow"],
            pull_steps=[{"reelflow.cli.server.work_in_home": {}}])
    yield pool, deployment_id
    with get_client(sync_client=True) as client:
        client.delete_deployment(deployment_id)
        client.delete_work_pool(pool)


def wait_for(client: SyncPrefectClient, run_id: UUID, done: Callable[[FlowRun], bool], what: str) -> FlowRun:
    deadline = time.monotonic() + 90
    while not done(run := client.read_flow_run(run_id)):
        assert time.monotonic() < deadline, f"the review run never {what}: {run.state}"
        time.sleep(0.3)
    return run


def dailies(root: Path) -> Dailies:
    return Dailies.model_validate_json((root / "storyboards" / "dailies_ep_001.json").read_bytes())


def test_a_review_waits_for_its_form_through_a_worker_restart(
    tmp_path: Path, prefect_api: str, review_pool: tuple[str, UUID],
) -> None:
    pool, deployment_id = review_pool
    root = write_project(tmp_path / "proj")
    folder = load_project(root)
    with changing_dailies(folder, load_storyboard(folder, 1)) as state:
        for number in (1, 2, 3):
            state.shot(number).rendered(1, "pass", at=now())
    home = tmp_path / "home"
    home.mkdir()
    env = studio.worker_env(home, prefect_api, prefect_api.removesuffix("/api")) | {"PREFECT_WORKER_QUERY_SECONDS": "1"}

    with get_client(sync_client=True) as client:
        [worker] = studio.start_workers(client, home, env, [pool])
        try:
            run = client.create_flow_run_from_deployment(deployment_id, parameters={"project": str(root), "episode": 1})
            suspended = wait_for(client, run.id, lambda r: r.state_name == "Suspended", "suspended")
            deadline = time.monotonic() + 30
            while studio.descendants(worker["pid"]):  # the run's process exits: nothing holds the form
                assert time.monotonic() < deadline, "the suspended run's process is still running"
                time.sleep(0.3)
        finally:
            studio.stop_tree(worker["pid"])
        # Started from the deployment, the run carries reelflow's name and the project's tags.
        assert re.fullmatch(rf"TST-ep001-review-{STAMP}", suspended.name), suspended.name
        assert {"project:TST", "episode:1"} <= set(suspended.tags)

        # While no worker runs, a render makes shot 2 again: an answer about the take the form showed must not stand.
        with changing_dailies(folder, load_storyboard(folder, 1)) as state:
            state.shot(2).rendered(2, "pass", at=now())
        assert client.read_flow_run(run.id).state_name == "Suspended"
        [again] = studio.start_workers(client, home, env, [pool])
        try:
            # What the UI's form does: resume the run with its input.
            outcome = client.resume_flow_run(run.id, run_input={"approve": [1, 2], "retake": [3], "note": "restarted"})
            assert outcome.status.value == "ACCEPT", outcome
            done = wait_for(client, run.id, lambda r: bool(r.state and r.state.is_final()), "finished")
        finally:
            studio.stop_tree(again["pid"])
        states = [state.name for state in client.read_flow_run_states(run.id)]

    assert done.state_name == "Completed", done.state
    shots = {shot.shot: shot for shot in dailies(root).shots}
    assert (shots[1].status, shots[1].approved_take) == ("approved", 1)
    assert (shots[2].status, shots[2].take) == ("generated", 2), "the answer about take 1 left take 2 alone"
    assert shots[3].status == "retake" and shots[3].history[-1].by == "prefect ui" and shots[3].note == "restarted"
    assert states.count("Suspended") == 1 and states.count("Running") == 2, states  # executed twice, one form
    assert done.name == suspended.name  # the second execution kept the name
