"""fal's queue through fal-client: upload inputs, submit once, poll, fetch, download and verify outputs.

Never pay twice: a request id goes to the ledger (`ticket.submitted`) right after fal accepts the submit and
before any waiting; a later attempt for the same cache key polls that id instead of submitting again. A request
leaves the ledger's pending set only when fal has settled it: `completed` once its outputs are downloaded and
verified, `failed` when fal refused it (a 422 at the request's price: fal may bill one) or its output is unusable
(billed), `cancelled` only when fal no longer knows it at cancel time. A cancel fal answers with
CANCELLATION_REQUESTED leaves the request pending: a running request may still finish and bill, and the next
attempt polls it and uses its output. Anything that says nothing about the request itself (rate limits, gateway
errors, lost connections, a refused key) leaves it pending, to be resumed.
"""

from __future__ import annotations

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
from reelflow.providers.base import Ticket
from reelflow.providers.fal.errors import NAME, fal_error, is_transient, one_line, status_error
from reelflow.schemas.errors import MediaError, ProviderTimeout, ServerError, UnusableOutput

T = TypeVar("T")
Result = dict[str, Any]

POLL_S = 1.0
DEADLINE_S = 900.0
DOWNLOAD_TIMEOUT = httpx.Timeout(120.0, connect=30.0)
ALREADY_COMPLETED = "ALREADY_COMPLETED"

_uploaded: dict[tuple[str, str], str] = {}
_upload_locks: dict[tuple[str, str], threading.Lock] = {}
_uploads_lock = threading.Lock()


@dataclass(frozen=True)
class Done(Generic[T]):
    """What a settled request gave back, its fal id, and how long this call waited for it."""

    value: T
    request_id: str
    seconds: float


class _Entry:
    """The ledger lines of one request; nothing is written when the call has no ticket."""

    def __init__(self, ticket: Ticket | None, endpoint: str, request_id: str, price_usd: float) -> None:
        self.ticket, self.endpoint, self.request_id, self.price_usd = ticket, endpoint, request_id, price_usd

    def completed(self, cost_usd: float) -> None:
        if self.ticket is not None:
            self.ticket.completed(self.endpoint, self.request_id, cost_usd)

    def failed(self, detail: str, cost_usd: float = 0.0) -> None:
        if self.ticket is not None:
            self.ticket.failed(self.endpoint, self.request_id, detail, cost_usd)

    def cancelled(self, detail: str) -> None:
        if self.ticket is not None:
            self.ticket.cancelled(self.endpoint, self.request_id, detail)

    def cancel_requested(self, detail: str) -> None:
        if self.ticket is not None:
            self.ticket.cancel_requested(self.endpoint, self.request_id, detail)


def _body_status(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("status") if isinstance(body, dict) else None


class FalQueue:
    """One fal-client session: uploads cached by content, paid requests settled exactly once in the ledger."""

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
        """Submit (or resume) one request, wait for it, and `finish` its result; the ledger records each step."""
        started = time.monotonic()
        request_id = ticket.resume(endpoint) if ticket is not None else None
        if request_id is None:
            handle = self._submit(endpoint, arguments)
            request_id = handle.request_id
            if ticket is not None:
                ticket.submitted(endpoint, request_id)
        else:
            handle = self.client.get_handle(endpoint, request_id)
        entry = _Entry(ticket, endpoint, request_id, cost_usd)
        result = self._wait(handle, endpoint, entry)
        try:
            if not isinstance(result, dict):
                raise UnusableOutput(f"fal: {endpoint}: result is not a JSON object", provider=NAME, request_id=request_id)
            value = finish(result)
        except UnusableOutput as error:
            entry.failed(str(error), cost_usd)
            raise
        entry.completed(cost_usd)
        return Done(value, request_id, time.monotonic() - started)

    def _submit(self, endpoint: str, arguments: dict[str, Any]) -> SyncRequestHandle:
        try:
            return self.client.submit(endpoint, arguments)
        except (FalClientHTTPError, httpx.HTTPError) as error:
            raise fal_error(error, endpoint) from None

    def _wait(self, handle: SyncRequestHandle, endpoint: str, entry: _Entry) -> Result:
        """Poll every `poll_s` until fal completes the request; past the deadline, cancel it."""
        deadline = time.monotonic() + self.deadline_s
        while not isinstance(self._status(handle, endpoint, entry), Completed):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(handle, endpoint, entry)
                break
            time.sleep(min(self.poll_s, remaining))
        return self._result(handle, endpoint, entry)

    def _status(self, handle: SyncRequestHandle, endpoint: str, entry: _Entry) -> object:
        try:
            return handle.status()
        except FalClientHTTPError as error:
            if error.status_code == 404:
                entry.failed("fal no longer knows the request")
                raise ServerError(
                    f"fal: {endpoint}: request {handle.request_id} is unknown to fal; the next attempt submits anew",
                    provider=NAME, request_id=handle.request_id,
                ) from None
            raise fal_error(error, endpoint, handle.request_id) from None
        except httpx.HTTPError as error:
            raise fal_error(error, endpoint, handle.request_id) from None
        except ValueError as error:  # fal-client knows IN_QUEUE, IN_PROGRESS and COMPLETED only
            raise ServerError(f"fal: {endpoint}: unknown request status ({one_line(str(error))}); still pending",
                              provider=NAME, request_id=handle.request_id) from None

    def _cancel(self, handle: SyncRequestHandle, endpoint: str, entry: _Entry) -> None:
        """Cancel at the deadline and raise ProviderTimeout; return only when fal says the request already completed.

        A cancel fal accepts is only requested: the request stays pending in the ledger until fal settles it.
        """
        waited = f"no result after {self.deadline_s:g} s"
        try:
            handle.cancel()
        except FalClientHTTPError as error:
            if _body_status(error.response) == ALREADY_COMPLETED:
                return
            if error.status_code != 404:
                raise ProviderTimeout(f"fal: {endpoint}: {waited}; cancel failed ({error.status_code}), still pending",
                                      provider=NAME, request_id=handle.request_id) from None
            entry.cancelled(f"{waited}; fal no longer knows the request")
            raise ProviderTimeout(f"fal: {endpoint}: {waited}; request {handle.request_id} is gone",
                                  provider=NAME, request_id=handle.request_id) from None
        except httpx.HTTPError as error:
            raise ProviderTimeout(f"fal: {endpoint}: {waited}; cancel failed ({type(error).__name__}), still pending",
                                  provider=NAME, request_id=handle.request_id) from None
        entry.cancel_requested(f"{waited}; cancel requested")
        raise ProviderTimeout(f"fal: {endpoint}: {waited}; cancel of request {handle.request_id} requested, still pending "
                              "until fal settles it", provider=NAME, request_id=handle.request_id)

    def _result(self, handle: SyncRequestHandle, endpoint: str, entry: _Entry) -> Result:
        """The completed request's result; a failure fal settled (refusal, app error) is written to the ledger."""
        try:
            return handle.get(interval=self.poll_s)
        except (FalClientHTTPError, httpx.HTTPError) as error:
            mapped = fal_error(error, endpoint, handle.request_id)
            if not is_transient(error):
                entry.failed(str(mapped), entry.price_usd if mapped.billed else 0.0)
            raise mapped from None


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
