"""The Prefect server reelflow talks to: PREFECT_API_URL if set, else a local one started once and reused.

A local `prefect server` (SQLite under REELFLOW_HOME) answers a flow call in about a second and keeps
every flow and task run for the UI; the ephemeral server takes 6-14 s per run and drops task-run records.
The server is told its own address, so its UI talks to it on whichever port it got, and it gets an
allow-listed environment: no provider keys, no Prefect settings of another server. A studio's server may keep its
database in Postgres and listen beyond this machine, which needs PREFECT_SERVER_API_AUTH_STRING (user:password).
Under a supervisor (systemd), `run_server` becomes the server in the foreground, with the same environment, its
database URL taken from the environment only (a password on a command line shows in every process list).
This module does not import prefect: the API URL must be in the environment before prefect loads.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from reelflow.schemas.env import reelflow_home
from reelflow.schemas.errors import ContractError, ReelflowError

HOST = "127.0.0.1"
WILDCARDS = ("0.0.0.0", "::")  # bind every interface
AUTH = "PREFECT_SERVER_API_AUTH_STRING"  # user:password the server asks of every client beyond /api/health
DEFAULT_PORT = 4200
START_TIMEOUT_S = 120.0
SETTINGS_TIMEOUT_S = 15.0
# Where a supervised server finds its database (a SQLAlchemy URL, password included): never on its command line.
DATABASE_ENV = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "REELFLOW_DATABASE")
# All the server inherits from the caller: where programs and files are, who and where the user is. Nothing else.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")
INHERITED_PREFIX = "LC_"
# The server records task runs from their events. Prefect writes each event in its own transaction by default; an
# episode makes 7 task runs per shot and 3 events each, and that was half the server's CPU (py-spy): 58 of 150 CPU s
# of a 200-shot render on 2 cores. Batches of up to 50, flushed at least every second, made it 27 CPU s; the UI shows
# a task run's state at most a second later.
TASK_RUN_RECORDER = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


@dataclass(frozen=True)
class ServerInfo:
    url: str  # where this machine's clients reach it
    pid: int | None
    home: Path
    ui_url: str | None = None  # where browsers reach its UI, when not at `url` (a server bound beyond loopback)
    command: tuple[str, ...] = ()  # how it was started

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def public_url(self) -> str:
        return self.ui_url or self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def _state_file(home: Path) -> Path:
    return home / "server.json"


def is_loopback(host: str) -> bool:
    """Whether a server bound to `host` is reachable from this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def addresses(host: str, port: int) -> tuple[str, str]:
    """Where this machine's clients reach a server bound to `host`:`port`, and where browsers reach its UI."""
    local = HOST if host in WILDCARDS or is_loopback(host) else host
    public = socket.gethostname() if host in WILDCARDS else local
    return f"http://{_bracketed(local)}:{port}", f"http://{_bracketed(public)}:{port}"


def masked(database: str | None) -> str | None:
    """A database URL with its password hidden, to show and to remember."""
    if database is None:
        return None
    parts = urllib.parse.urlsplit(database)
    if parts.password is None:
        return database
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def client_auth() -> str | None:
    """The user:password reelflow's clients send: PREFECT_API_AUTH_STRING, else the server's own from the environment."""
    return os.environ.get("PREFECT_API_AUTH_STRING") or os.environ.get(AUTH) or None


def healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether a Prefect server answers at `url` (its address, without /api)."""
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _settings(url: str) -> dict[str, Any] | None:
    """The settings the Prefect server at `url` runs with; None when none answers there.

    The first answer of a busy new server can take seconds: a short timeout would start a second server beside it.
    """
    request = urllib.request.Request(f"{url}/api/admin/settings")
    if (auth := client_auth()) is not None:
        request.add_header("Authorization", f"Basic {base64.b64encode(auth.encode()).decode()}")
    try:
        with urllib.request.urlopen(request, timeout=SETTINGS_TIMEOUT_S) as response:
            settings = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def _ui_talks_to_itself(info: ServerInfo) -> bool:
    """False for a server started before reelflow told it its own address: its UI talks to port 4200."""
    settings = _settings(info.url) or {}
    return settings.get("server", {}).get("ui", {}).get("api_url") == f"{info.public_url}/api"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def _free_port(host: str = HOST) -> int:
    """A port no one listens on now, on the address clients of a server bound to `host` use."""
    local = HOST if host in WILDCARDS or is_loopback(host) else host
    with socket.socket(_family(local), socket.SOCK_STREAM) as sock:
        sock.bind((local, 0))
        return int(sock.getsockname()[1])


def _pick_port(host: str = HOST) -> int:
    """REELFLOW_SERVER_PORT (default 4200) if free, else any free port; 0 asks for any free port."""
    wanted = int(os.environ.get("REELFLOW_SERVER_PORT") or DEFAULT_PORT)
    local = HOST if host in WILDCARDS or is_loopback(host) else host
    if wanted and _port_free(wanted, local):
        return wanted
    return _free_port(host)


def alive(pid: int, command: list[str] | tuple[str, ...] | None = None) -> bool:
    """Whether `pid` runs (not a zombie), and runs `command` when given (not another program that got its pid)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():  # not Linux: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process, but it runs
        return True
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        cmdline = (proc / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return command is None or cmdline.split(b"\0")[:-1] == [part.encode() for part in command]


def _recorded(home: Path) -> ServerInfo | None:
    """The server server.json names, answering or not."""
    try:
        state = json.loads(_state_file(home).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ServerInfo(url=state["url"], pid=state.get("pid"), home=home, ui_url=state.get("ui_url"),
                      command=tuple(state.get("command", ())))


def running_server(home: Path | None = None) -> ServerInfo | None:
    """The server this home started earlier, if it still answers (and is that server, not another on its port)."""
    home = home or reelflow_home()
    info = _recorded(home)
    if info is None:
        return None
    settings = _settings(info.url)
    return info if settings is not None and settings.get("home") == str(home.absolute() / "prefect") else None


def wait_for_server(home: Path | None = None, timeout_s: float = START_TIMEOUT_S) -> ServerInfo | None:
    """The server this home started, waiting up to `timeout_s` while the one server.json names is still starting (a
    supervised server at boot); None when none runs."""
    home = home or reelflow_home()
    deadline = time.monotonic() + timeout_s
    while (info := running_server(home)) is None:
        recorded = _recorded(home)
        if recorded is None or recorded.pid is None or not alive(recorded.pid, recorded.command):
            return None
        if time.monotonic() > deadline:
            raise ReelflowError(f"the Prefect server of {home} (pid {recorded.pid}) did not answer within "
                                f"{timeout_s:.0f} s at {recorded.url}")
        time.sleep(0.5)
    return info


def prefect_env(home: Path) -> dict[str, str]:
    """Settings for the server and its clients: state under REELFLOW_HOME, no telemetry."""
    return {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }


def server_env(home: Path, port: int, database: str | None = None, host: str = HOST) -> dict[str, str]:
    """The server's whole environment: the allow-listed basics, its home, its own address for the API and the UI, and
    its database (SQLite under the home unless given) and auth string (when it listens beyond this machine)."""
    inherited = {key: value for key, value in os.environ.items() if key in INHERITED or key.startswith(INHERITED_PREFIX)}
    url, public = addresses(host, port)
    env = inherited | prefect_env(home) | {
        "REELFLOW_HOME": str(home),
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_UI_API_URL": f"{public}/api",  # what the UI's /ui-settings tells the browser to talk to
        "PREFECT_UI_URL": public,
    } | TASK_RUN_RECORDER
    if database is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database
    if not is_loopback(host):
        env[AUTH] = env["PREFECT_API_AUTH_STRING"] = os.environ[AUTH]  # the server's own services call its API too
    return env


def _differs(state: dict[str, Any], database: str | None, host: str | None) -> str | None:
    """How a running server differs from the database and host asked for (None: not asked, or the same)."""
    if database is not None and state.get("database") != masked(database):
        return f"its database is {state.get('database') or 'SQLite under the home'}"
    if host is not None and state.get("host", HOST) != host:
        return f"it listens on {state.get('host', HOST)}"
    return None


def start_server(home: Path | None = None, database: str | None = None, host: str | None = None) -> ServerInfo:
    """Start a local server (or reuse the one running for this home) and wait until it answers.

    `database` (a SQLAlchemy URL, postgresql+asyncpg://...) and `host` apply to a server this call starts; a running
    server started with others is an error. A host beyond loopback needs PREFECT_SERVER_API_AUTH_STRING.
    """
    home = (home or reelflow_home()).absolute()  # the server runs in it: a relative home would be read from there
    if host is not None and not is_loopback(host) and not os.environ.get(AUTH):
        raise ContractError(f"--host {host}: a server reachable from other machines needs {AUTH} (user:password) set")
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = wait_for_server(home)  # a supervised server still starting is waited for, never doubled
        if existing is not None and _ui_talks_to_itself(existing):
            differs = _differs(json.loads(_state_file(home).read_text()), database, host)
            if differs is not None:
                raise ContractError(f"a server already runs for {home} at {existing.url} and {differs}: "
                                    "stop it first (reelflow server stop)")
            return existing
        if existing is not None:
            stop_server(home)
        host = host or HOST
        port = _pick_port(host)
        url, public = addresses(host, port)
        command = server_command(host, port)
        # cwd: the home, so no .env or prefect.toml of the caller's folder is read as settings.
        with (home / "server.log").open("ab") as log:
            process = subprocess.Popen(
                command, env=server_env(home, port, database, host), cwd=home, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ReelflowError(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.2)
        return _record(home, process.pid, host, port, database, command)


def server_command(host: str, port: int) -> tuple[str, ...]:
    """The Prefect server's command line: the address only (its database and auth string go in its environment)."""
    return (sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port))


def _record(home: Path, pid: int, host: str, port: int, database: str | None, command: tuple[str, ...]) -> ServerInfo:
    """Write server.json (the database's password masked) and return the server it names."""
    url, public = addresses(host, port)
    ui_url = public if public != url else None
    _state_file(home).write_text(json.dumps({"url": url, "pid": pid, "ui_url": ui_url, "host": host,
                                             "database": masked(database), "command": command}))
    return ServerInfo(url=url, pid=pid, home=home, ui_url=ui_url, command=command)


def database_from_env() -> str | None:
    """The database URL a supervised server is given in its environment (DATABASE_ENV, first set wins)."""
    return next((os.environ[name] for name in DATABASE_ENV if os.environ.get(name)), None)


def run_server(home: Path | None = None, host: str | None = None, port: int | None = None,
               database: str | None = None) -> NoReturn:
    """Become this home's Prefect server in the foreground (for systemd's Type=simple): the environment `server_env`
    gives, server.json recorded with this pid, then `prefect server start` replaces this process.

    `port`: REELFLOW_SERVER_PORT, else 4200, and no other (a supervised server keeps its address; 0 picks a free
    one). A server already running for this home is an error, as is a host beyond loopback without an auth string.
    """
    home = (home or reelflow_home()).absolute()
    host = host or HOST
    if not is_loopback(host) and not os.environ.get(AUTH):
        raise ContractError(f"--host {host}: a server reachable from other machines needs {AUTH} (user:password) set")
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = running_server(home)
        if existing is not None:
            raise ContractError(f"a server already runs for {home} at {existing.url} (pid {existing.pid}): "
                                "stop it first (reelflow server stop)")
        port = int(os.environ.get("REELFLOW_SERVER_PORT") or DEFAULT_PORT) if port is None else port
        port = port or _free_port(host)
        command = server_command(host, port)
        _record(home, os.getpid(), host, port, database, command)
    os.chdir(home)  # no .env or prefect.toml of the caller's folder is read as settings
    os.execve(sys.executable, list(command), server_env(home, port, database, host))


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
    while healthy(info.url, timeout=0.3) and time.monotonic() < deadline:
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
    if os.environ.get(AUTH):
        os.environ.setdefault("PREFECT_API_AUTH_STRING", os.environ[AUTH])
    os.environ["PREFECT_API_URL"] = info.api_url
    os.environ["PREFECT_UI_URL"] = info.public_url
    return info.api_url


def work_in_home() -> dict[str, str]:
    """A Prefect pull step (prefect.yaml): a deployment's flow run works in its own machine's REELFLOW_HOME.

    It runs on the worker when the run starts; a `{{ $REELFLOW_HOME }}` placeholder would instead be filled in by
    `prefect deploy` with the deploying machine's folder.
    """
    home = reelflow_home()
    home.mkdir(parents=True, exist_ok=True)
    return {"directory": str(home)}


def deployment_version() -> dict[str, str]:
    """A Prefect build step (prefect.yaml): every deployment carries the version of the reelflow that deployed it and
    of the prefect.yaml it came from, e.g. `0.1.0+yaml.1a2b3c4d`."""
    from importlib.metadata import version

    sha = hashlib.sha256((Path(__file__).resolve().parents[1] / "prefect.yaml").read_bytes()).hexdigest()
    return {"version": f"{version('reelflow')}+yaml.{sha[:8]}"}
