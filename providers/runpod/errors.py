"""RunPod's SDK, HTTP and S3 failures in reelflow's one error taxonomy, as one-line messages naming `runpod`."""

from __future__ import annotations

import os

from reelflow.schemas.errors import (
    BadRequest,
    MissingCredentials,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
)

NAME = "runpod"
KEY_ENV = "RUNPOD_API_KEY"
# The capacity refusal create_pod answers with (gpu-path.md A4: https://github.com/mlabonne/llm-autoeval/issues/3).
CAPACITY = "no longer any instances available"
MESSAGE_LIMIT = 300


class NoCapacity(ProviderError):
    """RunPod has no machine with the requested GPU type right now; nothing was created or billed.

    Not retried by the generic loop (the same GPU type seconds later rarely helps): the caller tries its next GPU
    type or provider.
    """

    kind = "no_capacity"


class JobFailed(ProviderError):
    """A serverless job ran and failed (worker-comfyui's `error`, or status FAILED): billed for its worker time."""

    billed = True
    kind = "graph_failed"


def one_line(text: str) -> str:
    """Whitespace collapsed, cut to a readable length."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"


def api_key() -> str:
    """RUNPOD_API_KEY from the environment; never logged, stored or put in a message."""
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise MissingCredentials(f"runpod: {KEY_ENV} is not set (create an API key in RunPod's console, Settings → API Keys)",
                                 provider=NAME)
    return key


def status_error(status: int, detail: str, where: str) -> ProviderError:
    """The taxonomy error for an HTTP status RunPod answered."""
    if status in (401, 403):
        return MissingCredentials(f"runpod: {where}: {KEY_ENV} was refused by RunPod ({status})", provider=NAME)
    if status == 429:
        return RateLimited(f"runpod: {where}: rate limited (429): {one_line(detail)}", provider=NAME)
    if status >= 500:
        return ServerError(f"runpod: {where}: server error ({status}): {one_line(detail)}", provider=NAME)
    return BadRequest(f"runpod: {where}: refused ({status}): {one_line(detail)}", provider=NAME)


def sdk_error(error: Exception, where: str, *, gpu_type: str | None = None) -> ProviderError:
    """The taxonomy error for what the runpod SDK raised (runpod/error.py, api/graphql.py, endpoint/runner.py).

    A GraphQL 401 raises AuthenticationError, the endpoint client's 401 a RuntimeError; any `errors[]` in a GraphQL
    answer raises QueryError with the first message; other statuses and transport failures are requests' errors.
    A read timeout (ProviderTimeout) means the request was sent: callers that created something look for it.
    """
    import requests  # the SDK's transport: imported with it, not with every command
    from runpod import error as sdk  # the SDK's import is slow (see pods.py); by now it is loaded

    if isinstance(error, ProviderError):
        return error
    if isinstance(error, sdk.AuthenticationError) or (isinstance(error, RuntimeError) and "401" in str(error)):
        return MissingCredentials(f"runpod: {where}: {KEY_ENV} was refused by RunPod (401)", provider=NAME)
    if isinstance(error, sdk.QueryError):
        message = one_line(error.message or "")
        if CAPACITY in message:
            return NoCapacity(f"runpod: {where}: no {gpu_type or 'GPU'} available right now: {message}", provider=NAME)
        return ServerError(f"runpod: {where}: {message}", provider=NAME)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return status_error(error.response.status_code, error.response.text, where)
    if isinstance(error, requests.ReadTimeout):
        return ProviderTimeout(f"runpod: {where}: no answer in time (the request was sent)", provider=NAME)
    if isinstance(error, requests.JSONDecodeError):
        return ServerError(f"runpod: {where}: the answer was not JSON", provider=NAME)
    if isinstance(error, requests.RequestException):
        return TransportError(f"runpod: {where}: {type(error).__name__}: {one_line(str(error))}", provider=NAME)
    return ServerError(f"runpod: {where}: {type(error).__name__}: {one_line(str(error))}", provider=NAME)
