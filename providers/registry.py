"""Providers by name: the one place that knows which module serves which name."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from reelflow.providers.base import Provider
from reelflow.schemas.errors import ContractError


def _local() -> Provider:
    from reelflow.providers.local.provider import LocalProvider

    return LocalProvider.from_env()


FACTORIES: dict[str, Callable[[], Provider]] = {"local": _local}


@cache
def get_provider(name: str) -> Provider:
    """The provider registered under `name` (one instance per process)."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ContractError(f"project.json: providers: provider {name!r} is not available (have: {', '.join(sorted(FACTORIES))})")
    return factory()
