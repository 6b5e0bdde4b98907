"""Runs read well in the Prefect UI: named and tagged by project, episode and provider; artifacts the UI can show."""

from __future__ import annotations

import base64
import io
import re
import threading
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from reelflow.flows.naming import run_tags
from reelflow.schemas.project import RENDER_STAGES, Project
from reelflow.schemas.report import RenderReport

from conftest import run_cli
from projects import PROJECT, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
STAMP = r"\d{8}-\d{6}"


def flow_run(flow_run_id: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))


def artifact_data(api: str, key: str) -> tuple[str, str]:
    """The markdown of the latest artifact under `key` and its flow run, from the API (the sync client's
    read_artifacts sends nulls that the server refuses)."""
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    response = httpx.post(f"{api}/artifacts/filter", json=body)
    response.raise_for_status()
    [artifact] = response.json()
    assert artifact["type"] == "markdown"
    return artifact["data"], artifact["flow_run_id"]


def test_a_render_run_is_named_and_tagged_by_project_episode_and_provider(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--shots", "4")
    assert result.code == 0, result.stderr
    match = re.search(r"/runs/flow-run/([0-9a-f-]{36})", result.stdout)
    assert match, result.stdout
    run = flow_run(match[1])
    assert re.fullmatch(rf"TST-ep001-render-{STAMP}", run.name), run.name
    assert {"project:TST", "episode:1", "provider:local"} <= set(run.tags)
    # the final state as the API holds it still carries the report (a retried state proposal returns that state)
    report = run.state.result()
    assert isinstance(report, RenderReport) and report.shots.rendered == 1 and report.output is None


def test_provider_tags_name_every_provider_the_stages_may_call() -> None:
    providers = {"default": "local", "keyframes": {"use": "fal", "fallback": "local"}, "upscale": "gemini"}
    project = Project.model_validate(PROJECT | {"providers": providers})
    assert run_tags(project, 2, RENDER_STAGES) == [
        "project:TST", "episode:2", "provider:fal", "provider:local", "provider:gemini",
    ]
    assert run_tags(project, 2, ("previz",)) == ["project:TST", "episode:2", "provider:local"]


def test_previz_artifacts_embed_the_frames_and_name_the_shadow_cost(prefect_api: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"code": "PVZ"})
    result = run_cli("previz", str(root), "--episode", "1", "--shots", "2,3", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["cost_usd"] > 0 and report["charged_usd"] == 0
    assert report["shadow_usd"] == pytest.approx(report["cost_usd"])

    summary, run_id = artifact_data(prefect_api, "pvz-ep001-previz")
    sheet, sheet_run_id = artifact_data(prefect_api, "pvz-ep001-previz-review")
    assert "file://" not in summary + sheet
    assert "· charged $0.000 · shadow cost $" in summary and "(local provider: nothing charged)" in summary
    assert "(local provider: nothing charged)" in sheet
    thumbnails = re.findall(r"!\[shot (\d)\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", sheet)
    assert [shot for shot, _ in thumbnails] == ["2", "3"]
    with Image.open(io.BytesIO(base64.b64decode(thumbnails[0][1]))) as image:
        assert (image.format, image.size) == ("JPEG", (146, 256))

    assert run_id == sheet_run_id
    run = flow_run(run_id)
    assert re.fullmatch(rf"PVZ-ep001-previz-{STAMP}", run.name), run.name
    assert {"project:PVZ", "episode:1", "provider:local"} <= set(run.tags)


def test_a_review_run_is_named_and_tagged(prefect_api: str, tmp_path: Path) -> None:
    from reelflow.flows.review import review_episode

    root = write_project(tmp_path / "proj", project=PROJECT | {"code": "RVW"})
    outcome: dict[str, dict[int, str]] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(result=review_episode(str(root), 1, timeout_s=60, poll_s=1)), daemon=True
    )
    runner.start()
    deadline, paused = time.monotonic() + 60, []
    while not paused and time.monotonic() < deadline:
        body = {"flow_runs": {"tags": {"all_": ["project:RVW"]}, "state": {"type": {"any_": ["PAUSED"]}}},
                "sort": "START_TIME_DESC", "limit": 1}
        paused = httpx.post(f"{prefect_api}/flow_runs/filter", json=body).json()
        time.sleep(0.3)
    assert paused, "the review run never paused"
    run = paused[0]
    assert re.fullmatch(rf"RVW-ep001-review-{STAMP}", run["name"]), run["name"]
    assert set(run["tags"]) == {"project:RVW", "episode:1"}
    with get_client(sync_client=True) as client:
        client.resume_flow_run(UUID(run["id"]), run_input={})
    runner.join(60)
    assert outcome["result"] == {1: "pending", 2: "pending", 3: "pending", 4: "pending"}
