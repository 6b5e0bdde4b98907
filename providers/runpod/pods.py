"""RunPod pods through the runpod SDK's GraphQL: create, read, list, terminate, wait; no state of its own.

Sources (gpu-path.md A): runpod-python 1.12.0 `runpod/api/ctl_commands.py`, `api/graphql.py`,
`api/mutations/pods.py`, `api/queries/pods.py`, `api/queries/gpus.py`, `api/queries/user.py`; readiness idiom from
`runpod/cli/utils/rp_info.py` (desiredStatus RUNNING and a runtime with ports); the proxy URL and its 100 s cut
from RunPod docs `pods/configuration/expose-ports.mdx`; the orphan-after-5xx case from
https://github.com/transformerlab/transformerlab-app/pull/2305.

The SDK's `create_pod`, `stop_pod` and `terminate_pod` read only the module-global `runpod.api_key`; reelflow never
sets that global, so it sends the SDK's own mutation builders through `run_graphql_query(query, api_key=...)` with
the key read from RUNPOD_API_KEY per call. `run_graphql_query` reads RUNPOD_API_BASE_URL from the environment on
every call, so a test (or a `reelflow` subprocess) points it at a fake by setting that variable. The SDK is imported
on first use: its import takes over a second (py-cpuinfo in runpod.serverless).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from reelflow.providers.runpod.errors import NAME, NoCapacity, api_key, one_line, sdk_error
from reelflow.schemas.errors import (
    BadRequest,
    MissingCredentials,
    ProviderError,
    ProviderTimeout,
    ServerError,
    TransportError,
)

PORTS = "8188/http"  # ComfyUI only: never FileBrowser's 8080 (default admin password) nor ssh's 22 (gpu-path.md A6)
PROXY_ENV = "REELFLOW_RUNPOD_PROXY_URL"
PROXY_DEFAULT = "https://{pod_id}-{port}.proxy.runpod.net"
VOLUME_MOUNT = "/workspace"  # where a pod mounts its network volume (RunPod REST default, gpu-path.md A3 / C)
# The mutation is built by string interpolation without escaping (gpu-path.md A1): refuse what would break it.
UNSAFE = re.compile(r'["\\\n\r]')
Json = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    """One pod as RunPod reports it; `gpu` is the GPU's display name (the type id until RunPod reports one)."""

    id: str
    name: str
    desired_status: str
    cost_per_hr: float
    gpu: str
    runtime_ready: bool


def _data(query: str, where: str, *, gpu_type: str | None = None) -> Json:
    """The `data` of one GraphQL answer; every failure as a taxonomy error."""
    from runpod.api.graphql import run_graphql_query

    try:
        answer = run_graphql_query(query, api_key=api_key())
    except ProviderError:
        raise
    except Exception as error:  # the SDK's own errors, requests' errors
        raise sdk_error(error, where, gpu_type=gpu_type) from error
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        raise ServerError(f"runpod: {where}: the answer has no data", provider=NAME)
    return data


def _pod(raw: Json) -> Pod:
    runtime = raw.get("runtime") or {}
    machine = raw.get("machine") or {}
    status = str(raw.get("desiredStatus") or "")
    return Pod(
        id=str(raw["id"]),
        name=str(raw.get("name") or ""),
        desired_status=status,
        cost_per_hr=float(raw.get("costPerHr") or 0.0),
        gpu=str(machine.get("gpuDisplayName") or ""),
        runtime_ready=status == "RUNNING" and bool(runtime.get("ports")),
    )


def _checked(name: str, value: str) -> str:
    if UNSAFE.search(value):
        raise BadRequest(f"runpod: {name} {value!r} has a quote, backslash or newline (the SDK sends it unescaped)",
                         provider=NAME)
    return value


def _volume_datacenter(network_volume_id: str) -> str:
    """The data center of a network volume on this account, as the SDK's create_pod looks it up (get_user)."""
    from runpod.api.queries.user import QUERY_USER

    volumes = (_data(QUERY_USER, "network volumes").get("myself") or {}).get("networkVolumes") or []
    for volume in volumes:
        if volume["id"] == network_volume_id:
            return str(volume["dataCenterId"])
    have = ", ".join(sorted(str(volume["id"]) for volume in volumes)) or "none"
    raise BadRequest(f"runpod: network volume {network_volume_id!r} is not on this account (it has: {have})", provider=NAME)


def create_pod(name: str, *, gpu_type: str, image: str, network_volume_id: str | None = None,
               data_center_id: str | None = None, cloud_type: str = "SECURE", container_disk_gb: int = 50,
               env: dict[str, str] | None = None) -> Pod:
    """Deploy one on-demand pod exposing only 8188/http (public IP, no ssh); `name` must be unique.

    When RunPod answers with an error or no answer after the mutation was sent (a 5xx that still created the pod,
    transformerlab-app#2305), the pod is looked up by its name and returned if it exists. A capacity refusal is
    NoCapacity naming the GPU type.
    """
    from runpod.api.mutations.pods import generate_pod_deployment_mutation

    for label, value in {"name": name, "image": image, "gpu type": gpu_type}.items():
        _checked(label, value)
    for key, value in (env or {}).items():
        _checked("env name", key)
        _checked(f"env {key}", value)
    if network_volume_id is not None and data_center_id is None:
        data_center_id = _volume_datacenter(network_volume_id)
    mutation = generate_pod_deployment_mutation(
        name, image, gpu_type, cloud_type, support_public_ip=True, start_ssh=False, data_center_id=data_center_id,
        gpu_count=1, volume_in_gb=0, container_disk_in_gb=container_disk_gb, min_vcpu_count=1, min_memory_in_gb=1,
        docker_args="", ports=PORTS, volume_mount_path=VOLUME_MOUNT, env=env or {}, network_volume_id=network_volume_id,
    )
    try:
        created = _data(mutation, f"create pod {name}", gpu_type=gpu_type)["podFindAndDeployOnDemand"]
    except (NoCapacity, MissingCredentials):
        raise
    except ProviderError as error:
        try:
            found = find_pod(name)
        except ProviderError:
            raise error from None
        if found is None:
            raise
        return found
    fresh = Pod(id=str(created["id"]), name=name, desired_status="RUNNING", cost_per_hr=0.0, gpu=gpu_type,
                runtime_ready=False)
    try:
        return get_pod(fresh.id) or fresh
    except ProviderError:
        return fresh  # the pod exists: never lose its id over a failed read


