"""The studio on the session's Prefect server: pools, prefect.yaml deployed, a process worker, a git push rendered
by the render-changed trigger, a nightly schedule in the project's time zone, and `down` leaving no process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from reelflow.cli import server, studio
from reelflow.state.ledger import Ledger

from checks import calls_in_flight
from conftest import REELFLOW, CliResult
from projects import saved, write_project

Reelflow = Callable[..., CliResult]

DEPLOYMENTS = {"render-episode": "cloud", "render-episode-gpu": "gpu", "render-pending": "cloud",
               "render-changed": "cloud", "previz": "cloud", "previz-gpu": "gpu", "review-episode": "cloud",
               "build-character-dataset": "cloud", "train-character-lora": "cloud", "reap-gpu": "gpu"}


def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request to the server, waiting up to a minute for a busy one; its 503 is tried again, as Prefect's own client
    does, and so is a timed-out read (a create is never sent twice)."""
    reading = method == "GET" or url.endswith("/filter")
    for attempt in range(20):
        try:
            response = httpx.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException:
            if not reading or attempt == 19:
                raise
            continue
        if response.status_code != 503:
            return response
        time.sleep(0.5)
    return response


def flow_runs(api: str, **criteria: object) -> list[dict[str, object]]:
    response = call("POST", f"{api}/flow_runs/filter", json={"flow_runs": criteria, "limit": 50, "offset": 0,
                                                             "sort": "ID_DESC"})
    response.raise_for_status()
    return response.json()


def flow_run(api: str, run_id: object) -> dict[str, object]:
    response = call("GET", f"{api}/flow_runs/{run_id}")
    response.raise_for_status()
    return response.json()


def deployment(api: str, name: str) -> dict[str, object]:
    response = call("POST", f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}, "limit": 1,
                                                               "offset": 0, "sort": "NAME_ASC"})
    response.raise_for_status()
    return response.json()[0]


def create_run(api: str, name: str, parameters: dict[str, object]) -> dict[str, object]:
    """A flow run of the deployment, as the UI's Run button makes one."""
    response = call("POST", f"{api}/deployments/{deployment(api, name)['id']}/create_flow_run",
                    json={"parameters": parameters})
    assert response.status_code == 201, response.text
    return response.json()


def processes(home: Path) -> list[dict[str, object]]:
    """What `studio up` recorded it started."""
    return studio.read_state(home).get("processes", [])


