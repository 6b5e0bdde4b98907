"""A loopback RunPod: the GraphQL pods API, the serverless REST API and the pods' HTTP proxy, on 127.0.0.1.

Built from what runpod-python 1.12.0 sends and reads (gpu-path.md A, B): `POST /graphql` with `{"query": ...}` and
`Authorization: Bearer <key>` (api/graphql.py: a 401 is AuthenticationError, any `errors[]` a QueryError). The
query text the SDK builds (api/mutations/pods.py, api/queries/pods.py, gpus.py, user.py) is parsed with a small
GraphQL reader and each root field is answered with exactly the fields selected (an unknown field is an error, as
GraphQL's validation makes it): `podFindAndDeployOnDemand`, `podStop`, `podTerminate`, `pod`, `myself { pods }`,
`myself { networkVolumes }`, `gpuTypes`.

Pods are RUNNING from creation with `runtime: null` until `boot_s` has passed, then a runtime whose ports are the
pod's exposed ones. Billing per pod: created → stopped or terminated, at its `costPerHr` (`billed_s`, `cost_usd`).
Scripted faults: `no_capacity` (GPU types answering RunPod's capacity message, gpu-path.md A4), `fail_creates` (the
next N creates make the pod and answer HTTP 500: transformerlab-app#2305), a wrong key (401).

Serverless (`/v2/{endpoint}/run | runsync-less status/{job} | cancel/{job} | health`, endpoint/runner.py): jobs go
IN_QUEUE (`queue_s`) → IN_PROGRESS (`job_s`, or until the upstream ComfyUI finishes) → COMPLETED; past the policy's
executionTimeout a job is TIMED_OUT; past its ttl (queue plus run) /status answers 404 (docs: "a hard limit …
status checks return 404"); a cancel of an IN_QUEUE job is CANCELLED without execution time, of an IN_PROGRESS one
CANCELLED with the execution time so far. Answers carry `delayTime` / `executionTime` in ms as in RunPod's docs
("Invoke a Job" example). A /run body over 10 MB is answered 400 (the docs state the limit, not the answer).
Outputs follow worker-comfyui 5.x (gpu-path.md C): with an `upstream` ComfyUI URL the workflow really runs there
(upload, /prompt, /history, /view); without one the save node decides: SaveVideo → a real H.264 mp4 (frames =
WanFirstLastFrameToVideo length, size from it, fps from CreateVideo) base64 in `images[]` as `.mp4`, SaveImage → a
PNG; no save node → {"status": "success_no_images"}. `job_errors` queue worker errors: the job is FAILED with it.

Proxy: `/proxy/{pod_id}/{port}/{rest}` forwards method, body, query and headers to `upstream` only for a RUNNING
pod with a runtime and `{port}/http` exposed. A pod RunPod does not know, stopped or terminated, or a port it does
not expose is 404 (RunPod documents no answer for these); a RUNNING pod still booting or an upstream that refuses
is 502 (what users see while a pod's service starts: ashleykleynhans/stable-diffusion-docker#61); an upstream
slower than `proxy_timeout_s` (RunPod's 100 s) is Cloudflare's 524.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

from reelflow.media.encode import encode_frames

Body = dict[str, Any]
CAPACITY_MESSAGE = ("There are no longer any instances available with the requested specifications. "
                    "Please refresh and try again.")
SERVER_ERROR = "Something went wrong. Please try again later or contact support."
RUN_LIMIT = 10 * 1024 * 1024
GPU_TYPES: dict[str, Body] = {
    "NVIDIA GeForce RTX 4090": {"displayName": "RTX 4090", "memoryInGb": 24, "securePrice": 0.69, "communityPrice": 0.34},
    "NVIDIA L40S": {"displayName": "L40S", "memoryInGb": 48, "securePrice": 0.86, "communityPrice": 0.79},
    "NVIDIA H100 80GB HBM3": {"displayName": "H100 SXM", "memoryInGb": 80, "securePrice": 2.69, "communityPrice": 2.39},
}
CREATE_FIELDS = frozenset({"name", "imageName", "cloudType", "startSsh", "gpuTypeId", "supportPublicIp", "gpuCount",
                           "volumeInGb", "minVcpuCount", "minMemoryInGb", "allowedCudaVersions", "dataCenterId",
                           "dockerArgs", "countryCode", "containerDiskInGb", "ports", "volumeMountPath", "env",
                           "templateId", "networkVolumeId", "minDownload", "minUpload"})
HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive", "accept-encoding"})


class GraphQLError(Exception):
    """Answered as `{"errors": [{"message": ...}]}`."""


# ---------------------------------------------------------------- a small GraphQL reader (what the SDK sends)
TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[_A-Za-z][_0-9A-Za-z]*)'
                   r'|(?P<punct>[{}()\[\]:!$]))|\s*,')


@dataclass
class Field:
    name: str
    args: Body
    selection: list[Field] | None


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise GraphQLError(f"Syntax Error: Unexpected character {text[position]!r}.")
            position = match.end()
            kind = match.lastgroup
            if kind:
                self.tokens.append((kind, match.group(kind)))
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise GraphQLError(f"Syntax Error: Expected {value or 'a token'}, found {token[1] if token else '<EOF>'}.")
        self.at += 1
        return token

    def document(self) -> tuple[str, list[Field]]:
        operation = "query"
        if self.peek() and self.peek()[1] in ("query", "mutation"):  # type: ignore[index]
            operation = self.take()[1]
            if self.peek() and self.peek()[0] == "name":  # type: ignore[index]
                self.take()
        return operation, self.selection()

    def selection(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() and self.peek()[1] != "}":  # type: ignore[index]
            name = self.take()[1]
            args: Body = {}
            if self.peek() and self.peek()[1] == "(":  # type: ignore[index]
                self.take("(")
                while self.peek()[1] != ")":  # type: ignore[index]
                    key = self.take()[1]
                    self.take(":")
                    args[key] = self.value()
                self.take(")")
            nested = self.selection() if self.peek() and self.peek()[1] == "{" else None  # type: ignore[index]
            fields.append(Field(name, args, nested))
        self.take("}")
        return fields

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if text == "[":
            items = []
            while self.peek()[1] != "]":  # type: ignore[index]
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            found: Body = {}
            while self.peek()[1] != "}":  # type: ignore[index]
                key = self.take()[1]
                self.take(":")
                found[key] = self.value()
            self.take("}")
            return found
        return {"true": True, "false": False, "null": None}.get(text, text)  # enums stay names


def project(value: Any, selection: list[Field] | None, type_name: str) -> Any:
    """Exactly the selected fields of a resolved value (lists element-wise); unknown fields are GraphQL errors."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [project(item, selection, type_name) for item in value]
    answer = {}
    for item in selection:
        if item.name not in value:
            raise GraphQLError(f'Cannot query field "{item.name}" on type "{type_name}".')
        answer[item.name] = project(value[item.name], item.selection, item.name)
    return answer