def get_pod(pod_id: str) -> Pod | None:
    """The pod, or None when RunPod no longer knows it (terminated)."""
    from runpod.api.queries.pods import generate_pod_query

    raw = _data(generate_pod_query(_checked("pod id", pod_id)), f"pod {pod_id}").get("pod")
    return _pod(raw) if raw else None


def list_pods(prefix: str = "reelflow-") -> list[Pod]:
    """This account's pods whose name starts with `prefix` (the reaper's view)."""
    from runpod.api.queries.pods import QUERY_POD

    raws = (_data(QUERY_POD, "list pods").get("myself") or {}).get("pods") or []
    return [_pod(raw) for raw in raws if str(raw.get("name") or "").startswith(prefix)]


def find_pod(name: str) -> Pod | None:
    """The pod with exactly this name, if any."""
    return next((pod for pod in list_pods(prefix=name) if pod.name == name), None)


def terminate_pod(pod_id: str) -> None:
    """Terminate the pod (billing ends); a pod RunPod no longer knows counts as terminated."""
    from runpod.api.mutations.pods import generate_pod_terminate_mutation

    try:
        _data(generate_pod_terminate_mutation(_checked("pod id", pod_id)), f"terminate pod {pod_id}")
    except ProviderError:
        if get_pod(pod_id) is not None:
            raise


def gpu_price(gpu_type: str) -> float | None:
    """The lowest on-demand $/hr RunPod lists for one GPU of this type; None for a type RunPod does not know."""
    from runpod.api.ctl_commands import get_gpu

    try:
        gpu = get_gpu(_checked("gpu type", gpu_type), 1, api_key=api_key())
    except ValueError:  # the SDK's "No GPU found with the specified ID"
        return None
    except ProviderError:
        raise
    except Exception as error:
        raise sdk_error(error, f"gpu {gpu_type}") from error
    lowest = (gpu.get("lowestPrice") or {}).get("uninterruptablePrice")
    if lowest:
        return float(lowest)
    listed = [float(price) for price in (gpu.get("securePrice"), gpu.get("communityPrice")) if price]
    return min(listed) if listed else None


def wait_running(pod_id: str, *, deadline_s: float = 1800.0, poll_s: float = 5.0) -> Pod:
    """Poll until the pod is RUNNING with a runtime that lists ports; transient read errors are polled through.

    A pod that is gone or EXITED is a ServerError (a new pod may fare better); past `deadline_s` a ProviderTimeout.
    """
    end = time.monotonic() + deadline_s
    last = "no answer yet"
    while True:
        try:
            pod = get_pod(pod_id)
        except (ServerError, TransportError, ProviderTimeout) as error:
            last = str(error)
        else:
            if pod is None or pod.desired_status in ("EXITED", "TERMINATED"):
                state = pod.desired_status if pod else "gone"
                raise ServerError(f"runpod: pod {pod_id} is {state} while starting", provider=NAME)
            if pod.runtime_ready:
                return pod
            last = f"desiredStatus {pod.desired_status}, no runtime yet"
        if time.monotonic() + poll_s > end:
            raise ProviderTimeout(f"runpod: pod {pod_id} not running after {deadline_s:g} s ({one_line(last)})",
                                  provider=NAME)
        time.sleep(poll_s)


def proxy_url(pod_id: str, port: int = 8188) -> str:
    """The pod's HTTP proxy URL for `port`, from REELFLOW_RUNPOD_PROXY_URL (`{pod_id}`, `{port}`) or RunPod's."""
    template = os.environ.get(PROXY_ENV) or PROXY_DEFAULT
    return template.format(pod_id=pod_id, port=port).rstrip("/")


def wait_comfyui(url: str, *, deadline_s: float = 1800.0, poll_s: float = 5.0, headers: dict[str, str] | None = None,
                 timeout_s: float = 10.0) -> None:
    """Poll GET {url}/system_stats with short requests (the proxy cuts at 100 s) until it answers 200.

    A pod that is RUNNING may still be starting ComfyUI ("can take up to 30 minutes", docs tutorials/pods/comfyui).
    """
    end = time.monotonic() + deadline_s
    last = "no answer yet"
    target = url.rstrip("/") + "/system_stats"
    with httpx.Client(headers=headers, follow_redirects=True) as client:
        while True:
            try:
                response = client.get(target, timeout=max(0.05, min(timeout_s, end - time.monotonic())))
            except httpx.HTTPError as error:
                last = type(error).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            if time.monotonic() + poll_s > end:
                # the proxy URL is the only guard of an unauthenticated ComfyUI: never in a message
                raise ProviderTimeout(f"runpod: the pod's ComfyUI not answering after {deadline_s:g} s ({last})",
                                      provider=NAME)
            time.sleep(poll_s)
