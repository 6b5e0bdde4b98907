"""project.json's `wan.steps` reaches what every WAN provider is sent: fal's `num_inference_steps`, the KSampler steps
of the ComfyUI graph on a studio's server and on a RunPod serverless endpoint. The video stage runs as a render runs
it (tasks/video.py's task body, through the cache and the ledger), against each service's fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.media.probe import probe_image
from reelflow.providers.registry import get_provider
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.errors import ReelflowError
from reelflow.schemas.load import base_name, load_project, load_storyboard
from reelflow.schemas.wire.fal import WAN_FLF
from reelflow.tasks import video
from reelflow.tasks.job import ShotJob, StageResult, shot_seed

from fakes.comfyui import FakeComfyUI
from fakes.fal import FakeFal
from fakes.runpod import FakeRunPod
from projects import PROJECT, storyboard, write_project

STEPS = 40  # the seed's WAN 2.2 HQ, not the default 30
SERVERLESS = {"mode": "serverless", "endpoint_id": "ep-comfy-1", "price_per_s": 0.0003}


@pytest.fixture
def small_clips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips at 1/8 of the product's size (the sizes are read when tasks/video.py is imported)."""
    monkeypatch.setattr(video, "VIDEO_SIZE", {"9:16": (96, 160), "16:9": (160, 96)})
    monkeypatch.setenv("REELFLOW_COMFYUI_POLL_S", "0.05")
    monkeypatch.setenv("REELFLOW_RUNPOD_POLL_S", "0.05")


@pytest.fixture
def fal_here(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFal]:
    with FakeFal() as fal:
        for name, value in fal.env().items():
            monkeypatch.setenv(name, value)
        get_provider.cache_clear()  # a fal provider pointed at this fake
        yield fal
    get_provider.cache_clear()


def make_clip(root: Path, video_stage: dict[str, Any], steps: int = STEPS) -> None:
    """Shot 1 (standard first-last-frame) of a project whose project.json sets `wan.steps`, its video stage run."""
    project = PROJECT | {"providers": {"default": "local", "video": video_stage.pop("use")}, "wan": {"steps": steps}}
    folder = load_project(write_project(root, storyboard(only=(2,)), project | video_stage))
    board = load_storyboard(folder, 1)
    shot = board.shots[0]
    job = ShotJob(run="r", root=folder.root, project=folder.project, episode=1, shot=shot,
                  name=base_name(folder.project, board, shot), seed=shot_seed("TST", 1, shot))
    frames = {}
    for role, colour in (("first", (200, 40, 40)), ("last", (40, 40, 200))):
        path = root / f"{role}.png"
        Image.new("RGB", (96, 160), colour).save(path)
        frames[role] = AssetRef(path=path, sha256=sha256_file(path), media=probe_image(path))
    assert "seg1" in video.make_video.fn(job, StageResult(assets=frames)).assets


def sampler_steps(graph: dict[str, Any]) -> list[int]:
    return [node["inputs"]["steps"] for node in graph.values() if node["class_type"] == "KSamplerAdvanced"]


@pytest.mark.usefixtures("small_clips")
def test_fal_is_sent_the_steps_as_num_inference_steps(tmp_path: Path, fal_here: FakeFal) -> None:
    make_clip(tmp_path / "proj", {"use": "fal"})
    [job] = [job for job in fal_here.jobs.values() if job.endpoint == WAN_FLF]
    assert job.body["num_inference_steps"] == STEPS
    with pytest.raises(ReelflowError, match=rf"{WAN_FLF}: num_inference_steps: 41: Input should be less than or equal"):
        make_clip(tmp_path / "over", {"use": "fal"}, steps=41)  # past fal's published 2..40
    assert fal_here.total_submits() == 1, "refused before it was sent"


@pytest.mark.usefixtures("small_clips")
def test_a_studio_comfyui_graph_samples_the_steps(tmp_path: Path) -> None:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05) as comfy:
        make_clip(tmp_path / "proj", {"use": "comfyui", "comfyui": {"url": comfy.url}})
        [prompt] = comfy.prompts
    assert sampler_steps(prompt["prompt"]) == [STEPS, STEPS], "both of WAN 2.2's experts: high noise, then low"


@pytest.mark.usefixtures("small_clips")
def test_a_runpod_serverless_job_carries_the_steps_in_its_workflow(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRunPod(queue_s=0.02, job_s=0.05) as runpod:
        for name, value in runpod.env().items():
            monkeypatch.setenv(name, value)
        make_clip(tmp_path / "proj", {"use": "runpod", "comfyui": {"runpod": SERVERLESS}})
        [sent] = runpod.runs
    assert sampler_steps(sent["input"]["workflow"]) == [STEPS, STEPS]
