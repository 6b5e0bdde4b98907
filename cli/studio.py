"""`reelflow studio` and `reelflow push-event`: a Prefect server with the cloud and gpu work pools, prefect.yaml
deployed, a cloud worker and each project's nightly render; a git push turned into a render-changed run.

Everything `up` starts is recorded (pid and command) in REELFLOW_HOME/studio.json: a second `up` starts nothing new,
and `down` stops exactly that, flow runs in progress included; a server that was already running stays. The worker
gets this process's environment (provider keys included: its flow runs call the providers), REELFLOW_HOME and the
server's address. Prefect is imported only once the server is chosen, as the rest of the command line does.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import httpx
import typer

from reelflow.cli import server
from reelflow.cli.exits import fail
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import ProjectFolder, load_project
from reelflow.state.checkout import changed_episodes, resolve_commit

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun, Worker
    from prefect.client.schemas.responses import DeploymentResponse

PREFECT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"
POOLS = ("cloud", "gpu")
REAP_GPU = "reap-gpu/reap-gpu"  # flow/deployment: terminates pods whose lease is over
REAP_EVERY_ENV = "REELFLOW_GPU_REAP_EVERY_S"
REAP_EVERY_S = 300.0
PUSH_EVENT = "reelflow.git.push"
CHANGED = "render-changed/render-changed"  # flow/deployment
PENDING = "render-pending/render-pending"
WORKER_START_S = 90.0
STOP_GRACE_S = 15.0
KILL_GRACE_S = 5.0
POLL_S = 1.0
NEXT_RUNS = 5

studio_app = typer.Typer(no_args_is_help=True, help="The studio: Prefect server, work pools, deployments, a worker.")


def failure(exc: Exception, api_url: str | None = None) -> typer.Exit:
    """A contract error is bad input (exit 2); anything else, the server's errors included, failed on the way (1)."""
    if isinstance(exc, httpx.HTTPError):
        return fail(f"the Prefect server at {api_url}: {' '.join(str(exc).split())[:300]}", code=1)
    return fail(str(exc), code=2 if isinstance(exc, ContractError) else 1)


# --- what `up` started -----------------------------------------------------------------------------------------------

def _state_file(home: Path) -> Path:
    return home / "studio.json"


def read_state(home: Path) -> dict[str, Any]:
    """studio.json: the server's address and every process `up` started (role, pid, command); {} when none."""
    try:
        return json.loads(_state_file(home).read_text())
    except (FileNotFoundError, ValueError):
        return {}


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One `up` or `down` at a time per home."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "studio.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def alive(pid: int, command: list[str] | None = None) -> bool:
    """Whether `pid` runs (not a zombie), and runs `command` when given (not another program that got its pid)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # not Linux: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process, but it runs
        return True
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return command is None or cmdline.split(b"\0")[:-1] == [part.encode() for part in command]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (a worker's flow runs, which run in process groups of their own); Linux only."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_tree(pid: int) -> None:
    """Stop a process and everything below it."""
    stop([pid, *descendants(pid)])


def stop(pids: list[int]) -> None:
    """SIGTERM each process, SIGKILL those still running after STOP_GRACE_S; returns once all have exited."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        for target in [pid for pid in pids if alive(pid)]:
            with suppress(ProcessLookupError):
                os.kill(target, sig)
        deadline = time.monotonic() + grace
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)


# --- the server, the pools, the deployments, the worker --------------------------------------------------------------

def point_at(home: Path, api_url: str) -> None:
    """Make this process's Prefect client talk to `api_url` (before prefect is imported)."""
    for key, value in server.prefect_env(home).items():
        os.environ.setdefault(key, value)
    if (auth := server.client_auth()) is not None:
        os.environ.setdefault("PREFECT_API_AUTH_STRING", auth)
    os.environ["PREFECT_API_URL"] = api_url
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def choose_server(home: Path, database: str | None, host: str | None) -> tuple[str, str, dict[str, Any] | None]:
    """The studio's server: PREFECT_API_URL's when set, else the one running for this home, else one started now.

    Returns its API URL, its UI URL, and the record of its process when this call started it.
    """
    if api_url := os.environ.get("PREFECT_API_URL"):
        if database is not None or host is not None:
            raise ContractError(f"--database/--host: PREFECT_API_URL names the server to use ({api_url}); "
                                "unset it to let the studio start its own")
        return api_url, os.environ.get("PREFECT_UI_URL") or api_url.removesuffix("/api"), None
    before = server.running_server(home)
    info = server.start_server(home, database, host)
    started = before is None or before.pid != info.pid
    record = {"role": "server", "pid": info.pid, "command": list(info.command)} if started else None
    return info.api_url, info.public_url, record


