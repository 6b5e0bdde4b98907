"""Shots start long chains first, held frames spread among them: an episode must not end waiting on a long video
started last, nor on the media work of every held frame at once."""

from __future__ import annotations

from pathlib import Path

from reelflow.flows.render import shot_jobs, start_order
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.tasks.job import ShotJob

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leviathan"
HELD = {"held_frame_push", "held_frame_static"}


def _jobs(copies: int = 1) -> list[ShotJob]:
    """EP1's jobs, its shots repeated `copies` times under new numbers (a long episode of the same mix)."""
    folder = load_project(str(EXAMPLE))
    storyboard = load_storyboard(folder, 1)
    shots = [shot.model_copy(update={"shot": copy * len(storyboard.shots) + shot.shot})
             for copy in range(copies) for shot in storyboard.shots]
    storyboard = storyboard.model_copy(update={"shots": shots})
    return shot_jobs(folder, storyboard, {shot.shot: 1 for shot in shots}, "run")


def test_long_chains_start_longest_first_and_held_frames_keep_their_order() -> None:
    jobs = _jobs()
    ordered = start_order(jobs)
    assert sorted(job.shot.shot for job in ordered) == sorted(job.shot.shot for job in jobs)
    long = [job.shot.generation_approach.value for job in ordered if job.shot.generation_approach.value not in HELD]
    standard = long.count("standard_flf")
    assert standard and long.count("triptych_split_flf")
    assert set(long[:standard]) == {"standard_flf"} and set(long[standard:]) == {"triptych_split_flf"}
    for rank in range(3):
        same = [job for job in ordered if job.chain_rank == rank]
        assert [job.shot.duration_s for job in same] == sorted((job.shot.duration_s for job in same), reverse=True)
        in_storyboard_order = [job.shot.shot for job in same if job.shot.duration_s == same[0].shot.duration_s]
        assert in_storyboard_order == sorted(in_storyboard_order), "ties keep the storyboard's order"


def test_held_frames_are_spread_through_the_order_not_left_to_the_end() -> None:
    ordered = start_order(_jobs(copies=10))
    held = [index for index, job in enumerate(ordered) if job.shot.generation_approach.value in HELD]
    total, share = len(ordered), len(ordered) / len(held)
    assert ordered[0].shot.generation_approach.value == "standard_flf"
    # the i-th held frame sits within one share of (i + 1/2) shares into the order: none bunched at either end
    assert all(abs(index - (i + 0.5) * share) <= share for i, index in enumerate(held))
    last_quarter = sum(index >= 0.75 * total for index in held)
    assert abs(last_quarter - len(held) / 4) <= 1
