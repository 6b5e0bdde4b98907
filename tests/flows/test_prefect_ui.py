"""Every flow and task run of a render is recorded on the Prefect server, with names a person can read."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from conftest import run_cli
from projects import write_project


def _task_run_names(api: str, flow_run_id: str, expected: int) -> list[str]:
    deadline, names = time.monotonic() + 20, []
    while time.monotonic() < deadline:
        response = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})
        response.raise_for_status()
        names = sorted(run["name"] for run in response.json() if run["state_type"] == "COMPLETED")
        if len(names) >= expected:
            break
        time.sleep(0.5)
    return names


def test_render_is_visible_in_the_prefect_ui(prefect_api: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--shots", "2,4")
    assert result.code == 0, result.stderr
    assert "no cut: shots 1, 3 have no clip" in result.stdout
    match = re.search(r"run in the Prefect UI: (\S+)/runs/flow-run/([0-9a-f-]{36})", result.stdout)
    assert match, result.stdout
    flow_run = httpx.get(f"{prefect_api}/flow_runs/{match[2]}").json()
    assert re.fullmatch(r"TST-ep001-render-\d{8}-\d{6}", flow_run["name"]) and flow_run["state_type"] == "COMPLETED"

    # The printed link is this server's UI, which serves the run's page and talks to this same server.
    ui = prefect_api.removesuffix("/api")
    assert match[1] == ui
    page = httpx.get(match[0].removeprefix("run in the Prefect UI: "), headers={"Accept": "text/html"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert httpx.get(f"{ui}/ui-settings").json()["api_url"] == prefect_api

    stages = ("keyframes", "gates", "upscale", "video", "clip", "clip-qc")
    expected = sorted([f"ep001-S{n:02d}" for n in (2, 4)] + [f"ep001-S{n:02d}-{s}" for n in (2, 4) for s in stages])
    assert _task_run_names(prefect_api, match[2], len(expected)) == expected

    artifacts = httpx.post(f"{prefect_api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["tst-ep001-render"]}}}).json()
    assert any("| 2 | T01 | standard_flf | rendered | pass |" in artifact["data"] for artifact in artifacts)

    # Again, unchanged: every stage is in the cache, so each shot is one task run that reads them back.
    again = run_cli("render", str(root), "--episode", "1", "--shots", "2,4")
    assert again.code == 0, again.stderr
    rerun = re.search(r"/runs/flow-run/([0-9a-f-]{36})", again.stdout)
    assert rerun, again.stdout
    assert _task_run_names(prefect_api, rerun[1], 2) == [f"ep001-S{n:02d}" for n in (2, 4)]
    time.sleep(2)  # the server records task runs in batches, at least once a second: nothing more arrives
    assert _task_run_names(prefect_api, rerun[1], 2) == [f"ep001-S{n:02d}" for n in (2, 4)]
    artifacts = httpx.post(f"{prefect_api}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [rerun[1]]}}}).json()
    report = [artifact["data"] for artifact in artifacts if artifact["key"] == "tst-ep001-render"]
    assert len(report) == 1 and "| 2 | T01 | standard_flf | cached | pass |" in report[0]


def test_failed_shots_fail_the_flow_run(prefect_api: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--shots", "3", env={"REELFLOW_LOCAL_FAULTS": "reject=1"})
    assert result.code == 1
    match = re.search(r"/runs/flow-run/([0-9a-f-]{36})", result.stdout)
    assert match, result.stdout
    flow_run = httpx.get(f"{prefect_api}/flow_runs/{match[1]}").json()
    assert flow_run["state_type"] == "FAILED"
    assert "1 of 1 shots failed: 3 (keyframes)" in flow_run["state"]["message"]
    assert "rejected" in result.stdout
