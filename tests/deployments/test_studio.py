"""The studio on the session's Prefect server: pools, prefect.yaml deployed, a process worker, a git push rendered
by the render-changed trigger, a nightly schedule in the project's time zone, and `down` leaving no process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectNotFound

from reelflow.cli import automations, server, studio
from reelflow.flows import nightly
from reelflow.schemas.load import load_project
from reelflow.state.ledger import Ledger

from checks import calls_in_flight
from conftest import REELFLOW, CliResult
from projects import PROJECT, saved, storyboard, write_project
from studio_api import call, create_run, deployment, flow_run, flow_runs

Reelflow = Callable[..., CliResult]

DEPLOYMENTS = {"render-episode": "cloud", "render-episode-gpu": "gpu", "render-pending": "cloud",
               "render-changed": "cloud", "previz": "cloud", "previz-gpu": "gpu", "review-episode": "cloud",
               "build-character-dataset": "cloud", "train-character-lora": "cloud", "reap-gpu": "gpu"}


NOTIFYING = {automations.FAILED: ["prefect.flow-run.Crashed", "prefect.flow-run.Failed"],
             automations.LATE: ["prefect.flow-run.Late"], automations.NO_WORKER: ["prefect.work-pool.not-ready"]}


def notifying(api: str) -> dict[str, dict[str, object]]:
    """The studio's automations that notify, by name."""
    response = call("POST", f"{api}/automations/filter", json={})
    response.raise_for_status()
    return {automation["name"]: automation for automation in response.json() if automation["name"] in NOTIFYING}


def block_document(api: str, slug: str, name: str) -> dict[str, object]:
    """A block document as the API shows it (secrets masked)."""
    response = call("GET", f"{api}/block_types/slug/{slug}/block_documents/name/{name}")
    response.raise_for_status()
    return response.json()


