"""Two hosts, one studio: each a `reelflow` process with a home and a checkout of its own, sharing one Postgres
(state) and one S3 (blobs). An episode rendered across both pays for each content once, the budget holds across
both, a host killed mid-render leaves nothing held past its lease, and decisions made on one are seen by the other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from reelflow.state.db import PostgresDatabase, schema_name
from reelflow.state.ledger import Ledger

from checks import check_episode
from conftest import REELFLOW, CliResult, run_cli
from fakes.fal import FakeFal
from projects import PROJECT, git, storyboard, write_project
from s3 import make_bucket, moto_server, s3_env

CLEAN_SUBMITS = 15  # what one render of the four-shot episode submits to fal (test_cloud_render)
LEASE_S = 3.0
BUCKET = "studio-blobs"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_server() as endpoint:
        make_bucket(endpoint, BUCKET)
        yield endpoint


def clone(repo: Path, where: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(where))
    return where


def studio_repo(tmp_path: Path, project: dict[str, object]) -> Path:
    root = write_project(tmp_path / "origin", storyboard(1), project)
    (root / ".gitignore").write_text(".reelflow/\nstoryboards/assets/\nstoryboards/dailies_ep_*.json\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "episode 1")
    return root


def host_env(tmp_path: Path, name: str, state_url: str, s3: str, prefix: str, fal: FakeFal) -> dict[str, str]:
    """What a host of the studio runs with: its own home, the shared state and blob URLs, boto3's and fal's env."""
    return (fal.env() | s3_env(s3) | {"REELFLOW_HOME": str(tmp_path / f"home-{name}"), "REELFLOW_STATE_URL": state_url,
            "REELFLOW_BLOB_URL": f"s3://{BUCKET}/{prefix}", "REELFLOW_LEASE_S": str(LEASE_S)})


def start_render(checkout: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    environment = os.environ | {"REELFLOW_RETRY_DELAY_S": "0.01", "PREFECT_LOGGING_TO_API_ENABLED": "false"} | env
    return subprocess.Popen([str(REELFLOW), "render", str(checkout), "--episode", "1", "--json"], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finished(process: subprocess.Popen[str], timeout: float = 180) -> CliResult:
    stdout, stderr = process.communicate(timeout=timeout)
    return CliResult(process.returncode, stdout, stderr)


def held(state_url: str, code: str) -> dict[str, int]:
    """What is still held in the shared state (its lease not over): reservations, cache-key locks, provider slots."""
    schema = schema_name(code)
    with psycopg.connect(state_url) as connection:
        return {table: connection.execute(f"SELECT COUNT(*) FROM {table} WHERE lease_until >= "  # type: ignore[index]
                                          "extract(epoch from clock_timestamp())").fetchone()[0]
                for table in (f"{schema}.reservations", f"{schema}.key_locks", "reelflow.slots")}


def kill_while_waiting_on_fal(process: subprocess.Popen[str], ledger: Ledger, fal: FakeFal, submits: int) -> None:
    """SIGKILL the render once fal holds at least `submits` of its requests, each written down as pending and none
    being sent (see conftest.render_killed_in_flight: the window between fal's accept and the id written down is
    one no client can close)."""
    deadline = time.monotonic() + 90

    def waiting() -> int | None:
        count = fal.total_submits()
        sending = ledger.rows("status = 'submitting'")
        return count if count >= submits and not sending and len(ledger.rows("status = 'pending'")) == count else None

    while time.monotonic() < deadline:
        assert process.poll() is None, "the render ended before it was killed"
        count = waiting()
        if count is not None:
            time.sleep(0.3)
            if waiting() == count:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def paid_twice(state_url: str, code: str) -> list[str]:
    """Cache keys with more than one request fal accepted."""
    with psycopg.connect(state_url) as connection:
        rows = connection.execute(f"SELECT cache_key FROM {schema_name(code)}.requests WHERE status <> 'cancelled' "
                                  "GROUP BY cache_key HAVING COUNT(*) > 1").fetchall()
    return [row[0] for row in rows]


def test_a_host_killed_mid_render_leaves_the_episode_to_the_other_paid_once(
    tmp_path: Path, state_url: str, s3: str, prefect_api: str
) -> None:
    origin = studio_repo(tmp_path, PROJECT | {"code": "TWO", "providers": {"default": "fal"}, "review": {"keyframes": "none"}})
    first, second = clone(origin, tmp_path / "host-a"), clone(origin, tmp_path / "host-b")
    with FakeFal(slow_s=2.0) as fal:
        env_a = host_env(tmp_path, "a", state_url, s3, "run-1", fal)
        env_b = host_env(tmp_path, "b", state_url, s3, "run-1", fal)
        killed = start_render(first, env_a)
        survivor = start_render(second, env_b)  # both at work: each waits on the keys the other holds
        kill_while_waiting_on_fal(killed, Ledger(PostgresDatabase(state_url, schema_name("TWO"))), fal, 3)
        during = held(state_url, "TWO")  # what the dead host holds stays held until its lease ends
        assert during[f"{schema_name('TWO')}.key_locks"] >= 1 and during["reelflow.slots"] >= 1
        fal.slow_s = 0.0
        result = finished(survivor)
        assert result.code == 0, result.stderr
        assert fal.total_submits() == CLEAN_SUBMITS  # what a holds in fal's queue is polled by b, not sent again
        assert set(fal.submits_by_body.values()) == {1}
        assert paid_twice(state_url, "TWO") == []
        check_episode(second, 1)  # the cut made on the second host holds every shot
        assert held(state_url, "TWO") == {f"{schema_name('TWO')}.reservations": 0, f"{schema_name('TWO')}.key_locks": 0,
                                          "reelflow.slots": 0}

        # A decision made on one host is read on the other; the first host's render, all cached, materialises the
        # episode in its own checkout and pays nothing.
        approved = run_cli("dailies", str(second), "--episode", "1", "--approve", "1", env=env_b)
        assert approved.code == 0, approved.stderr
        again = run_cli("render", str(first), "--episode", "1", "--json", env=env_a)
        assert again.code == 0, again.stderr
        assert again.json()["provider_calls"] == 0 and fal.total_submits() == CLEAN_SUBMITS
        assert again.json().get("cut_skipped") is None, again.stdout
        check_episode(first, 1)
        seen = json.loads((first / "storyboards" / "dailies_ep_001.json").read_text())
        assert {shot["shot"]: shot["status"] for shot in seen["shots"]}[1] == "approved"


def test_a_budget_holds_across_two_hosts_rendering_at_once(
    tmp_path: Path, state_url: str, s3: str, prefect_api: str
) -> None:
    budget = 0.05  # about a third of the episode's price on fal
    origin = studio_repo(tmp_path, PROJECT | {"code": "BUD", "providers": {"default": "fal"},
                                              "review": {"keyframes": "none"}, "budget_usd": budget})
    first, second = clone(origin, tmp_path / "host-a"), clone(origin, tmp_path / "host-b")
    with FakeFal(slow_s=0.5) as fal:
        renders = [start_render(checkout, host_env(tmp_path, name, state_url, s3, "run-2", fal))
                   for name, checkout in (("a", first), ("b", second))]
        results = [finished(process) for process in renders]
    with psycopg.connect(state_url) as connection:
        spent = connection.execute(
            f"SELECT SUM(CASE WHEN status IN ('submitting', 'pending', 'unknown') THEN price_usd ELSE cost_usd END) "
            f"FROM {schema_name('BUD')}.requests WHERE shadow = 0").fetchone()[0]  # type: ignore[index]
    assert 0 < spent <= budget + 1e-9
    assert fal.billed_usd <= budget + 1e-9
    assert all("budget" in result.stdout + result.stderr for result in results)
    assert set(fal.submits_by_body.values()) == {1}
