"""The studio as services: the systemd units, their command lines run here under the supervisor that stands in for
systemd's Restart=on-failure, a worker killed and started again, and the nightly runs it missed rendered once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from reelflow.cli import studio
from reelflow.flows.exclusive import project_lock
from reelflow.schemas.load import load_project

from conftest import REELFLOW
from projects import PROJECT, storyboard, write_project
from studio_api import call

UNITS = Path(__file__).parents[2] / "deployments"
SERVICES = ("reelflow-server.service", "reelflow-worker@.service")
ONESHOT = "reelflow-studio.service"
INSTALLED = "/srv/reelflow/.venv/bin/reelflow"  # where the units run reelflow from
NIGHTS = 3  # missed while the worker was down


def unit(name: str) -> dict[str, list[str]]:
    """A unit file's settings, each key's values in order (sections flattened; comments skipped)."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def command_line(name: str, instance: str = "") -> list[str]:
    """The unit's ExecStart as it runs on this machine: this checkout's reelflow, %i the instance's name."""
    [line] = unit(name)["ExecStart"]
    return [str(REELFLOW) if part == INSTALLED else part.replace("%i", instance) for part in line.split()]


def test_the_units_keep_the_server_and_each_worker_running_and_no_password_is_on_a_command_line(tmp_path: Path) -> None:
    for name in SERVICES:
        settings = unit(name)
        assert (settings["Type"], settings["Restart"]) == (["simple"], ["on-failure"]), name
    oneshot = unit(ONESHOT)
    assert oneshot["Type"] == ["oneshot"]
    assert {"reelflow-server.service", "reelflow-worker@cloud.service", "reelflow-worker@gpu.service"} <= set(
        " ".join(oneshot["Wants"]).split())
    commands = {name: " ".join(command_line(name, "cloud")) for name in (*SERVICES, ONESHOT)}
    assert commands == {
        "reelflow-server.service": f"{REELFLOW} server run --host 0.0.0.0",
        "reelflow-worker@.service": f"{REELFLOW} studio worker --pool cloud",
        ONESHOT: f"{REELFLOW} studio deploy --project /srv/projects/leviathan",
    }
    # The database URL (its password) reaches the server through its environment file, which the workers do not read.
    assert unit("reelflow-server.service")["EnvironmentFile"] != unit("reelflow-worker@.service")["EnvironmentFile"]
    if shutil.which("systemd-analyze") is None:
        return
    for name in (*SERVICES, ONESHOT):
        (tmp_path / name).write_text((UNITS / name).read_text().replace(INSTALLED, str(REELFLOW)))
    verified = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / name) for name in (*SERVICES, ONESHOT))],
                              capture_output=True, text=True, timeout=60)
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


