"""providers/runpod/serverless.py against FakeRunPod: worker-comfyui's input and output, job states, limits."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from reelflow.media.probe import probe_video
from reelflow.providers.runpod import serverless
from reelflow.providers.runpod.errors import JobFailed
from reelflow.schemas.errors import BadRequest, MissingCredentials, OutcomeUnknown, ProviderTimeout, UnusableOutput

from fakes.comfyui import FakeComfyUI
from fakes.runpod import FakeRunPod

ENDPOINT = "ep-comfy-1"


def still_graph() -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "lanczos", "width": 40,
                                                      "height": 24, "crop": "center"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "reelflow/still"}},
    }


def video_graph() -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "start.png"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "end.png"}},
        "3": {"class_type": "WanFirstLastFrameToVideo", "inputs": {"width": 64, "height": 48, "length": 9,
                                                                    "start_image": ["1", 0], "end_image": ["2", 0]}},
        "4": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 16}},
        "5": {"class_type": "SaveVideo", "inputs": {"video": ["4", 0], "filename_prefix": "video/clip", "format": "mp4",
                                                     "codec": "h264"}},
    }


@pytest.fixture
def frames(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, colour in (("start.png", (200, 40, 40)), ("end.png", (40, 40, 200))):
        paths[name] = tmp_path / name
        Image.new("RGB", (32, 24), colour).save(paths[name])
    return paths


def test_a_still_job_runs_and_its_png_comes_back(fake: FakeRunPod, frames: dict[str, Path], tmp_path: Path) -> None:
    job = serverless.submit(ENDPOINT, still_graph(), {"start.png": frames["start.png"]}, execution_timeout_s=60, ttl_s=600)
    sent = fake.runs[0]
    assert sent["policy"] == {"executionTimeout": 60000, "ttl": 600000}
    assert sent["input"]["workflow"] == still_graph()
    assert [image["name"] for image in sent["input"]["images"]] == ["start.png"]
    done = serverless.wait(ENDPOINT, job, deadline_s=5, poll_s=0.02)
    assert done.status == "COMPLETED" and done.error is None
    assert done.delay_ms >= 40 and done.execution_ms >= 90
    [path] = serverless.outputs(done.output, tmp_path / "out", job_id=job)
    assert path.name == "still_00001_.png"
    with Image.open(path) as image:
        assert image.size == (40, 24)


def test_a_video_job_comes_back_as_mp4_bytes(fake: FakeRunPod, frames: dict[str, Path], tmp_path: Path) -> None:
    job = serverless.submit(ENDPOINT, video_graph(), frames)
    done = serverless.wait(ENDPOINT, job, deadline_s=10, poll_s=0.02)
    [path] = serverless.outputs(done.output, tmp_path / "out")
    assert path.suffix == ".mp4" and path.read_bytes()[4:8] == b"ftyp"
    info = probe_video(path)
    assert (info.width, info.height) == (64, 48) and info.frames == 9


def test_cancel_in_queue_has_no_execution_time_and_in_progress_has_some(fake: FakeRunPod, frames: dict[str, Path]) -> None:
    fake.queue_s, fake.job_s = 0.3, 5.0
    queued = serverless.submit(ENDPOINT, still_graph(), {})
    assert serverless.cancel(ENDPOINT, queued) == "CANCELLED"
    answer = serverless.status(ENDPOINT, queued)
    assert answer.status == "CANCELLED" and answer.execution_ms == 0
    running = serverless.submit(ENDPOINT, still_graph(), {})
    time.sleep(0.45)
    assert serverless.status(ENDPOINT, running).status == "IN_PROGRESS"
    assert serverless.cancel(ENDPOINT, running) == "CANCELLED"
    assert serverless.status(ENDPOINT, running).execution_ms >= 100


def test_wait_cancels_at_its_deadline(fake: FakeRunPod) -> None:
    fake.job_s = 5.0
    job = serverless.submit(ENDPOINT, still_graph(), {})
    time.sleep(0.1)
    expected = rf"^runpod: job {job} not done after 0.2 s \(IN_PROGRESS\); cancelled: CANCELLED$"
    with pytest.raises(ProviderTimeout, match=expected) as caught:
        serverless.wait(ENDPOINT, job, deadline_s=0.2, poll_s=0.05)
    assert caught.value.billed and fake.cancels == [job]
    assert serverless.status(ENDPOINT, job).status == "CANCELLED"


def test_the_fake_honours_execution_timeout_and_ttl(fake: FakeRunPod) -> None:
    fake.job_s = 5.0
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    body = {"input": {"workflow": still_graph()}, "policy": {"executionTimeout": 100, "ttl": 400}}
    job = httpx.post(f"{fake.url}/v2/{ENDPOINT}/run", json=body, headers=headers).json()["id"]
    time.sleep(0.25)
    answer = serverless.status(ENDPOINT, job)
    assert answer.status == "TIMED_OUT" and 100 <= answer.execution_ms < 150
    time.sleep(0.25)
    with pytest.raises(OutcomeUnknown, match="past its ttl"):
        serverless.status(ENDPOINT, job)


def test_a_payload_over_10_mb_is_refused_before_sending(fake: FakeRunPod, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(8 * 1000 * 1000))
    expected = r"^runpod: the /run body is 10\.7 MB, over RunPod's 10 MB limit for /run \(images: big\.png 8\.0 MB\)$"
    with pytest.raises(BadRequest, match=expected):
        serverless.submit(ENDPOINT, still_graph(), {"big.png": big})
    assert fake.runs == []


def test_policy_values_outside_runpods_ranges_are_refused(fake: FakeRunPod) -> None:
    with pytest.raises(BadRequest, match=r"executionTimeout 2 s is not allowed: 5\.\.604800 s"):
        serverless.submit(ENDPOINT, still_graph(), {}, execution_timeout_s=2)
    assert fake.runs == []


def test_worker_errors_and_empty_outputs(fake: FakeRunPod, tmp_path: Path) -> None:
    fake.job_errors.append("Workflow execution error: Node Type: UNETLoader, Node ID: 1, Message: empty file")
    job = serverless.submit(ENDPOINT, still_graph(), {})
    done = serverless.wait(ENDPOINT, job, deadline_s=5, poll_s=0.02)
    assert done.status == "FAILED" and "Node ID: 1" in (done.error or "")
    with pytest.raises(JobFailed, match=r"^runpod: worker-comfyui: Workflow execution error: .*: details$") as caught:
        serverless.outputs({"error": done.error, "details": ["details"]}, tmp_path)
    assert caught.value.billed
    bare = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    done = serverless.wait(ENDPOINT, serverless.submit(ENDPOINT, bare, {}), deadline_s=5, poll_s=0.02)
    assert done.output == {"status": "success_no_images", "images": []}
    with pytest.raises(UnusableOutput, match="^runpod: worker-comfyui returned success_no_images$"):
        serverless.outputs(done.output, tmp_path)


def test_keys_and_base_url_are_read_per_call(fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRunPod() as second:
        monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", f"{second.url}/v2")
        monkeypatch.setenv("RUNPOD_API_KEY", second.api_key)
        serverless.submit(ENDPOINT, still_graph(), {})
        assert len(second.runs) == 1 and fake.runs == []
        monkeypatch.setenv("RUNPOD_API_KEY", "wrong")
        with pytest.raises(MissingCredentials, match="RUNPOD_API_KEY was refused"):
            serverless.submit(ENDPOINT, still_graph(), {})
        monkeypatch.delenv("RUNPOD_API_KEY")
        with pytest.raises(MissingCredentials, match="^runpod: RUNPOD_API_KEY is not set"):
            serverless.status(ENDPOINT, "job")


def test_with_an_upstream_comfyui_the_workflow_really_runs_there(fake: FakeRunPod, frames: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    with FakeComfyUI(tmp_path / "comfy") as comfy:
        fake.upstream = comfy.url
        job = serverless.submit(ENDPOINT, still_graph(), {"start.png": frames["start.png"]})
        done = serverless.wait(ENDPOINT, job, deadline_s=10, poll_s=0.02)
        assert done.status == "COMPLETED", done.error
        assert comfy.uploads and len(comfy.prompts) == 1
        [path] = serverless.outputs(done.output, tmp_path / "out")
        with Image.open(path) as image:
            assert image.size == (40, 24)
