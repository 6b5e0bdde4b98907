"""`reelflow push-event`: a git push turned into one render-changed run, never lost and never doubled.

A push is (project, base, head). Its event id is derived from those three, so the same push sent again is the same
event (Prefect's server drops a repeated event id), and a run already made for it is followed, not made again. A push
that cannot be sent is kept under REELFLOW_HOME/pushes and sent by the next push (merged into it when the new push
extends it) or by `studio up`. The trigger that turns the event into a run belongs to the studio: `studio up` creates
it once and updates it in place, so a redeploy never leaves a moment with no trigger.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import httpx
import typer
from pydantic import BaseModel

from reelflow.cli import server
from reelflow.cli.exits import fail
from reelflow.cli.studio import JsonOpt, failure, point_at, read_deployment, studio_api
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import load_project
from reelflow.state.checkout import changed_episodes, is_ancestor, resolve_commit
from reelflow.state.store import write_atomic

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

PUSH_EVENT = "reelflow.git.push"
CHANGED = "render-changed/render-changed"  # flow/deployment
TRIGGER = "render-changed-on-push"  # the studio's automation
PUSH_IDS = uuid.UUID("9d7f3c1e-5b8a-4e62-a1f0-7c2d4b6e8a10")  # the namespace of push event ids
POLL_S = 1.0
RUNS_READ = 200  # render-changed runs read when looking for a push's run


class Push(BaseModel):
    """One push of a project: the event it becomes, and what is kept while it cannot be sent."""

    project: str  # the project folder where the worker runs
    code: str
    title: str
    base: str
    head: str
    episodes: list[int]

    @property
    def id(self) -> UUID:
        return push_id(self.project, self.base, self.head)

    def event(self) -> dict[str, Any]:
        """The reelflow.git.push event as Prefect's /events endpoint takes it."""
        from prefect.events import Event

        event = Event(
            id=self.id,
            event=PUSH_EVENT,
            resource={"prefect.resource.id": f"reelflow.project.{self.code}", "prefect.resource.name": self.title},
            payload={"project": self.project, "base": self.base, "head": self.head, "episodes": self.episodes,
                     "push": str(self.id)},
        )
        return event.model_dump(mode="json")


def push_id(project: str, base: str, head: str) -> UUID:
    """The event id of a push: the same (project, base, head) always gives the same id."""
    return uuid.uuid5(PUSH_IDS, f"{project}\n{base}\n{head}")


# --- pushes kept while the studio cannot be reached ------------------------------------------------------------------

def _outbox(home: Path) -> Path:
    return home / "pushes"


def keep(home: Path, push: Push) -> Path:
    """Keep a push to send later; returns its file."""
    path = _outbox(home) / f"{push.id}.json"
    write_atomic(path, push.model_dump_json(indent=2).encode())
    return path


def kept(home: Path) -> list[Push]:
    """The pushes kept so far, oldest first."""
    files = sorted(_outbox(home).glob("*.json"), key=lambda path: path.stat().st_mtime)
    pushes = []
    for path in files:
        try:
            pushes.append(Push.model_validate_json(path.read_bytes()))
        except ValueError:
            continue  # a file that is not a push is left alone
    return pushes


def forget(home: Path, push: Push) -> None:
    (_outbox(home) / f"{push.id}.json").unlink(missing_ok=True)


def send(client: SyncPrefectClient, push: Push) -> None:
    """Send the push's event; the server has it when this returns (204)."""
    client.request("POST", "/events", json=[push.event()])


def send_kept(client: SyncPrefectClient, home: Path) -> list[Push]:
    """Send every kept push, oldest first, forgetting each once the server has it; returns those sent."""
    sent = []
    for push in kept(home):
        send(client, push)
        forget(home, push)
        sent.append(push)
    return sent


def merged(root: Path, push: Push, waiting: list[Push]) -> tuple[Push, list[Push]]:
    """The push widened to cover the kept pushes of the same project it extends (their base becomes its base when
    it is an ancestor of theirs and its own), and those kept pushes."""
    covered = [p for p in waiting if p.project == push.project and p.id != push.id
               and is_ancestor(root, p.head, push.head) and is_ancestor(root, p.base, push.head)]
    if not covered:
        return push, []
    bases = {push.base, *(p.base for p in covered)}
    oldest = next((b for b in bases if all(is_ancestor(root, b, other) for other in bases)), None)
    if oldest is None:  # histories that do not line up: each push goes on its own
        return push, []
    episodes = changed_episodes(root, oldest, push.head)
    return push.model_copy(update={"base": oldest, "episodes": episodes}), covered


# --- the studio's trigger and the run it makes -----------------------------------------------------------------------

def ensure_trigger(client: SyncPrefectClient, deployment_id: UUID) -> UUID:
    """The automation that turns reelflow.git.push into a render-changed run: created when missing, else updated in
    place (never deleted and made again, so no push meets a studio without its trigger)."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    automation = AutomationCore(
        name=TRIGGER,
        description="A git push (reelflow push-event) starts render-changed for its project and commits.",
        trigger=EventTrigger(match={"prefect.resource.id": "reelflow.project.*"}, expect={PUSH_EVENT},
                             posture=Posture.Reactive, threshold=1, within=0),
        actions=[RunDeployment(source="selected", deployment_id=deployment_id, parameters={
            "project": "{{ event.payload.project }}",
            "head": "{{ event.payload.head }}",
            "base": "{{ event.payload.base }}",
            "episodes": "{{ event.payload.episodes }}",
            "push": "{{ event.payload.push }}",
        })],
    )
    existing = client.read_automations_by_name(TRIGGER)
    if not existing:
        return client.create_automation(automation)
    client.update_automation(existing[0].id, automation)
    return existing[0].id


def push_run(client: SyncPrefectClient, deployment_id: UUID, push: UUID) -> FlowRun | None:
    """The render-changed run made for a push, if there is one."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])),
        sort=FlowRunSort.ID_DESC, limit=RUNS_READ, offset=0)
    return next((run for run in runs if run.parameters.get("push") == str(push)), None)