def failed_run(api: str) -> dict[str, object]:
    """A render-episode run that ends Failed: scheduled an hour ahead (no worker takes it), then set Failed."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = call("POST", f"{api}/deployments/{deployment(api, 'render-episode')['id']}/create_flow_run", json={
        "parameters": {"project": "/nowhere", "episode": 1},
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}})
    assert response.status_code == 201, response.text
    run = response.json()
    failed = call("POST", f"{api}/flow_runs/{run['id']}/set_state",
                  json={"state": {"type": "FAILED", "message": "the provider said no"}, "force": True})
    assert failed.status_code in (200, 201) and failed.json()["status"] == "ACCEPT", failed.text
    return run


def wait_for(found: Callable[[], object], what: str, timeout: float = 60) -> object:
    """`found()` once it is truthy, asking again until `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := found()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A loopback HTTP server that keeps the JSON body of every POST: its URL and the bodies so far."""
    posts: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet: the test reads the posts, not a request log."""

    with ThreadingHTTPServer(("127.0.0.1", 0), Hook) as hook:
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{hook.server_address[1]}/studio-hook", posts
        hook.shutdown()


def processes(home: Path) -> list[dict[str, object]]:
    """What `studio up` recorded it started."""
    return studio.read_state(home).get("processes", [])


def test_a_push_renders_the_changed_episode_on_the_studio_worker(
    studio_home: Path, prefect_api: str, pushed_project: Path, tmp_path: Path, reelflow: Reelflow,
    reelflow_env: Callable[[dict[str, str]], dict[str, str]], webhook: tuple[str, list[dict[str, object]]],
) -> None:
    root = pushed_project
    env = {"REELFLOW_HOME": str(studio_home), "FAL_KEY": "fal-key-for-the-worker", "REELFLOW_LOCAL_LATENCY": "1",
           "REELFLOW_GPU_REAP_EVERY_S": "120", "REELFLOW_FRAME_SCALE": "0.25"}  # small pictures: none is measured

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
        assert made["version"] == server.deployment_version()["version"] and "reelflow" in made["tags"]
        assert made["version"].startswith(f"{version('reelflow')}+yaml.")
        described = made["parameter_openapi_schema"]["properties"]
        assert all(field.get("description") for field in described.values()), (name, described)

    # Prefect's automations notify of the studio pools' runs Failed or Crashed, or Late, and of a pool left without a
    # worker: by default through the log-line block, into the studio's notifications.log and the server's log.
    assert status["notifications"]["block"] == "reelflow-log-line/reelflow-studio"
    automations_made = notifying(prefect_api)
    assert {name: sorted(a["trigger"]["expect"]) for name, a in automations_made.items()} == NOTIFYING
    assert all(a["enabled"] and (a["trigger"]["posture"], a["trigger"]["threshold"]) == ("Reactive", 1)
               for a in automations_made.values())
    on_pools = ["cloud", "gpu"]
    assert automations_made[automations.FAILED]["trigger"]["match_related"] == {
        "prefect.resource.role": "work-pool", "prefect.resource.name": on_pools}
    assert automations_made[automations.LATE]["trigger"]["match_related"] == [
        {"prefect.resource.role": "work-pool", "prefect.resource.name": on_pools},
        {"prefect.resource.role": "deployment", "prefect.resource.name": "!reap-gpu"}]  # due every few minutes
    assert automations_made[automations.NO_WORKER]["trigger"]["match"]["prefect.resource.name"] == on_pools
    log_line = block_document(prefect_api, "reelflow-log-line", "reelflow-studio")
    assert log_line["data"] == {"path": str(studio_home / "notifications.log")}
    assert {(action["type"], action["block_document_id"]) for a in automations_made.values() for action in a["actions"]} \
        == {("send-notification", log_line["id"])}
    failed = failed_run(prefect_api)
    notified = wait_for(lambda: [line for line in (studio_home / "notifications.log").read_text().splitlines()
                                 if failed["id"] in line] if (studio_home / "notifications.log").exists() else [],
                        "no notification of the failed run in notifications.log")
    assert f"reelflow: {failed['name']} is Failed" in notified[0] and "the provider said no" in notified[0]
    assert any(failed["id"] in line for line in (studio_home / "server.log").read_text().splitlines())

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

    # Started by the trigger, the push's run carries reelflow's name and the project's tag.
    pushed_run = flow_run(prefect_api, triggered[0]["id"])
    assert pushed_run["name"].startswith("TST-render-changed-") and "project:TST" in pushed_run["tags"]

    # Pushes: one run per push, in push order, never lost.
    check_pushes(studio_home, prefect_api, tmp_path, reelflow, env)

    # A run that is still going when the studio goes down: a previz whose calls take a minute each (a review waiting
    # for its form would not do: it waits on the server, its process gone).
    made = call("POST", f"{prefect_api}/deployments/{deployment(prefect_api, 'previz')['id']}/create_flow_run",
                json={"parameters": {"project": str(root), "episode": 2},
                      "job_variables": {"env": {"REELFLOW_LOCAL_LATENCY": "60"}}})
    assert made.status_code == 201, made.text

    # The nightly schedule: the project's cron in its time zone, with the project as the schedule's parameter.
    added = reelflow("studio", "add", str(root), env=env)
    assert added.code == 0, added.stderr
    slug = nightly.nightly_slug(load_project(root))
    assert added.stdout.startswith(f"{slug}: ") and slug.startswith("nightly-tst-")
    # The project it scheduled fills the UI's Run form of every deployment whose flow takes a project.
    assert deployment(prefect_api, "render-episode")["parameters"] == {"project": str(root)}
    assert deployment(prefect_api, "render-episode-gpu")["parameters"] == {"gpu": True, "project": str(root)}
    assert deployment(prefect_api, "reap-gpu")["parameters"] == {}
    pending = next(d for d in reelflow("studio", "status", "--json", env=env).json()["deployments"]
                   if d["name"] == "render-pending")
    assert pending["schedules"] == [{"slug": slug, "cron": "30 3 * * *", "timezone": "Europe/Paris",
                                     "parameters": {"project": str(root)}, "project": str(root), "active": True}]
    upcoming = [datetime.fromisoformat(at) for at in pending["next_runs"]]
    assert upcoming and all(at > datetime.now(UTC) for at in upcoming)
    assert {at.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M") for at in upcoming} == {"03:30"}
    scheduled = flow_runs(prefect_api, deployment_id={"any_": [deployment(prefect_api, "render-pending")["id"]]},
                          state={"type": {"any_": ["SCHEDULED"]}})
    assert scheduled and all(run["parameters"] == {"project": str(root)} for run in scheduled)

    # A second `up` starts nothing new, and its redeploy keeps the nightly schedule. Given a webhook, it updates the
    # automations in place (the same ids) to notify through it; the webhook's URL is kept as a secret.
    hook_url, posts = webhook
    again = reelflow("studio", "up", "--json", env=env | {"REELFLOW_NOTIFY_WEBHOOK": hook_url})
    assert again.code == 0, again.stderr
    assert processes(studio_home) == started
    assert next(d for d in again.json()["deployments"] if d["name"] == "render-pending")["schedules"] == pending["schedules"]
    assert again.json()["notifications"]["block"] == "custom-webhook/reelflow-studio"
    updated = notifying(prefect_api)
    assert {name: a["id"] for name, a in updated.items()} == {name: a["id"] for name, a in automations_made.items()}
    hook = block_document(prefect_api, "custom-webhook", "reelflow-studio")
    assert {action["block_document_id"] for a in updated.values() for action in a["actions"]} == {hook["id"]}
    assert hook_url not in json.dumps(hook)
    failed = failed_run(prefect_api)
    wait_for(lambda: [post for post in posts if failed["id"] in str(post.get("text"))], "the webhook got no POST")

    # `down` stops the worker and the previz it runs, and leaves the session's server running.
    deadline = time.monotonic() + 180  # a loaded machine starts a flow run's process slowly
    while not studio.descendants(worker["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    tree = [worker["pid"], *studio.descendants(worker["pid"])]
    assert len(tree) > 1, "the previz's flow run never started"
    down = reelflow("studio", "down", env=env)
    assert down.code == 0, down.stderr
    assert f"stopped worker pid {worker['pid']}" in down.stdout
    assert [pid for pid in tree if studio.alive(pid)] == []
    # The previz it stopped is cancelled, and so is each call it had open: the ledger holds none still pending.
    assert f"cancelled run {flow_run(prefect_api, made.json()['id'])['name']}" in down.stdout, down.stdout
    assert flow_run(prefect_api, made.json()["id"])["state_type"] == "CANCELLED"
    assert Ledger.at(root / ".reelflow").rows("status IN ('submitting', 'pending')") == []
    assert not (studio_home / "studio.json").exists()
    assert server.running_server(studio_home) is not None and httpx.get(f"{prefect_api}/health").status_code == 200


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()

def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")

def check_pushes(studio_home: Path, prefect_api: str, tmp_path: Path, reelflow: Reelflow, env: dict[str, str]) -> None:
    """On the studio that is up: the same push sent three times makes one run; two pushes 2 s apart render in order,
    each its own commit, the checkout ending on the branch at the later one; a push the studio could not take is sent
    with the next one."""
    root = write_project(tmp_path / "pushes" / "proj", storyboard(1, only=(4,)), PROJECT | {"code": "PSH"})
    (root / "storyboards" / "storyboard_ep_002.json").write_text(json.dumps(storyboard(2, only=(4,))))
    (root / ".gitignore").write_text(".reelflow/\nstoryboards/assets/\nstoryboards/dailies_ep_*.json\n")
    git(root, "init", "-q", "-b", "main")
    first = commit_all(root, "two episodes")
    dev = tmp_path / "pushes" / "dev"
    subprocess.run(["git", "clone", "-q", str(root), str(dev)], check=True, capture_output=True)

    def pushed(episode: int, prompt: str) -> str:
        """A commit in the developer's clone changing one episode's shot, fetched into the studio's repository."""
        board = dev / "storyboards" / f"storyboard_ep_{episode:03d}.json"
        edited = json.loads(board.read_text())
        edited["shots"][0]["first_frame_prompt"] = prompt
        board.write_text(json.dumps(edited))
        sha = commit_all(dev, prompt)
        git(root, "fetch", "-q", str(dev), "main")
        return sha

    changed_id = deployment(prefect_api, "render-changed")["id"]

    def runs_of(push: str) -> list[dict[str, object]]:
        return [run for run in flow_runs(prefect_api, deployment_id={"any_": [changed_id]})
                if run["parameters"].get("push") == push]

    # Two pushes 2 s apart: two runs in order, each at its own commit; the checkout ends on main at the later one.
    # The earlier is sent twice at once, and a third time with --wait once the later is rendered: one event id, one run.
    c = pushed(2, "Ana alone, the lights out")
    d = pushed(1, "Ana at the door, rain outside")
    sent = [reelflow("push-event", str(root), first, c, "--json", env=env) for _ in range(2)]
    assert [result.code for result in sent] == [0, 0], [result.stderr for result in sent]
    time.sleep(2)
    late = reelflow("push-event", str(root), c, d, "--json", "--wait", "--timeout", "180", env=env)
    assert late.code == 0, late.stdout + late.stderr
    waited = reelflow("push-event", str(root), first, c, "--json", "--wait", "--timeout", "120", env=env)
    assert waited.code == 0, waited.stdout + waited.stderr
    push = waited.json()["push"]
    assert {result.json()["push"] for result in sent} == {push}
    assert [(run["episode"], run["state"]) for run in waited.json()["runs"]] == [(2, "Completed")]
    assert len(runs_of(push)) == 1
    [run_c], [run_d] = runs_of(push), runs_of(late.json()["push"])
    assert (run_c["parameters"]["head"], run_d["parameters"]["head"]) == (c, d)
    assert flow_run(prefect_api, run_c["id"])["state_type"] == "COMPLETED"
    children = {run["id"]: flow_runs(prefect_api, parent_flow_run_id={"any_": [run["id"]]}) for run in (run_c, run_d)}
    assert [child["parameters"]["episode"] for child in children[run_c["id"]]] == [2]
    assert [child["parameters"]["episode"] for child in children[run_d["id"]]] == [1]
    assert flow_run(prefect_api, run_c["id"])["end_time"] <= children[run_d["id"]][0]["start_time"], "in push order"
    assert git(root, "rev-parse", "HEAD") == d and git(root, "symbolic-ref", "--short", "HEAD") == "main"

    # A push while the studio cannot be reached is kept; the next push sends it, widened: one run renders both.
    e = pushed(1, "Ana on the roof at noon")
    down = reelflow("push-event", str(root), d, e, env=env | {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert down.code == 1 and "the push is kept in" in down.stderr and down.stderr.count("\n") == 1, down.stderr
    assert len(list((studio_home / "pushes").glob("*.json"))) == 1
    f = pushed(2, "Ana asleep on the couch")
    after = reelflow("push-event", str(root), e, f, "--json", "--wait", "--timeout", "180", env=env)
    assert after.code == 0, after.stdout + after.stderr
    assert after.json()["episodes"] == [1, 2] and all(run["state"] == "Completed" for run in after.json()["runs"])
    assert not list((studio_home / "pushes").glob("*.json"))
    assert git(root, "rev-parse", "HEAD") == f


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


def render_pending_id(client: SyncPrefectClient) -> UUID:
    """render-pending on the cloud pool, as `studio up` deploys it (made here when no earlier test deployed it)."""
    studio.create_pools(client)
    try:
        return client.read_deployment_by_name(nightly.PENDING).id
    except ObjectNotFound:
        return client.create_deployment(
            client.create_flow_from_name("render-pending"), "render-pending", work_pool_name="cloud", tags=["reelflow"],
            entrypoint="reelflow.flows.pending:render_pending", pull_steps=[{"reelflow.cli.server.work_in_home": {}}])


def test_nightly_schedules_are_one_per_project_folder_and_follow_project_json(
    studio_home: Path, prefect_api: str, tmp_path: Path, reelflow: Reelflow,
) -> None:
    """Two projects with one code keep a schedule each (an older reelflow's `nightly-<code>` of the first folder is
    taken over in place); status names each schedule's project; the runs not started yet are named and tagged as they
    will run; a change of project.json moves that project's schedule only, and never makes one."""
    from reelflow.flows.pending import render_pending

    first = write_project(tmp_path / "a" / "proj", project=PROJECT | {"nightly": "30 3 * * *", "timezone": "Europe/Paris"})
    second = write_project(tmp_path / "b" / "proj", project=PROJECT | {"nightly": "0 2 * * *", "timezone": "UTC"})
    unscheduled = write_project(tmp_path / "c" / "proj")
    env = {"REELFLOW_HOME": str(studio_home)}

    def waiting(client: SyncPrefectClient, root: Path) -> list[FlowRun]:
        """The project's render-pending runs not started yet."""
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[pending_id]),
                                          state=FlowRunFilterState(type={"any_": [StateType.SCHEDULED]})),
            limit=200, offset=0)
        return [run for run in runs if run.parameters.get("project") == str(root)]

    def named(runs: list[FlowRun], zone: str) -> bool:
        return bool(runs) and all(
            run.name == f"TST-render-pending-{run.expected_start_time.astimezone(ZoneInfo(zone)):%Y%m%d-%H%M%S}"
            and {"project:TST", "provider:local", "reelflow"} <= set(run.tags) for run in runs)

    with get_client(sync_client=True) as client:
        pending_id = render_pending_id(client)
        [older] = client.create_deployment_schedules(pending_id, [DeploymentScheduleCreate(
            schedule=CronSchedule(cron="0 4 * * *", timezone="UTC"), parameters={"project": str(first)}, slug="nightly-tst")])
        try:
            slugs = [nightly.nightly_slug(load_project(root)) for root in (first, second)]
            assert slugs[0] != slugs[1] and all(slug.startswith("nightly-tst-") for slug in slugs)
            for root, slug in zip((first, second), slugs):
                added = reelflow("studio", "add", str(root), env=env)
                assert added.code == 0 and added.stdout.startswith(f"{slug}: render-pending of {root} "), added
            report = reelflow("studio", "status", "--json", env=env).json()
            mine = {s["project"]: s for d in report["deployments"] if d["name"] == "render-pending"
                    for s in d["schedules"] if s["project"] in (str(first), str(second))}
            assert mine == {
                str(first): {"slug": slugs[0], "cron": "30 3 * * *", "timezone": "Europe/Paris",
                             "parameters": {"project": str(first)}, "project": str(first), "active": True},
                str(second): {"slug": slugs[1], "cron": "0 2 * * *", "timezone": "UTC",
                              "parameters": {"project": str(second)}, "project": str(second), "active": True},
            }
            text = reelflow("studio", "status", env=env).stdout
            assert f"{slugs[0]} '30 3 * * *' Europe/Paris for {first}" in text
            assert f"{slugs[1]} '0 2 * * *' UTC for {second}" in text
            schedules = {s.slug: s for s in client.read_deployment_schedules(pending_id)}
            assert schedules[slugs[0]].id == older.id and "nightly-tst" not in schedules  # taken over, not doubled
            assert named(waiting(client, first), "Europe/Paris") and named(waiting(client, second), "UTC")
            assert all(run.name.endswith("-033000") for run in waiting(client, first))

            # The second project's project.json changes (a push): its schedule follows, in place; the first's stays.
            (second / "project.json").write_text(json.dumps(PROJECT | {"nightly": "15 5 * * *", "timezone": "Asia/Tokyo"}))
            moved = nightly.follow_nightly(load_project(second), client)
            assert moved == f"{slugs[1]}: '0 2 * * *' UTC -> '15 5 * * *' Asia/Tokyo"
            assert nightly.follow_nightly(load_project(second), client) is None  # in step: nothing to do
            assert nightly.follow_nightly(load_project(unscheduled), client) is None  # never makes a schedule
            after = {s.slug: s for s in client.read_deployment_schedules(pending_id)}
            assert (after[slugs[1]].id, after[slugs[1]].schedule, after[slugs[1]].parameters) == (
                schedules[slugs[1]].id, CronSchedule(cron="15 5 * * *", timezone="Asia/Tokyo"), {"project": str(second)})
            assert after[slugs[0]].schedule == schedules[slugs[0]].schedule and len(after) == len(schedules)
            assert named(waiting(client, second), "Asia/Tokyo")
            assert all(run.name.endswith("-051500") for run in waiting(client, second))

            # Prefect makes the runs again with its own names (a schedule changed, a redeploy); the next nightly run
            # to start names and tags them.
            client.update_deployment_schedule(pending_id, older.id, active=True, parameters={"project": str(first)})
            client.request("POST", "/deployments/{id}/schedule", path_params={"id": pending_id}, json={})
            starting = waiting(client, first)[0]
            assert not named([starting], "Europe/Paris")
            for hook in render_pending.on_running_hooks:
                hook(render_pending, starting, starting.state)
            assert named(waiting(client, first), "Europe/Paris") and named(waiting(client, second), "Asia/Tokyo")
        finally:
            for schedule in client.read_deployment_schedules(pending_id):
                if str(tmp_path) in str(schedule.parameters.get("project")):
                    client.delete_deployment_schedule(pending_id, schedule.id)


def test_status_says_why_a_pool_runs_nothing_and_how_to_start_its_worker() -> None:
    start = ["reelflow studio up", "reelflow studio worker --pool cloud"]
    gone = {"name": "reelflow-cloud-box", "status": "OFFLINE", "last_heartbeat": "2026-12-07T01:59:58.123456+00:00",
            "pid": 4242}
    assert studio.pool_why("cloud", False, []) == ("no worker has ever polled it: its runs wait", start)
    assert studio.pool_why("cloud", False, [gone]) == (
        "no worker is online: reelflow-cloud-box (pid 4242) last polled at 2026-12-07T01:59:58+00:00 (stopped, "
        "Ctrl-C'd, or its machine is down); its runs wait", start)
    assert studio.pool_why("cloud", False, [gone, gone | {"name": "other", "status": "ONLINE"}]) == (None, [])
    assert studio.pool_why("gpu", True, [gone | {"status": "ONLINE"}]) == (
        "the pool is paused: its runs wait until it is resumed", ["prefect work-pool resume gpu"])
    line = studio._pool_line({"name": "cloud", "type": "process", "status": "NOT_READY", "why": "no worker has ever "
                              "polled it: its runs wait", "fix": start})
    assert line == ("pool cloud (process): NOT_READY - no worker has ever polled it: its runs wait; reelflow studio up "
                    "(or reelflow studio worker --pool cloud, in the foreground)")
