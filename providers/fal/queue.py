"""fal's queue through fal-client: upload inputs, submit once, poll, fetch, download and verify outputs.

This module speaks fal's wire and says what each answer means; the ledger's rules are the ticket's
(state/ledger.py). The submit is sent inside `ticket.sending`, so its row exists before the body leaves. An answer
fal gave (a 4xx, 429 or 5xx on submit) is a request that never ran; no answer after the body left (a timeout, a
dropped connection, a response that cannot be read) is OutcomeUnknown, unless the request id can still be read
from what came back (fal's `x-fal-request-id` header, or the request's status URL), in which case it is polled
like any accepted request. Once accepted, a request is settled only by fal's answers: COMPLETED is fetched at
once (fal keeps a result for a limited time) and `completed`, or `failed` when its result is an error (a 422 at
the request's price: fal may bill one) or unusable (billed); a request fal no longer knows is `unknown` (it may
have run and billed). Cancel answers are told apart: OK (removed from the queue, never ran: cancelled, $0),
CANCELLATION_REQUESTED (it may still run: pending), ALREADY_COMPLETED (fetched). Anything that says nothing about
the request itself (rate limits, gateway errors, lost connections on a poll, a refused key) leaves it pending, to
be resumed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from fal_client import client as fal_wire
from fal_client.client import Completed, FalClientHTTPError, SyncClient, SyncRequestHandle
from PIL import Image, UnidentifiedImageError

from reelflow.media.hashing import sha256_file
from reelflow.media.probe import probe_video
from reelflow.providers.base import UNRECORDED, Ticket
from reelflow.providers.fal.errors import NAME, TRANSIENT, fal_error, one_line, response_detail, status_error
from reelflow.schemas.errors import (
    ContentRejected,
    MediaError,
    OutcomeUnknown,
    ProviderTimeout,
    ServerError,
    TransportError,
    UnusableOutput,
)

T = TypeVar("T")
Result = dict[str, Any]

POLL_S = 1.0
DEADLINE_S = 900.0
DOWNLOAD_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
ALREADY_COMPLETED = "ALREADY_COMPLETED"
REMOVED = "OK"  # cancel: "fal removed the request from the queue" (https://fal.ai/docs/inference-api/queue/cancel)
REQUEST_ID_HEADER = "x-fal-request-id"
REQUEST_URL = re.compile(r"/requests/([^/?#]+)")
# Failures before a byte of the request left: nothing can have run.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

_uploaded: dict[tuple[str, str], str] = {}
_upload_locks: dict[tuple[str, str], threading.Lock] = {}
_uploads_lock = threading.Lock()


@dataclass(frozen=True)
class Done(Generic[T]):
    """What a settled request gave back, its fal id, and how long this call waited for it."""

    value: T
    request_id: str
    seconds: float


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _body_status(response: httpx.Response) -> str | None:
    body = _body(response)
    return body.get("status") if isinstance(body, dict) else None


def request_id_of(response: httpx.Response) -> str | None:
    """The request id a submit response carries: its body's `request_id`, else the id in the status or response URL
    it returned, else fal's `x-fal-request-id` header; None when nothing names it."""
    body = _body(response)
    if isinstance(body, dict):
        if isinstance(body.get("request_id"), str) and body["request_id"]:
            return str(body["request_id"])
        for name in ("status_url", "response_url", "cancel_url"):
            match = REQUEST_URL.search(str(body.get(name) or ""))
            if match:
                return match[1]
    return response.headers.get(REQUEST_ID_HEADER) or None