def follow(client: SyncPrefectClient, deployment_id: UUID, push: UUID, timeout_s: float) -> FlowRun:
    """The push's render-changed run once it is final, found by the push's id and then followed by its own."""
    deadline = time.monotonic() + timeout_s
    while (run := push_run(client, deployment_id, push)) is None:
        if time.monotonic() > deadline:
            raise ReelflowError(f"no render-changed run started within {timeout_s:.0f} s (is the studio up?)")
        time.sleep(POLL_S)
    while not (run.state and run.state.is_final()):
        if time.monotonic() > deadline:
            raise ReelflowError(f"render-changed run {run.name} ({run.id}) is still {run.state_name} after "
                                f"{timeout_s:.0f} s")
        time.sleep(POLL_S)
        run = client.read_flow_run(run.id)
    return run


def episode_runs(client: SyncPrefectClient, run_id: UUID) -> list[FlowRun]:
    """The render-episode subflow runs of a render-changed run, by episode."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])),
                                 sort=FlowRunSort.START_TIME_ASC, limit=200, offset=0)
    return sorted(runs, key=lambda run: int(run.parameters.get("episode", 0)))


def push_event(
    project: Annotated[Path, typer.Argument(help="Project folder (in a git checkout)")],
    base: Annotated[str, typer.Argument(help="The commit before the push (sha, branch, tag or HEAD~1)")],
    head: Annotated[str, typer.Argument(help="The commit the push brought")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the render-changed run and its episode renders")] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", min=1, help="Seconds --wait waits at most")] = 3600.0,
    worker_project: Annotated[str | None, typer.Option(
        "--worker-project", help="The project's absolute path on the worker's machine, when not PROJECT's (CI)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Tell the studio about a git push: emit reelflow.git.push with the episodes it changed; render-changed renders them.

    The same push sent again makes no second run. A push the studio cannot take now is kept and sent with the next
    one (exit 1). With --json: {"episodes": [...], "runs": [{"id", "episode", "state"}], "push": id, "kept": [...]}
    (runs with --wait). With --wait, exit 1 unless every episode's render completed.
    """
    root = project.resolve()
    if worker_project is not None and not Path(worker_project).is_absolute():
        raise fail(f"--worker-project: {worker_project!r} must be an absolute path")
    on_worker = worker_project or str(root)
    home = server.reelflow_home()
    try:
        folder = load_project(root)
        base_sha, head_sha = resolve_commit(root, base), resolve_commit(root, head)
        push, covered = merged(root, Push(project=on_worker, code=folder.project.code, title=folder.project.title,
                                          base=base_sha, head=head_sha,
                                          episodes=changed_episodes(root, base_sha, head_sha)), kept(home))
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if not push.episodes:
        typer.echo(json.dumps({"episodes": [], "runs": []}) if as_json else
                   f"no episode changed between {push.base[:12]} and {head_sha[:12]}: no event emitted")
        return
    keep(home, push)  # until the server has it
    api_url: str | None = None
    try:
        api_url, ui_url = studio_api(home)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = read_deployment(client, CHANGED, api_url)
            for other in covered:
                forget(home, other)
            if push_run(client, deployment.id, push.id) is None:
                send(client, push)
            forget(home, push)
            others = send_kept(client, home)
            if not as_json:
                typer.echo(f"{PUSH_EVENT} {push.id}: {folder.project.code} episodes {', '.join(map(str, push.episodes))} "
                           f"({push.base[:12]}..{push.head[:12]}) sent to {api_url}")
                for other in others:
                    typer.echo(f"{PUSH_EVENT} {other.id}: kept push {other.base[:12]}..{other.head[:12]} sent")
            if not wait:
                if as_json:
                    typer.echo(json.dumps({"episodes": push.episodes, "runs": [], "push": str(push.id),
                                           "kept": [str(other.id) for other in others]}))
                return
            run = follow(client, deployment.id, push.id, timeout_s)
            children = episode_runs(client, run.id)
    except (ReelflowError, httpx.HTTPError) as exc:
        if (_outbox(home) / f"{push.id}.json").exists():
            for other in covered:  # the wider push stands for them now
                forget(home, other)
            raise fail(f"{failure_line(exc)}; the push is kept in {_outbox(home)} and sent with the next push or "
                       "`reelflow studio up`", code=1) from None
        raise failure(exc, api_url) from None
    runs = [{"id": str(child.id), "episode": int(child.parameters["episode"]), "state": child.state_name}
            for child in children]
    if as_json:
        typer.echo(json.dumps({"episodes": push.episodes, "runs": runs, "push": str(push.id),
                               "kept": [str(other.id) for other in others]}))
    else:
        typer.echo(f"render-changed {run.name}: {run.state_name} · {ui_url}/runs/flow-run/{run.id}")
        for line in runs:
            typer.echo(f"episode {line['episode']}: {line['state']} · {ui_url}/runs/flow-run/{line['id']}")
    completed = all(child.state and child.state.is_completed() for child in children)
    if not (run.state and run.state.is_completed() and completed):
        raise typer.Exit(1)


def failure_line(exc: Exception) -> str:
    """Why the push could not be sent, in a few words."""
    if isinstance(exc, httpx.HTTPError):
        return f"the studio's server cannot be reached ({' '.join(str(exc).split())[:200]})"
    return str(exc)
