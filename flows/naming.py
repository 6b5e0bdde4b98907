"""How a flow run reads in the Prefect UI: named `LEV-ep001-render-20261125-210533`, tagged by project, episode
and provider.

Every flow takes `project` (its folder) and most take `episode`; the name callable and the `on_running` hook read them
from the run's parameters, so the CLI, direct calls and deployment runs get the same names and tags. A flow over
several episodes (render-pending, render-changed) is named and tagged without one: `LEV-render-pending-20261126-020000`.
Prefect names a deployment's run at random when it makes it and renames it as it starts; the runs a schedule made are
named and tagged here before they start (`name_scheduled_runs`), with their scheduled time in the project's time
zone, and keep that name once they run. Every flow also shares FLOW_OPTIONS: no print capture, and its report kept as
the run's result.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import flow_run as current_run
from prefect.states import State

from reelflow.providers.registry import providers_for
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.schemas.project import Project

# Every flow's own options. Logs go through Prefect's logger, not print. The report is kept as the run's result (a
# few KB under PREFECT_HOME/storage), so the final state the server holds carries it too: a busy server answers a
# retried state proposal with its own copy of the state, and without a stored result that copy has no data.
FLOW_OPTIONS: dict[str, Any] = {"log_prints": False, "persist_result": True}
STAMP = "%Y%m%d-%H%M%S"  # the time at the end of a run's name
STAMPED = r"\d{8}-\d{6}"
RUNS_PAGE = 200


def _project(parameters: dict[str, Any]) -> Project | None:
    """The run's project.json, or None when it does not load (the flow itself then fails, saying why)."""
    try:
        return load_project(parameters["project"]).project
    except (ContractError, KeyError):
        return None


def name_prefix(kind: str, parameters: dict[str, Any], project: Project | None) -> str:
    """A run's name before its time: project code, episode or character (if the flow has one) and `kind`, e.g.
    `LEV-JINX-train-`."""
    code = f"{project.code}-" if project else ""
    episode = f"ep{int(parameters['episode']):03d}-" if "episode" in parameters else ""
    character = f"{parameters['character']}-" if "character" in parameters else ""
    return f"{code}{episode}{character}{kind}-"


class RunName:
    """A `flow_run_name` callable: name_prefix and the local start time, e.g. `LEV-JINX-train-20261126-010203`.

    A run that already has such a name keeps it: a scheduled run named with its scheduled time, and a run executed
    again (a review resumed after its process exited) keep the name people saw."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self) -> str:
        parameters = current_run.parameters
        prefix = name_prefix(self.kind, parameters, _project(parameters))
        given = current_run.name
        if given and re.fullmatch(re.escape(prefix) + STAMPED, given):
            return given
        return prefix + time.strftime(STAMP)


def run_name(kind: str) -> RunName:
    """The `flow_run_name` of a flow whose runs are named `kind` (see RunName)."""
    return RunName(kind)


def run_tags(project: Project, episode: int | None, stages: Iterable[str]) -> list[str]:
    """`project:LEV`, `episode:1` (without an episode, none), and `provider:NAME` for every provider the stages may
    call (fallbacks included)."""
    providers = [f"provider:{name}" for name in providers_for(project, stages)]
    episodes = [] if episode is None else [f"episode:{episode}"]
    return [f"project:{project.code}", *episodes, *providers]


def _tags_of(run: FlowRun, project: Project, stages: Iterable[str]) -> list[str]:
    """The run's tags with its project's, episode's and providers' added (those it has first, in their order)."""
    episode = run.parameters.get("episode")
    return list(dict.fromkeys([*run.tags, *run_tags(project, None if episode is None else int(episode), stages)]))


def name_scheduled_runs(client: SyncPrefectClient, deployment_id: UUID, kind: str, stages: Iterable[str]) -> int:
    """Name and tag the deployment's runs that have not started (Scheduled, Late) as they will be once they run; the
    time in a name is the run's scheduled time in its project's time zone. Returns how many runs changed.

    The deployment's schedules get their runs first, as Prefect's scheduler would within a minute, so that the runs it
    would make are named too (a run's schedule and time make its id key: none is made twice)."""
    stages = tuple(stages)
    client.request("POST", "/deployments/{id}/schedule", path_params={"id": deployment_id}, json={})
    waiting = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                            state=FlowRunFilterState(type={"any_": [StateType.SCHEDULED]}))
    changed, offset = 0, 0
    while True:
        runs = client.read_flow_runs(flow_run_filter=waiting, sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                                     limit=RUNS_PAGE, offset=offset)
        for run in runs:
            project = _project(run.parameters)
            if project is None or run.expected_start_time is None:
                continue
            at = run.expected_start_time.astimezone(ZoneInfo(project.timezone))
            name = name_prefix(kind, run.parameters, project) + at.strftime(STAMP)
            tags = _tags_of(run, project, stages)
            if (name, tags) != (run.name, run.tags):
                client.update_flow_run(run.id, name=name, tags=tags)
                changed += 1
        if len(runs) < RUNS_PAGE:
            return changed
        offset += RUNS_PAGE


def tag_run(stages: Iterable[str] = ()) -> Callable[[Flow[..., Any], FlowRun, State], None]:
    """An `on_running` hook that adds the run's tags to those it was created with (`prefect.tags`, if any). A run a
    schedule made also names and tags the runs its deployment's schedules made since (name_scheduled_runs)."""
    stages = tuple(stages)

    def add_tags(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
        project = _project(flow_run.parameters)
        if project is None:
            return
        tags = _tags_of(flow_run, project, stages)
        naming = flow.flow_run_name if isinstance(flow.flow_run_name, RunName) else None
        by_schedule = flow_run.created_by is not None and flow_run.created_by.type == "SCHEDULE"
        deployment_id = flow_run.deployment_id if naming is not None and by_schedule else None
        if tags == flow_run.tags and deployment_id is None:
            return
        with get_client(sync_client=True) as client:
            if tags != flow_run.tags:
                client.update_flow_run(flow_run.id, tags=tags)
                flow_run.tags = tags
            if naming is not None and deployment_id is not None:
                name_scheduled_runs(client, deployment_id, naming.kind, stages)

    return add_tags
