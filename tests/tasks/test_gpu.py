"""A project's pod on RunPod (the fakes: RunPod's API and proxy in front of a ComfyUI, moto's S3 as the network volume):
models checked on the volume before any pod starts, LoRAs put there before a graph needs them, `gpu up` / `down`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.providers.comfyui.client import GraphRefused
from reelflow.schemas.gpu import FLUX2_DEV
from reelflow.schemas.load import load_project
from reelflow.schemas.requests import ImageRequest, LoraRef
from reelflow.state.ledger import Ledger
from reelflow.tasks.gpu import gpu_provider

from conftest import run_cli
from fakes.comfyui import FakeComfyUI
from fakes.runpod import FakeRunPod
from projects import PROJECT, write_project
from s3 import moto_server

VOLUME, DATACENTER = "vol0abc123", "EU-RO-1"
POD = {"mode": "pod", "gpu_types": ["NVIDIA L40S"], "network_volume_id": VOLUME, "datacenter": DATACENTER,
       "idle_stop_s": 600}


@pytest.fixture
def volume(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's S3 as the network volume, holding every model file but FLUX.2's text encoder."""
    with moto_server() as url:
        for name, value in {"RUNPOD_S3_ACCESS_KEY_ID": "user_fake", "RUNPOD_S3_SECRET_ACCESS_KEY": "rps_fake",
                            "RUNPOD_S3_ENDPOINT_URL": url}.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
        s3.create_bucket(Bucket=VOLUME)
        from reelflow.providers.comfyui.models import MODEL_FILES

        for role, file in MODEL_FILES.items():
            if role != "flux2_clip":
                s3.put_object(Bucket=VOLUME, Key=f"{file.folder}/{file.name}", Body=b"")
        yield s3
        httpx.post(f"{url}/moto-api/reset")


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[FakeComfyUI]:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05) as server:
        yield server


@pytest.fixture
def runpod(tmp_path: Path, comfy: FakeComfyUI, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    with FakeRunPod(boot_s=0.1, upstream=comfy.url) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        for name, value in {"REELFLOW_RUNPOD_POLL_S": "0.05", "REELFLOW_HOME": str(tmp_path / "home")}.items():
            monkeypatch.setenv(name, value)
        yield server


def keyframe(lora: LoraRef) -> ImageRequest:
    return ImageRequest(model=FLUX2_DEV, prompt="bo_person kneels", width=64, height=112, seed=3, loras=(lora,))


def test_a_model_missing_on_the_volume_stops_before_any_pod_and_loras_go_up_first(
        tmp_path: Path, volume: object, comfy: FakeComfyUI, runpod: FakeRunPod) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"comfyui": {"runpod": POD}})
    folder = load_project(root)
    provider = gpu_provider(folder.root, folder.project, folder.state_dir, "runpod")
    weights = root / "bo.safetensors"
    weights.write_bytes(b"bo's adapter")
    lora = LoraRef(path="bo.safetensors", character="BO", file=weights)
    with pytest.raises(GraphRefused) as refused:
        provider.check(keyframe(lora))
    assert "model mistral_3_small_flux2_bf16.safetensors (flux2_clip, CLIPLoader.clip_name) is not on network volume " \
           f"{VOLUME} in models/clip/" in str(refused.value)
    assert runpod.pods == {}, "no pod started for a graph that could not run"

    volume.put_object(Bucket=VOLUME, Key="models/clip/mistral_3_small_flux2_bf16.safetensors", Body=b"")
    provider._volume_names.clear()  # a new listing, as the next process would read it
    name = f"reelflow-{sha256_file(weights)}.safetensors"
    comfy.models["loras"].append(name)  # the pod's ComfyUI sees the volume's folder
    made = provider.generate_image(keyframe(lora), tmp_path / "frame.png")
    assert volume.head_object(Bucket=VOLUME, Key=f"models/loras/{name}")["ContentLength"] == len(b"bo's adapter")
    assert Image.open(made.files[0]).size == (64, 112)
    (pod,) = runpod.pods.values()
    assert pod.network_volume_id == VOLUME and pod.ports == "8188/http"


def test_a_pod_without_work_for_its_idle_time_is_terminated(tmp_path: Path, comfy: FakeComfyUI,
                                                            runpod: FakeRunPod) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"comfyui": {"runpod": POD | {"idle_stop_s": 0.5}}})
    folder = load_project(root)
    provider = gpu_provider(folder.root, folder.project, folder.state_dir, "runpod")
    request = ImageRequest(model=FLUX2_DEV, prompt="an empty hold", width=64, height=112, seed=3)
    provider.generate_image(request, tmp_path / "a.png")
    provider.generate_image(request.model_copy(update={"seed": 4}), tmp_path / "b.png")  # within the lease: reused
    (pod,) = runpod.pods.values()
    deadline = time.monotonic() + 10
    while runpod.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runpod.running() == [] and time.monotonic() - pod.created < 5, "stopped by its own process once idle"
    while (rows := Ledger.at(root / ".reelflow").rows("stage = 'gpu'"))[0].status == "pending":  # settled just after
        assert time.monotonic() < deadline, "the stopped pod's row was never settled"
        time.sleep(0.05)
    (row,) = rows
    assert row.status == "completed" and row.detail == "idle for 0.5 s"


def test_gpu_up_starts_the_pod_and_down_terminates_it(tmp_path: Path, runpod: FakeRunPod) -> None:
    root = write_project(tmp_path / "proj", project=PROJECT | {"comfyui": {"runpod": POD | {"datacenter": None}}})
    env = runpod.env() | {"REELFLOW_HOME": str(tmp_path / "home"), "REELFLOW_RUNPOD_POLL_S": "0.05"}
    up = run_cli("gpu", "up", str(root), "--json", env=env)
    assert up.code == 0, up.stderr
    (started,) = up.json()["pods"]
    (pod,) = runpod.pods.values()
    assert (started["id"], started["status"], started["cost_per_hr"]) == (pod.id, "running", pod.cost_per_hr)
    down = run_cli("gpu", "down", str(root), "--json", env=env)
    assert [(entry["id"], entry["status"]) for entry in down.json()["pods"]] == [(pod.id, "terminated")]
    assert runpod.running() == []
    (row,) = Ledger.at(root / ".reelflow").rows("stage = 'gpu'")
    assert row.status == "completed" and row.cost_usd == pytest.approx(runpod.billed_s(pod.id) * pod.cost_per_hr / 3600,
                                                                       rel=0.1, abs=1e-4)
    missing = run_cli("gpu", "up", str(root), env={"RUNPOD_API_KEY": ""})
    assert (missing.code, missing.stderr.count("\n")) == (2, 1) and "RUNPOD_API_KEY" in missing.stderr
    assert len(runpod.pods) == 1, "nothing started without the key"


def test_a_serverless_endpoint_is_a_provider_without_a_pod_or_a_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rp-test")
    monkeypatch.setenv("RUNPOD_S3_ACCESS_KEY_ID", "user_fake")  # a volume's keys, which serverless does not use
    serverless = {"runpod": {"mode": "serverless", "endpoint_id": "ep123", "price_per_s": 0.0005}}
    root = write_project(tmp_path / "proj", project=PROJECT | {"providers": {"default": "runpod"}, "comfyui": serverless})
    folder = load_project(root)
    provider = gpu_provider(root, folder.project, folder.state_dir, "runpod")
    assert (provider.host, provider.volume) == (None, None)
