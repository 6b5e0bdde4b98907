"""Cancel stops the spend: a render's ledger run is its Prefect flow run, so the run's own hooks find what it left open.

A flow run set to Cancelling in the UI or API is killed by its worker, which then runs the flow's `on_cancellation`
hooks: `stop_render_spend` cancels the provider requests the run (and every run that is part of it) left open and
settles each one in the ledger (tasks/cancel.py), beside the hooks that give its GPU pods back. A crashed run is not
cancelled: its requests stay pending, and the next render polls them and uses what they made (paid once).
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun
from prefect.logging.loggers import flow_run_logger
from prefect.runtime import flow_run as current_flow_run
from prefect.states import State

from reelflow.flows.gpu import RELEASE_GPU
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import load_project
from reelflow.tasks.cancel import Stopped, stop_spend


def ledger_run() -> str:
    """The ledger's id for this run: the Prefect flow run's id (hex) inside a flow run, so its hooks find its rows by
    `flow_run.id.hex`; a new id outside one."""
    run_id = current_flow_run.id
    return uuid.UUID(run_id).hex if run_id else uuid.uuid4().hex


def stop_render_spend(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> list[Stopped]:
    """Hook: cancel and settle the open provider requests of this run and of the runs that are part of it (each
    logged to the run); returns what happened to each."""
    logger = flow_run_logger(flow_run, flow)
    project = flow_run.parameters.get("project")
    if not project:
        return []
    try:
        folder = load_project(project)
        if not (folder.state_dir / "state.db").exists():
            return []
        return stop_spend(folder.state_dir, [flow_run.id.hex], logger=logger)
    except ReelflowError as error:  # a project or setting that no longer loads: the next render resumes its requests
        logger.warning("provider requests not stopped: %s", error)
        return []


# Every render flow gives its pods back however it ends, and a cancelled one first stops what it spends.
RENDER_HOOKS: dict[str, list[Any]] = {
    hook: [*([stop_render_spend] if hook == "on_cancellation" else []), *RELEASE_GPU[hook]]
    for hook in RELEASE_GPU
}
