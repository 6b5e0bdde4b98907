"""Review an episode from the Prefect UI: the run waits with a form, and the director's decisions go to the dailies.

Run it after a render (or on a schedule): the run lists the shots waiting for review in an artifact, waits, and goes
on when someone fills the form (approve / retake / needs review, and a note). A deployment's run suspends: its
process exits and the form waits on the server, through a worker's restart; the form's answer schedules the run
again, and that execution takes the answer and records it (without showing a new form). A run of `reelflow review`
has no deployment to be scheduled by: it pauses in its own process, and the form lasts as long as that process.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, pause_flow_run, suspend_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.input import RunInput, create_flow_run_input, delete_flow_run_input, read_flow_run_input
from pydantic import Field

from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.schemas.dailies import Dailies, DailiesShot, decisions_from
from reelflow.schemas.env import checkout_here
from reelflow.schemas.load import ProjectFolder, load_project, load_storyboard
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import apply_seen_decisions, read_dailies

WAITING = ("generated", "needs_review", "keyframes_review")
FORM_KEY = "dailies"  # the suspension's key: the second execution of a resumed run finds it has fired
SEEN_KEY = "reelflow-review-seen"  # the run input keeping each shot's version the form showed


class DailiesForm(RunInput):
    """The form the Prefect UI shows on the paused run."""

    approve: list[int] = Field(default_factory=list, description="Shot numbers to approve")
    retake: list[int] = Field(default_factory=list, description="Shot numbers to render again as a new take")
    needs_review: list[int] = Field(default_factory=list, description="Shot numbers to look at again later")
    approve_keyframes: list[int] = Field(
        default_factory=list, description="Shot numbers whose held keyframes to approve: the next render makes their video")
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


def show_waiting(folder: ProjectFolder, storyboard: Storyboard) -> tuple[dict[int, int], str]:
    """Publish the table of shots waiting for review as an artifact; returns each shot's version and the table."""
    shown = read_dailies(folder, storyboard)
    table = waiting_table(shown)
    create_markdown_artifact(key=f"{folder.project.code.lower()}-ep{storyboard.episode:03d}-dailies", markdown=table,
                             description=f"{folder.project.title} episode {storyboard.episode}: shots waiting for review")
    return {review.shot: review.version for review in shown.shots}, table


def ask(folder: ProjectFolder, storyboard: Storyboard, timeout_s: int, poll_s: int) -> tuple[DailiesForm, dict[int, int]]:
    """The form's answer, and each shot's version when the form was shown."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("the review form is asked for inside the review-episode flow")
    run = context.flow_run
    if run.deployment_id is None:  # `reelflow review`: paused in this process
        seen, table = show_waiting(folder, storyboard)
        form = pause_flow_run(wait_for_input=DailiesForm.with_initial_data(description=table), timeout=timeout_s,
                              poll_interval=poll_s)
        return form, seen
    if FORM_KEY not in (run.empirical_policy.pause_keys or set()):
        seen, table = show_waiting(folder, storyboard)
        if read_flow_run_input(SEEN_KEY) is not None:  # an execution that ended before its form was shown
            delete_flow_run_input(SEEN_KEY)
        create_flow_run_input(SEEN_KEY, {str(shot): version for shot, version in seen.items()})
        # The process exits here; the answer schedules the run again, and that execution goes on below.
        suspend_flow_run(wait_for_input=DailiesForm.with_initial_data(description=table), timeout=timeout_s,
                         key=FORM_KEY)
    form = suspend_flow_run(wait_for_input=DailiesForm, timeout=timeout_s, key=FORM_KEY)  # fired: the answer
    return form, {int(shot): version for shot, version in read_flow_run_input(SEEN_KEY).items()}


@flow(name="review-episode", flow_run_name=run_name("review"), on_running=[tag_run()], **FLOW_OPTIONS)
def review_episode(project: str, episode: int, timeout_s: int = 86_400, poll_s: int = 10) -> dict[int, str]:
    """Wait for the director's decisions on the episode's dailies, then record them; returns each shot's status.

    Args:
        project: The project folder's absolute path on the worker's machine.
        episode: The episode whose dailies to review.
        timeout_s: Seconds the form waits for an answer; the run fails after that.
        poll_s: Seconds between checks for the answer, in a run of `reelflow review` (in its own process).
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    folder = load_project(project)
    storyboard = load_storyboard(folder, episode)
    form, seen = ask(folder, storyboard, timeout_s, poll_s)
    decisions = decisions_from(form.approve, form.retake, form.needs_review, form.approve_keyframes)
    # A shot a render (or another reviewer) changed while the form waited keeps that change: the form showed older state.
    dailies, stale = apply_seen_decisions(folder, storyboard, decisions, seen, by="prefect ui", note=form.note)
    for line in stale:
        logger.warning(line)
    logger.info("episode %s: %s decisions recorded", episode, len(decisions) - len(stale))
    return {review.shot: review.status for review in dailies.shots}
