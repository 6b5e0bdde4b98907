"""Shots start longest chain first: an episode must not end waiting on a long video started last."""

from __future__ import annotations

from pathlib import Path

from reelflow.flows.render import longest_first, shot_jobs
from reelflow.schemas.load import load_project, load_storyboard

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"


def test_standard_flf_shots_start_first_then_triptychs_then_held_frames_longest_first() -> None:
    folder = load_project(str(EXAMPLE))
    storyboard = load_storyboard(folder, 1)
    jobs = shot_jobs(folder, storyboard, {shot.shot: 1 for shot in storyboard.shots}, "run")
    ordered = longest_first(jobs)
    assert sorted(job.shot.shot for job in ordered) == [shot.shot for shot in storyboard.shots]
    approaches = [job.shot.generation_approach.value for job in ordered]
    standard, triptych = approaches.count("standard_flf"), approaches.count("triptych_split_flf")
    assert standard and triptych
    assert set(approaches[:standard]) == {"standard_flf"}
    assert set(approaches[standard:standard + triptych]) == {"triptych_split_flf"}
    assert set(approaches[standard + triptych:]) <= {"held_frame_push", "held_frame_static"}
    for rank in range(3):
        same = [job for job in ordered if job.chain_rank == rank]
        assert [job.shot.duration_s for job in same] == sorted((job.shot.duration_s for job in same), reverse=True)
        in_storyboard_order = [job.shot.shot for job in same if job.shot.duration_s == same[0].shot.duration_s]
        assert in_storyboard_order == sorted(in_storyboard_order), "ties keep the storyboard's order"
