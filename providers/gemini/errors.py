"""google-genai exceptions translated into reelflow's one error taxonomy, each with a one-line message.

Errors come as `{"error": {"code", "message", "status", "details": [...]}}` (checked in public threads):
a quota hit is 429 RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` `retryDelay`
(https://github.com/RooCodeInc/Roo-Code/issues/3883); an invalid key is 400 INVALID_ARGUMENT with the
`ErrorInfo` reason API_KEY_INVALID (https://github.com/google/timesketch/pull/3703,
https://github.com/continuedev/continue/issues/8516); a blocked key is 403 PERMISSION_DENIED.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
from google.genai import errors as genai_errors
from pydantic import ValidationError

from reelflow.schemas.errors import (
    BadRequest,
    MissingCredentials,
    OutcomeUnknown,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
)

NAME = "gemini"
MAX_MESSAGE = 240
KEY_REASONS = {"API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED"}

# Failures before a byte of the request left: Gemini cannot have run it. Any other timeout or lost connection may
# come after the request was sent and generated, so its outcome is unknown.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
            httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout, httpx2.UnsupportedProtocol)
TRANSPORT = (httpx.TransportError, httpx2.TransportError)


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` on one line, whitespace collapsed, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _details(error: genai_errors.APIError) -> list[dict[str, Any]]:
    """The `details` entries of a Google error body."""
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    return [item for item in details or [] if isinstance(item, dict)]


def _key_refusal(error: genai_errors.APIError) -> str | None:
    """How Gemini said it refused the key ("403", "400 API_KEY_INVALID"), or None if it did not."""
    reason = next((str(item["reason"]) for item in _details(error) if item.get("reason") in KEY_REASONS), None)
    if reason is not None:
        return f"{error.code} {reason}"
    if error.code in (401, 403) or error.status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return str(error.code)
    return None


def _fields(error: genai_errors.APIError) -> list[str]:
    """The request fields a 400 names in its `google.rpc.BadRequest` field violations."""
    return [
        str(violation["field"])
        for item in _details(error)
        for violation in item.get("fieldViolations", [])
        if isinstance(violation, dict) and violation.get("field")
    ]


def _retry_delay(error: genai_errors.APIError) -> str | None:
    """How long Gemini asks to wait before retrying, if it says."""
    return next((str(item["retryDelay"]) for item in _details(error) if item.get("retryDelay")), None)


def _api_error(error: genai_errors.APIError, model: str) -> ProviderError:
    """The reelflow error for an HTTP error answer from Gemini."""
    code, status = error.code, error.status or ""
    what = f"{code} {status}".strip()
    message = one_line(error.message or str(error))
    where = f"{NAME} {model}"
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        delay = _retry_delay(error)
        return RateLimited(f"{where}: rate limited ({what}){f', retry in {delay}' if delay else ''}: {message}", provider=NAME)
    refusal = _key_refusal(error)
    if refusal is not None:
        return MissingCredentials(f"GEMINI_API_KEY was refused by Gemini ({refusal})", provider=NAME)
    if code in (408, 504):
        return ProviderTimeout(f"{where}: timed out on the server ({what}): {message}", provider=NAME)
    if isinstance(error, genai_errors.ServerError) or code >= 500:
        return ServerError(f"{where}: server error ({what}): {message}", provider=NAME)
    fields = _fields(error)
    named = f"{', '.join(fields)}: " if fields else ""
    return BadRequest(f"{where}: request rejected ({what}): {named}{message}", provider=NAME)


def translate(error: Exception, model: str) -> ProviderError | None:
    """The reelflow error for a google-genai or HTTP transport exception; None for anything else."""
    if isinstance(error, genai_errors.APIError):
        return _api_error(error, model)
    if isinstance(error, TRANSPORT):
        detail = one_line(str(error)) or type(error).__name__
        if isinstance(error, NOT_SENT):
            return TransportError(f"{NAME} {model}: not sent ({type(error).__name__}: {detail})", provider=NAME)
        return OutcomeUnknown(f"{NAME} {model}: no answer after the request was sent ({type(error).__name__}: {detail}); "
                              "outcome unknown: it may have been generated and billed", provider=NAME)
    if isinstance(error, (genai_errors.UnknownApiResponseError, ValidationError)):
        return ServerError(f"{NAME} {model}: unreadable response: {one_line(str(error))}", provider=NAME)
    return None
