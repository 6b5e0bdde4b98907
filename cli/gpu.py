"""`reelflow gpu`: the RunPod pods reelflow started, what they cost, and stopping them.

Pods are recorded in each project's state and in this machine's REELFLOW_HOME, so `status` and `reap` without a
project see every pod this machine started. Exit codes: 0 done, 2 bad input or a missing key, 1 a RunPod call failed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reelflow.cli.exits import fail
from reelflow.schemas.env import reelflow_home
from reelflow.schemas.errors import ContractError, MissingCredentials, ReelflowError
from reelflow.schemas.load import ProjectFolder, load_project
from reelflow.schemas.project import RunpodPod
from reelflow.schemas.report import PodLine

gpu_app = typer.Typer(no_args_is_help=True, help="RunPod GPU pods: status, up, down, reap.")
out = Console(highlight=False, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _failure(exc: ReelflowError) -> typer.Exit:
    """Bad input or a missing key: 2; a RunPod call that failed: 1."""
    return fail(str(exc), code=2 if isinstance(exc, ContractError | MissingCredentials) else 1)


def _pod_project(project: Path) -> ProjectFolder:
    folder = load_project(project)
    settings = folder.project.comfyui
    if settings is None or not isinstance(settings.runpod, RunpodPod):
        raise ContractError(f"{folder.root / 'project.json'}: comfyui.runpod: no pod settings "
                            '({"mode": "pod", "gpu_types": [...], ...})')
    return folder


def _print(pods: list[PodLine], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"pods": [pod.model_dump() for pod in pods]}))
        return
    table = Table(title="reelflow pods")
    for column in ("id", "name", "project", "status", "GPU", "$/hr", "started (UTC)", "lease until (UTC)", "cost"):
        table.add_column(column)
    for pod in pods:
        table.add_row(pod.id or "", pod.name, pod.project, pod.status, pod.gpu, f"{pod.cost_per_hr:.2f}",
                      pod.started_at, pod.lease_until, f"${pod.cost_usd:.3f}")
    out.print(table)


@gpu_app.command()
def status(project: Annotated[Path | None, typer.Argument(help="Project folder (default: every project)")] = None,
           as_json: JsonOpt = False) -> None:
    """Every pod this machine started (or the project's): status, $/hr, lease and cost so far."""
    from reelflow.state.pods import MachinePods, PodBook
    from reelflow.tasks.gpu import pod_line

    home = reelflow_home()
    try:
        if project is not None:
            folder = load_project(project)
            state_dirs = [folder.state_dir] if (folder.state_dir / "state.db").exists() else []
        else:
            state_dirs = MachinePods(home).state_dirs()
    except ReelflowError as exc:
        raise _failure(exc) from None
    pods = [pod_line(record) for state_dir in state_dirs if (state_dir / "state.db").exists()
            for record in PodBook(state_dir, home).made()]
    _print(pods, as_json)


@gpu_app.command()
def up(project: Annotated[Path, typer.Argument(help="Project folder")], as_json: JsonOpt = False) -> None:
    """Start the project's pod (or find the running one) and wait until ComfyUI answers; it stops idle_stop_s after
    its last work, or with `reelflow gpu down`."""
    from reelflow.providers.runpod.errors import api_key
    from reelflow.state.budget import Caps
    from reelflow.tasks.gpu import Payer, PodHost, payer, pod_line

    try:
        folder = _pod_project(project)
        api_key()
        host = PodHost(folder.root.resolve(), folder.project, folder.state_dir, reelflow_home())
        token = payer.set(Payer(f"gpu-up-{uuid.uuid4().hex}", None, Caps(project_usd=folder.project.budget_usd)))
        try:
            record = host.up(user="gpu-up")
        finally:
            payer.reset(token)
    except ReelflowError as exc:
        raise _failure(exc) from None
    _print([pod_line(record)], as_json)


@gpu_app.command()
def down(project: Annotated[Path, typer.Argument(help="Project folder")], as_json: JsonOpt = False) -> None:
    """Terminate the project's pods now (models stay on the network volume)."""
    from reelflow.state.pods import PodBook
    from reelflow.tasks.gpu import pod_line, stop

    try:
        folder = load_project(project)
        book = PodBook(folder.state_dir, reelflow_home())
        stopped = [done for record in book.live() if (done := stop(book, record.name, "reelflow gpu down"))]
    except ReelflowError as exc:
        raise _failure(exc) from None
    _print([pod_line(record) for record in stopped], as_json)


@gpu_app.command()
def reap(as_json: JsonOpt = False) -> None:
    """Terminate every pod this machine started whose lease is over, and every `reelflow-` pod RunPod still lists
    that this machine recorded as stopped."""
    from reelflow.tasks.gpu import reap as reap_pods

    try:
        reaped, kept = reap_pods(reelflow_home())
    except ReelflowError as exc:
        raise _failure(exc) from None
    if as_json:
        typer.echo(json.dumps({"reaped": [vars(pod) for pod in reaped], "kept": [vars(pod) for pod in kept]}))
        return
    for word, pods in (("reaped", reaped), ("kept", kept)):
        for pod in pods:
            out.print(f"{word}: {pod.name} ({pod.id or 'no id'}) {pod.project}: {pod.reason}", markup=False)
    if not reaped and not kept:
        out.print("no pods")