# ---------------------------------------------------------------- state
@dataclass
class FakePod:
    id: str
    name: str
    gpu_type: str
    image: str
    ports: str
    env: dict[str, str]
    cost_per_hr: float
    cloud_type: str
    network_volume_id: str | None
    data_center_id: str | None
    container_disk_gb: int
    volume_mount_path: str
    start_ssh: bool
    support_public_ip: bool
    created: float
    desired_status: str = "RUNNING"
    ended: float | None = None

    def booted(self, boot_s: float) -> bool:
        return self.desired_status == "RUNNING" and time.monotonic() - self.created >= boot_s

    def http_ports(self) -> set[int]:
        return {int(part.split("/")[0]) for part in self.ports.split(",") if part.endswith("/http")}


@dataclass
class FakeJob:
    id: str
    endpoint: str
    body: Body
    created: float
    execution_timeout_s: float
    ttl_s: float
    state: str = "IN_QUEUE"
    started: float | None = None
    finished: float | None = None
    output: Any = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Proxied:
    method: str
    pod_id: str
    port: int
    path: str
    status: int
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeRunPod


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, headers, data = self.server.fake.answer(self.command, self.path, dict(self.headers.items()), body)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError:
            return

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:
        return


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class FakeRunPod:
    """The fake service: start()/stop() or a context manager; `.env()` points reelflow's runpod modules here."""

    def __init__(self, *, api_key: str = "fake-runpod-key", boot_s: float = 0.05, queue_s: float = 0.02,
                 job_s: float = 0.05, upstream: str | None = None, proxy_timeout_s: float = 100.0,
                 network_volumes: dict[str, str] | None = None) -> None:
        self.api_key = api_key
        self.boot_s, self.queue_s, self.job_s = boot_s, queue_s, job_s
        self.upstream = upstream
        self.proxy_timeout_s = proxy_timeout_s
        self.network_volumes = dict(network_volumes if network_volumes is not None else {"vol0abc123": "EU-RO-1"})
        self.gpu_types = {gpu: dict(info) for gpu, info in GPU_TYPES.items()}
        self.no_capacity: set[str] = set()
        self.fail_creates = 0
        self.job_errors: list[str] = []
        self.pods: dict[str, FakePod] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.graphql: list[tuple[str, str]] = []  # (root field, query text) for every authorised query
        self.runs: list[Body] = []
        self.cancels: list[str] = []
        self.proxied: list[Proxied] = []
        self._lock = threading.RLock()
        self._server: _Server | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeRunPod:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-runpod", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeRunPod:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeRunPod is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """What points reelflow's runpod modules (this process or a subprocess) here."""
        return {
            "RUNPOD_API_KEY": self.api_key,
            "RUNPOD_API_BASE_URL": self.url,
            "RUNPOD_ENDPOINT_BASE_URL": f"{self.url}/v2",
            "REELFLOW_RUNPOD_PROXY_URL": f"{self.url}/proxy/{{pod_id}}/{{port}}",
        }

    # ------------------------------------------------------------ billing
    def billed_s(self, pod_id: str) -> float:
        """Seconds RunPod bills the pod's GPU: from creation until it was stopped or terminated (or now)."""
        pod = self.pods[pod_id]
        return (pod.ended if pod.ended is not None else time.monotonic()) - pod.created

    def cost_usd(self) -> float:
        return sum(self.billed_s(pod.id) * pod.cost_per_hr / 3600 for pod in self.pods.values())

    def running(self) -> list[FakePod]:
        """Pods still billing."""
        return [pod for pod in self.pods.values() if pod.ended is None]

    # ------------------------------------------------------------ routing
    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        if parts.path.startswith("/proxy/"):
            return self._proxy(method, path, headers, body)
        authorised = {name.lower(): value for name, value in headers.items()}.get("authorization") == f"Bearer {self.api_key}"
        if method == "POST" and parts.path == "/graphql":
            if not authorised:
                return _json(401, {"errors": [{"message": "Unauthorized"}]})
            return self._graphql(body)
        if parts.path.startswith("/v2/"):
            if not authorised:
                return _json(401, {"error": "Unauthorized"})
            return self._serverless(method, parts.path.split("/")[2:], body)
        return _json(404, {"error": f"{path} is not served by the fake"})

    # ------------------------------------------------------------ GraphQL
    def _graphql(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            query = str(json.loads(body)["query"])
            operation, fields = _Reader(query).document()
            data = {}
            for root in fields:
                with self._lock:
                    self.graphql.append((root.name, query))
                    status, value, type_name = self._resolve(operation, root)
                data[root.name] = project(value, root.selection, type_name)
                if status != 200:
                    return _json(status, {"errors": [{"message": SERVER_ERROR,
                                                      "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
        except GraphQLError as error:
            return _json(200, {"errors": [{"message": str(error)}], "data": None})
        except (ValueError, KeyError) as error:
            return _json(400, {"errors": [{"message": f"Bad request: {error}"}]})
        return _json(200, {"data": data})

    def _resolve(self, operation: str, root: Field) -> tuple[int, Any, str]:
        given = root.args.get("input") or {}
        if operation == "mutation":
            if root.name == "podFindAndDeployOnDemand":
                return self._create(given)
            if root.name in ("podStop", "podTerminate"):
                pod = self.pods.get(str(given.get("podId")))
                if pod is None or pod.desired_status == "TERMINATED":
                    raise GraphQLError("Pod not found.")
                pod.desired_status = "EXITED" if root.name == "podStop" else "TERMINATED"
                pod.ended = pod.ended if pod.ended is not None else time.monotonic()
                return 200, (self._pod_view(pod) if root.name == "podStop" else None), "Pod"
            raise GraphQLError(f'Cannot query field "{root.name}" on type "Mutation".')
        if root.name == "pod":
            pod = self.pods.get(str(given.get("podId")))
            return 200, (self._pod_view(pod) if pod and pod.desired_status != "TERMINATED" else None), "Pod"
        if root.name == "myself":
            pods = [self._pod_view(pod) for pod in self.pods.values() if pod.desired_status != "TERMINATED"]
            volumes = [{"id": vid, "name": vid, "size": 100, "dataCenterId": dc} for vid, dc in self.network_volumes.items()]
            return 200, {"id": "user_fake", "pubKey": "", "networkVolumes": volumes, "pods": pods}, "User"
        if root.name == "gpuTypes":
            wanted = given.get("id")
            gpus = [self._gpu_view(gpu) for gpu in self.gpu_types if wanted in (None, gpu)]
            return 200, gpus, "GpuType"
        raise GraphQLError(f'Cannot query field "{root.name}" on type "Query".')

    def _gpu_view(self, gpu: str) -> Body:
        info = self.gpu_types[gpu]
        available = gpu not in self.no_capacity
        return {
            "id": gpu, "displayName": info["displayName"], "memoryInGb": info["memoryInGb"], "maxGpuCount": 8,
            "manufacturer": "Nvidia", "cudaCores": 0, "secureCloud": True, "communityCloud": True,
            "securePrice": info["securePrice"], "communityPrice": info["communityPrice"], "oneMonthPrice": None,
            "threeMonthPrice": None, "oneWeekPrice": None, "communitySpotPrice": None, "secureSpotPrice": None,
            "lowestPrice": {"minimumBidPrice": None,
                            "uninterruptablePrice": min(info["securePrice"], info["communityPrice"]) if available else None},
        }

    def _create(self, given: Body) -> tuple[int, Any, str]:
        unknown = sorted(set(given) - CREATE_FIELDS)
        if unknown:
            raise GraphQLError(f'Field "{unknown[0]}" is not defined by type "PodFindAndDeployOnDemandInput".')
        gpu = str(given.get("gpuTypeId") or "")
        if gpu not in self.gpu_types:
            raise GraphQLError(f"GPU type {gpu!r} does not exist.")
        if given.get("cloudType") not in ("ALL", "SECURE", "COMMUNITY"):
            raise GraphQLError(f'Value "{given.get("cloudType")}" does not exist in "CloudTypeEnum" enum.')
        if not given.get("name") or not (given.get("imageName") or given.get("templateId")):
            raise GraphQLError("name and imageName are required.")
        volume = given.get("networkVolumeId")
        if volume is not None and volume not in self.network_volumes:
            raise GraphQLError(f"Network volume {volume} not found.")
        dc = given.get("dataCenterId")
        if volume is not None and dc is not None and self.network_volumes[volume] != dc:
            raise GraphQLError(f"Network volume {volume} is in {self.network_volumes[volume]}, not {dc}.")
        if gpu in self.no_capacity:
            raise GraphQLError(CAPACITY_MESSAGE)
        info = self.gpu_types[gpu]
        cloud = given["cloudType"]
        price = {"SECURE": info["securePrice"], "COMMUNITY": info["communityPrice"]}.get(
            cloud, min(info["securePrice"], info["communityPrice"]))
        pod = FakePod(
            id=uuid.uuid4().hex[:14], name=str(given["name"]), gpu_type=gpu, image=str(given.get("imageName") or ""),
            ports=str(given.get("ports") or ""), env={item["key"]: item["value"] for item in given.get("env") or []},
            cost_per_hr=price, cloud_type=cloud, network_volume_id=volume,
            data_center_id=dc or (self.network_volumes.get(volume) if volume else "EU-RO-1"),
            container_disk_gb=int(given.get("containerDiskInGb") or 0),
            volume_mount_path=str(given.get("volumeMountPath") or "/runpod-volume"),
            start_ssh=bool(given.get("startSsh")), support_public_ip=bool(given.get("supportPublicIp")),
            created=time.monotonic(),
        )
        self.pods[pod.id] = pod
        view = self._pod_view(pod)
        if self.fail_creates > 0:
            self.fail_creates -= 1
            return 500, view, "Pod"
        return 200, view, "Pod"

    def _pod_view(self, pod: FakePod) -> Body:
        booted = pod.booted(self.boot_s)
        runtime = {"uptimeInSeconds": int(time.monotonic() - pod.created), "ports": [
            {"ip": "100.65.0.101", "isIpPublic": False, "privatePort": port, "publicPort": 60000 + index, "type": "http"}
            for index, port in enumerate(sorted(pod.http_ports()))]} if booted else None
        return {
            "id": pod.id, "name": pod.name, "imageName": pod.image, "desiredStatus": pod.desired_status,
            "costPerHr": pod.cost_per_hr, "containerDiskInGb": pod.container_disk_gb, "dockerArgs": "",
            "dockerId": None, "env": [f"{key}={value}" for key, value in pod.env.items()], "gpuCount": 1,
            "lastStatusChange": f"Rented by User: {time.ctime()}", "machineId": f"m-{pod.id[:6]}", "memoryInGb": 62,
            "podType": "RESERVED", "port": None, "ports": pod.ports, "vcpuCount": 8, "volumeInGb": 0,
            "volumeMountPath": pod.volume_mount_path,
            "uptimeSeconds": int(time.monotonic() - pod.created) if booted else 0, "runtime": runtime,
            "machine": {"gpuDisplayName": self.gpu_types[pod.gpu_type]["displayName"], "podHostId": f"{pod.id}-64410c"},
        }

    # ------------------------------------------------------------ serverless
    def _serverless(self, method: str, parts: list[str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if len(parts) == 2 and parts[1] == "run" and method == "POST":
            if len(body) > RUN_LIMIT:
                return _json(400, {"error": "Request body exceeds the 10 MB limit for /run."})
            return self._run(parts[0], json.loads(body))
        if len(parts) == 2 and parts[1] == "health" and method == "GET":
            with self._lock:
                jobs = [self._refresh(job) for job in self.jobs.values() if job.endpoint == parts[0]]
            count = {state: sum(job.state == state for job in jobs)
                     for state in ("COMPLETED", "FAILED", "IN_PROGRESS", "IN_QUEUE")}
            return _json(200, {"jobs": {"completed": count["COMPLETED"], "failed": count["FAILED"],
                                        "inProgress": count["IN_PROGRESS"], "inQueue": count["IN_QUEUE"], "retried": 0},
                               "workers": {"idle": 1, "running": int(count["IN_PROGRESS"] > 0)}})
        if len(parts) == 3 and parts[1] in ("status", "cancel"):
            with self._lock:
                job = self.jobs.get(parts[2])
                if job is None or job.endpoint != parts[0] or time.monotonic() - job.created > job.ttl_s:
                    return _json(404, {"error": "request does not exist"})
                self._refresh(job)
                if parts[1] == "cancel" and method == "POST":
                    self.cancels.append(job.id)
                    if job.state in ("IN_QUEUE", "IN_PROGRESS"):
                        job.state, job.finished = "CANCELLED", time.monotonic()
                    return _json(200, {"id": job.id, "status": job.state})
                return _json(200, self._status_view(job))
        return _json(404, {"error": "not found"})

    def _run(self, endpoint: str, body: Body) -> tuple[int, dict[str, str], bytes]:
        policy = body.get("policy") or {}
        job = FakeJob(id=f"{uuid.uuid4()}-e1", endpoint=endpoint, body=body, created=time.monotonic(),
                      execution_timeout_s=float(policy.get("executionTimeout", 600000)) / 1000,
                      ttl_s=float(policy.get("ttl", 86400000)) / 1000)
        with self._lock:
            self.runs.append(body)
            self.jobs[job.id] = job
            error = self.job_errors.pop(0) if self.job_errors else None
        threading.Thread(target=self._work, args=(job, error), daemon=True).start()
        return _json(200, {"id": job.id, "status": "IN_QUEUE"})

    def _work(self, job: FakeJob, scripted_error: str | None) -> None:
        time.sleep(self.queue_s)
        with self._lock:
            if job.state != "IN_QUEUE":
                return
            job.state, job.started = "IN_PROGRESS", time.monotonic()
        try:
            output = {"error": scripted_error} if scripted_error else worker_output(
                job.body.get("input") or {}, self.upstream, self.job_s)
        except Exception as error:  # what worker-comfyui would report for a failure of its own
            output = {"error": f"{type(error).__name__}: {error}"}
        with self._lock:
            if self._refresh(job).state == "IN_PROGRESS":
                job.finished = time.monotonic()
                if isinstance(output, dict) and output.get("error"):
                    job.state, job.error = "FAILED", str(output["error"])
                else:
                    job.state, job.output = "COMPLETED", output
            job.done.set()

    def _refresh(self, job: FakeJob) -> FakeJob:
        if job.state == "IN_PROGRESS" and job.started is not None:
            if time.monotonic() - job.started > job.execution_timeout_s:
                job.state, job.finished = "TIMED_OUT", job.started + job.execution_timeout_s
        return job

    def _status_view(self, job: FakeJob) -> Body:
        view: Body = {"id": job.id, "status": job.state}
        if job.started is not None:
            view["delayTime"] = round((job.started - job.created) * 1000)
            view["executionTime"] = round(((job.finished or time.monotonic()) - job.started) * 1000)
        if job.state == "COMPLETED":
            view["output"] = job.output
        if job.state == "FAILED":
            view["error"] = job.error
        return view

    # ------------------------------------------------------------ proxy
    def _proxy(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        match = re.match(r"^/proxy/([^/]+)/(\d+)(/[^?]*)?(\?.*)?$", path)
        if match is None:
            return _text(404, "404 page not found")
        pod_id, port, rest, query = match.group(1), int(match.group(2)), match.group(3) or "/", match.group(4) or ""
        with self._lock:
            pod = self.pods.get(pod_id)
            if pod is None or pod.desired_status != "RUNNING" or port not in pod.http_ports():
                status, answer = 404, _text(404, "404 page not found")
            elif not pod.booted(self.boot_s) or self.upstream is None:
                status, answer = 502, _text(502, "502 Bad Gateway")
            else:
                status, answer = 0, (0, {}, b"")
        if status == 0:
            answer = self._forward(method, rest + query, headers, body)
        self.proxied.append(Proxied(method, pod_id, port, rest + query, answer[0], headers))
        return answer

    def _forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.upstream is not None
        sent = {name: value for name, value in headers.items() if name.lower() not in HOP_HEADERS}
        try:
            response = httpx.request(method, self.upstream.rstrip("/") + target, headers=sent, content=body,
                                     timeout=self.proxy_timeout_s)
        except httpx.TimeoutException:
            return _text(524, "error code: 524")
        except httpx.HTTPError:
            return _text(502, "502 Bad Gateway")
        kept = {name: value for name, value in response.headers.items()
                if name.lower() not in HOP_HEADERS and name.lower() != "content-encoding"}
        return response.status_code, kept, response.content


def _text(status: int, text: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "text/plain"}, text.encode()


# ---------------------------------------------------------------- worker-comfyui's output
def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _inputs(workflow: Body, class_type: str) -> Body | None:
    return next((node.get("inputs") or {} for node in workflow.values() if node.get("class_type") == class_type), None)


def _uploaded(images: list[Body]) -> list[Image.Image]:
    found = []
    for item in images:
        data = base64.b64decode(str(item["image"]).split(",", 1)[-1])
        found.append(Image.open(io.BytesIO(data)).convert("RGB"))
    return found


def worker_output(given: Body, upstream: str | None, job_s: float) -> Body:
    """What worker-comfyui 5.x returns for this input: run on `upstream`, or media made from the graph."""
    workflow, images = given.get("workflow"), given.get("images") or []
    if not isinstance(workflow, dict):
        return {"error": "Missing 'workflow' parameter"}
    if not all(isinstance(item, dict) and {"name", "image"} <= item.keys() for item in images):
        return {"error": "'images' must be a list of objects with 'name' and 'image' keys"}
    if upstream is not None:
        return _run_upstream(upstream, workflow, images)
    time.sleep(job_s)
    pictures = _uploaded(images)
    saves = {node_id: node for node_id, node in workflow.items() if node.get("class_type") in ("SaveImage", "SaveVideo")}
    if not saves:
        return {"status": "success_no_images", "images": []}
    node_id, node = sorted(saves.items())[0]
    prefix = str((node.get("inputs") or {}).get("filename_prefix") or "ComfyUI").split("/")[-1]
    if node["class_type"] == "SaveVideo":
        return {"images": [{"filename": f"{prefix}_00001_.mp4", "type": "base64",
                            "data": base64.b64encode(_video(workflow, pictures)).decode()}]}
    size = _size(workflow, pictures)
    picture = pictures[0].resize(size) if pictures else Image.new("RGB", size, (90, 120, 160))
    return {"images": [{"filename": f"{prefix}_00001_.png", "type": "base64", "data": base64.b64encode(_png(picture)).decode()}]}


def _size(workflow: Body, pictures: list[Image.Image]) -> tuple[int, int]:
    for class_type in ("ImageScale", "EmptyFlux2LatentImage", "EmptySD3LatentImage", "WanFirstLastFrameToVideo"):
        inputs = _inputs(workflow, class_type)
        if inputs and isinstance(inputs.get("width"), int) and isinstance(inputs.get("height"), int):
            return inputs["width"], inputs["height"]
    return pictures[0].size if pictures else (64, 64)


def _video(workflow: Body, pictures: list[Image.Image]) -> bytes:
    width, height = _size(workflow, pictures)
    width, height = width - width % 2, height - height % 2
    frames = int((_inputs(workflow, "WanFirstLastFrameToVideo") or {}).get("length") or 9)
    fps = int((_inputs(workflow, "CreateVideo") or {}).get("fps") or 16)
    first = np.asarray((pictures[0] if pictures else Image.new("RGB", (width, height), (200, 40, 40))).resize((width, height)),
                       dtype=np.float32)
    last = np.asarray((pictures[-1] if pictures else Image.new("RGB", (width, height), (40, 40, 200))).resize((width, height)),
                      dtype=np.float32)
    blend = [((1 - t) * first + t * last).astype(np.uint8) for t in np.linspace(0.0, 1.0, frames)]
    with TemporaryDirectory() as folder:
        out = Path(folder) / "clip.mp4"
        encode_frames(blend, out, fps=fps, size=(width, height))
        return out.read_bytes()


def _run_upstream(upstream: str, workflow: Body, images: list[Body]) -> Body:
    """worker-comfyui's flow against a real or fake ComfyUI: upload, /prompt, poll /history, /view each output."""
    base = upstream.rstrip("/")
    with httpx.Client(timeout=30.0) as client:
        for item in images:
            data = base64.b64decode(str(item["image"]).split(",", 1)[-1])
            client.post(f"{base}/upload/image", files={"image": (item["name"], data, "image/png")},
                        data={"overwrite": "true"}).raise_for_status()
        queued = client.post(f"{base}/prompt", json={"prompt": workflow, "client_id": uuid.uuid4().hex})
        if queued.status_code != 200:
            return {"error": f"Workflow validation failed: {queued.text}"}
        prompt_id = queued.json()["prompt_id"]
        while True:
            record = client.get(f"{base}/history/{prompt_id}").json().get(prompt_id)
            if record and (record.get("status") or {}).get("completed") or (record or {}).get("status", {}).get(
                    "status_str") == "error":
                break
            time.sleep(0.02)
        if record["status"].get("status_str") == "error":
            failure = next((message[1] for message in record["status"].get("messages") or []
                            if message[0] == "execution_error"), {})
            return {"error": f"Workflow execution error: Node Type: {failure.get('node_type')}, Node ID: "
                             f"{failure.get('node_id')}, Message: {failure.get('exception_message')}"}
        found = []
        for output in (record.get("outputs") or {}).values():
            for image in output.get("images") or []:
                if image.get("type") == "temp":
                    continue
                view = client.get(f"{base}/view", params={"filename": image["filename"],
                                                          "subfolder": image.get("subfolder", ""), "type": image["type"]})
                view.raise_for_status()
                found.append({"filename": image["filename"], "type": "base64",
                              "data": base64.b64encode(view.content).decode()})
        return {"images": found} if found else {"status": "success_no_images", "images": []}