def test_a_push_renders_the_changed_episode_on_the_studio_worker(
    studio_home: Path, prefect_api: str, pushed_project: Path, reelflow: Reelflow,
    reelflow_env: Callable[[dict[str, str]], dict[str, str]],
) -> None:
    root = pushed_project
    env = {"REELFLOW_HOME": str(studio_home), "FAL_KEY": "fal-key-for-the-worker", "REELFLOW_LOCAL_LATENCY": "1",
           "REELFLOW_GPU_REAP_EVERY_S": "120"}

    # `up` finds the session's server by its home and starts nothing but a worker per pool.
    up = reelflow("studio", "up", "--json", env=env)
    assert up.code == 0, up.stdout + up.stderr
    status = up.json()
    assert status["api_url"] == prefect_api and {pool["name"] for pool in status["pools"]} == {"cloud", "gpu"}
    assert {d["name"]: d["pool"] for d in status["deployments"]} == DEPLOYMENTS
    started = processes(studio_home)
    assert [(record["role"], record["pool"]) for record in started] == [("worker", "cloud"), ("worker", "gpu")]
    worker = started[0]
    assert all(studio.alive(record["pid"], record["command"]) for record in started)
    assert sorted(w["pid"] for w in status["workers"] if w["status"] == "ONLINE") == sorted(r["pid"] for r in started)
    reaping = call("GET", f"{prefect_api}/deployments/{deployment(prefect_api, 'reap-gpu')['id']}/schedules").json()
    assert [(s["slug"], s["schedule"]["interval"], s["active"]) for s in reaping] == [("reap-gpu", 120.0, True)]
    environ = dict(line.split("=", 1) for line in Path(f"/proc/{worker['pid']}/environ").read_text().split("\0") if line)
    assert (environ["REELFLOW_HOME"], environ["PREFECT_API_URL"]) == (str(studio_home), prefect_api)
    assert environ["FAL_KEY"] == "fal-key-for-the-worker"  # provider keys reach the worker and its flow runs
    for name in DEPLOYMENTS:  # nothing of the deploying folder: the pull step runs on the worker
        made = deployment(prefect_api, name)
        assert (made["pull_steps"], made["path"]) == ([{"reelflow.cli.server.work_in_home": {}}], None)
        assert made["entrypoint"].startswith("reelflow.flows.") and made["enforce_parameter_schema"]

    # A commit with nothing changed emits nothing.
    same = reelflow("push-event", str(root), "HEAD", "HEAD", "--json", env=env)
    assert (same.code, same.json()) == (0, {"episodes": [], "runs": []}), same.stderr

    # The push: the trigger starts render-changed, which renders episode 2 only, as the CLI would. While it runs, a
    # manual render of episode 1 starts from its deployment: the worker runs both at once, each in its own process.
    pushing = subprocess.Popen(
        [str(REELFLOW), "push-event", str(root), "HEAD~1", "HEAD", "--wait", "--json", "--timeout", "180"],
        env=reelflow_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # The manual run is made as soon as the trigger has made the push's, so the worker starts both within a poll of
    # each other (waiting for the push's to be running let a quick render end before the other's process started).
    changed_id = deployment(prefect_api, "render-changed")["id"]
    deadline = time.monotonic() + 120
    while not (triggered := flow_runs(prefect_api, deployment_id={"any_": [changed_id]})):
        assert pushing.poll() is None and time.monotonic() < deadline, pushing.communicate()
        time.sleep(0.2)
    manual = create_run(prefect_api, "render-episode", {"project": str(root), "episode": 1})
    out, err = pushing.communicate(timeout=240)
    assert pushing.returncode == 0, out + err
    result = json.loads(out)
    assert result["episodes"] == [2] and [(run["episode"], run["state"]) for run in result["runs"]] == [(2, "Completed")]
    deadline = time.monotonic() + 120
    while flow_run(prefect_api, manual["id"])["state_type"] != "COMPLETED":
        assert time.monotonic() < deadline, "the manual render of episode 1 never completed"
        time.sleep(0.5)
    # The project's one local slot held across the two runs' processes, and the two did run at the same time.
    rows = Ledger.at(root / ".reelflow").rows()
    by_episode = {episode: [row for row in rows if row.episode == episode] for episode in (1, 2)}
    assert all(len(episode_rows) == 6 for episode_rows in by_episode.values())
    assert calls_in_flight(rows) == 1
    runs = [flow_run(prefect_api, run_id) for run_id in (manual["id"], triggered[0]["id"])]
    (start_1, end_1), (start_2, end_2) = [(datetime.fromisoformat(run["start_time"]), datetime.fromisoformat(run["end_time"]))
                                          for run in runs]
    assert start_1 < end_2 and start_2 < end_1, "the two renders never ran at the same time"
    assert (root / "storyboards" / "assets" / "ep_002" / "ep_002.mp4").is_file()
    assert {shot["status"] for shot in saved(root, 2).values()} <= {"generated", "needs_review"}
    episode_run = flow_run(prefect_api, result["runs"][0]["id"])
    assert episode_run["name"].startswith("TST-ep002-render-") and episode_run["parameters"]["project"] == str(root)
    rendered = reelflow("render", str(root), "--episode", "2", "--json", env=env)  # same folder, cache and ledger
    assert rendered.code == 0, rendered.stderr
    assert (rendered.json()["provider_calls"], rendered.json()["shots"]["cached"]) == (0, 2)

    # A run that is still going when the studio goes down: a review waiting for its form.
    create_run(prefect_api, "review-episode", {"project": str(root), "episode": 2, "poll_s": 1})

    # The nightly schedule: the project's cron in its time zone, with the project as the schedule's parameter.
    added = reelflow("studio", "add", str(root), env=env)
    assert added.code == 0, added.stderr
    assert "nightly-tst" in added.stdout
    pending = next(d for d in reelflow("studio", "status", "--json", env=env).json()["deployments"]
                   if d["name"] == "render-pending")
    assert pending["schedules"] == [{"slug": "nightly-tst", "cron": "30 3 * * *", "timezone": "Europe/Paris",
                                     "parameters": {"project": str(root)}, "active": True}]
    upcoming = [datetime.fromisoformat(at) for at in pending["next_runs"]]
    assert upcoming and all(at > datetime.now(UTC) for at in upcoming)
    assert {at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") for at in upcoming} == {"03:30"}
    scheduled = flow_runs(prefect_api, deployment_id={"any_": [deployment(prefect_api, "render-pending")["id"]]},
                          state={"type": {"any_": ["SCHEDULED"]}})
    assert scheduled and all(run["parameters"] == {"project": str(root)} for run in scheduled)

    # A second `up` starts nothing new, and its redeploy keeps the nightly schedule.
    again = reelflow("studio", "up", "--json", env=env)
    assert again.code == 0, again.stderr
    assert processes(studio_home) == started
    assert next(d for d in again.json()["deployments"] if d["name"] == "render-pending")["schedules"] == pending["schedules"]

    # `down` stops the worker and the review it runs, and leaves the session's server running.
    deadline = time.monotonic() + 60
    while not studio.descendants(worker["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    tree = [worker["pid"], *studio.descendants(worker["pid"])]
    assert len(tree) > 1, "the review's flow run never started"
    down = reelflow("studio", "down", env=env)
    assert down.code == 0, down.stderr
    assert f"stopped worker pid {worker['pid']}" in down.stdout
    assert [pid for pid in tree if studio.alive(pid)] == []
    assert not (studio_home / "studio.json").exists()
    assert server.running_server(studio_home) is not None and httpx.get(f"{prefect_api}/health").status_code == 200


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, pushed_project: Path, reelflow: Reelflow) -> None:
    env = {"REELFLOW_HOME": str(tmp_path / "home")}
    outside_git = write_project(tmp_path / "plain")
    for args, message in (
        (("push-event", str(outside_git), "HEAD~1", "HEAD"), "not in a git repository"),
        (("push-event", str(pushed_project), "HEAD~5", "HEAD"), "commit 'HEAD~5' is not in the git repository"),
        (("push-event", str(pushed_project), "HEAD~1", "HEAD", "--worker-project", "proj"), "must be an absolute path"),
        (("studio", "up", "--host", "0.0.0.0"), "--host 0.0.0.0: a server reachable from other machines needs "
                                                "PREFECT_SERVER_API_AUTH_STRING"),
        (("studio", "up", "--database", "mysql://u:pw@db/prefect"), "--database: 'mysql://u:***@db/prefect' must be"),
        (("studio", "up", "--project", str(tmp_path / "nowhere")), "not a project folder"),
        (("studio", "add", str(tmp_path / "nowhere")), "not a project folder"),
    ):
        result = reelflow(*args, env=env)
        assert result.code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1, (
            args, result.stderr)
    assert not (tmp_path / "home" / "studio.json").exists()


def test_a_flow_run_works_in_the_workers_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "worker-home"))
    assert server.work_in_home() == {"directory": str(tmp_path / "worker-home")}
    assert (tmp_path / "worker-home").is_dir()


def test_the_post_receive_hook_sends_each_push_to_the_branch(tmp_path: Path, pushed_project: Path) -> None:
    """The hook fetches into the studio's checkout and calls push-event with the push's commits, outside git's hook
    environment; a new branch, or another branch, sends nothing."""
    def git(*args: str, cwd: Path = tmp_path, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd,
                              capture_output=True, text=True, check=True, env=os.environ | (env or {}))
        return done.stdout.strip()

    bare, checkout, dev = tmp_path / "origin.git", tmp_path / "studio", tmp_path / "dev"
    git("clone", "-q", "--bare", str(pushed_project), str(bare))
    shutil.copy(Path(__file__).parents[2] / "deployments" / "post-receive", bare / "hooks" / "post-receive")
    git("clone", "-q", str(bare), str(checkout))
    git("clone", "-q", str(bare), str(dev))
    log, stub = tmp_path / "calls.log", tmp_path / "reelflow"
    stub.write_text(f'#!/bin/sh\necho "$* GIT_DIR=${{GIT_DIR-}}" >> {log}\n'
                    f'git -C "$2" cat-file -e "$4^{{commit}}" && echo fetched >> {log}\n')
    stub.chmod(0o755)
    hook_env = {"REELFLOW": str(stub), "REELFLOW_PROJECT": str(checkout)}
    old = git("rev-parse", "HEAD", cwd=dev)
    (dev / "storyboards" / "storyboard_ep_001.json").write_text("{}")
    git("commit", "-q", "-am", "episode 1", cwd=dev)
    new = git("rev-parse", "HEAD", cwd=dev)
    git("push", "-q", "origin", "main", cwd=dev, env=hook_env)
    git("push", "-q", "origin", "main:feature", cwd=dev, env=hook_env)  # a new branch: no base, not main
    assert log.read_text().splitlines() == [f"push-event {checkout} {old} {new} GIT_DIR=", "fetched"]