def test_the_supervised_server_has_its_database_from_the_environment_only(
    tmp_path: Path, reelflow_env: Callable[[dict[str, str]], dict[str, str]],
) -> None:
    """The server unit's command: the database URL reaches the server in its environment (the allow-listed one, no
    provider key), never on a command line, and server.json keeps it masked."""
    home = tmp_path / "home"
    database = "postgresql+asyncpg://prefect:pg-secret@127.0.0.1:9/prefect"  # nothing answers: it goes no further
    env = reelflow_env({"REELFLOW_HOME": str(home), "REELFLOW_SERVER_PORT": "0", "REELFLOW_DATABASE": database,
                        "PREFECT_SERVER_API_AUTH_STRING": "studio:s3cret", "FAL_KEY": "not-for-the-server"})
    process = subprocess.Popen(command_line("reelflow-server.service"), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (studio.alive(process.pid) and b"prefect" in Path(f"/proc/{process.pid}/cmdline").read_bytes()):
            assert process.poll() is None and time.monotonic() < deadline, "reelflow server run never became the server"
            time.sleep(0.05)
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        environ = dict(line.split("=", 1) for line in Path(f"/proc/{process.pid}/environ").read_text().split("\0")
                       if line)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    recorded = json.loads((home / "server.json").read_text())
    assert command == recorded["command"] and command[-4:-2] == ["--host", "0.0.0.0"]
    assert recorded["pid"] == process.pid and recorded["database"] == "postgresql+asyncpg://prefect:***@127.0.0.1:9/prefect"
    assert environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == database and "FAL_KEY" not in environ
    assert environ["PREFECT_HOME"] == str(home / "prefect")
    assert "pg-secret" not in " ".join(command) + (home / "server.json").read_text()


def api_call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request to the session's server, a busy server's 503 tried again (studio_api.call); an error raises."""
    response = call(method, url, **kwargs)
    response.raise_for_status()
    return response


@pytest.fixture
def own_pool(prefect_api: str) -> Iterator[tuple[str, str]]:
    """A process pool of the test's own with a render-pending deployment on it, both deleted afterwards: the session
    server's cloud pool may have another test's worker."""
    from prefect.workers.process import ProcessWorker

    pool = f"services-{uuid.uuid4().hex[:8]}"
    api_call("POST", f"{prefect_api}/work_pools/", json={
        "name": pool, "type": "process", "base_job_template": ProcessWorker.get_default_base_job_template()})
    flow_id = api_call("POST", f"{prefect_api}/flows/", json={"name": "render-pending"}).json()["id"]
    deployment = api_call("POST", f"{prefect_api}/deployments/", json={
        "name": f"render-pending-{pool}", "flow_id": flow_id, "work_pool_name": pool,
        "entrypoint": "reelflow.flows.pending:render_pending", "pull_steps": [{"reelflow.cli.server.work_in_home": {}}],
    }).json()["id"]
    yield pool, deployment
    httpx.delete(f"{prefect_api}/deployments/{deployment}", timeout=60)
    httpx.delete(f"{prefect_api}/work_pools/{pool}", timeout=60)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def worker_of(supervisor: subprocess.Popen[bytes], other_than: int | None = None, timeout: float = 60) -> int:
    """The supervised worker's pid once `reelflow studio worker` has become Prefect's worker (not `other_than`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert supervisor.poll() is None, "the supervisor ended"
        for pid in children(supervisor.pid):
            with_args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if studio.alive(pid) else []
            if pid != other_than and b"worker" in with_args and b"prefect" in with_args:
                return pid
        time.sleep(0.2)
    raise AssertionError("no worker under the supervisor")


def online(api: str, pool: str) -> bool:
    workers = api_call("POST", f"{api}/work_pools/{pool}/workers/filter", json={"limit": 10, "offset": 0}).json()
    return any(worker["status"] == "ONLINE" for worker in workers)


def test_a_killed_worker_is_started_again_and_the_nights_it_missed_render_once(
    prefect_api: str, own_pool: tuple[str, str], tmp_path: Path,
    reelflow_env: Callable[[dict[str, str]], dict[str, str]],
) -> None:
    pool, deployment = own_pool
    root = write_project(tmp_path / "proj", storyboard(1, only=(4,)), PROJECT | {"code": "SVC"})
    env = reelflow_env({"REELFLOW_HOME": str(tmp_path / "home"), "PREFECT_API_URL": prefect_api})
    log = tmp_path / "supervised.log"
    # The worker unit's own command line, under the supervisor: what systemd would run, restarted as systemd would.
    with log.open("wb") as output:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "reelflow.cli.supervise", "--restart-delay", "1", "--",
             *command_line("reelflow-worker@.service", pool)],
            env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        first = worker_of(supervisor)
        deadline = time.monotonic() + 60
        while not online(prefect_api, pool):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)

        os.kill(first, signal.SIGKILL)
        # Meanwhile the nightly schedule's runs fall due: three nights' (hourly here), the newest 20 minutes ago.
        now = datetime.now(UTC)
        api_call("POST", f"{prefect_api}/deployments/{deployment}/schedules", json=[{
            "schedule": {"interval": 3600, "anchor_date": (now - timedelta(minutes=200)).isoformat()},
            "active": True, "parameters": {"project": str(root)}, "slug": "nightly-svc"}])
        api_call("POST", f"{prefect_api}/deployments/{deployment}/schedule", json={
            "start_time": (now - timedelta(hours=NIGHTS)).isoformat(), "end_time": now.isoformat()})

        second = worker_of(supervisor, other_than=first)  # started again after the delay, with the unit's --limit
        command = Path(f"/proc/{second}/cmdline").read_bytes().split(b"\0")
        assert command[command.index(b"--pool") + 1] == pool.encode()
        assert command[command.index(b"--limit") + 1] == str(studio.WORKER_LIMIT).encode()

        due = {"deployment_id": {"any_": [deployment]}, "expected_start_time": {"before_": now.isoformat()}}
        deadline = time.monotonic() + 120
        while True:
            runs = api_call("POST", f"{prefect_api}/flow_runs/filter", json={
                "flow_runs": due, "sort": "EXPECTED_START_TIME_ASC", "limit": 10, "offset": 0}).json()
            if len(runs) == NIGHTS and all(run["state_type"] in ("COMPLETED", "CANCELLED", "FAILED", "CRASHED")
                                           for run in runs):
                break
            assert time.monotonic() < deadline, (json.dumps([(r["name"], r["state_name"]) for r in runs]),
                                                 log.read_text()[-3000:])
            time.sleep(0.5)
    finally:
        supervisor.send_signal(signal.SIGTERM)  # passed on to the worker, which stops; the supervisor then ends
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            studio.stop_tree(supervisor.pid)

    # The newest night rendered; the two before it ended Cancelled, naming it, and rendered nothing.
    *older, newest = runs
    assert newest["state_type"] == "COMPLETED", (newest["state"], log.read_text()[-3000:])
    for run in older:
        assert run["state_type"] == "CANCELLED"
        assert run["state"]["message"].startswith("duplicate of ") and newest["id"] in run["state"]["message"]
    episodes = api_call("POST", f"{prefect_api}/flow_runs/filter", json={
        "flows": {"name": {"any_": ["render-episode"]}}, "flow_runs": {"start_time": {"after_": now.isoformat()}},
        "limit": 200, "offset": 0}).json()
    assert [run["state_type"] for run in episodes if run["parameters"].get("project") == str(root)] == ["COMPLETED"]
    assert (root / "storyboards" / "assets" / "ep_001" / "ep_001.mp4").is_file()
    assert supervisor.returncode == 0, log.read_text()[-3000:]  # a stop asked of it ends it cleanly, worker included
    assert not studio.alive(second)


def test_a_render_pending_of_a_project_already_rendering_ends_cancelled(prefect_api: str, tmp_path: Path) -> None:
    from reelflow.flows.pending import render_pending

    root = write_project(tmp_path / "proj", storyboard(1, only=(4,)), PROJECT | {"code": "DUP"})
    running = "DUP-render-pending-20261206-020000 (flow run 0f0f)"
    with project_lock(load_project(root), "render-pending", running) as holder:
        assert holder is None  # this test holds the lock, as a render-pending of the project that is running would
        state = render_pending(str(root), return_state=True)
    assert state.is_cancelled() and state.message == f"duplicate of {running}"
    assert not (root / "storyboards" / "assets").exists()  # nothing rendered
