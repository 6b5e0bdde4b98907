"""fal's HTTP and transport failures in reelflow's one error taxonomy, as one-line messages."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fal_client.client import FalClientHTTPError

from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    MissingCredentials,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
)

NAME = "fal"
CONTENT_POLICY = "content_policy_violation"
MESSAGE_LIMIT = 300
# Statuses that say nothing about the request itself: it may still finish, so a ledger line stays pending.
TRANSIENT = frozenset({401, 403, 408, 429, 502, 503, 504})


def one_line(text: str) -> str:
    """Whitespace collapsed, cut to a readable length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"


def _problems(detail: Any) -> list[dict[str, Any]]:
    items = detail if isinstance(detail, list) else [detail]
    return [item for item in items if isinstance(item, dict) and {"loc", "msg", "type"} & item.keys()]


def describe(detail: Any) -> str:
    """`loc: msg` for each problem fal listed (the `body` prefix dropped), else the detail as text."""
    parts = []
    for problem in _problems(detail):
        loc = ".".join(str(part) for part in problem.get("loc") or [] if part != "body")
        msg = str(problem.get("msg") or problem.get("type") or "invalid")
        parts.append(f"{loc}: {msg}" if loc else msg)
    if parts:
        return one_line("; ".join(parts))
    return one_line(detail if isinstance(detail, str) else json.dumps(detail))


def is_content_policy(detail: Any) -> bool:
    """True when fal's moderation refused an input or the output."""
    return any(problem.get("type") == CONTENT_POLICY for problem in _problems(detail))


def status_error(status: int, detail: Any, where: str, request_id: str | None = None) -> ProviderError:
    """The taxonomy error for an HTTP status and fal's `detail`.

    fal never bills a 5xx; a 422 for a request it accepted (one with a `request_id`) may be billed, so it is
    marked billed and counted at the request's price.
    """
    context: dict[str, Any] = {"provider": NAME, "request_id": request_id, "billed": status == 422 and request_id is not None}
    if status in (401, 403):
        return MissingCredentials(f"FAL_KEY was refused by fal.ai ({status})", **context)
    if status == 408:
        return ProviderTimeout(f"fal: {where}: fal timed out the request (408)", **context)
    if status == 429:
        return RateLimited(f"fal: {where}: rate limited (429): {describe(detail)}", **context)
    if status >= 500:
        return ServerError(f"fal: {where}: server error ({status}): {describe(detail)}", **context)
    if status == 422 and is_content_policy(detail):
        return ContentRejected(f"fal: {where}: content policy: {describe(detail)}", **context)
    return BadRequest(f"fal: {where}: {describe(detail)}", **context)


def response_detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    return body.get("detail", body) if isinstance(body, dict) else body


def fal_error(error: FalClientHTTPError | httpx.HTTPError, where: str, request_id: str | None = None) -> ProviderError:
    """The taxonomy error for anything fal-client or httpx raised while talking to fal."""
    if isinstance(error, FalClientHTTPError):
        return status_error(error.status_code, response_detail(error.response), where, request_id)
    if isinstance(error, httpx.HTTPStatusError):
        return status_error(error.response.status_code, response_detail(error.response), where, request_id)
    if isinstance(error, httpx.TimeoutException):
        return ProviderTimeout(f"fal: {where}: timed out ({type(error).__name__})", provider=NAME, request_id=request_id)
    if isinstance(error, httpx.TransportError):
        return TransportError(f"fal: {where}: {type(error).__name__}: {one_line(str(error))}", provider=NAME,
                              request_id=request_id)
    return ServerError(f"fal: {where}: {type(error).__name__}: {one_line(str(error))}", provider=NAME, request_id=request_id)
