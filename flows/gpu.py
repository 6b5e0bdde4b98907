"""The GPU's flows: a run's end gives its pods back, and `reap-gpu` terminates every pod whose lease is over.

A rented pod bills by the second until it is terminated. The render flows stop the pods no run uses any more when
they end (completed, failed, crashed or cancelled); `reap-gpu`, deployed every few minutes by `reelflow studio up`,
catches the rest: a worker killed with SIGKILL, a lost network, a flow that crashed before its hooks ran.
"""

from __future__ import annotations

from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.logging.loggers import flow_run_logger
from prefect.states import State

from reelflow.flows.naming import FLOW_OPTIONS
from reelflow.schemas.env import reelflow_home
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import load_project
from reelflow.schemas.report import ReapedPod, ReapReport
from reelflow.tasks.gpu import reap, release


def release_gpu(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """This run's process is done with its project's pods: each one no run uses any more is terminated. A run that
    is part of another (an episode of render-pending) leaves that to the outer run. (A worker calls hooks by keyword:
    `flow`, `flow_run`, `state`.)"""
    if flow_run.parameters.get("parent_run") or "project" not in flow_run.parameters:
        return
    try:
        folder = load_project(flow_run.parameters["project"])
        if (folder.state_dir / "state.db").exists():
            release(folder.state_dir)  # each pod stopped is logged
    except ReelflowError as error:  # the reaper stops it once its lease is over
        flow_run_logger(flow_run, flow).warning("pods not released: %s", error)  # in the worker too: no run context


# Every render flow gives its pods back however it ends.
RELEASE_GPU: dict[str, Any] = {hook: [release_gpu] for hook in
                               ("on_completion", "on_failure", "on_crashed", "on_cancellation")}


@flow(name="reap-gpu", flow_run_name="reap-gpu", **FLOW_OPTIONS)
def reap_gpu() -> ReapReport:
    """Terminate every pod this machine started whose lease is over (and any it recorded as stopped that RunPod
    still lists)."""
    reaped, kept = reap(reelflow_home())
    logger = get_run_logger()
    for pod in reaped:
        logger.warning("reaped pod %s (%s) of %s: %s", pod.name, pod.id, pod.project, pod.reason)
    return ReapReport(reaped=[ReapedPod(**vars(pod)) for pod in reaped], kept=[ReapedPod(**vars(pod)) for pod in kept])
