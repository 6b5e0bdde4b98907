"""Review an episode from the Prefect UI: the run pauses with a form, and the director's decisions go to the dailies.

Run it after a render (or on a schedule): the run lists the shots waiting for review in an artifact,
pauses, and resumes when someone fills the form (approve / retake / needs review, and a note).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, pause_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput
from pydantic import Field

from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.schemas.dailies import Dailies, DailiesShot, decisions_from
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import apply_seen_decisions, read_dailies

WAITING = ("generated", "needs_review")


class DailiesForm(RunInput):
    """The form the Prefect UI shows on the paused run."""

    approve: list[int] = Field(default_factory=list, description="Shot numbers to approve")
    retake: list[int] = Field(default_factory=list, description="Shot numbers to render again as a new take")
    needs_review: list[int] = Field(default_factory=list, description="Shot numbers to look at again later")
    note: str | None = Field(None, description="A note recorded with every decision of this form")


def _gates(review: DailiesShot) -> str:
    tries = [t for t in review.gates if t.take == review.take]
    if not tries:
        return ""
    last = tries[-1]
    scores = ", ".join(f"{role} {score:.2f}" for role, score in last.scores.items())
    return f"{last.route} after {len(tries)} tr{'y' if len(tries) == 1 else 'ies'}" + (f" ({scores})" if scores else "")


def waiting_table(dailies: Dailies) -> str:
    """Markdown: the shots waiting for a decision, their take and what the gates said."""
    rows = [
        f"| {r.shot} | T{r.take:02d} | {r.status} | {_gates(r)} | {(r.note or '').replace('|', '/')} |"
        for r in dailies.shots if r.status in WAITING
    ]
    return "\n".join([
        f"# Dailies: episode {dailies.episode:03d}",
        "",
        "| shot | take | status | gates | note |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ])


@flow(name="review-episode", flow_run_name=run_name("review"), on_running=[tag_run()], **FLOW_OPTIONS)
def review_episode(project: str, episode: int, timeout_s: int = 86_400, poll_s: int = 10) -> dict[int, str]:
    """Pause for the director's decisions on the episode's dailies, then record them; returns each shot's status."""
    logger = get_run_logger()
    folder = load_project(project)
    storyboard = load_storyboard(folder, episode)
    shown = read_dailies(folder, storyboard)
    table = waiting_table(shown)
    create_markdown_artifact(key=f"{folder.project.code.lower()}-ep{episode:03d}-dailies", markdown=table,
                             description=f"{folder.project.title} episode {episode}: shots waiting for review")
    form = pause_flow_run(
        wait_for_input=DailiesForm.with_initial_data(description=table), timeout=timeout_s, poll_interval=poll_s
    )
    decisions = decisions_from(form.approve, form.retake, form.needs_review)
    # A shot a render (or another reviewer) changed while the form waited keeps that change: the form showed older state.
    seen = {review.shot: review.version for review in shown.shots}
    dailies, stale = apply_seen_decisions(folder, storyboard, decisions, seen, by="prefect ui", note=form.note)
    for line in stale:
        logger.warning(line)
    logger.info("episode %s: %s decisions recorded", episode, len(decisions) - len(stale))
    return {review.shot: review.status for review in dailies.shots}
