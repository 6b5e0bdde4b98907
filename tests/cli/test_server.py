"""The local Prefect server: on a taken port it starts on another, and its UI and printed links use that one."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelflow.cli import server

from conftest import REELFLOW
from projects import write_project

KEYS = {"FAL_KEY": "fal-secret", "GEMINI_API_KEY": "gemini-secret", "RUNPOD_API_KEY": "runpod-secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret", "PREFECT_API_KEY": "prefect-secret"}
# Prefect settings of another server, in the caller's environment: none may reach reelflow's server.
ELSEWHERE = {"PREFECT_UI_API_URL": "http://127.0.0.1:9/api", "PREFECT_UI_URL": "http://127.0.0.1:9"}
WHERE = r"http://127\.0\.0\.1:(\d+) \(port \1, pid (\d+), home (.+)\)"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def reelflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The `reelflow` command with the session's Prefect settings left out, so it uses the home in `env`."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_", "REELFLOW_"))}
    return subprocess.run([str(REELFLOW), *args], capture_output=True, text=True, timeout=180,
                          env=base | {"COLUMNS": "200", "PREFECT_LOGGING_TO_API_ENABLED": "false"} | env)


def environ(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().split("=", 1) for entry in entries if b"=" in entry)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's environment from /proc")
def test_on_a_taken_port_the_ui_and_the_run_link_use_the_servers_own_port(tmp_path: Path, taken_port: int) -> None:
    home = tmp_path / "home"
    env = {"REELFLOW_HOME": str(home), "REELFLOW_SERVER_PORT": str(taken_port)} | KEYS | ELSEWHERE
    try:
        started = reelflow("server", "start", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        match = re.fullmatch(f"Prefect UI: {WHERE}", started.stdout.strip())
        assert match, started.stdout
        port, pid = int(match[1]), int(match[2])
        assert port != taken_port and Path(match[3]) == home
        assert reelflow("server", "status", env=env).stdout.strip() == f"running: {match[0].removeprefix('Prefect UI: ')}"
        assert server.start_server(home).pid == pid  # found again, not started again

        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/ui-settings").json()["api_url"] == f"{url}/api"
        server_env = environ(pid)
        assert not set(KEYS) & set(server_env)
        assert (server_env["PREFECT_UI_API_URL"], server_env["PREFECT_SERVER_API_PORT"]) == (f"{url}/api", str(port))

        rendered = reelflow("render", str(write_project(tmp_path / "proj")), "--episode", "1", "--shots", "4", env=env)
        assert rendered.returncode == 0, rendered.stderr
        link = re.search(r"run in the Prefect UI: (\S+/runs/flow-run/([0-9a-f-]{36}))", rendered.stdout)
        assert link and link[1].startswith(f"{url}/"), rendered.stdout
        assert rendered.stdout.startswith(f"Prefect UI: {url}  (reelflow's local server: it keeps running after the "
                                          "render; reelflow server stop stops it)\n"), rendered.stdout
        flow_run = httpx.get(f"{url}/api/flow_runs/{link[2]}").json()
        assert (flow_run["id"], flow_run["state_type"]) == (link[2], "COMPLETED")
        page = httpx.get(link[1], headers={"Accept": "text/html"}, follow_redirects=True)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

        stopped = reelflow("server", "stop", env=env)
        assert stopped.stdout.strip() == f"stopped: {match[0].removeprefix('Prefect UI: ')}"
        assert server.running_server(home) is None
    finally:
        server.stop_server(home)


def test_the_servers_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in (KEYS | ELSEWHERE | {"PREFECT_API_URL": "http://127.0.0.1:9/api", "LANG": "C.UTF-8"}).items():
        monkeypatch.setenv(key, value)
    env = server.server_env(tmp_path, 4321)
    assert not set(KEYS) & set(env)
    assert env["LANG"] == "C.UTF-8" and env["REELFLOW_HOME"] == str(tmp_path)
    assert env["PREFECT_API_URL"] == env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_UI_URL"] == "http://127.0.0.1:4321"


def test_the_server_records_task_runs_in_batches(prefect_api: str) -> None:
    """A render's task-run events are written 50 at a time, at least every second, not one transaction each."""
    settings = httpx.get(f"{prefect_api}/admin/settings").json()
    assert settings["server"]["services"]["task_run_recorder"] == {
        "enabled": True, "read_batch_size": 50, "batch_size": 50, "flush_interval": 1.0,
    }


@contextmanager
def prefect_lookalike(settings: dict[str, Any]) -> Iterator[str]:
    """A healthy 'Prefect server' on a free port that answers /api/admin/settings with `settings`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(settings if self.path == "/api/admin/settings" else True).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet: a test's server prints nothing."""

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as lookalike:
        threading.Thread(target=lookalike.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{lookalike.server_address[1]}"
        finally:
            lookalike.shutdown()


def test_another_server_on_the_recorded_port_is_neither_used_nor_stopped(tmp_path: Path) -> None:
    with prefect_lookalike({"home": "/elsewhere/prefect"}) as url:
        (tmp_path / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
        assert httpx.get(f"{url}/api/health").status_code == 200
        assert server.running_server(tmp_path) is None
        assert server.stop_server(tmp_path) is None


def test_a_server_whose_ui_talks_to_another_port_is_found_and_told_apart(tmp_path: Path) -> None:
    """A server an older reelflow started (its UI talks to 4200) is this home's, but start_server replaces it."""
    for ui_api_url, talks_to_itself in (("http://127.0.0.1:4200/api", False), (None, True)):
        settings = {"home": str(tmp_path / "prefect"), "server": {"ui": {"api_url": ui_api_url}}}
        with prefect_lookalike(settings) as url:
            settings["server"]["ui"]["api_url"] = ui_api_url or f"{url}/api"
            (tmp_path / "server.json").write_text(json.dumps({"url": url, "pid": os.getpid()}))
            info = server.running_server(tmp_path)
            assert info is not None and (info.url, info.home) == (url, tmp_path)
            assert server._ui_talks_to_itself(info) is talks_to_itself
