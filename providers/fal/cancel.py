"""fal's cancel and status of one queued request, for a run being stopped (https://fal.ai/docs/inference-api/queue/cancel).

PUT {queue}/{app}/requests/{id}/cancel answers OK when fal removed the request from its queue before it ran,
CANCELLATION_REQUESTED (202) when it was running (fal signals the runner; the app decides how to stop, and fal may
still bill it), ALREADY_COMPLETED (400) when it had finished, NOT_FOUND (404) when fal no longer knows it. GET
.../status answers IN_QUEUE, IN_PROGRESS, or COMPLETED (with `error` / `error_type` when it ended in one).
"""

from __future__ import annotations

import httpx
from fal_client.client import SyncClient

from reelflow.providers.cancel import Answer
from reelflow.providers.fal.errors import one_line
from reelflow.providers.fal.queue import ALREADY_COMPLETED, REMOVED, _body


def cancel_request(client: SyncClient, endpoint: str, request_id: str, timeout_s: float) -> Answer:
    """Ask fal to cancel the request; what it answered (no answer is `silent`)."""
    try:
        handle = client.get_handle(endpoint, request_id)
        response = handle.client.put(handle.cancel_url, timeout=timeout_s)
    except (httpx.HTTPError, ValueError) as error:  # ValueError: an endpoint fal-client cannot place
        return Answer("silent", f"fal did not answer the cancel ({type(error).__name__})")
    body = _body(response)
    status = body.get("status") if isinstance(body, dict) else None
    if status == REMOVED and response.status_code < 400:
        return Answer("removed", "fal removed it from its queue before it ran")
    if status == ALREADY_COMPLETED:
        return Answer("completed", "fal had already completed it")
    if response.status_code == 404:
        return Answer("forgotten", "fal no longer knows it")
    if response.status_code < 400:
        return Answer("requested", "fal asked its runner to stop it")
    return Answer("silent", f"fal answered the cancel with {response.status_code}")


def request_state(client: SyncClient, endpoint: str, request_id: str, timeout_s: float) -> Answer:
    """How the request stands at fal now (no answer, or one that says nothing of it, is `silent`)."""
    try:
        handle = client.get_handle(endpoint, request_id)
        response = handle.client.get(handle.status_url, timeout=timeout_s)
    except (httpx.HTTPError, ValueError) as error:
        return Answer("silent", f"fal did not answer its status ({type(error).__name__})")
    if response.status_code == 404:
        return Answer("forgotten", "fal no longer knows it")
    body = _body(response)
    if response.status_code >= 400 or not isinstance(body, dict):
        return Answer("silent", f"fal answered its status with {response.status_code}")
    status = body.get("status")
    if status == "COMPLETED" and (body.get("error") or body.get("error_type")):
        reason = one_line(f"{body.get('error_type') or 'error'}: {body.get('error') or ''}")
        return Answer("failed", f"fal ended it with an error ({reason})")
    if status == "COMPLETED":
        return Answer("completed", "fal completed it")
    if status in ("IN_QUEUE", "IN_PROGRESS"):
        return Answer("running", f"fal says {status}")
    return Answer("silent", f"fal answered its status with {one_line(str(status))!r}")
