"""How a flow run reads in the Prefect UI: named `LEV-ep001-render-20261125-210533`, tagged by project, episode
and provider.

Every flow takes `project` (its folder) and most take `episode`; the name callable and the `on_running` hook read them
from the run's parameters, so the CLI and direct calls get the same names and tags. A flow over several episodes
(render-pending, render-changed) is named and tagged without one: `LEV-render-pending-20261126-020000`. Every flow
also shares FLOW_OPTIONS: no print capture, and its report kept as the run's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
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


def _project(parameters: dict[str, Any]) -> Project | None:
    """The run's project.json, or None when it does not load (the flow itself then fails, saying why)."""
    try:
        return load_project(parameters["project"]).project
    except ContractError:
        return None


def run_name(kind: str) -> Callable[[], str]:
    """A `flow_run_name` callable: project code, episode or character (if the flow has one), `kind` and the local
    start time, e.g. `LEV-JINX-train-20261126-010203`."""

    def name() -> str:
        parameters = current_run.parameters
        project = _project(parameters)
        code = f"{project.code}-" if project else ""
        episode = f"ep{int(parameters['episode']):03d}-" if "episode" in parameters else ""
        character = f"{parameters['character']}-" if "character" in parameters else ""
        return f"{code}{episode}{character}{kind}-{time.strftime('%Y%m%d-%H%M%S')}"

    return name


def run_tags(project: Project, episode: int | None, stages: Iterable[str]) -> list[str]:
    """`project:LEV`, `episode:1` (without an episode, none), and `provider:NAME` for every provider the stages may
    call (fallbacks included)."""
    providers = [f"provider:{name}" for name in providers_for(project, stages)]
    episodes = [] if episode is None else [f"episode:{episode}"]
    return [f"project:{project.code}", *episodes, *providers]


def tag_run(stages: Iterable[str] = ()) -> Callable[[Flow[..., Any], FlowRun, State], None]:
    """An `on_running` hook that adds the run's tags to those it was created with (`prefect.tags`, if any)."""
    stages = tuple(stages)

    def add_tags(flow: Flow[..., Any], run: FlowRun, state: State) -> None:
        project = _project(run.parameters)
        if project is None:
            return
        episode = run.parameters.get("episode")
        tags = list(dict.fromkeys([*run.tags, *run_tags(project, None if episode is None else int(episode), stages)]))
        if tags != run.tags:
            with get_client(sync_client=True) as client:
                client.update_flow_run(run.id, tags=tags)
            run.tags = tags

    return add_tags
