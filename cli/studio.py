"""`reelflow studio` and `reelflow push-event`: a Prefect server with the cloud and gpu work pools, prefect.yaml
deployed, a cloud worker and each project's nightly render; a git push turned into a render-changed run.

Everything `up` starts is recorded (pid and command) in REELFLOW_HOME/studio.json: a second `up` starts nothing new,
and `down` stops exactly that, flow runs in progress included; a server that was already running stays. The worker
gets this process's environment (provider keys included: its flow runs call the providers), REELFLOW_HOME and the
server's address. Prefect is imported only once the server is chosen, as the rest of the command line does.

Unattended, the server and each pool's worker run as services instead (deployments/README.md: systemd units that
restart them when they fail): `reelflow server run` and `studio worker --pool P` become those processes in the
foreground, and `studio deploy` does what `up` does but start them. Both `up` and `deploy` also set the studio's
automations (reelflow.cli.automations): a failed, crashed or late run, or a pool left without a worker, is notified.
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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import httpx
import typer

from reelflow.cli import server
from reelflow.cli.automations import ensure_automations, notification_block
from reelflow.cli.exits import fail
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import ProjectFolder, load_project

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

PREFECT_FILE = Path(__file__).resolve().parents[1] / "prefect.yaml"
POOLS = ("cloud", "gpu")
REAP_GPU = "reap-gpu/reap-gpu"  # flow/deployment: terminates pods whose lease is over
REAP_EVERY_ENV = "REELFLOW_GPU_REAP_EVERY_S"
REAP_EVERY_S = 300.0
PENDING = "render-pending/render-pending"
WORKER_START_S = 90.0
WORKER_LIMIT_ENV = "REELFLOW_WORKER_LIMIT"
WORKER_LIMIT = 4  # flow runs a worker runs at once (prefect worker start --limit)
STOP_GRACE_S = 15.0
KILL_GRACE_S = 5.0
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
    return server.alive(pid, command)


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


def deployed(client: SyncPrefectClient) -> bool:
    """Whether every deployment of prefect.yaml is on the server as this reelflow and this prefect.yaml made it (their
    `version`): then `up` deploys nothing, and nothing it owns is made again."""
    import yaml
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    names = {spec["name"] for spec in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]}
    made = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=sorted(names))))
    wanted = server.deployment_version()["version"]
    return {d.name for d in made if d.version == wanted} == names


def deploy(home: Path, env: dict[str, str]) -> None:
    """Apply prefect.yaml (every deployment and its triggers) with Prefect's own `prefect deploy --all`."""
    log = home / "deploy.log"
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)]
    with log.open("w") as output:
        done = subprocess.run(command, cwd=PREFECT_FILE.parent, env=env, stdout=output, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise ReelflowError(f"prefect deploy of {PREFECT_FILE} failed; see {log}")


def worker_name(pool: str) -> str:
    return f"reelflow-{pool}-{socket.gethostname()}"


def worker_limit(limit: int | None = None) -> int:
    """How many flow runs a worker runs at once: `limit`, else REELFLOW_WORKER_LIMIT, else WORKER_LIMIT."""
    if limit is not None:
        if limit < 1:
            raise ContractError(f"--limit: {limit} must be 1 or more")
        return limit
    value = env_number(WORKER_LIMIT_ENV, WORKER_LIMIT, positive=True)
    if value != int(value):
        raise ContractError(f"{WORKER_LIMIT_ENV}: {value:g} must be a whole number")
    return int(value)


def worker_command(pool: str, limit: int) -> list[str]:
    """Prefect's process worker for `pool`, named for this machine, running at most `limit` flow runs at once."""
    return [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
            "--name", worker_name(pool), "--limit", str(limit)]


def _heartbeat(client: SyncPrefectClient, pool: str, name: str) -> Any:
    """The last heartbeat the server has from the worker named `name` (None before its first)."""
    workers = client.read_workers_for_work_pool(pool, offset=0, limit=200)
    return next((worker.last_heartbeat_time for worker in workers if worker.name == name), None)


def start_workers(client: SyncPrefectClient, home: Path, env: dict[str, str], pools: list[str]) -> list[dict[str, Any]]:
    """Start each pool's process worker, all at once, and wait for their first heartbeats; returns their records.
    Both pools' workers run here, where the projects' state lives: the gpu pool's flows start, use and stop their
    RunPod pods from here."""
    started = []
    limit = worker_limit()
    for pool in pools:
        name = worker_name(pool)
        command = worker_command(pool, limit)
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
    """What the worker and its flow runs get: this environment (provider keys too), REELFLOW_HOME and the server; not
    the server's database URL (its password), should it be in this environment."""
    inherited = {key: value for key, value in os.environ.items() if key not in server.DATABASE_ENV}
    env = server.prefect_env(home) | inherited | {
        "REELFLOW_HOME": str(home), "PREFECT_API_URL": api_url, "PREFECT_UI_URL": ui_url,
    }
    if (auth := server.client_auth()) is not None:
        env["PREFECT_API_AUTH_STRING"] = auth
    return env


def provision(client: SyncPrefectClient, home: Path, env: dict[str, str], api_url: str,
              folders: list[ProjectFolder]) -> dict[str, Any]:
    """Everything of the studio but its processes: the pools, prefect.yaml deployed, the push trigger (and the pushes
    kept while the server was away), reap-gpu's schedule, the automations that notify, each project's nightly.
    Returns where notifications go: `block` (slug/name) and `automations` (name, id, enabled)."""
    create_pools(client)
    if not deployed(client):
        deploy(home, env)
    from reelflow.cli.push import CHANGED, ensure_trigger, send_kept  # push-event builds on this module

    ensure_trigger(client, read_deployment(client, CHANGED, api_url).id)
    send_kept(client, home)
    schedule_reaper(client, api_url)
    block_id, block = notification_block(client, home)
    automations = ensure_automations(client, block_id, POOLS)
    from reelflow.flows.nightly import add_nightly, default_project, name_nightly_runs  # Prefect points here now

    for folder in folders:
        add_nightly(client, folder, api_url)
    default_project(client)  # the redeploy dropped it
    name_nightly_runs(client)  # the redeploy dropped render-pending's runs not started: made again, named, tagged
    return {"block": block, "automations": automations}


def _write_state(home: Path, api_url: str, ui_url: str, records: list[dict[str, Any]]) -> None:
    _state_file(home).write_text(json.dumps({"api_url": api_url, "ui_url": ui_url, "processes": records}, indent=2))


# --- nightly schedules and status ------------------------------------------------------------------------------------

def read_deployment(client: SyncPrefectClient, name: str, api_url: str) -> DeploymentResponse:
    """A deployment of prefect.yaml by `flow/deployment` name; not deployed is an error naming the fix."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        raise ReelflowError(f"{name.split('/')[1]} is not deployed on {api_url}: run reelflow studio up") from None


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


def pool_why(pool: str, paused: bool, workers: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """Why the pool's runs would wait, and the commands that fix it; (None, []) while an online worker polls it."""
    if paused:
        return "the pool is paused: its runs wait until it is resumed", [f"prefect work-pool resume {pool}"]
    if any(worker["status"] == "ONLINE" for worker in workers):
        return None, []
    start = ["reelflow studio up", f"reelflow studio worker --pool {pool}"]
    heard = [worker for worker in workers if worker["last_heartbeat"]]
    if not heard:
        return "no worker has ever polled it: its runs wait", start
    last = max(heard, key=lambda worker: datetime.fromisoformat(worker["last_heartbeat"]))
    at = datetime.fromisoformat(last["last_heartbeat"]).isoformat(timespec="seconds")
    pid = f" (pid {last['pid']})" if last["pid"] else ""
    return (f"no worker is online: {last['name']}{pid} last polled at {at} (stopped, Ctrl-C'd, or its machine is "
            "down); its runs wait"), start


def studio_status(client: SyncPrefectClient, home: Path, api_url: str, ui_url: str) -> dict[str, Any]:
    """The studio as the server sees it: pools (and why one's runs would wait), deployments (schedules with their
    project, next runs) and workers."""
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
    from prefect.client.schemas.objects import WorkPoolStatus
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
    pool_lines = []
    for pool in pools:
        paused = pool.is_paused or pool.status == WorkPoolStatus.PAUSED
        why, fix = pool_why(pool.name, paused, [worker for worker in workers if worker["pool"] == pool.name])
        pool_lines.append({"name": pool.name, "type": pool.type, "status": pool.status.value if pool.status else None,
                           "why": why, "fix": fix})
    return {
        "api_url": api_url,
        "ui_url": ui_url,
        "pools": pool_lines,
        "deployments": [
            {"name": deployment.name, "pool": deployment.work_pool_name,
             "schedules": [{"slug": s.slug, "cron": getattr(s.schedule, "cron", None),
                            "timezone": getattr(s.schedule, "timezone", None), "parameters": s.parameters,
                            "project": s.parameters.get("project"), "active": s.active} for s in deployment.schedules],
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


def wait_for_studio(home: Path, timeout_s: float = server.START_TIMEOUT_S) -> tuple[str, str]:
    """`studio_api`'s server once it answers, waiting up to `timeout_s`: a supervised server may still be starting
    (systemd starts the server, the workers and `studio deploy` together)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            api_url, ui_url = studio_api(home)
        except ReelflowError:
            if time.monotonic() > deadline:
                raise
        else:
            if server.healthy(api_url.removesuffix("/api")):
                return api_url, ui_url
            if not os.environ.get("PREFECT_API_URL") and (info := server.running_server(home)) is not None:
                return info.api_url, info.public_url  # studio.json named an earlier server; this home's runs now
            if time.monotonic() > deadline:
                raise ReelflowError(f"the Prefect server at {api_url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


def _pool_line(pool: dict[str, Any]) -> str:
    line = f"pool {pool['name']} ({pool['type']}): {pool['status']}"
    if pool["why"] is None:
        return line
    first, *others = pool["fix"]
    return line + f" - {pool['why']}; {first}" + "".join(f" (or {command}, in the foreground)" for command in others)


def _schedule_words(schedule: dict[str, Any]) -> str:
    project = f" for {schedule['project']}" if schedule["project"] else ""
    return f"{schedule['slug']} '{schedule['cron']}' {schedule['timezone']}{project}{'' if schedule['active'] else ' (off)'}"


def print_status(status: dict[str, Any]) -> None:
    """The status object for a person: where the UI is, then one line per pool (why its runs would wait, and the fix),
    deployment (its schedules and their projects) and worker."""
    typer.echo(f"Prefect UI: {status['ui_url']} (API {status['api_url']})")
    for pool in status["pools"]:
        typer.echo(_pool_line(pool))
    for deployment in status["deployments"]:
        schedules = ", ".join(_schedule_words(schedule) for schedule in deployment["schedules"])
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
        "--database", envvar="REELFLOW_DATABASE", show_envvar=True,
        help="The server's database, postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB (default SQLite); from the "
             "environment, the password stays off the command line")] = None,
    host: Annotated[str | None, typer.Option(
        "--host", help="Address the server listens on (default 127.0.0.1; others need PREFECT_SERVER_API_AUTH_STRING)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start (or find) the server, create the pools, deploy, start a worker per pool; schedule each --project.

    It also sets the automations that notify (a failed, crashed or late run; a pool without a worker)."""
    home = server.reelflow_home()
    if database is not None and not database.startswith("postgresql+asyncpg://"):
        raise fail(f"--database: {server.masked(database)!r} must be a postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB URL")
    try:
        folders = [load_project(project.resolve()) for project in projects or []]
        worker_limit()  # a bad REELFLOW_WORKER_LIMIT says so before anything starts
        with _locked(home):
            records = [record for record in read_state(home).get("processes", []) if alive(record["pid"], record["command"])]
            api_url, ui_url, started = choose_server(home, database, host)
            records += [started] if started else []
            _write_state(home, api_url, ui_url, records)  # `down` stops a server this started, whatever fails next
            env = worker_env(home, api_url, ui_url)
            point_at(home, api_url)
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                notifications = provision(client, home, env, api_url, folders)
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
                _write_state(home, api_url, ui_url, records)
                status = studio_status(client, home, api_url, ui_url) | {"notifications": notifications}
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    show(status, notifications, as_json)
    if not as_json:
        for record in records:
            typer.echo(f"{record['role']} pid {record['pid']}: {' '.join(record['command'])}")


def show(status: dict[str, Any], notifications: dict[str, Any], as_json: bool) -> None:
    """What `up` and `deploy` made: the status object (with `notifications`) as JSON, or for a person."""
    if as_json:
        typer.echo(json.dumps(status))
        return
    print_status(status)
    print_notifications(notifications)


def print_notifications(notifications: dict[str, Any]) -> None:
    """Where the automations' notifications go, and which are off."""
    off = [a["name"] for a in notifications["automations"] if not a["enabled"]]
    typer.echo(f"notifications: {len(notifications['automations'])} automations through block {notifications['block']}"
               f"{f' ({len(off)} disabled: ' + ', '.join(off) + ')' if off else ''}")


@studio_app.command("deploy")
def deploy_studio(
    projects: Annotated[list[Path] | None, typer.Option(
        "--project", help="A project whose nightly render to schedule (repeat for more)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What `up` does but start processes (for systemd's one-shot unit): pools, deployments, schedules, automations.

    It works on the studio's running server, waiting for it to answer while it starts."""
    home = server.reelflow_home()
    try:
        folders = [load_project(project.resolve()) for project in projects or []]
        api_url, ui_url = wait_for_studio(home)
        env = worker_env(home, api_url, ui_url)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        with _locked(home), get_client(sync_client=True) as client:
            notifications = provision(client, home, env, api_url, folders)
            status = studio_status(client, home, api_url, ui_url) | {"notifications": notifications}
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    show(status, notifications, as_json)


@studio_app.command("worker")
def worker(
    pool: Annotated[str, typer.Option("--pool", help="The work pool to run flow runs of: cloud or gpu")],
    limit: Annotated[int | None, typer.Option(
        "--limit", help=f"Flow runs at once (default {WORKER_LIMIT_ENV}, else {WORKER_LIMIT})")] = None,
) -> None:
    """Run the pool's process worker in the foreground, for a supervisor (systemd's Type=simple).

    Prefect's worker replaces this process, with the environment `up` gives its workers, once the studio's server
    answers."""
    home = server.reelflow_home()
    try:
        command = worker_command(pool, worker_limit(limit))
        api_url, ui_url = wait_for_studio(home)
    except ReelflowError as exc:
        raise failure(exc) from None
    home.mkdir(parents=True, exist_ok=True)
    os.chdir(home)  # where `up` runs its workers: no .env or prefect.toml of the caller's folder is read
    os.execve(sys.executable, command, worker_env(home, api_url, ui_url))


@studio_app.command("add")
def add(project: Annotated[Path, typer.Argument(help="Project folder")]) -> None:
    """Schedule the project's nightly render of its pending episodes (its `nightly` cron, in its `timezone`)."""
    home = server.reelflow_home()
    try:
        folder = load_project(project.resolve())
        api_url, _ = studio_api(home)
        point_at(home, api_url)
        from prefect.client.orchestration import get_client

        from reelflow.flows.nightly import add_nightly, default_project, name_nightly_runs, project_path

        with get_client(sync_client=True) as client:
            slug = add_nightly(client, folder, api_url)
            default_project(client)
            name_nightly_runs(client)  # made again: an update of the deployments drops their next runs
            runs = _next_runs(client, read_deployment(client, PENDING, api_url).id)
    except (ReelflowError, httpx.HTTPError) as exc:
        raise failure(exc, os.environ.get("PREFECT_API_URL")) from None
    typer.echo(f"{slug}: render-pending of {project_path(folder)} at '{folder.project.nightly}' "
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


def runs_in_flight(home: Path) -> list[FlowRun]:
    """The flow runs on the studio's pools that have started and not ended (none when no server answers)."""
    try:
        api_url, _ = studio_api(home)
        point_at(home, api_url)  # before prefect is imported: it would otherwise start a throwaway server of its own
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
            WorkPoolFilter,
            WorkPoolFilterName,
        )
        from prefect.client.schemas.objects import StateType

        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                    any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]))),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=list(POOLS))), limit=200, offset=0)
    except (ReelflowError, httpx.HTTPError):
        return []


