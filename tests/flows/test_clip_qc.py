"""Clip QC after the video stages: a stuck video is made again with a new seed, then fails the shot with findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelflow.schemas.assets import AssetRef, MediaInfo
from reelflow.schemas.dailies import ClipCheck
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.ledger import Ledger
from reelflow.tasks.clip import make_clip
from reelflow.tasks.clip_qc import ClipQC, check_clips
from reelflow.tasks.job import StageResult
from reelflow.tasks.shot import ClipRejected, checked_video
from reelflow.tasks.video import make_video

from conftest import run_cli
from projects import PROJECT, saved, storyboard, write_project

FLF_AND_STATIC = (2, 4)


def test_stuck_video_is_regenerated_then_fails_the_shot_with_findings(tmp_path: Path, prefect_api: str) -> None:
    root = write_project(tmp_path / "proj", storyboard(only=FLF_AND_STATIC), PROJECT | {"qc": {"max_regenerations": 1}})
    result = run_cli("render", str(root), "--episode", "1", "--json", env={"REELFLOW_LOCAL_FAULTS": "stuck_video=1"})
    assert result.code == 1
    [failure] = result.json()["failures"]
    assert (failure["shot"], failure["stage"]) == (1, "clip-qc")
    assert failure["reason"].startswith("clip QC failed 2 times (last: seg1: frozen_run: longest run of frozen")
    shots = saved(root)
    checks = shots[1]["clip_checks"]
    assert [(c["attempt"], c["passed"]) for c in checks] == [(1, False), (2, False)]
    assert checks[0]["seed"] != checks[1]["seed"]
    assert [c["passed"] for c in shots[2]["clip_checks"]] == [True]  # a held frame: no video model, nothing stuck
    videos = [row for row in Ledger.at(root / ".reelflow").rows() if row.stage == "video"]
    assert len(videos) == 2  # each try's video is paid for
    assert not list((root / "storyboards" / "assets" / "ep_001").glob("TST_EP001_S01_*"))


def _ref(name: str) -> AssetRef:
    return AssetRef(path=Path(name), sha256=name, media=MediaInfo(kind="video", width=8, height=8))


def _job(tmp_path: Path, max_regenerations: int = 2) -> Any:
    from reelflow.flows.render import shot_jobs

    root = write_project(tmp_path / "proj", storyboard(only=(2,)), PROJECT | {"qc": {"max_regenerations": max_regenerations}})
    folder = load_project(root)
    return shot_jobs(folder, load_storyboard(folder, 1), {1: 1}, run="test")[0]


def _runner(verdicts: list[list[str]]) -> Any:
    """A stage runner that makes nothing: video and clip stand-ins, and Clip QC's verdicts in turn."""
    seeds: list[int] = []

    def run(stage_task: Any, job: Any, *args: Any) -> Any:
        if stage_task is make_video:
            seeds.append(job.seed)
            return StageResult(assets={"seg1": _ref(f"seg-{job.attempt}")})
        if stage_task is make_clip:
            return StageResult(assets={"clip": _ref(f"clip-{job.attempt}")})
        assert stage_task is check_clips
        return ClipQC(failures=verdicts.pop(0))

    run.seeds = seeds  # type: ignore[attr-defined]
    return run


def test_a_stuck_try_is_replaced_by_the_next_passing_one(tmp_path: Path) -> None:
    job = _job(tmp_path)
    run = _runner([["seg1: frozen_run: stuck"], []])
    checks: list[ClipCheck] = []
    video, clip = checked_video(job, StageResult(), run, checks, regenerations=2)
    assert clip.assets["clip"].sha256 == "clip-2" and video.assets["seg1"].sha256 == "seg-2"
    assert [(c.attempt, c.passed, c.failures) for c in checks] == [(1, False, ["seg1: frozen_run: stuck"]), (2, True, [])]
    assert run.seeds[0] == job.seed and run.seeds[1] != job.seed and checks[1].seed == run.seeds[1]


def test_no_regenerations_left_fails_at_the_first_stuck_try(tmp_path: Path) -> None:
    job = _job(tmp_path)
    checks: list[ClipCheck] = []
    with pytest.raises(ClipRejected, match=r"clip QC failed 1 time \(last: seg1: black_run: dark\)"):
        checked_video(job, StageResult(), _runner([["seg1: black_run: dark"]]), checks, regenerations=0)
    assert [c.passed for c in checks] == [False]
