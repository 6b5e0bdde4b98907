"""The video plan: segments at the model's rate for the shot's duration, within what one call of the model makes."""

from __future__ import annotations

import pytest

from reelflow.providers.fal.endpoints import check_frames
from reelflow.schemas.segments import WAN22, FrameLimits, Segment, plan_segments
from reelflow.schemas.storyboard import KEYFRAME_ROLES, Approach

STANDARD, TRIPTYCH = KEYFRAME_ROLES[Approach.STANDARD_FLF], KEYFRAME_ROLES[Approach.TRIPTYCH]


def test_wan_limits_are_the_published_schemas() -> None:
    assert (WAN22.fps, WAN22.min_frames, WAN22.max_frames, WAN22.step) == (16, 17, 161, 4)


@pytest.mark.parametrize(("duration_s", "frames", "shown"), [
    (0.5, [17], 8), (0.8, [17], 13), (1.0, [17], 16), (3.0, [49], 48), (4.0, [65], 64), (5.0, [81], 80),
    (8.0, [129], 128), (10.0, [161], 160), (14.0, [113, 113], 224), (25.0, [137, 133, 133], 400),
])
def test_a_standard_shot_gets_its_duration_at_16_fps(duration_s: float, frames: list[int], shown: int) -> None:
    plan = plan_segments(STANDARD, duration_s)
    assert [segment.frames for segment in plan.segments] == frames
    assert plan.shown == shown and plan.joined - plan.shown == plan.trimmed


def test_a_long_shot_is_consecutive_segments_through_intermediate_keyframes() -> None:
    plan = plan_segments(STANDARD, 25.0)
    assert plan.segments == (Segment("seg1", 137, "first", "mid1"), Segment("seg2", 133, "seg1", "mid2"),
                             Segment("seg3", 133, "seg2", "last"))
    assert plan.keyframe_roles == ("first", "mid1", "mid2", "last") and plan.intermediates == ("mid1", "mid2")
    assert [segment.continues for segment in plan.segments] == [None, "seg1", "seg2"]
    assert plan.position("mid1") == pytest.approx(136 / 400)


def test_a_triptychs_halves_share_the_frames_and_meet_at_the_hero() -> None:
    assert [(s.first, s.last, s.frames) for s in plan_segments(TRIPTYCH, 5.0).segments] == [
        ("first", "hero", 41), ("hero", "last", 41)]
    long = plan_segments(TRIPTYCH, 30.0)
    assert [(s.first, s.last, s.frames) for s in long.segments] == [
        ("first", "mid1", 121), ("seg1", "hero", 121), ("hero", "mid2", 121), ("seg3", "last", 121)]
    assert long.keyframe_roles == ("first", "mid1", "hero", "mid2", "last") and long.position("hero") == 0.5


def test_held_frames_make_no_video() -> None:
    plan = plan_segments(KEYFRAME_ROLES[Approach.PUSH], 3.0)
    assert (plan.segments, plan.keyframe_roles, plan.describe()) == ((), ("first",), "no video model")


@pytest.mark.parametrize("anchors", [STANDARD, TRIPTYCH])
def test_every_duration_plays_at_1x_in_frame_counts_the_model_makes(anchors: tuple[str, ...]) -> None:
    for tenths in range(5, 301):
        duration = tenths / 10
        plan = plan_segments(anchors, duration)
        for segment in plan.segments:
            check_frames(segment.frames)  # 4k + 1 within 17..161: fal refuses anything else
        assert plan.joined >= plan.shown, duration
        assert abs(plan.shown / duration / WAN22.fps - 1.0) <= 0.05, duration
        raised = any(s.frames == WAN22.min_frames for s in plan.segments)
        assert plan.trimmed < WAN22.step or raised, (duration, plan.describe())


def test_other_limits_are_honoured() -> None:
    limits = FrameLimits(name="small", fps=24, min_frames=9, max_frames=49, step=8)
    plan = plan_segments(STANDARD, 4.0, limits)
    assert [segment.frames for segment in plan.segments] == [49, 49]
    assert plan.shown == 96 and plan.describe().endswith("@24 fps")
