"""Where fal-client sends requests, and how often it retries on its own.

fal-client builds every URL from module constants with https hard-coded (QUEUE_URL_FORMAT for submit, status,
result and cancel; REST_URL for the storage token; CDN_URL for uploads). Tests and proxies point them elsewhere
with REELFLOW_FAL_QUEUE_URL, REELFLOW_FAL_REST_URL and REELFLOW_FAL_CDN_URL (base URLs such as
http://127.0.0.1:8123/queue/); unset, the constants go back to fal's own hosts. Requests still take fal-client's
own code paths.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fal_client import client as fal_wire

QUEUE_ENV = "REELFLOW_FAL_QUEUE_URL"
REST_ENV = "REELFLOW_FAL_REST_URL"
CDN_ENV = "REELFLOW_FAL_CDN_URL"

FAL_QUEUE_URL = fal_wire.QUEUE_URL_FORMAT
FAL_REST_URL = fal_wire.REST_URL
FAL_CDN_URL = fal_wire.CDN_URL

# One attempt per HTTP call inside fal-client (its default is 10, backing off from 0.1 s). A re-sent submit
# whose first response was lost pays twice; every retry happens instead in the Prefect task, which resumes the
# request recorded in the ledger rather than submitting again.
FAL_CLIENT_ATTEMPTS = 1
FAL_CLIENT_BASE_DELAY_S = 0.1


def _base(environ: Mapping[str, str], name: str, default: str, *, trailing_slash: bool) -> str:
    value = environ.get(name, "").strip() or default
    return value.rstrip("/") + ("/" if trailing_slash else "")


def configure_fal_client(environ: Mapping[str, str] = os.environ) -> None:
    """Point fal-client at the hosts the environment names (or fal's own) and keep its retry loop to one attempt."""
    fal_wire.QUEUE_URL_FORMAT = _base(environ, QUEUE_ENV, FAL_QUEUE_URL, trailing_slash=True)
    fal_wire.REST_URL = _base(environ, REST_ENV, FAL_REST_URL, trailing_slash=False)
    fal_wire.CDN_URL = _base(environ, CDN_ENV, FAL_CDN_URL, trailing_slash=False)
    fal_wire.MAX_ATTEMPTS = FAL_CLIENT_ATTEMPTS
    fal_wire.BASE_DELAY = FAL_CLIENT_BASE_DELAY_S