class FalQueue:
    """One fal-client session: uploads cached by content, every answer of fal told to the call's ticket."""

    def __init__(self, client: SyncClient, *, poll_s: float = POLL_S, deadline_s: float = DEADLINE_S) -> None:
        self.client, self.poll_s, self.deadline_s = client, poll_s, deadline_s

    def upload(self, path: Path) -> str:
        """fal's URL for a local file, uploaded at most once per process for the same bytes and CDN."""
        try:
            key = (fal_wire.CDN_URL, sha256_file(path))
        except OSError as error:
            raise MediaError(f"fal: cannot read input {path.name}: {error.strerror or error}") from None
        with _uploads_lock:
            lock = _upload_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in _uploaded:
                try:
                    _uploaded[key] = self.client.upload_file(path)
                except (FalClientHTTPError, httpx.HTTPError) as error:
                    raise fal_error(error, f"upload of {path.name}") from None
            return _uploaded[key]

    def run(
        self, endpoint: str, arguments: dict[str, Any], *, ticket: Ticket | None, cost_usd: float,
        finish: Callable[[Result], T],
    ) -> Done[T]:
        """Submit (or resume) one request, wait for it, and `finish` its result; the ticket hears each answer."""
        ticket = ticket or UNRECORDED
        started = time.monotonic()
        request_id = ticket.resume(endpoint)
        if request_id is None:
            with ticket.sending(endpoint) as sent:
                request_id = self._submit(endpoint, arguments)
                sent.accepted(request_id)
        handle = self.client.get_handle(endpoint, request_id)
        result = self._wait(handle, endpoint, ticket, cost_usd)
        try:
            if not isinstance(result, dict):
                raise UnusableOutput(f"fal: {endpoint}: result is not a JSON object", provider=NAME, request_id=request_id)
            value = finish(result)
        except (UnusableOutput, ContentRejected) as error:
            ticket.failed(endpoint, request_id, str(error), cost_usd if error.billed else 0.0)
            raise
        ticket.completed(endpoint, request_id, cost_usd)
        return Done(value, request_id, time.monotonic() - started)

    def _submit(self, endpoint: str, arguments: dict[str, Any]) -> str:
        """POST the request to fal's queue and return its id. fal-client's own submit reads only the body, so a
        response whose body is lost would hide an id fal sent in its headers; the same HTTP client is used here."""
        http: httpx.Client = self.client._client  # fal-client's authenticated client (no public way to it)
        try:
            response = http.post(fal_wire.QUEUE_URL_FORMAT + endpoint, json=arguments, timeout=self.client.default_timeout)
        except NOT_SENT as error:
            raise TransportError(f"fal: {endpoint}: submit not sent ({type(error).__name__})", provider=NAME) from None
        except httpx.HTTPError as error:
            raise OutcomeUnknown(f"fal: {endpoint}: no answer to the submit ({type(error).__name__}: "
                                 f"{one_line(str(error)) or 'connection lost'}); outcome unknown: it may have run and "
                                 "billed", provider=NAME) from None
        if response.status_code >= 400:
            raise status_error(response.status_code, response_detail(response), endpoint)
        request_id = request_id_of(response)
        if request_id is None:
            raise OutcomeUnknown(f"fal: {endpoint}: the submit's answer ({response.status_code}) names no request",
                                 provider=NAME)
        return request_id

    def _wait(self, handle: SyncRequestHandle, endpoint: str, ticket: Ticket, cost_usd: float) -> Result:
        """Poll every `poll_s` until fal completes the request, then fetch its result at once; past the deadline,
        cancel it."""
        deadline = time.monotonic() + self.deadline_s
        while not isinstance(status := self._status(handle, endpoint, ticket), Completed):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(handle, endpoint, ticket)
                break
            time.sleep(min(self.poll_s, remaining))
        result = self._result(handle, endpoint, ticket, cost_usd)
        if isinstance(status, Completed) and (status.error or status.error_type):
            # fal settled it with an error (the result should have said so); a request that ran may be billed.
            detail = f"fal: {endpoint}: {status.error_type or 'error'}: {one_line(str(status.error or ''))}"
            ticket.failed(endpoint, handle.request_id, detail, cost_usd)
            raise UnusableOutput(detail, provider=NAME, request_id=handle.request_id)
        return result

    def _status(self, handle: SyncRequestHandle, endpoint: str, ticket: Ticket) -> object:
        try:
            return handle.status()
        except FalClientHTTPError as error:
            if error.status_code == 404:
                self._forgotten(handle, endpoint, ticket)
            raise fal_error(error, endpoint, handle.request_id) from None
        except httpx.HTTPError as error:
            raise fal_error(error, endpoint, handle.request_id) from None
        except ValueError as error:  # fal-client knows IN_QUEUE, IN_PROGRESS and COMPLETED only
            raise ServerError(f"fal: {endpoint}: unknown request status ({one_line(str(error))}); still pending",
                              provider=NAME, request_id=handle.request_id) from None

    @staticmethod
    def _forgotten(handle: SyncRequestHandle, endpoint: str, ticket: Ticket) -> None:
        """fal no longer knows the request (a result past fal's retention, or a request it lost): it may have run
        and billed, so it is unknown, at its price."""
        detail = f"fal no longer knows request {handle.request_id}; it may have run and billed"
        ticket.unknown(endpoint, handle.request_id, detail)
        raise OutcomeUnknown(f"fal: {endpoint}: {detail}", provider=NAME, request_id=handle.request_id)

    def _cancel(self, handle: SyncRequestHandle, endpoint: str, ticket: Ticket) -> None:
        """Cancel at the deadline and raise ProviderTimeout; return only when fal says the request already completed.

        OK: fal removed the request from its queue before it ran (cancelled, $0). CANCELLATION_REQUESTED: it was
        running and may still finish and bill, so it stays pending until fal settles it.
        """
        waited = f"no result after {self.deadline_s:g} s"
        where = f"fal: {endpoint}: {waited}"
        try:
            response = handle.client.put(handle.cancel_url, timeout=fal_wire.QUEUE_POLL_TIMEOUT)
        except httpx.HTTPError as error:
            raise ProviderTimeout(f"{where}; cancel failed ({type(error).__name__}), still pending",
                                  provider=NAME, request_id=handle.request_id) from None
        status = _body_status(response)
        if status == ALREADY_COMPLETED:
            return
        if response.status_code == 404:
            self._forgotten(handle, endpoint, ticket)
        if response.status_code >= 400:
            raise ProviderTimeout(f"{where}; cancel failed ({response.status_code}), still pending",
                                  provider=NAME, request_id=handle.request_id)
        if status == REMOVED:
            ticket.cancelled(endpoint, handle.request_id, f"{waited}; removed from fal's queue before it ran")
            raise ProviderTimeout(f"{where}; request {handle.request_id} removed from the queue, nothing billed",
                                  provider=NAME, request_id=handle.request_id)
        ticket.cancel_requested(endpoint, handle.request_id, f"{waited}; cancel requested")
        raise ProviderTimeout(f"{where}; cancel of request {handle.request_id} requested, still pending until fal "
                              "settles it", provider=NAME, request_id=handle.request_id)

    def _result(self, handle: SyncRequestHandle, endpoint: str, ticket: Ticket, cost_usd: float) -> Result:
        """The completed request's result; a failure fal settled (refusal, app error) is settled in the ledger."""
        try:
            response = handle.client.get(handle.response_url, timeout=fal_wire.QUEUE_POLL_TIMEOUT)
        except httpx.HTTPError as error:
            raise fal_error(error, endpoint, handle.request_id) from None
        if response.status_code == 404:
            self._forgotten(handle, endpoint, ticket)
        if response.status_code >= 400:
            mapped = status_error(response.status_code, response_detail(response), endpoint, handle.request_id)
            if response.status_code not in TRANSIENT:
                ticket.failed(endpoint, handle.request_id, str(mapped), cost_usd if mapped.billed else 0.0)
            raise mapped
        result = _body(response)
        if result is None:
            raise ServerError(f"fal: {endpoint}: the result of request {handle.request_id} cannot be read; still pending",
                              provider=NAME, request_id=handle.request_id)
        return result


