"""Each project's nightly render: one schedule of the render-pending deployment per project folder.

A schedule is keyed by the folder's absolute path (slug `nightly-<code>-<8 hex of the path's sha256>`), so two
projects with the same code keep one each; it runs the project's `nightly` cron in its `timezone` with the parameter
`{"project": "/abs/path"}`. `add_nightly` gives a project its schedule (`reelflow studio add`, `studio up --project`);
`follow_nightly` keeps an existing one in step with project.json (render-changed, once a push moved the checkout).
The runs the schedules make are named and tagged before they start (naming.name_scheduled_runs).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectNotFound

from reelflow.flows.naming import name_scheduled_runs
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.project import RENDER_STAGES

if TYPE_CHECKING:
    from prefect.client.schemas.objects import DeploymentSchedule
    from prefect.client.schemas.responses import DeploymentResponse

PENDING = "render-pending/render-pending"  # flow/deployment
KIND = "render-pending"  # its runs' names: LEV-render-pending-20261207-020000


def project_path(folder: ProjectFolder) -> str:
    """The folder's absolute path: the schedule's `project` parameter, and what its slug is keyed by."""
    return str(folder.root.resolve())


def nightly_slug(folder: ProjectFolder) -> str:
    """`nightly-<code>-<8 hex of the sha256 of the folder's path>`: one schedule per project folder."""
    digest = hashlib.sha256(project_path(folder).encode()).hexdigest()[:8]
    return f"nightly-{folder.project.code.lower()}-{digest}"


def _older_slug(folder: ProjectFolder) -> str:
    """The slug reelflow gave a project's schedule before slugs named the path: one per code."""
    return f"nightly-{folder.project.code.lower()}"


def pending_deployment(client: SyncPrefectClient) -> DeploymentResponse | None:
    """The render-pending deployment, None when not deployed."""
    try:
        return client.read_deployment_by_name(PENDING)
    except ObjectNotFound:
        return None


def project_schedule(schedules: list[DeploymentSchedule], folder: ProjectFolder) -> DeploymentSchedule | None:
    """The project's schedule among render-pending's: by its slug, else an older reelflow's `nightly-<code>` whose
    `project` is this folder (another folder's keeps its own)."""
    path = project_path(folder)
    return (next((s for s in schedules if s.slug == nightly_slug(folder)), None)
            or next((s for s in schedules if s.slug == _older_slug(folder) and s.parameters.get("project") == path),
                    None))


def _cron(folder: ProjectFolder) -> CronSchedule:
    return CronSchedule(cron=folder.project.nightly, timezone=folder.project.timezone)


def name_nightly_runs(client: SyncPrefectClient) -> None:
    """Name and tag render-pending's runs not started yet (a redeploy or a schedule change makes them again)."""
    if (deployment := pending_deployment(client)) is not None:
        name_scheduled_runs(client, deployment.id, KIND, RENDER_STAGES)


def add_nightly(client: SyncPrefectClient, folder: ProjectFolder, api_url: str | None = None) -> str:
    """Give render-pending the project's nightly schedule (its cron and time zone, parameters {project}), active,
    updating the project's earlier one in place (an older `nightly-<code>` of the same folder gets the new slug);
    its next runs are made and named at once. Returns the slug."""
    deployment = pending_deployment(client)
    if deployment is None:
        raise ReelflowError(f"render-pending is not deployed on {api_url or client.api_url}: run reelflow studio up")
    slug = nightly_slug(folder)
    parameters = {"project": project_path(folder)}
    existing = project_schedule(client.read_deployment_schedules(deployment.id), folder)
    if existing is None:
        client.create_deployment_schedules(deployment.id, [
            DeploymentScheduleCreate(schedule=_cron(folder), active=True, parameters=parameters, slug=slug)])
    else:
        client.update_deployment_schedule(deployment.id, existing.id, active=True, schedule=_cron(folder),
                                          parameters=parameters, slug=slug)
    name_scheduled_runs(client, deployment.id, KIND, RENDER_STAGES)
    return slug


def follow_nightly(folder: ProjectFolder, client: SyncPrefectClient | None = None) -> str | None:
    """Bring the project's nightly schedule in step with its project.json (`nightly`, `timezone`), in place; a project
    without one gets none, and a schedule someone paused stays paused. Returns what changed, as one line, or None."""
    if client is None:
        with get_client(sync_client=True) as own:
            return follow_nightly(folder, own)
    deployment = pending_deployment(client)
    if deployment is None:
        return None
    existing = project_schedule(client.read_deployment_schedules(deployment.id), folder)
    if existing is None:
        return None
    before = (getattr(existing.schedule, "cron", None), getattr(existing.schedule, "timezone", None), existing.slug)
    after = (folder.project.nightly, folder.project.timezone, nightly_slug(folder))
    if before == after:
        return None
    # Prefect 3.9.1's server sets a schedule's parameters to {} on an update without them: they are sent again.
    client.update_deployment_schedule(deployment.id, existing.id, schedule=_cron(folder), slug=after[2],
                                      parameters={"project": project_path(folder)})
    name_scheduled_runs(client, deployment.id, KIND, RENDER_STAGES)
    return f"{after[2]}: '{before[0]}' {before[1]} -> '{after[0]}' {after[1]}"


def default_project(client: SyncPrefectClient) -> str | None:
    """The project of render-pending's first nightly schedule becomes the `project` default of every reelflow
    deployment whose flow takes one and has none yet, so the UI's Run form comes filled in; returns that project.
    Prefect drops a deployment's scheduled runs when it is updated: schedule them again after (name_nightly_runs)."""
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    deployment = pending_deployment(client)
    if deployment is None:
        return None
    scheduled = sorted((s for s in client.read_deployment_schedules(deployment.id)
                        if (s.slug or "").startswith("nightly-") and (s.parameters or {}).get("project")),
                       key=lambda s: (s.created is None, s.created))
    if not scheduled:
        return None
    project = str(scheduled[0].parameters["project"])
    ours = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["reelflow"])))
    for each in ours:
        takes = "project" in (each.parameter_openapi_schema or {}).get("properties", {})
        if takes and "project" not in each.parameters:
            client.update_deployment(each.id, DeploymentUpdate(parameters={**each.parameters, "project": project}))
    return project
