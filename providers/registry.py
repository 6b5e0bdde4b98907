"""Providers by name: the one place that knows which module serves which name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

from reelflow.providers.base import Provider
from reelflow.providers.runpod.errors import api_key
from reelflow.schemas.errors import ContractError
from reelflow.schemas.project import GPU_PROVIDERS, Project


def _local() -> Provider:
    from reelflow.providers.local.provider import LocalProvider

    return LocalProvider.from_env()


def _fal() -> Provider:
    from reelflow.providers.fal.provider import FalProvider

    return FalProvider.from_env()


def _gemini() -> Provider:
    from reelflow.providers.gemini.provider import GeminiProvider

    return GeminiProvider.from_env()


FACTORIES: dict[str, Callable[[], Provider]] = {"local": _local, "fal": _fal, "gemini": _gemini}


@cache
def get_provider(name: str) -> Provider:
    """The provider registered under `name` (one per process); a missing key raises MissingCredentials."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise ContractError(f"project.json: providers: provider {name!r} is not available (have: {', '.join(sorted(FACTORIES))})")
    return factory()


def providers_for(project: Project, stages: Iterable[str]) -> list[str]:
    """Every provider the stages may call, fallbacks included, in first-use order."""
    names: list[str] = []
    for stage in stages:
        choice = project.stage(stage)
        for name in (choice.use, choice.fallback):
            if name is not None and name not in names:
                names.append(name)
    return names


def require_providers(project: Project, stages: Iterable[str]) -> None:
    """Set up every provider the stages need now, so a missing key or setting stops the run before any work. A GPU
    provider is the project's own (tasks/gpu.py makes it): here its settings and RunPod's key are checked."""
    stages = tuple(stages)
    problem = project.gpu_problem({stage: project.stage(stage) for stage in stages}, "providers")
    if problem is not None:
        raise ContractError(f"project.json: {problem}")
    for name in providers_for(project, stages):
        if name not in GPU_PROVIDERS:
            get_provider(name)
        elif project.comfyui is not None and project.comfyui.runpod is not None and (
                name == "runpod" or project.comfyui.url is None):
            api_key()
