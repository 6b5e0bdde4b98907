"""Renders on the GPU path: ComfyUI graphs on a RunPod pod reelflow starts and stops (the RunPod fake's proxy in
front of a ComfyUI fake), on a studio's own ComfyUI, and refusals before anything is queued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelflow.flows.gpu import reap_gpu
from reelflow.schemas.gpu import WAN_FLF, gpu_seconds
from reelflow.state.ledger import Ledger
from reelflow.tasks.gpu import reap

from conftest import REELFLOW, run_cli
from fakes.comfyui import FakeComfyUI
from fakes.runpod import FakeRunPod
from projects import PROJECT, storyboard, write_project

pytestmark = pytest.mark.usefixtures("prefect_api")
SMALL = {"REELFLOW_FRAME_SCALE": "0.125", "REELFLOW_LOCAL_VIDEO": "replay", "REELFLOW_COMFYUI_POLL_S": "0.05",
         "REELFLOW_RUNPOD_POLL_S": "0.05", "REELFLOW_GPU_RENEW_S": "0.2"}
WAN_FILES = {"wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"}
POD = {"mode": "pod", "gpu_types": ["NVIDIA GeForce RTX 4090", "NVIDIA L40S"], "image": "runpod/comfyui:latest",
       "network_volume_id": "vol0abc123", "idle_stop_s": 600}


@pytest.fixture
def comfy(tmp_path: Path) -> Iterator[FakeComfyUI]:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05) as server:
        yield server


@pytest.fixture
def runpod(comfy: FakeComfyUI) -> Iterator[FakeRunPod]:
    with FakeRunPod(boot_s=0.2, upstream=comfy.url) as server:
        yield server


def gpu_env(runpod: FakeRunPod, home: Path) -> dict[str, str]:
    return SMALL | runpod.env() | {"REELFLOW_HOME": str(home)}


def pod_project(tmp_path: Path, pod: dict[str, object] | None = None, **extra: object) -> Path:
    project = PROJECT | {"providers": {"default": "local", "video": "comfyui"},
                         "comfyui": {"runpod": POD | (pod or {})}} | extra
    return write_project(tmp_path / "proj", storyboard(only=(2, 2)), project)


def test_a_pod_render_fails_each_shot_on_an_empty_model_and_stops_the_pod(
        tmp_path: Path, comfy: FakeComfyUI, runpod: FakeRunPod) -> None:
    comfy.empty_models = set(WAN_FILES)
    runpod.no_capacity = {"NVIDIA GeForce RTX 4090"}  # the next GPU type is tried
    root = pod_project(tmp_path)
    result = run_cli("render", str(root), "--episode", "1", "--json", env=gpu_env(runpod, tmp_path / "home"))
    assert result.code == 1, result.stderr
    report = result.json()
    reasons = {failure["shot"]: failure["reason"] for failure in report["failures"]}
    assert set(reasons) == {1, 2}
    for reason in reasons.values():
        assert "(UNETLoader): Error while deserializing header" in reason and "header too small" in reason, reason
        assert "\n" not in reason
    assert comfy.prompts, "every graph was accepted and queued"
    # afterwards no pod bills: the one the render started is terminated, and RunPod bills what the ledger holds
    assert [(pod.gpu_type, pod.ports) for pod in runpod.pods.values()] == [("NVIDIA L40S", "8188/http")]
    assert runpod.running() == []
    (pod,) = runpod.pods.values()
    rows = Ledger.at(root / ".reelflow").rows("stage = 'gpu'")
    assert [(row.status, row.provider, row.request_id) for row in rows] == [
        ("cancelled", "runpod", rows[0].request_id), ("completed", "runpod", rows[1].request_id)]
    assert rows[1].cost_usd == pytest.approx(runpod.billed_s(pod.id) * pod.cost_per_hr / 3600, rel=0.05, abs=1e-4)
    assert report["pods"][0]["id"] == pod.id and report["pods"][0]["cost_per_hr"] == pod.cost_per_hr
    shares = Ledger.at(root / ".reelflow").rows("share = 1")
    assert {row.stage for row in shares} == {"video"} and all(row.status == "failed" for row in shares)
    assert Ledger.at(root / ".reelflow").spent(shadow=False) == pytest.approx(rows[1].cost_usd), "shares are never counted twice"
    status = run_cli("gpu", "status", "--json", env=gpu_env(runpod, tmp_path / "home")).json()
    assert [(entry["id"], entry["status"]) for entry in status["pods"]] == [(pod.id, "terminated")]
    assert "proxy" not in result.stdout + result.stderr, "the proxy URL guards ComfyUI: never shown"


def test_a_killed_render_leaves_its_pod_to_the_reaper(tmp_path: Path, comfy: FakeComfyUI, runpod: FakeRunPod,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    comfy.run_s = 30.0  # the pod is busy when the render dies
    root = pod_project(tmp_path, {"idle_stop_s": 3})
    env = os.environ | gpu_env(runpod, tmp_path / "home")
    process = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--json"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not comfy.prompts and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = time.time()
    (pod,) = runpod.pods.values()
    home = {"REELFLOW_HOME": str(tmp_path / "home")} | runpod.env()
    for name, value in home.items():  # the reap-gpu deployment's flow, as its worker runs it
        monkeypatch.setenv(name, value)
    early, kept = reap(tmp_path / "home")  # what the flow and `reelflow gpu reap` do, at once (the lease is short)
    assert early == [] and [entry.id for entry in kept] == [pod.id], "its lease still runs"
    time.sleep(max(0.0, 3.2 - (time.time() - killed)))
    reaped = reap_gpu()
    assert [(entry.id, entry.project, entry.reason) for entry in reaped.reaped] == [(pod.id, str(root.resolve()),
                                                                                    "lease over")]
    assert runpod.running() == []
    assert run_cli("gpu", "reap", "--json", env=home).json() == {"reaped": [], "kept": []}, "nothing left"
    (listed,) = run_cli("gpu", "status", "--json", env=home).json()["pods"]
    assert (listed["id"], listed["status"]) == (pod.id, "terminated")
    assert listed["name"].startswith("reelflow-TST-") and listed["cost_usd"] > 0


def test_a_budget_that_cannot_cover_a_pod_starts_none(tmp_path: Path, runpod: FakeRunPod) -> None:
    root = pod_project(tmp_path, {"cost_per_hr": 2.0}, budget_usd=0.05)  # start-up and idle: 900 s at $2/hr = $0.50
    plan = run_cli("estimate", str(root), "--episode", "1", "--json", env=gpu_env(runpod, tmp_path / "home")).json()
    # the clips' GPU seconds from the table (no measurement yet) at the pod's $/hr, and no pod started to price them
    assert 0 < plan["by_stage"]["video"] < 2 * gpu_seconds(WAN_FLF, steps=30) * 2.0 / 3600, plan["by_stage"]
    result = run_cli("render", str(root), "--episode", "1", "--json", env=gpu_env(runpod, tmp_path / "home"))
    assert result.code == 1
    reasons = [failure["reason"] for failure in result.json()["failures"]]
    assert reasons and all("no pod started" in reason for reason in reasons), reasons
    assert runpod.pods == {} and not [query for query in runpod.graphql if query[0] == "podFindAndDeployOnDemand"]


def url_project(tmp_path: Path, comfy: FakeComfyUI, **extra: object) -> Path:
    project = PROJECT | {"providers": {"default": "local", "video": "comfyui"}, "comfyui": {"url": comfy.url}} | extra
    return write_project(tmp_path / "proj", storyboard(only=(2,)), project)


def test_a_studio_server_renders_and_refuses_bad_graphs_before_queueing(tmp_path: Path) -> None:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05, prefix="/comfy") as comfy:
        root = url_project(tmp_path, comfy)
        done = run_cli("render", str(root), "--episode", "1", "--json", env=SMALL)
        assert done.code == 0, done.stderr
        samplers = [node["inputs"] for prompt in comfy.prompts for node in prompt["prompt"].values()
                    if node["class_type"] == "KSamplerAdvanced"]
        assert [(inputs["steps"], inputs["cfg"]) for inputs in samplers] == [(30, 6.0)] * 2, "project.json's wan, else 30 / 6"
        rows = Ledger.at(root / ".reelflow").rows("provider = 'comfyui'")
        assert [(row.endpoint, row.status, row.cost_usd) for row in rows] == [(WAN_FLF, "completed", 0.0)]

        queued = len(comfy.prompts)
        (root / "project.json").write_text(json.dumps(json.loads((root / "project.json").read_text())
                                                      | {"wan": {"steps": 20000}}))
        refused = run_cli("render", str(root), "--episode", "1", "--json", env=SMALL)
        assert refused.code == 2 and refused.stdout == ""
        (line,) = refused.stderr.strip().splitlines()
        assert "storyboard_ep_001.json: shot 1: video: comfyui:" in line and "(KSamplerAdvanced): steps 20000" in line
        assert "10000" in line, "what is allowed"

        comfy.models["unet"].remove("wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors")
        (root / "project.json").write_text(json.dumps(json.loads((root / "project.json").read_text())
                                                      | {"wan": {"steps": 30}}))
        missing = run_cli("render", str(root), "--episode", "1", "--json", "--shots", "1", env=SMALL)
        assert missing.code == 2
        (line,) = missing.stderr.strip().splitlines()
        assert "(UNETLoader): unet_name 'wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors'" in line
        assert len(comfy.prompts) == queued, "no prompt queued"


def test_a_lora_missing_on_a_studio_server_says_where_to_copy_it(tmp_path: Path) -> None:
    with FakeComfyUI(tmp_path / "comfy", run_s=0.05) as comfy:
        root = url_project(tmp_path, comfy, providers={"default": "local", "keyframes": "comfyui"})
        weights = root / "visual" / "loras" / "bo.safetensors"
        weights.parent.mkdir(parents=True)
        weights.write_bytes(b"bo's adapter")
        (root / "visual" / "lora_registry.json").write_text(json.dumps({"characters": {"BO": [
            {"base_model": "flux-2", "path": "visual/loras/bo.safetensors", "trigger": "bo_person"}]}}))
        refused = run_cli("render", str(root), "--episode", "1", "--json", env=SMALL)
        assert refused.code == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert "LoRA BO (reelflow-" in line and f"copy {weights} to ComfyUI's models/loras/reelflow-" in line
        assert comfy.prompts == []
