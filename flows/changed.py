"""Render what a commit changed: bring the project's checkout to it, then render each changed episode.

Meant for a push to the project's repository: the episodes come from the inputs that changed between `base` and
`head` (storyboards, project.json, breakdown.json, the LoRA registry, keystones), or are given.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State

from reelflow.flows.gpu import RELEASE_GPU
from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.flows.pending import EpisodeRuns, episode_table, render_each
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import load_project
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import money_words
from reelflow.state.checkout import bring_to, changed_episodes, resolve_commit


class ChangedReport(EpisodeRuns):
    """What render-changed did: the commit it rendered, the one it compared with, and each episode's render."""

    head: str
    base: str | None = None


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
    **RELEASE_GPU,
    **FLOW_OPTIONS,
)
def render_changed(
    project: str,
    head: str,
    episodes: list[int] | None = None,
    base: str | None = None,
    max_cost_usd: float | None = None,
) -> ChangedReport | State:
    """Check the project out at `head` and render `episodes`, or those whose inputs changed since `base`; one artifact.

    Uncommitted changes to the checkout's inputs refuse the run (Failed, with that one line) before anything moves.
    `max_cost_usd` caps the whole run; the project's `budget_usd` holds inside every render, and the first render a
    budget stops ends the run. With a failed episode the run ends Failed, still carrying the report.
    """
    logger = get_run_logger()
    root = Path(project)
    try:
        if episodes is None and base is None:
            raise ContractError(f"{root}: render-changed needs `base` (the commit to compare with) or `episodes`")
        sha = bring_to(root, head)
        base_sha = None if base is None else resolve_commit(root, base)
        if episodes is not None:
            chosen = sorted(set(episodes))
        else:
            chosen = changed_episodes(root, base_sha, sha)  # base_sha is set: checked above
        folder = load_project(root)
    except ContractError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    logger.info("checked out %s; episodes to render: %s", sha, chosen or "none")
    runs = render_each(project, chosen, max_cost_usd)
    report = ChangedReport(head=sha, base=base_sha, **runs.model_dump())
    create_markdown_artifact(
        key=f"{folder.project.code.lower()}-render-changed",
        markdown=_summary(report, folder.project.code, asked=episodes is not None),
        description=f"{folder.project.title} at {sha[:12]}: the episodes its inputs changed, rendered",
    )
    if report.failed:
        return Failed(message=f"episodes {', '.join(map(str, report.failed))} failed at {sha[:12]}", data=report)
    return report
