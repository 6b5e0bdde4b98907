"""Render what a push changed: in push order per project, bring the project's checkout to the pushed commit, then render
each episode whose inputs changed since the last commit the studio rendered.

Meant for a push to the project's repository: the episodes come from the inputs that changed (storyboards,
project.json, breakdown.json, the LoRA registry, keystones), or are given. Runs of one project go one at a time in the
order their pushes came; the checkout moves while no render reads it, and never backwards: an older push than the
checkout ends Cancelled, its commit already rendered in a later one.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.runtime import flow_run as current_run
from prefect.states import Cancelled, Failed, State

from reelflow.flows.cancel import RENDER_HOOKS
from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.flows.nightly import follow_nightly
from reelflow.flows.pending import EpisodeRuns, episode_table, render_each
from reelflow.schemas.env import checkout_here, env_number
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import money_words
from reelflow.state.checkout import (
    OlderHead,
    bring_to,
    changed_episodes,
    is_ancestor,
    moving,
    record_rendered,
    rendered_head,
    resolve_commit,
)

ORDER_WAIT_ENV = "REELFLOW_PUSH_ORDER_WAIT_S"
ORDER_WAIT_S = 6 * 3600.0  # how long a run waits for the earlier pushes of its project before going on
ORDER_POLL_S = 1.0
OPEN = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


class ChangedReport(EpisodeRuns):
    """What render-changed did: the commit it rendered, the one it compared with, and each episode's render."""

    head: str
    base: str | None = None
    push: str | None = None  # the push event's id, when a push made the run


def earlier_pushes(project: str) -> list[FlowRun]:
    """The render-changed runs of the same project made before this one and not yet over (due ones only)."""
    me = current_run.id
    if me is None:
        return []
    with get_client(sync_client=True) as client:
        mine = client.read_flow_run(me)
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["render-changed"])),
            flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(OPEN)))),
            sort=FlowRunSort.ID_DESC, limit=200, offset=0)
    if mine.created is None:
        return []
    return [run for run in runs if run.id != mine.id and run.parameters.get("project") == project
            and run.created is not None and run.created < mine.created
            and not (run.state_type == StateType.SCHEDULED and run.expected_start_time is not None
                     and run.expected_start_time > mine.created)]


def wait_for_earlier_pushes(project: str) -> None:
    """Wait until the project's earlier pushes are rendered (at most REELFLOW_PUSH_ORDER_WAIT_S)."""
    logger = get_run_logger()
    deadline = time.monotonic() + env_number(ORDER_WAIT_ENV, ORDER_WAIT_S)
    said: set[str] = set()
    while earlier := earlier_pushes(project):
        names = ", ".join(run.name for run in earlier)
        if time.monotonic() > deadline:
            logger.warning("earlier pushes still not over, going on: %s", names)
            return
        if names not in said:
            logger.info("waiting for the earlier pushes of this project: %s", names)
            said.add(names)
        time.sleep(ORDER_POLL_S)


def compared_from(root: Path, head: str, base: str | None) -> str | None:
    """Where the changes to render start: the last commit rendered when `head` extends it (pushes the studio missed
    are rendered too), else the push's own base."""
    last = rendered_head(root)
    if last is not None and last != head and is_ancestor(root, last, head):
        return last
    return base


def _summary(report: ChangedReport, code: str, asked: bool) -> str:
    """The artifact: the commit, why these episodes, their renders and cost."""
    episodes = ", ".join(str(row.episode) for row in report.episodes) or "none"
    why = "given" if asked else f"changed since `{report.base}`"
    charged, shadow = sum(r.charged_usd for r in report.episodes), sum(r.shadow_usd for r in report.episodes)
    return "\n".join([
        f"# {code}: render changed at `{report.head}`",
        "",
        f"Episodes ({why}): {episodes}  ",
        f"Cost: {money_words(charged, shadow)}",
        "",
        *episode_table(report),
    ])


@flow(
    name="render-changed",
    flow_run_name=run_name("render-changed"),
    on_running=[tag_run(RENDER_STAGES)],
    **RENDER_HOOKS,
    **FLOW_OPTIONS,
)
def render_changed(
    project: str,
    head: str,
    episodes: list[int] | None = None,
    base: str | None = None,
    max_cost_usd: float | None = None,
    push: str | None = None,
) -> ChangedReport | State:
    """Check the project out at `head` and render `episodes`, or those whose inputs changed since the last commit
    rendered (or `base`); one artifact.

    Runs of one project go in the order their pushes came. Uncommitted changes to the checkout's inputs refuse the
    run (Failed, with that one line) before anything moves; a push older than the checkout ends Cancelled. The
    project's `budget_usd` holds inside every render, and the first render a budget stops ends the run. With a
    failed episode the run ends Failed, still carrying the report.

    Args:
        project: The project folder's absolute path on the worker's machine.
        head: The pushed commit (a sha, branch or tag) to check out and render.
        episodes: The episodes to render; by default those whose inputs changed.
        base: The commit before the push, compared with `head` when no later commit was rendered.
        max_cost_usd: A cap on this run's spend in USD (the project's budget_usd holds too).
        push: The push event's id (set by the push trigger).
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    root = Path(project)
    wait_for_earlier_pushes(project)
    try:
        if episodes is None and base is None:
            raise ContractError(f"{root}: render-changed needs `base` (the commit to compare with) or `episodes`")
        if not root.is_dir():
            raise ContractError(f"{root}: not a project folder")
        with moving(root):
            sha = bring_to(root, head)
        since = None if episodes is not None else compared_from(root, sha, resolve_commit(root, base or sha))
        chosen = sorted(set(episodes)) if episodes is not None else changed_episodes(root, since or sha, sha)
        folder = load_project(root)
    except OlderHead as exc:
        logger.warning("%s", exc)
        return Cancelled(message=str(exc))
    except ContractError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    logger.info("checked out %s; episodes to render (changed since %s): %s", sha, since, chosen or "none")
    if (moved := follow_nightly(folder)) is not None:
        logger.info("nightly schedule follows project.json: %s", moved)
    runs = render_each(project, chosen, max_cost_usd)
    record_rendered(root, sha)
    report = ChangedReport(head=sha, base=since, push=push, **runs.model_dump())
    create_markdown_artifact(
        key=f"{folder.project.code.lower()}-render-changed",
        markdown=_summary(report, folder.project.code, asked=episodes is not None),
        description=f"{folder.project.title} at {sha[:12]}: the episodes its inputs changed, rendered",
    )
    if report.failed:
        return Failed(message=f"episodes {', '.join(map(str, report.failed))} failed at {sha[:12]}", data=report)
    return report
