"""A render's progress: shots finished of all, each shot's stage and state, elapsed time and cost so far."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from rich.console import Console

from reelflow.cli.live import ProgressView, cost_words
from reelflow.schemas.requests import Generation
from reelflow.state.cache import MEDIA, Operation, run_cached
from reelflow.state.progress import StageEvent, subscribe
from reelflow.state.store import AssetStore

from conftest import REELFLOW, run_cli
from projects import write_project


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def event(shot: int, stage: str, status: Any, calls: int = 0, cost: float = 0.0, **more: Any) -> StageEvent:
    return StageEvent("run", shot, stage, status, calls, cost, **more)


def test_a_shot_is_done_when_anything_was_made_cached_when_nothing_was() -> None:
    clock, lines = Clock(), []
    view = ProgressView({1: "standard_flf", 2: "held_frame_static", 3: "held_frame_push"}, lines.append, clock)
    assert view.headline() == "0/3 shots finished · 0.0 s elapsed · cost so far $0.000"
    assert [shot.state for shot in view.shots.values()] == ["waiting"] * 3

    clock.now = 101.0
    view(event(1, "keyframes", "running"))
    assert (view.shots[1].stage, view.shots[1].state) == ("keyframes", "running")
    view(event(1, "keyframes", "done", 1, 0.05, shadow=True))
    view(event(1, "clip", "running"))
    view(event(1, "clip", "cached"))
    assert (view.shots[1].stage, view.shots[1].state, lines) == ("clip", "running", [])
    clock.now = 104.0
    view(event(1, "shot", "done"))

    view(event(2, "keyframes", "running"))
    view(event(2, "keyframes", "cached"))
    view(event(2, "shot", "done"))

    view(event(3, "clip", "running"))
    clock.now = 105.5
    view(event(3, "clip", "done"))  # a media operation made now: no call, no cost, yet not cached
    view(event(3, "shot", "done"))

    assert [shot.state for shot in view.shots.values()] == ["done", "cached", "done"]
    assert lines == [
        "shot 1/3: S01 rendered (1 call, $0.050 shadow) in 3.0 s · 4.0 s elapsed · cost so far $0.050 shadow",
        "shot 2/3: S02 cached (0 calls, $0.000) in 0.0 s · 4.0 s elapsed · cost so far $0.050 shadow",
        "shot 3/3: S03 rendered (0 calls, $0.000) in 1.5 s · 5.5 s elapsed · cost so far $0.050 shadow",
    ]
    assert view.headline() == "3/3 shots finished · 5.5 s elapsed · cost so far $0.050 shadow"


def test_a_failed_shot_says_where_and_why_and_counts_as_finished() -> None:
    clock, lines = Clock(), []
    view = ProgressView({1: "standard_flf", 2: "standard_flf"}, lines.append, clock)
    view(event(1, "keyframes", "done", 1, 0.05, shadow=True))
    view(event(2, "keyframes", "done", 1, 0.40))  # a cloud provider's cost is charged
    view(event(1, "video", "running"))
    clock.now = 102.0
    view(event(1, "video", "failed", detail="local rejected the content"))
    view(event(1, "shot", "done"))  # nothing after the failure changes the shot
    view(event(9, "keyframes", "running"))  # a shot this render does not make

    assert (view.shots[1].state, view.shots[1].stage, view.shots[2].state) == ("failed", "video", "running")
    assert lines == ["shot 1/2: S01 failed at video: local rejected the content (1 call, $0.050 shadow) in 2.0 s"
                     " · 2.0 s elapsed · cost so far $0.400 + $0.050 shadow"]
    assert view.headline() == "1/2 shots finished (1 failed) · 2.0 s elapsed · cost so far $0.400 + $0.050 shadow"
    assert 9 not in view.shots


def test_the_live_table_shows_the_headline_and_each_shots_stage_state_and_time() -> None:
    clock = Clock()
    view = ProgressView({3: "held_frame_push", 7: "standard_flf"}, clock=clock)
    view(event(3, "upscale", "running"))
    clock.now = 102.5
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(view.table())
    text = console.export_text()
    assert "render: 0/2 shots finished · 2.5 s elapsed · cost so far $0.000" in text
    assert re.search(r"S03 .*held_frame_push .*upscale .*running .*0 .*\$0\.000 .*2\.5 s", text), text
    assert re.search(r"S07 .*standard_flf .*waiting", text), text


RUN_LINK = re.compile(r"run in the Prefect UI: (\S+)/runs/flow-run/([0-9a-f-]{36})")


def test_render_links_its_run_in_the_prefect_ui_as_the_run_starts(prefect_api: str, tmp_path: Path) -> None:
    """The run's page is printed while the run is still running; with --json nothing but the report is printed."""
    root = write_project(tmp_path / "proj")
    environment = os.environ | {"REELFLOW_LOCAL_LATENCY": "0.5", "PREFECT_LOGGING_TO_API_ENABLED": "false",
                                "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([str(REELFLOW), "render", str(root), "--episode", "1", "--shots", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        assert process.stdout is not None
        said = []
        while not (said and RUN_LINK.match(said[-1])) and (line := process.stdout.readline()):
            said.append(line.rstrip("\n"))
        link = RUN_LINK.match(said[-1])
        assert link and link[1] == prefect_api.removesuffix("/api"), said
        assert said[0].startswith(f"Prefect UI: {link[1]}")
        run = httpx.get(f"{prefect_api}/flow_runs/{link[2]}").json()  # seven calls of half a second each to go
        assert run["state_type"] == "RUNNING" and run["name"].startswith("TST-ep001-render-")
        process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    quiet = run_cli("render", str(root), "--episode", "1", "--shots", "2", "--json")
    assert quiet.code == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["shots"]["cached"] == 1


def test_cost_words_name_the_shadow_cost() -> None:
    assert cost_words(0.0, 0.0) == "$0.000"
    assert cost_words(1.25, 0.0) == "$1.250"
    assert cost_words(0.0, 0.5) == "$0.500 shadow"
    assert cost_words(1.25, 0.5) == "$1.250 + $0.500 shadow"


def test_a_media_operation_made_now_is_reported_done_and_cached_the_next_time(tmp_path: Path) -> None:
    from reelflow.tasks.calls import _report

    def make(scratch: Path) -> Generation:
        (scratch / "out.json").write_text("{}")
        return Generation(provider=MEDIA, model="fit", files=[scratch / "out.json"])

    job = SimpleNamespace(label="ep001-S03", run="run", shot_number=3)
    store, events = AssetStore(tmp_path), []
    operation = Operation("clip", 1, MEDIA, "fit", {"fps": 16})
    unsubscribe = subscribe(events.append)
    try:
        for _ in range(2):
            _report(job, "clip", run_cached(store, operation, make))
    finally:
        unsubscribe()
    assert [(e.shot, e.stage, e.status, e.provider_calls, e.shadow) for e in events] == [
        (3, "clip", "done", 0, False), (3, "clip", "cached", 0, False)]


LINE = re.compile(r"shot (\d)/2: (S0[34]) (rendered|cached) \((\d+) calls?, (\$\d+\.\d{3}(?: shadow)?)\) in \d+\.\d s"
                  r" · \d+\.\d s elapsed · cost so far (\$\d+\.\d{3}(?: shadow)?)")


def test_render_to_a_non_terminal_prints_one_line_per_finished_shot(prefect_api: str, tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj")
    result = run_cli("render", str(root), "--episode", "1", "--shots", "3,4")
    assert result.code == 0, result.stderr
    lines = [LINE.fullmatch(line) for line in result.stderr.splitlines() if line.startswith("shot ")]
    assert all(lines) and len(lines) == 2, result.stderr
    assert [m[1] for m in lines] == ["1", "2"] and {m[2] for m in lines} == {"S03", "S04"}
    assert {m[3] for m in lines} == {"rendered"} and all(int(m[4]) > 0 for m in lines)
    shadow = re.search(r"shadow cost (\$\d+\.\d{3})", result.stdout)
    assert shadow and lines[-1][6] == f"{shadow[1]} shadow", result.stdout
    ui = prefect_api.removesuffix("/api")  # where to watch it, first thing; the run's page again under the report
    opening, ending = result.stdout.splitlines()[:2], result.stdout.splitlines()[-1]
    assert opening[0] == f"Prefect UI: {ui}" and ending.startswith(f"run in the Prefect UI: {ui}/runs/flow-run/")
    assert opening[1] == ending, result.stdout

    again = run_cli("render", str(root), "--episode", "1", "--shots", "3,4", "--json")
    assert again.code == 0, again.stderr
    assert again.json()["shots"]["cached"] == 2
    assert not [line for line in again.stderr.splitlines() if line.startswith("shot ")], again.stderr