def create_pools(client: SyncPrefectClient) -> None:
    """The cloud and gpu process pools, created when missing; an existing pool (its limits, its template) is kept."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    for name in POOLS:
        with suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))


def deploy(home: Path, env: dict[str, str]) -> None:
    """Apply prefect.yaml (every deployment and its triggers) with Prefect's own `deploy --all`, in a child process."""
    log = home / "deploy.log"
    with log.open("w") as output:
        done = subprocess.run([sys.executable, "-m", "reelflow.cli.studio"], cwd=PREFECT_FILE.parent, env=env,
                              stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ReelflowError(f"prefect deploy of {PREFECT_FILE} failed; see {log}")


def deploy_all() -> None:
    """`prefect --no-prompt deploy --all` of prefect.yaml, in this process.

    Prefect 3.8.8's deploy reads each pool's workers with null paging, which FastAPI 0.154 refuses (422) once the first
    deployment is made; that one call gets explicit paging here.
    """
    from prefect.cli import app
    from prefect.client.orchestration import PrefectClient

    read_workers = PrefectClient.read_workers_for_work_pool

    async def paged(self: PrefectClient, work_pool_name: str, worker_filter: Any = None, offset: int | None = None,
                    limit: int | None = None) -> list[Worker]:
        return await read_workers(self, work_pool_name, worker_filter, offset or 0, limit or 200)

    PrefectClient.read_workers_for_work_pool = paged  # type: ignore[method-assign]
    sys.argv = ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)]
    app()


def worker_name(pool: str) -> str:
    return f"reelflow-{pool}-{socket.gethostname()}"


def _heartbeat(client: SyncPrefectClient, pool: str, name: str) -> Any:
    """The last heartbeat the server has from the worker named `name` (None before its first)."""
    workers = client.read_workers_for_work_pool(pool, offset=0, limit=200)
    return next((worker.last_heartbeat_time for worker in workers if worker.name == name), None)


def start_workers(client: SyncPrefectClient, home: Path, env: dict[str, str], pools: list[str]) -> list[dict[str, Any]]:
    """Start each pool's process worker, all at once, and wait for their first heartbeats; returns their records.
    Both pools' workers run here, where the projects' state lives: the gpu pool's flows start, use and stop their
    RunPod pods from here."""
    started = []
    for pool in pools:
        name = worker_name(pool)
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
                   "--name", name]
        before = _heartbeat(client, pool, name)
        log = home / f"worker-{pool}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(command, env=env, cwd=home, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        record = {"role": "worker", "pool": pool, "name": name, "pid": process.pid, "command": command,
                  "api_url": env["PREFECT_API_URL"], "log": str(log)}
        started.append((record, process, before))
    deadline = time.monotonic() + WORKER_START_S
    for record, process, before in started:
        while _heartbeat(client, record["pool"], record["name"]) == before:
            if process.poll() is not None or time.monotonic() > deadline:
                for other, _, _ in started:
                    stop_tree(other["pid"])
                raise ReelflowError(f"the {record['pool']} worker did not start; see {record['log']}")
            time.sleep(0.3)
    return [record for record, _, _ in started]


def worker_env(home: Path, api_url: str, ui_url: str) -> dict[str, str]:
    """What the worker and its flow runs get: this environment (provider keys too), REELFLOW_HOME and the server."""
    env = server.prefect_env(home) | dict(os.environ) | {
        "REELFLOW_HOME": str(home), "PREFECT_API_URL": api_url, "PREFECT_UI_URL": ui_url,
    }
    if (auth := server.client_auth()) is not None:
        env["PREFECT_API_AUTH_STRING"] = auth
    return env


# --- nightly schedules and status ------------------------------------------------------------------------------------

