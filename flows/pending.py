"""Render every episode with shots still to make: pending (never rendered, or failed), sent back for a retake, or
rendered from inputs that changed since (never an approved shot).

Meant for the nightly schedule. Episodes render one after another, each as a `render-episode` subflow, under the
project's budget; the first render a budget stops ends the run, and the episodes after it wait for the next one.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from reelflow.flows.cancel import RENDER_HOOKS, ledger_run
from reelflow.flows.exclusive import one_run_per_project
from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.flows.render import render_episode, shot_jobs
from reelflow.schemas.dailies import Dailies
from reelflow.schemas.env import checkout_here
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import STORYBOARD_FILE, ProjectFolder, load_project, load_storyboard
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import RenderReport, money_words
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import read_dailies
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.manifest import read_manifest
from reelflow.tasks.takes import as_made
from reelflow.tasks.upgrades import shot_inputs

# the review states that leave a shot to render: approved keyframes wait for their video
TO_RENDER = ("pending", "retake", "keyframes_approved")


class EpisodeRun(BaseModel):
    """One episode's render-episode subflow inside a run over several episodes: its state, shots, cost and cut."""

    episode: int
    flow_run_id: str | None = None
    state: str  # the subflow's final state: Completed, Failed, Crashed
    rendered: int = 0
    cached: int = 0
    kept: int = 0
    failed: int = 0
    charged_usd: float = 0.0
    shadow_usd: float = 0.0
    cut: str | None = None
    note: str | None = None  # why there is no cut, or why the render failed
    stopped: str | None = None  # the budget line, when a cap refused this render's calls


class EpisodeRuns(BaseModel):
    """Episodes rendered one after another; a budget stop leaves the rest for a later run."""

    episodes: list[EpisodeRun] = Field(default_factory=list)
    not_rendered: list[int] = Field(default_factory=list, description="left after a budget stop")
    stopped: str | None = None  # the budget line that stopped the run

    @property
    def failed(self) -> list[int]:
        """The episodes whose render did not complete."""
        return [row.episode for row in self.episodes if row.state != "Completed"]


class PendingReport(EpisodeRuns):
    """What render-pending did: each episode it rendered, and those with nothing to render."""

    project: str
    up_to_date: list[int] = Field(default_factory=list, description="episodes with no pending or retake shot")


def episode_run(episode: int, state: State) -> EpisodeRun:
    """One row from a render-episode subflow's final state: its report, or the error it failed with."""
    result = state.result(raise_on_failure=False)
    row = EpisodeRun(episode=episode, flow_run_id=str(state.state_details.flow_run_id), state=state.name or state.type.value)
    if isinstance(result, RenderReport):
        row.rendered, row.cached, row.kept, row.failed = (result.shots.rendered, result.shots.cached, result.shots.kept,
                                                          result.shots.failed)
        row.charged_usd, row.shadow_usd = result.charged_usd, round(result.shadow_usd, 6)
        row.cut, row.note, row.stopped = result.output, result.cut_skipped, result.budget.stopped
    elif isinstance(result, BaseException):
        row.note = "; ".join(str(result).splitlines()) or type(result).__name__
    else:
        row.note = state.message
    return row


def render_each(project: str, episodes: list[int], max_cost_usd: float | None) -> EpisodeRuns:
    """Render the episodes one after another as subflows, all under `max_cost_usd` together; a budget stop ends it.

    The cap counts the ledger's charged spend of every subflow's calls (pending and unknown requests at their price),
    read from the ledger, so an episode that raised after spending still counts.
    """
    logger = get_run_logger()
    folder = load_project(project)
    ledger = Ledger(database(folder.state_dir))
    parent = ledger_run()
    runs = EpisodeRuns()
    for index, episode in enumerate(episodes):
        spent = ledger.spent(parent, shadow=False)
        if max_cost_usd is not None and spent >= max_cost_usd:
            runs.stopped = f"budget: this run's cap of ${max_cost_usd:.2f} is spent (${spent:.3f})"
        if runs.stopped:
            runs.not_rendered = episodes[index:]
            logger.warning("%s: episodes %s not rendered", runs.stopped, ", ".join(map(str, runs.not_rendered)))
            break
        state = render_episode(project, episode, max_cost_usd=max_cost_usd, parent_run=parent, return_state=True)
        row = episode_run(episode, state)
        runs.episodes.append(row)
        logger.info("episode %s: %s (%s rendered, %s cached, %s failed)", episode, row.state, row.rendered, row.cached,
                    row.failed)
        runs.stopped = row.stopped
    return runs