def download(url: str, dest: Path, endpoint: str) -> Path:
    """Fetch an output to `dest`; a missing or empty file is unusable, a lost connection is retryable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as response:
            status = response.status_code
            if status >= 400:
                response.read()
                if status in (408, 429) or status >= 500:
                    raise status_error(status, response.text, f"{endpoint}: download")
                raise UnusableOutput(f"fal: {endpoint}: download: the output is not there ({status})", provider=NAME)
            with dest.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
    except httpx.HTTPError as error:
        raise fal_error(error, f"{endpoint}: download") from None
    if dest.stat().st_size == 0:
        raise UnusableOutput(f"fal: {endpoint}: downloaded file is empty", provider=NAME)
    return dest


def verified_image(path: Path, endpoint: str, *, expected: tuple[int, int] | None = None,
                   reported: tuple[int, int] | None = None) -> Image.Image:
    """The downloaded image fully decoded; its size must be what fal reported and what the endpoint promised."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise UnusableOutput(f"fal: {endpoint}: output image does not decode: {one_line(str(error))}", provider=NAME) from None
    for promise, size in (("reported", reported), ("requested", expected)):
        if size is not None and image.size != size:
            raise UnusableOutput(
                f"fal: {endpoint}: output image is {image.width}x{image.height}, {promise} {size[0]}x{size[1]}", provider=NAME
            )
    return image


def verified_video(path: Path, endpoint: str, *, frames: int) -> None:
    """The downloaded video decodes and has exactly `frames` frames."""
    try:
        info = probe_video(path)
    except MediaError as error:
        raise UnusableOutput(f"fal: {endpoint}: output video does not decode: {error}", provider=NAME) from None
    if info.frames != frames:
        raise UnusableOutput(f"fal: {endpoint}: output video has {info.frames} frames, expected {frames}", provider=NAME)
