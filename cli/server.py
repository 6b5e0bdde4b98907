"""The Prefect server reelflow talks to: PREFECT_API_URL if set, else a local one started once and reused.

A local `prefect server` (SQLite under REELFLOW_HOME) answers a flow call in about a second and keeps
every flow and task run for the UI; the ephemeral server takes 6-14 s per run and drops task-run records.
This module does not import prefect: the API URL must be in the environment before prefect loads.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from reelflow.schemas.errors import ReelflowError

DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0


def reelflow_home() -> Path:
    return Path(os.environ.get("REELFLOW_HOME") or Path.home() / ".reelflow")


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int | None

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


def _state_file(home: Path) -> Path:
    return home / "server.json"


def _healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _pick_port() -> int:
    """REELFLOW_SERVER_PORT (default 4200) if free, else any free port; 0 asks for any free port."""
    wanted = int(os.environ.get("REELFLOW_SERVER_PORT") or DEFAULT_PORT)
    if wanted and _port_free(wanted):
        return wanted
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_server(home: Path | None = None) -> ServerInfo | None:
    """The server this home started earlier, if it still answers."""
    home = home or reelflow_home()
    try:
        state = json.loads(_state_file(home).read_text())
    except (FileNotFoundError, ValueError):
        return None
    info = ServerInfo(url=state["url"], pid=state.get("pid"))
    return info if _healthy(info.url) else None


def prefect_env(home: Path) -> dict[str, str]:
    """Settings for the server and its clients: state under REELFLOW_HOME, no telemetry."""
    return {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }


def start_server(home: Path | None = None) -> ServerInfo:
    """Start a local server (or reuse the one running for this home) and wait until it answers."""
    home = home or reelflow_home()
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = running_server(home)
        if existing is not None:
            return existing
        port = _pick_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | prefect_env(home)
        prefect_cli = Path(sys.executable).with_name("prefect")
        with (home / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [str(prefect_cli), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ReelflowError(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.2)
        _state_file(home).write_text(json.dumps({"url": url, "pid": process.pid}))
        return ServerInfo(url=url, pid=process.pid)


def stop_server(home: Path | None = None) -> bool:
    """Stop the server this home started; False if none was running."""
    home = home or reelflow_home()
    info = running_server(home)
    _state_file(home).unlink(missing_ok=True)
    if info is None or info.pid is None:
        return False
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 15
    while _healthy(info.url, timeout=0.3) and time.monotonic() < deadline:
        time.sleep(0.2)
    return True


def connect() -> str:
    """Point this process's Prefect client at the server to use; returns the API URL."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = reelflow_home()
    info = start_server(home)
    for key, value in prefect_env(home).items():
        os.environ.setdefault(key, value)
    os.environ["PREFECT_API_URL"] = info.api_url
    return info.api_url