def episode_table(runs: EpisodeRuns) -> list[str]:
    """Markdown lines: one table row per episode rendered, then the budget stop and what it left."""
    rows = [
        f"| {row.episode} | {row.state} | {row.rendered} | {row.cached} | {row.kept} | {row.failed} "
        f"| {money_words(row.charged_usd, row.shadow_usd)} | {f'`{row.cut}`' if row.cut else row.note or ''} "
        f"| `{row.flow_run_id}` |"
        for row in runs.episodes
    ]
    left = f"; not rendered: episodes {', '.join(map(str, runs.not_rendered))}" if runs.not_rendered else ""
    stop = [f"**Stopped:** {runs.stopped}{left}"] if runs.stopped else []
    return [
        "| episode | state | rendered | cached | kept | failed | cost | cut | flow run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        *stop,
    ]


def changed_shots(folder: ProjectFolder, storyboard: Storyboard, dailies: Dailies) -> list[int]:
    """The rendered shots, not approved, whose current take was made from other inputs than the project has now (the
    storyboard, project.json, a LoRA changed since): rendering the episode makes them again."""
    numbers = {shot.shot for shot in storyboard.shots}
    manifest = read_manifest(folder.assets_dir(storyboard.episode), folder.project.code, storyboard.episode,
                             folder.state_dir)
    recorded = {(take.shot, take.take): take.inputs for take in manifest.takes}
    takes = {review.shot: review.take for review in dailies.shots
             if review.shot in numbers and review.status not in ("approved", *TO_RENDER)}
    made = [as_made(job, manifest) for job in shot_jobs(folder, storyboard, takes, run="pending")]
    return [job.shot.shot for job in made if recorded.get((job.shot.shot, job.take), shot_inputs(job)) != shot_inputs(job)]


def pending_episodes(folder: ProjectFolder) -> tuple[list[int], list[int]]:
    """The episodes with a pending or retake shot, or a shot (not approved) whose inputs changed since its take was
    made, and those with none; an unreadable storyboard or dailies counts as pending (its render then says what is
    wrong)."""
    pending, up_to_date = [], []
    for path in folder.storyboard_paths():
        match = STORYBOARD_FILE.fullmatch(path.name)
        if match is None:
            continue
        episode = int(match[1])
        try:
            storyboard = load_storyboard(folder, episode)
            numbers = {shot.shot for shot in storyboard.shots}
            dailies = read_dailies(folder, storyboard)
            waiting = (any(r.status in TO_RENDER for r in dailies.shots if r.shot in numbers)
                       or bool(changed_shots(folder, storyboard, dailies)))
        except (ContractError, ValueError):
            waiting = True
        (pending if waiting else up_to_date).append(episode)
    return pending, up_to_date


@flow(
    name="render-pending",
    flow_run_name=run_name("render-pending"),
    on_running=[tag_run(RENDER_STAGES)],
    **RENDER_HOOKS,
    **FLOW_OPTIONS,
)
@one_run_per_project  # another run of this project running, or a newer one due: this one ends Cancelled, doing nothing
def render_pending(project: str, max_cost_usd: float | None = None) -> PendingReport | State:
    """Render, one after another, every episode with a pending or retake shot, or a shot (not approved) whose inputs
    changed since its take was made; leave one artifact.

    `max_cost_usd` caps the whole run (each episode gets what the ones before it left); the project's `budget_usd`
    holds inside every render. The first render a budget stops ends the run. With a failed episode the run ends
    Failed, still carrying the report.

    Args:
        project: The project folder's absolute path on the worker's machine.
        max_cost_usd: A cap on this run's spend in USD, shared by its episodes (the project's budget_usd holds too).
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    folder = load_project(project)
    pending, up_to_date = pending_episodes(folder)
    logger.info("pending: episodes %s; nothing to render: %s", pending or "none", up_to_date or "none")
    runs = render_each(project, pending, max_cost_usd)
    report = PendingReport(project=folder.project.code, up_to_date=up_to_date, **runs.model_dump())
    create_markdown_artifact(
        key=f"{folder.project.code.lower()}-render-pending",
        markdown="\n".join([
            f"# {folder.project.code}: render pending",
            "",
            f"Rendered: episodes {', '.join(str(row.episode) for row in runs.episodes) or 'none'} · "
            f"nothing pending: {', '.join(map(str, up_to_date)) or 'none'}  ",
            f"Cost: {money_words(sum(r.charged_usd for r in runs.episodes), sum(r.shadow_usd for r in runs.episodes))}",
            "",
            *episode_table(runs),
        ]),
        description=f"{folder.project.title}: the episodes with pending or retake shots, rendered",
    )
    if runs.failed:
        return Failed(message=f"episodes {', '.join(map(str, runs.failed))} failed", data=report)
    return report
