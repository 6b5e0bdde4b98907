"""The studio's tests: a project in a git repository with two commits, and `reelflow` runs that leave no process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reelflow.cli import studio

from conftest import REELFLOW, CliResult
from projects import PROJECT, storyboard, write_project

GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
# Nightly at 03:30 in Paris: 01:30 or 02:30 UTC, never 02:00 UTC (the default's) nor 03:30 UTC.
NIGHTLY = {"timezone": "Europe/Paris", "nightly": "30 3 * * *"}
ONE_SLOT = {"concurrency": {"local": 1}}  # one local call at a time, across every process of the studio
Reelflow = Callable[..., CliResult]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=os.environ | GIT_ENV)
    return done.stdout.strip()


@pytest.fixture
def pushed_project(tmp_path: Path) -> Path:
    """Episodes 1 and 2 (two quick shots each) committed, then a commit that changes episode 2's second shot."""
    root = tmp_path / "proj"
    write_project(root, storyboard(1, only=(3, 4)), PROJECT | NIGHTLY | ONE_SLOT)
    write_project(root, storyboard(2, only=(3, 4)), PROJECT | NIGHTLY | ONE_SLOT)
    (root / ".gitignore").write_text(".reelflow/\nstoryboards/assets/\nstoryboards/dailies_ep_*.json\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two episodes")
    edited = storyboard(2, only=(3, 4))
    edited["shots"][1]["first_frame_prompt"] = "Ana alone at the window, the lights out"
    (root / "storyboards" / "storyboard_ep_002.json").write_text(json.dumps(edited))
    git(root, "commit", "-q", "-am", "episode 2: shot 2 at night")
    return root


def cli_env(env: dict[str, str]) -> dict[str, str]:
    """`env` over this machine's basics (no Prefect or reelflow settings of the session)."""
    keep = {"REELFLOW_X264_PRESET", "REELFLOW_RETRY_DELAY_S"}
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "REELFLOW_")) or key in keep}
    quiet = {"COLUMNS": "200", "PREFECT_LOGGING_TO_API_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1"}
    return base | quiet | env


def cli(*args: str, env: dict[str, str], timeout: float = 240) -> CliResult:
    """Run `reelflow` with exactly `env` over this machine's basics (no Prefect or reelflow settings of the session)."""
    done = subprocess.run([str(REELFLOW), *args], capture_output=True, text=True, timeout=timeout, env=cli_env(env))
    return CliResult(done.returncode, done.stdout, done.stderr)


def tear_down(home: Path) -> None:
    """`studio down`'s work done again from studio.json, for a test that failed before or during its own `down`."""
    for record in studio.read_state(home).get("processes", []):
        if studio.alive(record["pid"], record["command"]):
            studio.stop_tree(record["pid"])


@pytest.fixture
def studio_home(prefect_api: str) -> Iterator[Path]:
    """The session server's home (its studio), torn down by pid after the test whatever happened."""
    home = Path(os.environ["REELFLOW_HOME"])
    yield home
    tear_down(home)
    (home / "studio.json").unlink(missing_ok=True)


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[Path]:
    """A REELFLOW_HOME of the test's own, its studio (server included) torn down by pid after the test."""
    home = tmp_path / "home"
    yield home
    tear_down(home)


@pytest.fixture
def reelflow() -> Reelflow:
    """`reelflow ARGS..., env={...}` in a subprocess, with the environment `cli` gives it."""
    return cli


@pytest.fixture
def reelflow_env() -> Callable[[dict[str, str]], dict[str, str]]:
    """The environment `reelflow` gets in these tests, for a run started in the background."""
    return cli_env
