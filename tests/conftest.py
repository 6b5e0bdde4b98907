"""Shared fixtures: one local Prefect server for the whole session, and a way to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

if TYPE_CHECKING:
    from fakes.fal import FakeFal
    from fakes.gemini import FakeGemini

REELFLOW = Path(sys.executable).with_name("reelflow")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Prefect server started once for the session; the CLI runs reach it through PREFECT_API_URL."""
    from reelflow.flows import server

    home = tmp_path_factory.mktemp("reelflow-home")
    previous = {key: os.environ.get(key) for key in ("REELFLOW_HOME", "PREFECT_API_URL", "REELFLOW_SERVER_PORT")}
    os.environ["REELFLOW_HOME"] = str(home)
    os.environ["REELFLOW_SERVER_PORT"] = "0"
    os.environ.pop("PREFECT_API_URL", None)
    info = server.start_server(home)
    os.environ["PREFECT_API_URL"] = info.api_url
    for key, value in server.prefect_env(home).items():
        os.environ.setdefault(key, value)
    yield info.api_url
    server.stop_server(home)
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    """A loopback fake of fal.ai's queue; `.env()` points the CLI at it."""
    from fakes.fal import FakeFal

    with FakeFal() as fake:
        yield fake


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    """A loopback fake of Gemini's generateContent; `.env()` points the CLI at it."""
    from fakes.gemini import FakeGemini

    with FakeGemini() as fake:
        yield fake


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> CliResult:
    """Run the installed `reelflow` command in a subprocess, as a user would."""
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "COLUMNS": "200"} | (env or {})
    done = subprocess.run([str(REELFLOW), *args], capture_output=True, text=True, env=environment, timeout=timeout)
    return CliResult(done.returncode, done.stdout, done.stderr)
