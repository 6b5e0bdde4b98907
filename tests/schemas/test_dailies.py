"""Dailies states, decisions and which take each shot renders next."""

from __future__ import annotations

import pytest

from reelflow.schemas.dailies import Dailies, DailiesShot, decisions_from
from reelflow.schemas.errors import ContractError
from reelflow.schemas.qc import Routing

AT = "2026-11-24T12:00:00+00:00"


def episode(statuses: dict[int, str], takes: dict[int, int] | None = None) -> Dailies:
    shots = [DailiesShot(shot=n, status=s, take=(takes or {}).get(n, 1)) for n, s in statuses.items()]  # type: ignore[arg-type]
    return Dailies(project="TST", episode=1, shots=shots)


def test_a_pending_shot_cannot_be_decided() -> None:
    review = DailiesShot(shot=3)
    with pytest.raises(ContractError, match="shot 3: has no take to review yet"):
        review.decide("approved", at=AT, by="test")
    assert review.history == [] and review.status == "pending"


def test_approve_then_retake_clears_the_approval_and_keeps_history() -> None:
    review = DailiesShot(shot=1)
    review.rendered(1, "pass", at=AT)
    review.decide("approved", at=AT, by="cli", note="lovely")
    assert (review.status, review.approved_take, review.cut_take) == ("approved", 1, 1)
    review.decide("retake", at=AT, by="cli", note="<b>too dark</b>")
    assert (review.status, review.approved_take, review.note) == ("retake", None, "<b>too dark</b>")
    review.rendered(2, "review", at=AT)
    assert (review.status, review.take, review.cut_take) == ("needs_review", 2, 2)
    assert [(h.status, h.take, h.by) for h in review.history] == [
        ("generated", 1, "render"), ("approved", 1, "cli"), ("retake", 1, "cli"), ("needs_review", 2, "render"),
    ]


def test_takes_to_render_keeps_approved_and_raises_retakes() -> None:
    dailies = episode({1: "approved", 2: "retake", 3: "generated", 4: "pending"}, takes={2: 3, 3: 2})
    assert dailies.takes_to_render([1, 2, 3, 4]) == ({2: 4, 3: 2, 4: 1}, [1])
    assert dailies.takes_to_render([1, 2, 3, 4], retakes_only=True) == ({2: 4}, [])
    assert dailies.takes_to_render([3]) == ({3: 2}, [])


def test_with_shots_adds_pending_entries_in_storyboard_order() -> None:
    dailies = episode({2: "approved"}).with_shots([1, 2, 3])
    assert [(r.shot, r.status) for r in dailies.shots] == [(1, "pending"), (2, "approved"), (3, "pending")]
    with pytest.raises(ContractError, match="shot 9 is not in episode 1"):
        dailies.shot(9)


def test_decisions_from_lists_refuses_a_shot_in_two_lists() -> None:
    assert decisions_from([1, 2], [3], []) == {1: "approved", 2: "approved", 3: "retake"}
    with pytest.raises(ContractError, match="shot 2: given as both approved and needs_review"):
        decisions_from([2], [], [2])


@pytest.mark.parametrize(("gate1", "scores", "route"), [
    ([], [0.9, 0.7], "pass"),
    ([], [0.9, 0.5], "review"),
    ([], [0.39], "reject"),
    (["first: blur"], [1.0], "reject"),
    ([], [], "review"),
    (["first: blur"], [], "reject"),
])
def test_routing_by_gate1_and_the_lowest_score(gate1: list[str], scores: list[float], route: str) -> None:
    assert Routing().route(gate1, scores) == route


def test_a_try_gate2_could_not_judge_passes_only_when_the_project_opts_in() -> None:
    assert Routing().route([], []) == "review", "Gate 2 skipped is never a pass by default"
    assert Routing(require_gate2=False).route([], []) == "pass"
    assert Routing(require_gate2=False).route(["first: blur"], []) == "reject"


def test_routing_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Routing(pass_at=1.5)
    with pytest.raises(ValueError):
        Routing.model_validate({"max_regenerations": 2, "retries": 3})


def test_held_keyframes_are_approved_apart_from_the_take_and_a_retake_drops_them() -> None:
    review = DailiesShot(shot=3)
    review.held(1, {"first": "a", "last": "b"}, at="t0")
    assert (review.status, review.approved_frames) == ("keyframes_review", None)
    with pytest.raises(ContractError, match="approve its keyframes"):
        review.decide("approved", at="t1", by="cli")
    review.decide("keyframes_approved", at="t1", by="cli")
    assert (review.status, review.take, review.approved_take) == ("keyframes_approved", 1, None)
    assert review.approved_frames == {"first": "a", "last": "b"}
    review.held(1, {"first": "a", "last": "b"}, at="t2")
    assert review.status == "keyframes_approved", "held again on the same frames: still approved"
    review.held(1, {"first": "c", "last": "b"}, at="t3")
    assert (review.status, review.approved_frames) == ("keyframes_review", None), "other frames: asked again"
    review.decide("retake", at="t4", by="cli")
    assert review.keyframes is None, "a retake makes new keyframes"
    with pytest.raises(ContractError, match="no keyframes wait"):
        review.decide("keyframes_approved", at="t5", by="cli")