def cancel_in_flight(runs: list[FlowRun]) -> None:
    """Runs whose processes `down` stopped: each one's open provider requests cancelled and settled in its
    project's ledger (each printed), then the run set Cancelled."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    from reelflow.tasks.cancel import stop_spend

    with get_client(sync_client=True) as client:
        for run in runs:
            try:
                folder = load_project(run.parameters.get("project", ""))
                stopped = stop_spend(folder.state_dir, [run.id.hex]) if (folder.state_dir / "state.db").exists() else []
            except ReelflowError as error:
                typer.echo(f"run {run.name}: provider requests not stopped: {error}")
                stopped = []
            for line in stopped:
                typer.echo(f"run {run.name}: {line.words()}")
            with suppress(httpx.HTTPError):
                client.set_flow_run_state(run.id, Cancelled(message="reelflow studio down"), force=True)
            typer.echo(f"cancelled run {run.name} ({len(stopped)} provider requests stopped)")


@studio_app.command("down")
def down() -> None:
    """Stop every process `up` started (the workers, their flow runs, the server if `up` started it); the runs stopped
    are cancelled, their provider requests too."""
    home = server.reelflow_home()
    with _locked(home):
        records = read_state(home).get("processes", [])
        in_flight = runs_in_flight(home) if any(record["role"] == "worker" for record in records) else []
        for record in sorted(records, key=lambda r: r["role"] == "server"):  # the workers first, then the server
            if record["role"] == "server" and in_flight:  # while the server still answers
                cancel_in_flight(in_flight)
                in_flight = []
            if not alive(record["pid"], record["command"]):
                continue
            pids = [record["pid"], *descendants(record["pid"])]  # before they are orphans nobody can trace
            running = server.running_server(home) if record["role"] == "server" else None
            if running is not None and running.pid == record["pid"]:
                server.stop_server(home)  # forgets it: the home's next command starts a new one
            stop(pids)
            typer.echo(f"stopped {record['role']} pid {record['pid']}: {' '.join(record['command'])}")
        if in_flight:
            cancel_in_flight(in_flight)
        _state_file(home).unlink(missing_ok=True)
    if not records:
        typer.echo(f"nothing to stop (home {home})")
