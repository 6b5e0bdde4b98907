"""The ComfyUI provider on a RunPod serverless endpoint (worker-comfyui jobs on the RunPod fake): a video comes back and
is billed by its worker seconds; a job past its deadline is cancelled; both are in the ledger."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from reelflow.media.probe import probe_video
from reelflow.providers.comfyui.provider import ComfyUIProvider
from reelflow.schemas.errors import OutcomeUnknown, ProviderTimeout
from reelflow.schemas.gpu import WAN_FLF
from reelflow.schemas.project import ComfyUI, Wan
from reelflow.schemas.requests import VideoRequest
from reelflow.state.ledger import Charge, Ledger

from fakes.runpod import FakeRunPod

PRICE_PER_S, IDLE_S = 0.00031, 5.0
SERVERLESS = {"runpod": {"mode": "serverless", "endpoint_id": "ep-comfy-1", "price_per_s": PRICE_PER_S,
                         "idle_s": IDLE_S, "execution_timeout_s": 60, "ttl_s": 600}}


@pytest.fixture
def runpod(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    with FakeRunPod(queue_s=0.05, job_s=0.2) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("REELFLOW_RUNPOD_POLL_S", "0.05")
        yield server


def clip(tmp_path: Path) -> VideoRequest:
    frames = []
    for name, colour in (("first.png", (200, 40, 40)), ("last.png", (40, 40, 200))):
        Image.new("RGB", (64, 112), colour).save(tmp_path / name)
        frames.append(tmp_path / name)
    return VideoRequest(model=WAN_FLF, first=frames[0], last=frames[1], prompt="she turns", num_frames=17, fps=16,
                        width=64, height=112, seed=7, steps=30, cfg=6.0, shift=5.0)


def test_a_serverless_video_comes_back_billed_by_worker_seconds(tmp_path: Path, runpod: FakeRunPod) -> None:
    provider = ComfyUIProvider("runpod", ComfyUI.model_validate(SERVERLESS), Wan())
    ledger = Ledger.at(tmp_path / "state")
    request = clip(tmp_path)
    made = provider.first_last_video(request, tmp_path / "clip.mp4", ticket=ledger.ticket(
        "key-1", "runpod", Charge(run="run-1", stage="video", price_usd=provider.estimate(request))))
    assert probe_video(made.files[0]).frames == 17
    (sent,) = runpod.runs
    assert sent["policy"] == {"executionTimeout": 60000, "ttl": 600000}
    assert {node["class_type"] for node in sent["input"]["workflow"].values()} >= {"WanFirstLastFrameToVideo", "SaveVideo"}
    (row,) = ledger.rows()
    job = runpod.jobs[row.request_id]
    assert (row.status, row.provider, row.endpoint) == ("completed", "runpod", WAN_FLF)
    assert job.started is not None and job.finished is not None
    assert row.cost_usd == pytest.approx((job.finished - job.started + IDLE_S) * PRICE_PER_S, abs=2e-5)
    assert row.billed_usd == row.cost_usd and made.cost_usd == row.cost_usd


def test_a_serverless_job_past_its_deadline_is_cancelled(tmp_path: Path, runpod: FakeRunPod,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runpod.job_s = 30.0
    monkeypatch.setenv("REELFLOW_RUNPOD_DEADLINE_S", "0.6")
    provider = ComfyUIProvider("runpod", ComfyUI.model_validate(SERVERLESS), Wan())
    ledger = Ledger.at(tmp_path / "state")
    request = clip(tmp_path)
    price = provider.estimate(request)
    with pytest.raises(ProviderTimeout, match="cancelled"):
        provider.first_last_video(request, tmp_path / "clip.mp4", ticket=ledger.ticket(
            "key-1", "runpod", Charge(run="run-1", stage="video", price_usd=price)))
    (row,) = ledger.rows()
    assert runpod.cancels == [row.request_id]
    assert runpod.jobs[row.request_id].state == "CANCELLED"
    assert (row.status, row.cost_usd) == ("failed", price), "it had started: billed at its price"
    assert not (tmp_path / "clip.mp4").exists()


def test_a_job_runpod_no_longer_knows_is_unknown_at_its_price(tmp_path: Path, runpod: FakeRunPod) -> None:
    runpod.job_s = 30.0
    provider = ComfyUIProvider("runpod", ComfyUI.model_validate(SERVERLESS), Wan())
    ledger = Ledger.at(tmp_path / "state")
    request = clip(tmp_path)
    price = provider.estimate(request)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(provider.first_last_video, request, tmp_path / "clip.mp4", ticket=ledger.ticket(
            "key-1", "runpod", Charge(run="run-1", stage="video", price_usd=price)))
        while not runpod.jobs:
            time.sleep(0.02)
        (job,) = runpod.jobs.values()
        job.ttl_s = 0.0  # past its ttl: /status answers 404
        with pytest.raises(OutcomeUnknown):
            call.result(timeout=30)
    (row,) = ledger.rows()
    assert (row.status, row.request_id, row.price_usd) == ("unknown", job.id, price)
    assert ledger.pending("key-1") is None, "never polled again: the billed-retries rule decides a new submit"
