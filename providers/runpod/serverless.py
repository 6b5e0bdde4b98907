"""worker-comfyui jobs on a RunPod serverless endpoint through the runpod SDK's endpoint client; no state.

Sources: gpu-path.md B (runpod-python 1.12.0 `runpod/endpoint/runner.py`, `helpers.py`; RunPod docs
`serverless/endpoints/job-states.mdx`, `operation-reference.mdx`, `send-requests.mdx`: the 10 MB /run payload limit,
the per-job `policy` {executionTimeout, ttl} in ms, `delayTime` / `executionTime` in ms in status answers as in
the docs' "Invoke a Job" example) and gpu-path.md C (runpod-workers/worker-comfyui 5.x `handler.py`: input
{"workflow", "images": [{"name", "image"}]}, output {"images": [{"filename", "type": "base64"|"s3_url", "data"}]},
{"status": "success_no_images"}, {"error", "details"}).

The SDK's client reads the base URL from `runpod.endpoint_url_base`, set once from RUNPOD_ENDPOINT_BASE_URL when
`runpod` is imported; reelflow sets the client's own `endpoint_url_base` from the environment on every call
instead, so a test or a `reelflow` subprocess points it at a fake by setting the variable. The key is passed to
the client per call and never stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reelflow.providers.runpod.errors import NAME, JobFailed, api_key, one_line, sdk_error
from reelflow.schemas.errors import BadRequest, OutcomeUnknown, ProviderTimeout, UnusableOutput

BASE_ENV = "RUNPOD_ENDPOINT_BASE_URL"
BASE_DEFAULT = "https://api.runpod.ai/v2"
RUN_LIMIT_BYTES = 10 * 1000 * 1000  # /run's 10 MB payload limit, read as decimal MB to stay under it either way
EXECUTION_TIMEOUT_S = (5.0, 7 * 86400.0)  # the policy's allowed ranges (gpu-path.md B)
TTL_S = (10.0, 7 * 86400.0)
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
Json = dict[str, Any]


@dataclass(frozen=True)
class JobStatus:
    """One /status answer: RunPod's state, its queue and run time in ms, the worker's output or error."""

    status: str
    execution_ms: int
    delay_ms: int
    output: Any
    error: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _client() -> Any:
    from runpod.endpoint.runner import RunPodClient

    client = RunPodClient(api_key=api_key())
    client.endpoint_url_base = (os.environ.get(BASE_ENV) or BASE_DEFAULT).rstrip("/")
    return client


def _within(name: str, seconds: float, bounds: tuple[float, float]) -> int:
    low, high = bounds
    if not low <= seconds <= high:
        raise BadRequest(f"runpod: job policy {name} {seconds:g} s is not allowed: {low:g}..{high:g} s", provider=NAME)
    return int(seconds * 1000)


def run_body(graph_nodes: dict[str, Any], images: dict[str, Path], *, execution_timeout_s: float, ttl_s: float) -> Json:
    """The /run body worker-comfyui reads, with the job policy beside `input`."""
    return {
        "input": {
            "workflow": graph_nodes,
            "images": [{"name": name, "image": base64.b64encode(path.read_bytes()).decode("ascii")}
                       for name, path in sorted(images.items())],
        },
        "policy": {
            "executionTimeout": _within("executionTimeout", execution_timeout_s, EXECUTION_TIMEOUT_S),
            "ttl": _within("ttl", ttl_s, TTL_S),
        },
    }


def submit(endpoint_id: str, graph_nodes: dict[str, Any], images: dict[str, Path], *, execution_timeout_s: float = 600.0,
           ttl_s: float = 86400.0) -> str:
    """Queue one workflow (POST /{endpoint}/run); returns the job id. Over 10 MB is refused before sending.

    A /run that was sent but not answered is OutcomeUnknown: the job may be queued and will bill when it runs.
    """
    body = run_body(graph_nodes, images, execution_timeout_s=execution_timeout_s, ttl_s=ttl_s)
    size = len(json.dumps(body).encode())
    if size > RUN_LIMIT_BYTES:
        parts = ", ".join(f"{name} {path.stat().st_size / 1e6:.1f} MB" for name, path in sorted(images.items()))
        raise BadRequest(f"runpod: the /run body is {size / 1e6:.1f} MB, over RunPod's 10 MB limit for /run "
                         f"(images: {parts or 'none'})", provider=NAME)
    client = _client()
    try:
        answer = client.post(f"{endpoint_id}/run", body)
    except Exception as error:
        mapped = sdk_error(error, f"run on endpoint {endpoint_id}")
        if isinstance(mapped, ProviderTimeout):
            raise OutcomeUnknown(str(mapped), provider=NAME) from error
        raise mapped from error
    if not isinstance(answer, dict) or not answer.get("id"):
        raise OutcomeUnknown(f"runpod: run on endpoint {endpoint_id}: the answer has no job id", provider=NAME)
    return str(answer["id"])


def _error_text(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return one_line(value if isinstance(value, str) else json.dumps(value))


def status(endpoint_id: str, job_id: str) -> JobStatus:
    """GET /{endpoint}/status/{job}; a job RunPod no longer knows (past its ttl: 404) is OutcomeUnknown."""
    import requests  # the SDK's transport: imported with it, not with every command

    try:
        answer = _client().get(f"{endpoint_id}/status/{job_id}")
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code == 404:
            raise OutcomeUnknown(f"runpod: job {job_id} is unknown to endpoint {endpoint_id} (past its ttl?)",
                                 provider=NAME, request_id=job_id) from error
        raise sdk_error(error, f"status of job {job_id}") from error
    except Exception as error:
        raise sdk_error(error, f"status of job {job_id}") from error
    output = answer.get("output")
    nested = output.get("error") if isinstance(output, dict) else None
    return JobStatus(
        status=str(answer.get("status") or ""),
        execution_ms=int(answer.get("executionTime") or 0),
        delay_ms=int(answer.get("delayTime") or 0),
        output=output,
        error=_error_text(answer.get("error")) or _error_text(nested),
    )


def cancel(endpoint_id: str, job_id: str) -> str:
    """POST /{endpoint}/cancel/{job}; returns the status RunPod answers (CANCELLED, or the final state it had)."""
    try:
        answer = _client().post(f"{endpoint_id}/cancel/{job_id}", None, timeout=10)
    except Exception as error:
        raise sdk_error(error, f"cancel job {job_id}") from error
    return str(answer.get("status") or "")


def _safe_name(name: str, index: int) -> str:
    base = Path(str(name)).name
    return base if base not in ("", ".", "..") else f"output_{index}"


def outputs(output: Any, dest_dir: Path, *, job_id: str | None = None) -> list[Path]:
    """Write worker-comfyui's `images[]` (base64 or s3_url entries; SaveVideo's mp4 comes here too) into dest_dir.

    An `error` key is JobFailed naming its message; no images is UnusableOutput (the job ran and billed).
    """
    if isinstance(output, dict) and output.get("error"):
        details = "; ".join(str(detail) for detail in output.get("details") or [])
        raise JobFailed(f"runpod: worker-comfyui: {one_line(str(output['error']) + (': ' + details if details else ''))}",
                        provider=NAME, request_id=job_id)
    entries = output.get("images") if isinstance(output, dict) else None
    if not entries:
        what = output.get("status") if isinstance(output, dict) and output.get("status") else "no images"
        raise UnusableOutput(f"runpod: worker-comfyui returned {what}", provider=NAME, request_id=job_id)
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, entry in enumerate(entries):
        path = dest_dir / _safe_name(entry.get("filename") or "", index)
        path.write_bytes(_entry_bytes(entry, job_id))
        written.append(path)
    return written


def _entry_bytes(entry: Json, job_id: str | None) -> bytes:
    kind, data = entry.get("type"), entry.get("data")
    if kind == "base64" and isinstance(data, str):
        try:
            return base64.b64decode(data.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError) as error:
            raise UnusableOutput(f"runpod: output {entry.get('filename')!r} is not valid base64", provider=NAME,
                                 request_id=job_id) from error
    if kind == "s3_url" and isinstance(data, str):
        try:
            response = httpx.get(data, timeout=60.0, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise UnusableOutput(f"runpod: output {entry.get('filename')!r} could not be fetched from its s3_url "
                                 f"({type(error).__name__})", provider=NAME, request_id=job_id) from error
        return response.content
    raise UnusableOutput(f"runpod: output {entry.get('filename')!r} has type {kind!r} (allowed: base64, s3_url)",
                         provider=NAME, request_id=job_id)



def wait(endpoint_id: str, job_id: str, *, deadline_s: float, poll_s: float = 2.0) -> JobStatus:
    """Poll /status until the job is final; past `deadline_s` cancel it and raise ProviderTimeout.

    The timeout is billed when the job had started (RunPod bills worker time until the cancel lands).
    """
    end = time.monotonic() + deadline_s
    while True:
        current = status(endpoint_id, job_id)
        if current.final:
            return current
        if time.monotonic() + poll_s > end:
            answered = cancel(endpoint_id, job_id)
            raise ProviderTimeout(f"runpod: job {job_id} not done after {deadline_s:g} s ({current.status}); "
                                  f"cancelled: {answered or 'no status'}", provider=NAME, request_id=job_id,
                                  billed=current.status != "IN_QUEUE")
        time.sleep(poll_s)