def read_deployment(client: SyncPrefectClient, name: str, api_url: str) -> DeploymentResponse:
    """A deployment of prefect.yaml by `flow/deployment` name; not deployed is an error naming the fix."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise ReelflowError(f"{name.split('/')[1]} is not deployed on {api_url}: run reelflow studio up") from None


def nightly_slug(folder: ProjectFolder) -> str:
    return f"nightly-{folder.project.code.lower()}"


def add_nightly(client: SyncPrefectClient, folder: ProjectFolder, api_url: str) -> None:
    """Give render-pending the project's nightly schedule (its cron and time zone, parameters {project}), replacing
    the one with the same slug; its next runs are scheduled at once."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    deployment = read_deployment(client, PENDING, api_url)
    slug = nightly_slug(folder)
    schedule = CronSchedule(cron=folder.project.nightly, timezone=folder.project.timezone)
    parameters = {"project": str(folder.root)}
    existing = next((s for s in client.read_deployment_schedules(deployment.id) if s.slug == slug), None)
    if existing is None:
        client.create_deployment_schedules(deployment.id, [
            DeploymentScheduleCreate(schedule=schedule, active=True, parameters=parameters, slug=slug)])
    else:
        client.update_deployment_schedule(deployment.id, existing.id, active=True, schedule=schedule,
                                          parameters=parameters)
    client.request("POST", "/deployments/{id}/schedule", path_params={"id": deployment.id}, json={})


def schedule_reaper(client: SyncPrefectClient, api_url: str) -> None:
    """Run reap-gpu every REELFLOW_GPU_REAP_EVERY_S (default 5 minutes): pods whose lease is over are terminated even
    when the run that started them was killed."""
    from datetime import timedelta

    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    every = env_number(REAP_EVERY_ENV, REAP_EVERY_S, positive=True)
    deployment = read_deployment(client, REAP_GPU, api_url)
    schedule = IntervalSchedule(interval=timedelta(seconds=every))
    existing = next((s for s in client.read_deployment_schedules(deployment.id) if s.slug == "reap-gpu"), None)
    if existing is None:
        client.create_deployment_schedules(deployment.id, [
            DeploymentScheduleCreate(schedule=schedule, active=True, slug="reap-gpu")])
    else:
        client.update_deployment_schedule(deployment.id, existing.id, active=True, schedule=schedule)


def _next_runs(client: SyncPrefectClient, deployment_id: UUID) -> list[str]:
    """The deployment's scheduled runs' expected start times, soonest first (ISO 8601)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                                      state=FlowRunFilterState(type={"any_": [StateType.SCHEDULED]})),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=NEXT_RUNS, offset=0)
    return [run.expected_start_time.isoformat() for run in runs if run.expected_start_time]


def studio_status(client: SyncPrefectClient, home: Path, api_url: str, ui_url: str) -> dict[str, Any]:
    """The studio as the server sees it: pools, deployments (schedules, next runs) and workers."""
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
    from prefect.client.schemas.sorting import DeploymentSort

    ours = WorkPoolFilter(name=WorkPoolFilterName(any_=list(POOLS)))
    pools = client.read_work_pools(work_pool_filter=ours, limit=len(POOLS), offset=0)
    deployments = client.read_deployments(work_pool_filter=ours, sort=DeploymentSort.NAME_ASC, limit=200, offset=0)
    pids = {record["name"]: record["pid"] for record in read_state(home).get("processes", []) if record["role"] == "worker"}
    workers = [
        {"name": worker.name, "pool": pool.name, "status": worker.status.value,
         "last_heartbeat": worker.last_heartbeat_time.isoformat() if worker.last_heartbeat_time else None,
         "pid": pids.get(worker.name)}
        for pool in pools for worker in client.read_workers_for_work_pool(pool.name, offset=0, limit=100)
    ]
    return {
        "api_url": api_url,
        "ui_url": ui_url,
        "pools": [{"name": pool.name, "type": pool.type, "status": pool.status.value if pool.status else None}
                  for pool in pools],
        "deployments": [
            {"name": deployment.name, "pool": deployment.work_pool_name,
             "schedules": [{"slug": s.slug, "cron": getattr(s.schedule, "cron", None),
                            "timezone": getattr(s.schedule, "timezone", None), "parameters": s.parameters,
                            "active": s.active} for s in deployment.schedules],
             "next_runs": _next_runs(client, deployment.id)}
            for deployment in deployments
        ],
        "workers": workers,
    }


def studio_api(home: Path) -> tuple[str, str]:
    """The API and UI URLs of the studio's server: PREFECT_API_URL's, else the one `up` used for this home, else this
    home's running server. Starts nothing: a server without the deployments would not help."""
    if api_url := os.environ.get("PREFECT_API_URL"):
        return api_url, os.environ.get("PREFECT_UI_URL") or api_url.removesuffix("/api")
    state = read_state(home)
    if state.get("api_url"):
        return state["api_url"], state["ui_url"]
    info = server.running_server(home)
    if info is None:
        raise ReelflowError(f"no studio is up (home {home}): run reelflow studio up")
    return info.api_url, info.public_url


