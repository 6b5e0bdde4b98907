"""providers/runpod/pods.py against FakeRunPod: the SDK's GraphQL answered, capacity, orphans, billing, readiness."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from reelflow.providers.runpod import pods
from reelflow.providers.runpod.errors import NoCapacity
from reelflow.schemas.errors import BadRequest, MissingCredentials, ProviderTimeout, ServerError, TransportError

from fakes.runpod import FakeRunPod

GPU = "NVIDIA L40S"
IMAGE = "runpod/comfyui:latest"


def create(name: str = "reelflow-p1", **extra: object) -> pods.Pod:
    return pods.create_pod(name, gpu_type=GPU, image=IMAGE, network_volume_id="vol0abc123", **extra)  # type: ignore[arg-type]


def test_create_sends_the_sdk_mutation_and_exposes_only_comfyui(fake: FakeRunPod) -> None:
    pod = create(env={"COMFY_FLAG": "on"})
    made = fake.pods[pod.id]
    assert made.ports == "8188/http"
    assert made.start_ssh is False and made.support_public_ip is True
    assert made.data_center_id == "EU-RO-1"  # looked up from the volume, as the SDK's create_pod does
    assert made.network_volume_id == "vol0abc123" and made.volume_mount_path == "/workspace"
    assert made.env == {"COMFY_FLAG": "on"} and made.cloud_type == "SECURE" and made.container_disk_gb == 50
    assert [op for op, _ in fake.graphql] == ["myself", "podFindAndDeployOnDemand", "pod"]
    assert pod.name == "reelflow-p1" and pod.cost_per_hr == 0.86 and pod.gpu == "L40S"
    assert pod.desired_status == "RUNNING" and not pod.runtime_ready


def test_wait_running_returns_once_the_runtime_lists_ports(fake: FakeRunPod) -> None:
    pod = create()
    ready = pods.wait_running(pod.id, deadline_s=5, poll_s=0.02)
    assert ready.runtime_ready and ready.id == pod.id
    assert time.monotonic() - fake.pods[pod.id].created >= fake.boot_s


def test_wait_running_times_out_on_a_pod_that_never_boots(fake: FakeRunPod) -> None:
    fake.boot_s = 60
    pod = create()
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=rf"^runpod: pod {pod.id} not running after 0.2 s"):
        pods.wait_running(pod.id, deadline_s=0.2, poll_s=0.05)
    assert time.monotonic() - started < 2


def test_wait_running_stops_on_a_terminated_pod(fake: FakeRunPod) -> None:
    fake.boot_s = 60
    pod = create()
    pods.terminate_pod(pod.id)
    with pytest.raises(ServerError, match=rf"^runpod: pod {pod.id} is gone while starting$"):
        pods.wait_running(pod.id, deadline_s=5, poll_s=0.02)


def test_no_capacity_names_the_gpu_type_and_creates_nothing(fake: FakeRunPod) -> None:
    fake.no_capacity.add(GPU)
    with pytest.raises(NoCapacity) as caught:
        create()
    message = str(caught.value)
    assert message.startswith("runpod: ") and GPU in message and "no longer any instances available" in message
    assert "\n" not in message and not caught.value.billed
    assert fake.pods == {}


def test_a_5xx_after_creating_finds_the_pod_by_its_name(fake: FakeRunPod) -> None:
    fake.fail_creates = 1
    pod = create("reelflow-orphan-1")
    assert list(fake.pods) == [pod.id]
    assert pod.name == "reelflow-orphan-1"
    assert [op for op, _ in fake.graphql][-2:] == ["podFindAndDeployOnDemand", "myself"]


def test_terminate_ends_billing_and_the_pod_disappears(fake: FakeRunPod) -> None:
    pod = create()
    time.sleep(0.1)
    pods.terminate_pod(pod.id)
    billed = fake.billed_s(pod.id)
    time.sleep(0.1)
    assert fake.billed_s(pod.id) == billed and 0.1 <= billed < 2
    assert fake.running() == [] and fake.cost_usd() == pytest.approx(billed * 0.86 / 3600)
    assert pods.get_pod(pod.id) is None and pods.list_pods() == []
    pods.terminate_pod(pod.id)  # already gone: nothing to do


def test_list_pods_keeps_the_prefix(fake: FakeRunPod) -> None:
    create("reelflow-a")
    create("other-b")
    assert [pod.name for pod in pods.list_pods()] == ["reelflow-a"]
    assert pods.find_pod("other-b") is not None and pods.find_pod("reelflow-zzz") is None


def test_gpu_price_is_the_lowest_listed_or_none(fake: FakeRunPod) -> None:
    assert pods.gpu_price(GPU) == 0.79
    assert pods.gpu_price("NVIDIA Imaginary 1") is None


def test_a_missing_key_is_one_line_and_sends_nothing(fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY")
    with pytest.raises(MissingCredentials) as caught:
        create()
    assert str(caught.value).startswith("runpod: RUNPOD_API_KEY is not set") and "\n" not in str(caught.value)
    assert fake.graphql == []


def test_a_wrong_key_is_missing_credentials_without_the_key(fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "wrong-secret-key")
    with pytest.raises(MissingCredentials) as caught:
        pods.list_pods()
    assert "RUNPOD_API_KEY was refused" in str(caught.value) and "wrong-secret-key" not in str(caught.value)


def test_unsafe_values_and_unknown_volumes_are_refused_before_creating(fake: FakeRunPod) -> None:
    with pytest.raises(BadRequest, match="quote"):
        create(env={"X": 'a"b'})
    with pytest.raises(BadRequest, match=r"network volume 'vol-nope' is not on this account \(it has: vol0abc123\)"):
        pods.create_pod("reelflow-v", gpu_type=GPU, image=IMAGE, network_volume_id="vol-nope")
    assert fake.pods == {}


def test_an_unreachable_api_is_a_transport_error(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRunPod() as gone:
        url = gone.url
    monkeypatch.setenv("RUNPOD_API_KEY", "k")
    monkeypatch.setenv("RUNPOD_API_BASE_URL", url)
    with pytest.raises(TransportError, match=r"^runpod: list pods: ConnectionError"):
        pods.list_pods()


def test_a_subprocess_reaches_the_fake_through_the_environment(fake: FakeRunPod) -> None:
    code = ("from reelflow.providers.runpod import pods; "
            "print(pods.create_pod('reelflow-sub', gpu_type='NVIDIA L40S', image='runpod/comfyui:latest').id)")
    env = {**os.environ, **fake.env()}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert list(fake.pods) == [done.stdout.strip()] and fake.pods[done.stdout.strip()].name == "reelflow-sub"
