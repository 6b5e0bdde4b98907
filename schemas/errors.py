"""One error taxonomy for the whole pipeline: contract errors and provider errors."""

from __future__ import annotations


class ReelflowError(Exception):
    """Base of every error reelflow raises on purpose; its message is one line for a person."""


class ContractError(ReelflowError):
    """A project file breaks the on-disk contract (file, shot and field are in the message)."""


class MediaError(ReelflowError):
    """An image or video operation failed (ffmpeg exit, unreadable file, wrong size)."""


class ProviderError(ReelflowError):
    """A provider call failed. `retryable` errors were not billed and may be retried; `billed` ones cost money."""

    retryable: bool = False
    billed: bool = False
    kind: str = "provider_error"

    def __init__(self, message: str, *, provider: str = "", request_id: str | None = None,
                 billed: bool | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.request_id = request_id
        if billed is not None:
            self.billed = billed


class RateLimited(ProviderError):
    retryable = True
    kind = "rate_limit"


class ServerError(ProviderError):
    retryable = True
    kind = "server_error"


class ProviderTimeout(ProviderError):
    retryable = True
    kind = "timeout"


class TransportError(ProviderError):
    retryable = True
    kind = "transport"


class UnusableOutput(ProviderError):
    """The provider finished and billed the request, but its output cannot be used.

    Never retried by the generic loop: the stage re-submits it at most the project's `billed_retries` times.
    """

    billed = True
    kind = "unusable_output"


class OutcomeUnknown(ProviderError):
    """The request may have reached the service, but no answer says how it ended (a lost response, a timeout after
    sending, a request the service no longer knows): counted at its price, submitted again only within the
    project's `billed_retries`."""

    billed = True
    kind = "unknown"


class BilledRetriesSpent(ProviderError):
    """The content was paid for `billed_retries` + 1 times with nothing to show; not submitted again until a person
    allows it (`reelflow ledger PROJECT --forget-billed-failures`)."""

    kind = "billed_retries_spent"


class ContentRejected(ProviderError):
    """The provider refused the content (moderation); never retried, may go to a fallback."""

    kind = "content_rejected"


class BadRequest(ProviderError):
    """The request itself is wrong; retrying cannot help."""

    kind = "bad_request"


class MissingCredentials(ProviderError):
    """A provider's key is missing or invalid; raised before any work is submitted."""

    kind = "missing_credentials"


class AccountRestricted(ProviderError):
    """The provider has limited or disabled the account itself (e.g. for policy violations): no request can succeed
    until a person acts, so it is never retried, re-submitted or sent to a fallback."""

    kind = "account_restricted"


def is_retryable(error: BaseException) -> bool:
    """True for errors that were not billed and may succeed on a later attempt."""
    return isinstance(error, ProviderError) and error.retryable and not error.billed
