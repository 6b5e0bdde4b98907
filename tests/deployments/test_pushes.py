"""Pushes on a studio of their own: the same push sent three times makes one run, two pushes render in push order
each at its own commit, and a push the studio could not take is sent with the next one."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from conftest import CliResult
from projects import PROJECT, storyboard, write_project
from studio_api import deployment, flow_run, flow_runs

Reelflow = Callable[..., CliResult]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()

def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")

def test_pushes_are_rendered_once_in_order_and_never_lost(own_home: Path, tmp_path: Path, reelflow: Reelflow) -> None:
    """The same push sent three times makes one run; two pushes 2 s apart render in order, each its own commit, the
    checkout ending on the branch at the later one; a push the studio could not take is sent with the next one."""
    root = write_project(tmp_path / "proj", storyboard(1, only=(4,)), PROJECT | {"code": "PSH"})
    (root / "storyboards" / "storyboard_ep_002.json").write_text(json.dumps(storyboard(2, only=(4,))))
    (root / ".gitignore").write_text(".reelflow/\nstoryboards/assets/\nstoryboards/dailies_ep_*.json\n")
    git(root, "init", "-q", "-b", "main")
    first = commit_all(root, "two episodes")
    dev = tmp_path / "dev"
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

    studio_home = own_home  # a studio of its own (server included), beside the session's
    env = {"REELFLOW_HOME": str(studio_home), "REELFLOW_SERVER_PORT": "0", "REELFLOW_GPU_REAP_EVERY_S": "120"}
    up = reelflow("studio", "up", "--json", env=env, timeout=300)
    assert up.code == 0, up.stdout + up.stderr
    prefect_api = up.json()["api_url"]
    changed_id = deployment(prefect_api, "render-changed")["id"]

    def runs_of(push: str) -> list[dict[str, object]]:
        return [run for run in flow_runs(prefect_api, deployment_id={"any_": [changed_id]})
                if run["parameters"].get("push") == push]

    # The same push, three times: one event id, one run.
    b = pushed(1, "Ana at the window, dawn breaking")
    sent = [reelflow("push-event", str(root), first, b, "--json", env=env) for _ in range(2)]
    waited = reelflow("push-event", str(root), first, b, "--json", "--wait", "--timeout", "120", env=env)
    assert [result.code for result in sent] == [0, 0] and waited.code == 0, waited.stdout + waited.stderr
    push = waited.json()["push"]
    assert {result.json()["push"] for result in sent} == {push}
    assert [(run["episode"], run["state"]) for run in waited.json()["runs"]] == [(1, "Completed")]
    assert len(runs_of(push)) == 1

    # Two pushes 2 s apart: two runs in order, each at its own commit; the checkout ends on main at the later one.
    c = pushed(2, "Ana alone, the lights out")
    d = pushed(1, "Ana at the door, rain outside")
    early = reelflow("push-event", str(root), b, c, "--json", env=env)
    assert early.code == 0, early.stderr
    time.sleep(2)
    late = reelflow("push-event", str(root), c, d, "--json", "--wait", "--timeout", "180", env=env)
    assert late.code == 0, late.stdout + late.stderr
    [run_c], [run_d] = runs_of(early.json()["push"]), runs_of(late.json()["push"])
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
    assert reelflow("studio", "down", env=env).code == 0