def print_status(status: dict[str, Any]) -> None:
    """The status object for a person: where the UI is, then one line per pool, deployment and worker."""
    typer.echo(f"Prefect UI: {status['ui_url']} (API {status['api_url']})")
    for pool in status["pools"]:
        typer.echo(f"pool {pool['name']} ({pool['type']}): {pool['status']}")
    for deployment in status["deployments"]:
        schedules = ", ".join(f"{s['slug']} '{s['cron']}' {s['timezone']}" for s in deployment["schedules"])
        upcoming = f"; next {deployment['next_runs'][0]}" if deployment["next_runs"] else ""
        typer.echo(f"deployment {deployment['name']} on {deployment['pool']}"
                   f"{f': {schedules}' if schedules else ''}{upcoming}")
    for worker in status["workers"]:
        pid = f", pid {worker['pid']}" if worker["pid"] else ""
        typer.echo(f"worker {worker['name']} on {worker['pool']}: {worker['status']}{pid}")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else on stdout")]


@studio_app.command("up")
def up(
    projects: Annotated[list[Path] | None, typer.Option(
        "--project", help="A project whose nightly render to schedule (repeat for more)")] = None,
    database: Annotated[str | None, typer.Option(
        "--database", help="The server's database, postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB (default SQLite)")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Address the server listens on (default 127.0.0.1; others need PREFECT_SERVER_API_AUTH_STRING)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start (or find) the server, create the pools, deploy prefect.yaml, start a cloud worker; schedule each --project."""
    home = server.reelflow_home()
    if database is not None and not database.startswith("postgresql+asyncpg://"):
        raise fail(f"--database: {server.masked(database)!r} must be a postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB URL")
    try:
        folders = [load_project(project.resolve()) for project in projects or []]
        with _locked(home):
            records = [record for record in read_state(home).get("processes", []) if alive(record["pid"], record["command"])]
            api_url, ui_url, started = choose_server(home, database, host)
            records += [started] if started else []
            env = worker_env(home, api_url, ui_url)
            point_at(home, api_url)
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                create_pools(client)
                deploy(home, env)
                missing = []
                for pool in POOLS:
                    worker = next((r for r in records if r["role"] == "worker" and r.get("pool", "cloud") == pool), None)
                    if worker is not None and worker["api_url"] != api_url:  # a worker of an earlier server
                        stop_tree(worker["pid"])
                        records.remove(worker)
                        worker = None
                    if worker is None:
                        missing.append(pool)
                records += start_workers(client, home, env, missing)
                schedule_reaper(client, api_url)
                _state_file(home).write_text(json.dumps({"api_url": api_url, "ui_url": ui_url, "processes": records},
                                                        indent=2))
                for folder in folders:
                    add_nightly(client, folder, api_url)
                status = studio_status(client, home, api_url, ui_url)
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    if as_json:
        typer.echo(json.dumps(status))
        return
    print_status(status)
    for record in records:
        typer.echo(f"{record['role']} pid {record['pid']}: {' '.join(record['command'])}")


@studio_app.command("add")
def add(project: Annotated[Path, typer.Argument(help="Project folder")]) -> None:
    """Schedule the project's nightly render of its pending episodes (its `nightly` cron, in its `timezone`)."""
    home = server.reelflow_home()
    try:
        folder = load_project(project.resolve())
        api_url, _ = studio_api(home)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            add_nightly(client, folder, api_url)
            runs = _next_runs(client, read_deployment(client, PENDING, api_url).id)
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    typer.echo(f"{nightly_slug(folder)}: render-pending of {folder.root} at '{folder.project.nightly}' "
               f"({folder.project.timezone}); next {runs[0] if runs else 'not scheduled yet'}")


@studio_app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """The studio's server, pools, deployments (schedules, next runs) and workers."""
    home = server.reelflow_home()
    try:
        api_url, ui_url = studio_api(home)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            report = studio_status(client, home, api_url, ui_url)
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    if as_json:
        typer.echo(json.dumps(report))
    else:
        print_status(report)


@studio_app.command("down")
def down() -> None:
    """Stop every process `up` started (the worker, its flow runs, the server if `up` started it)."""
    home = server.reelflow_home()
    with _locked(home):
        records = read_state(home).get("processes", [])
        for record in sorted(records, key=lambda r: r["role"] == "server"):  # the workers first, then the server
            if not alive(record["pid"], record["command"]):
                continue
            pids = [record["pid"], *descendants(record["pid"])]  # before they are orphans nobody can trace
            running = server.running_server(home) if record["role"] == "server" else None
            if running is not None and running.pid == record["pid"]:
                server.stop_server(home)  # forgets it: the home's next command starts a new one
            stop(pids)
            typer.echo(f"stopped {record['role']} pid {record['pid']}: {' '.join(record['command'])}")
        _state_file(home).unlink(missing_ok=True)
    if not records:
        typer.echo(f"nothing to stop (home {home})")


# --- a git push ------------------------------------------------------------------------------------------------------

def emit_push(client: SyncPrefectClient, folder: ProjectFolder, on_worker: str, base: str, head: str,
              episodes: list[int]) -> UUID:
    """Send reelflow.git.push (`on_worker`: the project's folder where the worker runs) to the server and return its
    id; the server has it when this returns."""
    from prefect.events import Event

    event = Event(
        event=PUSH_EVENT,
        resource={"prefect.resource.id": f"reelflow.project.{folder.project.code}",
                  "prefect.resource.name": folder.project.title},
        payload={"project": on_worker, "base": base, "head": head, "episodes": episodes},
    )
    client.request("POST", "/events", json=[event.model_dump(mode="json")])  # 204 once the server has queued it
    return event.id


def _changed_runs(client: SyncPrefectClient, deployment_id: UUID, project: str, head: str) -> list[FlowRun]:
    """render-changed runs of this project at `head`, newest first."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])),
                                 sort=FlowRunSort.ID_DESC, limit=50, offset=0)
    return [run for run in runs if run.parameters.get("project") == project and run.parameters.get("head") == head]


def wait_for_changed(client: SyncPrefectClient, deployment_id: UUID, project: str, head: str, known: set[UUID],
                     timeout_s: float) -> FlowRun:
    """The render-changed run the push's trigger creates (one not in `known`), once it is final."""
    deadline = time.monotonic() + timeout_s
    while (run := next((r for r in _changed_runs(client, deployment_id, project, head) if r.id not in known), None)) is None:
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

    With --json: {"episodes": [...], "runs": [{"id", "episode", "state"}]} (runs with --wait). With --wait, exit 1
    unless every episode's render completed.
    """
    root = project.resolve()
    if worker_project is not None and not Path(worker_project).is_absolute():
        raise fail(f"--worker-project: {worker_project!r} must be an absolute path")
    on_worker = worker_project or str(root)
    try:
        folder = load_project(root)
        base_sha, head_sha = resolve_commit(root, base), resolve_commit(root, head)
        episodes = changed_episodes(root, base_sha, head_sha)
    except ReelflowError as exc:
        raise fail(str(exc)) from None
    if not episodes:
        typer.echo(json.dumps({"episodes": [], "runs": []}) if as_json else
                   f"no episode changed between {base_sha[:12]} and {head_sha[:12]}: no event emitted")
        return
    home = server.reelflow_home()
    try:
        api_url, ui_url = studio_api(home)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = read_deployment(client, CHANGED, api_url)
            known = {run.id for run in _changed_runs(client, deployment.id, on_worker, head_sha)}
            event_id = emit_push(client, folder, on_worker, base_sha, head_sha, episodes)
            if not as_json:
                typer.echo(f"{PUSH_EVENT} {event_id}: {folder.project.code} episodes {', '.join(map(str, episodes))} "
                           f"({base_sha[:12]}..{head_sha[:12]}) sent to {api_url}")
            if not wait:
                if as_json:
                    typer.echo(json.dumps({"episodes": episodes, "runs": []}))
                return
            run = wait_for_changed(client, deployment.id, on_worker, head_sha, known, timeout_s)
            children = episode_runs(client, run.id)
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    runs = [{"id": str(child.id), "episode": int(child.parameters["episode"]), "state": child.state_name}
            for child in children]
    if as_json:
        typer.echo(json.dumps({"episodes": episodes, "runs": runs}))
    else:
        typer.echo(f"render-changed {run.name}: {run.state_name} · {ui_url}/runs/flow-run/{run.id}")
        for line in runs:
            typer.echo(f"episode {line['episode']}: {line['state']} · {ui_url}/runs/flow-run/{line['id']}")
    completed = all(child.state and child.state.is_completed() for child in children)
    if not (run.state and run.state.is_completed() and completed):
        raise typer.Exit(1)


if __name__ == "__main__":
    deploy_all()
