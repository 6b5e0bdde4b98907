"""The studio on a Prefect server of its own backed by Postgres (a throwaway cluster on a free port) and listening
beyond loopback behind an auth string: a git push rendered end to end, and `down` stopping all it started."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from reelflow.cli import server, studio

from conftest import CliResult
from postgres import BIN, NO_POSTGRES, new_database

Reelflow = Callable[..., CliResult]


pytestmark = pytest.mark.skipif(BIN is None, reason=NO_POSTGRES)


@pytest.fixture
def postgres(pg_server: str) -> str:
    """A fresh database on the test process's throwaway Postgres cluster (on a free port); the URL Prefect's server
    takes (with a password it must never show)."""
    return new_database(pg_server).replace("postgresql://postgres@", "postgresql+asyncpg://postgres:pg-secret@")


def count(database: str, table: str) -> int:
    """Rows in one of Prefect's tables, read straight from Postgres."""

    async def query() -> int:
        connection = await asyncpg.connect(database.replace("+asyncpg", ""))
        try:
            return int(await connection.fetchval(f"select count(*) from {table}"))
        finally:
            await connection.close()

    return asyncio.run(query())


def test_a_studio_on_postgres_renders_a_push(postgres: str, monkeypatch: pytest.MonkeyPatch, own_home: Path,
                                             pushed_project: Path, reelflow: Reelflow) -> None:
    home = own_home
    env = {"REELFLOW_HOME": str(home), "REELFLOW_SERVER_PORT": "0", server.AUTH: "studio:s3cret",
           "REELFLOW_FRAME_SCALE": "0.25"}  # the worker's renders: small pictures, none is measured
    monkeypatch.setenv(server.AUTH, env[server.AUTH])  # so this process may ask the server too
    up = reelflow("studio", "up", "--database", postgres, "--host", "0.0.0.0", "--json", env=env, timeout=300)
    assert up.code == 0, up.stdout + up.stderr
    status = up.json()
    api = status["api_url"]
    records = {record["role"]: record for record in studio.read_state(home)["processes"]}
    assert sorted(records) == ["server", "worker"]
    running = server.running_server(home)
    assert running is not None and running.pid == records["server"]["pid"]
    saved = (home / "server.json").read_text()
    assert "pg-secret" not in saved and "postgres:***@127.0.0.1" in saved
    port = api.removesuffix("/api").rsplit(":", 1)[1]
    assert status["ui_url"] == f"http://{socket.gethostname()}:{port}"
    assert httpx.get(f"{api}/health").status_code == 200
    assert httpx.post(f"{api}/flows/filter", json={"limit": 1, "offset": 0}).status_code == 401  # auth asked
    assert count(postgres, "deployment") == 10

    pushed = reelflow("push-event", str(pushed_project), "HEAD~1", "HEAD", "--wait", "--json", "--timeout", "240",
                      env=env, timeout=300)
    assert pushed.code == 0, pushed.stdout + pushed.stderr
    result = pushed.json()
    assert result["episodes"] == [2] and [(run["episode"], run["state"]) for run in result["runs"]] == [(2, "Completed")]
    assert (pushed_project / "storyboards" / "assets" / "ep_002" / "ep_002.mp4").is_file()
    assert count(postgres, "flow_run") >= 2  # render-changed and its episode's render-episode

    tree = [records["worker"]["pid"], *studio.descendants(records["worker"]["pid"]), records["server"]["pid"],
            *studio.descendants(records["server"]["pid"])]
    down = reelflow("studio", "down", env=env)
    assert down.code == 0, down.stderr
    assert [pid for pid in tree if studio.alive(pid)] == []
    assert server.running_server(home) is None and not (home / "studio.json").exists()
