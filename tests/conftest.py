"""Shared fixtures: one local Prefect server for the whole session, and a way to run the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

if TYPE_CHECKING:
    from reelflow.web.dailies_server import DailiesServer

    from fakes.fal import FakeFal
    from fakes.gemini import FakeGemini

REELFLOW = Path(sys.executable).with_name("reelflow")


TEST_HOME = "REELFLOW_TEST_HOME"
# The fastest x264 preset keeps the suite quick; media cache keys name the preset, so nothing crosses over to the
# product's encodes. A run may ask for another preset by setting the variable itself.
os.environ.setdefault("REELFLOW_X264_PRESET", "ultrafast")
_OWNS_HOME = pytest.StashKey[bool]()
_BOOTING = pytest.StashKey[threading.Thread]()


def pytest_configure(config: pytest.Config) -> None:
    """The first process (the xdist controller, or plain pytest) picks one home for the run's Prefect server.

    Every process that runs tests points Prefect at that server before collecting: Prefect reads its settings once,
    when first imported (collection imports it), and an in-process flow would otherwise start a throwaway server.
    """
    if TEST_HOME not in os.environ:
        os.environ[TEST_HOME] = tempfile.mkdtemp(prefix="reelflow-test-home-")
        config.stash[_OWNS_HOME] = True
        if config.getoption("numprocesses", None):
            # Boot the server while the workers start; each waits for it before collecting, then reuses it.
            booting = threading.Thread(target=_start_server, args=(Path(os.environ[TEST_HOME]),), daemon=True)
            booting.start()
            config.stash[_BOOTING] = booting
            return
    _use_server(_start_server(Path(os.environ[TEST_HOME])))


def _start_server(home: Path) -> str:
    """Start the run's server on any free port (or wait for the process starting it) and return its API URL."""
    from reelflow.cli import server

    port = os.environ.get("REELFLOW_SERVER_PORT")
    os.environ["REELFLOW_SERVER_PORT"] = "0"
    try:
        return server.start_server(home).api_url
    finally:
        if port is None:
            os.environ.pop("REELFLOW_SERVER_PORT")
        else:
            os.environ["REELFLOW_SERVER_PORT"] = port


def _use_server(api_url: str) -> None:
    from reelflow.cli import server

    os.environ["PREFECT_API_URL"] = api_url
    for key, value in server.prefect_env(Path(os.environ[TEST_HOME])).items():
        os.environ.setdefault(key, value)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The process that picked the home stops the server every worker shared, and removes the home."""
    if config.stash.get(_OWNS_HOME, False):
        from reelflow.cli import server

        if _BOOTING in config.stash:
            config.stash[_BOOTING].join()
        home = Path(os.environ.pop(TEST_HOME))
        server.stop_server(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One local Prefect server for the whole run, shared by the xdist workers; CLI runs reach it via PREFECT_API_URL."""
    from reelflow.cli import server

    home = Path(os.environ[TEST_HOME])
    previous = {key: os.environ.get(key) for key in ("REELFLOW_HOME", "PREFECT_API_URL", "REELFLOW_SERVER_PORT")}
    os.environ["REELFLOW_HOME"] = str(home)
    os.environ["REELFLOW_SERVER_PORT"] = "0"
    os.environ.pop("PREFECT_API_URL", None)
    info = server.start_server(home)
    os.environ["PREFECT_API_URL"] = info.api_url
    for key, value in server.prefect_env(home).items():
        os.environ.setdefault(key, value)
    yield info.api_url
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def server(project: Path) -> Iterator[DailiesServer]:
    """The dailies page of episode 1 of the test's `project`, served on a free port for the test."""
    from reelflow.schemas.load import load_project, load_storyboard
    from reelflow.web.dailies_server import DailiesServer

    folder = load_project(project)
    with DailiesServer(folder, load_storyboard(folder, 1)) as review:
        yield review


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One throwaway Postgres cluster per test process, started by the first test that asks; skips without one."""
    from postgres import BIN, NO_POSTGRES, cluster

    if BIN is None:
        pytest.skip(NO_POSTGRES)
    with cluster() as url:
        yield url


@pytest.fixture
def state_url(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database on the cluster, as every project's REELFLOW_STATE_URL for the test."""
    from reelflow.state.db import close_all

    from postgres import new_database

    url = new_database(pg_server)
    monkeypatch.setenv("REELFLOW_STATE_URL", url)
    yield url
    close_all()  # no pool of this process keeps a connection to a database nothing uses any more


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
    """Run the installed `reelflow` command in a subprocess, as a user would.

    Logs are not shipped to the shared test server (no test reads them there; it spares the server's CPU).
    """
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "COLUMNS": "200", "PREFECT_LOGGING_TO_API_ENABLED": "false"}
    environment |= env or {}
    done = subprocess.run([str(REELFLOW), *args], capture_output=True, text=True, env=environment, timeout=timeout)
    return CliResult(done.returncode, done.stdout, done.stderr)


def render_killed_in_flight(root: Path, fal: FakeFal, submits: int) -> None:
    """Start `reelflow render` of episode 1 and SIGKILL its process group once fal holds at least `submits` requests,
    every one written down as pending and none being sent for a moment: killed while they wait in fal's queue
    (between fal accepting a submit and the client writing its id down there is a window no client can close: fal
    takes no idempotency key; not in it)."""
    from reelflow.state.ledger import Ledger

    ledger = Ledger.at(root / ".reelflow")
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01"} | fal.env()
    process = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--json"], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60

    def waiting() -> int | None:
        """How many requests fal holds, each written down as pending and none being sent; None otherwise."""
        held = fal.total_submits()
        sending = ledger.rows("status = 'submitting'")
        return held if held >= submits and not sending and len(ledger.rows("status = 'pending'")) == held else None

    while time.monotonic() < deadline:
        held = waiting()
        if held is not None:
            time.sleep(0.3)  # and no new submit starts meanwhile: the render is waiting on fal's queue
            if waiting() == held:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
