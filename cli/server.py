"""The Prefect server reelflow talks to: PREFECT_API_URL if set, else a local one started once and reused.

A local `prefect server` (SQLite under REELFLOW_HOME) answers a flow call in about a second and keeps
every flow and task run for the UI; the ephemeral server takes 6-14 s per run and drops task-run records.
The server is told its own address, so its UI talks to it on whichever port it got, and it gets an
allow-listed environment: no provider keys, no Prefect settings of another server.
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
from typing import Any

from reelflow.schemas.errors import ReelflowError

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0
SETTINGS_TIMEOUT_S = 15.0
# All the server inherits from the caller: where programs and files are, who and where the user is. Nothing else.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
INHERITED_PREFIX = "LC_"


def reelflow_home() -> Path:
    return Path(os.environ.get("REELFLOW_HOME") or Path.home() / ".reelflow").expanduser().absolute()


@dataclass(frozen=True)
class ServerInfo:
    url: str
    pid: int | None
    home: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def _state_file(home: Path) -> Path:
    return home / "server.json"


def _healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _settings(url: str) -> dict[str, Any] | None:
    """The settings the Prefect server at `url` runs with; None when none answers there.

    The first answer of a busy new server can take seconds: a short timeout would start a second server beside it.
    """
    try:
        with urllib.request.urlopen(f"{url}/api/admin/settings", timeout=SETTINGS_TIMEOUT_S) as response:
            settings = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def _ui_talks_to_itself(info: ServerInfo) -> bool:
    """False for a server started before reelflow told it its own address: its UI talks to port 4200."""
    settings = _settings(info.url) or {}
    return settings.get("server", {}).get("ui", {}).get("api_url") == info.api_url


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((HOST, port)) != 0


def _pick_port() -> int:
    """REELFLOW_SERVER_PORT (default 4200) if free, else any free port; 0 asks for any free port."""
    wanted = int(os.environ.get("REELFLOW_SERVER_PORT") or DEFAULT_PORT)
    if wanted and _port_free(wanted):
        return wanted
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def running_server(home: Path | None = None) -> ServerInfo | None:
    """The server this home started earlier, if it still answers (and is that server, not another on its port)."""
    home = home or reelflow_home()
    try:
        state = json.loads(_state_file(home).read_text())
    except (FileNotFoundError, ValueError):
        return None
    info = ServerInfo(url=state["url"], pid=state.get("pid"), home=home)
    settings = _settings(info.url)
    return info if settings is not None and settings.get("home") == str(home.absolute() / "prefect") else None


def prefect_env(home: Path) -> dict[str, str]:
    """Settings for the server and its clients: state under REELFLOW_HOME, no telemetry."""
    return {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }


def server_env(home: Path, port: int) -> dict[str, str]:
    """The server's whole environment: the allow-listed basics, its home, and its own address for the API and the UI."""
    inherited = {key: value for key, value in os.environ.items() if key in INHERITED or key.startswith(INHERITED_PREFIX)}
    url = f"http://{HOST}:{port}"
    return inherited | prefect_env(home) | {
        "REELFLOW_HOME": str(home),
        "PREFECT_SERVER_API_HOST": HOST,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_UI_API_URL": f"{url}/api",  # what the UI's /ui-settings tells the browser to talk to
        "PREFECT_UI_URL": url,
    }


def start_server(home: Path | None = None) -> ServerInfo:
    """Start a local server (or reuse the one running for this home) and wait until it answers."""
    home = (home or reelflow_home()).absolute()  # the server runs in it: a relative home would be read from there
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = running_server(home)
        if existing is not None and _ui_talks_to_itself(existing):
            return existing
        if existing is not None:
            stop_server(home)
        port = _pick_port()
        url = f"http://{HOST}:{port}"
        prefect_cli = Path(sys.executable).with_name("prefect")
        # cwd: the home, so no .env or prefect.toml of the caller's folder is read as settings.
        with (home / "server.log").open("ab") as log:
            process = subprocess.Popen(
                [str(prefect_cli), "server", "start", "--host", HOST, "--port", str(port)],
                env=server_env(home, port), cwd=home, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ReelflowError(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.2)
        _state_file(home).write_text(json.dumps({"url": url, "pid": process.pid}))
        return ServerInfo(url=url, pid=process.pid, home=home)


def stop_server(home: Path | None = None) -> ServerInfo | None:
    """Stop the server this home started and return it; None if none was running."""
    home = home or reelflow_home()
    info = running_server(home)
    _state_file(home).unlink(missing_ok=True)
    if info is None or info.pid is None:
        return None
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + 15
    while _healthy(info.url, timeout=0.3) and time.monotonic() < deadline:
        time.sleep(0.2)
    return info


def connect() -> str:
    """Point this process's Prefect client at the server to use; returns the API URL."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = reelflow_home()
    info = start_server(home)
    for key, value in prefect_env(home).items():
        os.environ.setdefault(key, value)
    os.environ["PREFECT_API_URL"] = info.api_url
    os.environ["PREFECT_UI_URL"] = info.url
    return info.api_url
