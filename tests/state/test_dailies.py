"""Decisions are compared and set: one made on what a reviewer saw is refused where the shot changed since."""

from __future__ import annotations

from pathlib import Path

from reelflow.schemas.load import load_project, load_storyboard
from reelflow.state.dailies import apply_seen_decisions, changing_dailies, now, read_dailies

from projects import saved, write_project


def test_only_the_decisions_on_unchanged_shots_are_recorded(tmp_path: Path) -> None:
    folder = load_project(write_project(tmp_path / "proj"))
    board = load_storyboard(folder, 1)
    with changing_dailies(folder, board) as dailies:
        for number in (1, 2, 3):
            dailies.shot(number).rendered(1, "pass", at=now())
    shown = {review.shot: review.version for review in read_dailies(folder, board).shots}
    with changing_dailies(folder, board) as dailies:
        dailies.shot(2).rendered(2, "review", at=now())  # a render's new take, while the form waited

    _, stale = apply_seen_decisions(folder, board, {1: "approved", 2: "approved", 3: "retake"}, shown, by="prefect ui")
    assert len(stale) == 1 and stale[0].startswith("shot 2: changed since it was shown (now T02 needs_review by render")
    shots = saved(folder.root)
    assert (shots[1]["status"], shots[2]["status"], shots[3]["status"]) == ("approved", "needs_review", "retake")
    assert shots[2]["history"][-1]["by"] == "render"
