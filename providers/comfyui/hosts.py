"""A ComfyUI server the studio runs itself, reached at its URL (a path prefix behind a reverse proxy works)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from reelflow.providers.comfyui.client import ComfyClient
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import MissingCredentials

POLL_ENV = "REELFLOW_COMFYUI_POLL_S"
DEADLINE_ENV = "REELFLOW_COMFYUI_DEADLINE_S"
POLL_S = 1.0
DEADLINE_S = 3600.0  # a 14B WAN clip at 30 steps runs many minutes


def client_for(url: str, headers: dict[str, str] | None = None) -> ComfyClient:
    """A client polling every REELFLOW_COMFYUI_POLL_S, giving up on a prompt after REELFLOW_COMFYUI_DEADLINE_S."""
    return ComfyClient(url, headers=headers, poll_s=env_number(POLL_ENV, POLL_S, positive=True),
                       deadline_s=env_number(DEADLINE_ENV, DEADLINE_S, positive=True))


def auth_headers(env_name: str | None) -> dict[str, str] | None:
    """The header the environment variable `env_name` holds (`Name: value`), never written anywhere else."""
    if env_name is None:
        return None
    value = os.environ.get(env_name, "")
    name, colon, secret = value.partition(":")
    if not colon or not name.strip() or not secret.strip():
        raise MissingCredentials(f"comfyui: {env_name} must hold the server's auth header as `Name: value`",
                                 provider="comfyui")
    return {name.strip(): secret.strip()}


class ServerHost:
    """The studio's own ComfyUI: always up, nothing to rent."""

    share = False

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.client = client_for(url, headers)

    @contextmanager
    def session(self) -> Iterator[ComfyClient]:
        yield self.client

    def known(self) -> ComfyClient:
        return self.client

    def price_per_s(self) -> float:
        return 0.0
