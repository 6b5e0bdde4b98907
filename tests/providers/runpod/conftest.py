"""Fixtures for RunPod: a started FakeRunPod with the environment pointing reelflow's runpod modules at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.runpod import FakeRunPod

ENV = ("RUNPOD_API_KEY", "RUNPOD_API_BASE_URL", "RUNPOD_ENDPOINT_BASE_URL", "REELFLOW_RUNPOD_PROXY_URL",
       "RUNPOD_S3_ACCESS_KEY_ID", "RUNPOD_S3_SECRET_ACCESS_KEY", "RUNPOD_S3_ENDPOINT_URL", "REELFLOW_RUNPOD_S3_PART_MB")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RunPod settings from the outer environment."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    with FakeRunPod(boot_s=0.1, queue_s=0.05, job_s=0.1) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server
