"""`storyboards/dailies_ep_NNN.json`: each shot's review status, take, gate results, notes and history."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reelflow.schemas.errors import ContractError
from reelflow.schemas.qc import Route

# keyframes_review: the shot stopped after its keyframes' gates, before upscale and video are paid for;
# keyframes_approved: a person approved those frames, and the next render makes the shot's video from them
ReviewStatus = Literal["pending", "generated", "needs_review", "approved", "retake", "keyframes_review",
                       "keyframes_approved"]
Decision = Literal["approved", "retake", "needs_review", "keyframes_approved"]
DECISIONS: tuple[str, ...] = Decision.__args__


class Try(BaseModel):
    """One generation of part of a shot: its take, which try of that take, and the seed it was made with."""

    take: int
    attempt: int = Field(ge=1)
    seed: int


class KeyframeTry(Try):
    """One generation of a shot's keyframes and what the gates made of it."""

    route: Route
    gate1: list[str] = Field(default_factory=list, description="Gate 1 failures, one line each")
    scores: dict[str, float] = Field(default_factory=dict, description="Gate 2 score per keyframe role")
    reasons: list[str] = Field(default_factory=list, description="Gate 2 reasons")


class ClipCheck(Try):
    """Clip QC on one try of a shot's video: black and frozen runs, frame count, fps and duration of each file."""

    passed: bool
    failures: list[str] = Field(default_factory=list, description="one line per failed check, naming the file")


class HeldKeyframes(BaseModel):
    """The raw keyframes a shot stopped at for review (sha256 by role), and whether a person approved them."""

    take: int
    frames: dict[str, str]
    approved: bool = False


class HistoryEvent(BaseModel):
    at: str
    status: ReviewStatus
    take: int
    by: str
    note: str | None = None


class DailiesShot(BaseModel):
    shot: int
    status: ReviewStatus = "pending"
    take: int = Field(1, ge=1, le=99, description="the shot's latest take")
    approved_take: int | None = None
    note: str | None = None
    gates: list[KeyframeTry] = Field(default_factory=list)
    clip_checks: list[ClipCheck] = Field(default_factory=list)
    history: list[HistoryEvent] = Field(default_factory=list)
    keyframes: HeldKeyframes | None = Field(None, description="the keyframes held for review before video, if any")

    @property
    def approved_frames(self) -> dict[str, str] | None:
        """The raw keyframes (sha256 by role) a person approved for video, if any."""
        return self.keyframes.frames if self.keyframes is not None and self.keyframes.approved else None

    @property
    def version(self) -> int:
        """Grows with every change of status or take (each is a history event): what a reader saw, to compare and set."""
        return len(self.history)

    @property
    def cut_take(self) -> int:
        """The take the cut uses: the approved one, else the latest."""
        return self.approved_take or self.take

    def move(self, status: ReviewStatus, *, at: str, by: str, note: str | None = None) -> None:
        self.status = status
        self.history.append(HistoryEvent(at=at, status=status, take=self.take, by=by, note=note))

    def decide(self, decision: Decision, *, at: str, by: str, note: str | None = None) -> None:
        """A reviewer's approve / retake / needs-review; a shot with nothing rendered cannot be decided."""
        if self.status == "pending":
            raise ContractError(f"shot {self.shot}: has no take to review yet (status pending); render it first")
        if decision == "keyframes_approved":
            self._approve_keyframes(at=at, by=by, note=note)
            return
        if decision == "approved" and self.status in ("keyframes_review", "keyframes_approved"):
            raise ContractError(f"shot {self.shot}: T{self.take:02d} has keyframes but no video yet (status "
                                f"{self.status}); approve its keyframes, then render it")
        if decision == "retake":
            self.keyframes = None  # a retake makes new keyframes
        if decision == "approved":
            self.approved_take = self.take
        elif self.approved_take == self.take:
            self.approved_take = None
        if note is not None:
            self.note = note
        self.move(decision, at=at, by=by, note=note)

    def _approve_keyframes(self, *, at: str, by: str, note: str | None) -> None:
        """A person approves the keyframes the shot stopped at: its next render makes the video from them."""
        if self.keyframes is None or self.status not in ("keyframes_review", "keyframes_approved"):
            raise ContractError(f"shot {self.shot}: no keyframes wait for review (status {self.status})")
        self.keyframes = self.keyframes.model_copy(update={"approved": True})
        if note is not None:
            self.note = note
        self.move("keyframes_approved", at=at, by=by, note=note)

    def held(self, take: int, frames: dict[str, str], *, at: str) -> None:
        """A render stopped `take` after its keyframes' gates, for a person to review the frames before video."""
        self.take = take
        approved = self.keyframes is not None and self.keyframes.approved and self.keyframes.frames == frames
        self.keyframes = HeldKeyframes(take=take, frames=frames, approved=approved)
        status = "keyframes_approved" if approved else "keyframes_review"
        if (self.status, self.history[-1].take if self.history else None) != (status, take):
            self.move(status, at=at, by="render")

    def rendered(self, take: int, route: Route, *, at: str) -> None:
        """A render finished `take`: generated, or needs_review where Gate 2 could not decide."""
        self.take = take
        self.move("needs_review" if route == "review" else "generated", at=at, by="render")


class Dailies(BaseModel):
    project: str
    episode: int
    shots: list[DailiesShot] = Field(default_factory=list)

    def shot(self, number: int) -> DailiesShot:
        for review in self.shots:
            if review.shot == number:
                return review
        raise ContractError(f"dailies: shot {number} is not in episode {self.episode}")

    def takes_to_render(self, numbers: list[int], *, retakes_only: bool = False) -> tuple[dict[int, int], list[int]]:
        """The take each selected shot renders now (a retake's is T+1), and the approved shots kept as they are."""
        render: dict[int, int] = {}
        kept: list[int] = []
        for number in numbers:
            review = self.shot(number)
            if review.status == "retake":
                render[number] = review.take + 1
            elif review.status == "keyframes_approved" and retakes_only:
                render[number] = review.take  # approved frames wait for their video like a retake waits
            elif review.status == "approved":
                kept.append(number)
            elif not retakes_only:
                render[number] = review.take
        return render, [] if retakes_only else kept

    def with_shots(self, numbers: list[int]) -> Dailies:
        """This dailies with a pending entry for every storyboard shot it lacks, in storyboard order."""
        known = {review.shot: review for review in self.shots}
        shots = [known.get(number) or DailiesShot(shot=number) for number in numbers]
        return self.model_copy(update={"shots": shots + [r for r in self.shots if r.shot not in set(numbers)]})


def decisions_from(approved: list[int], retake: list[int], needs_review: list[int],
                   keyframes_approved: list[int] | None = None) -> dict[int, Decision]:
    """One decision per shot from the lists; a shot in two lists is an error."""
    decisions: dict[int, Decision] = {}
    lists = (("approved", approved), ("retake", retake), ("needs_review", needs_review),
             ("keyframes_approved", keyframes_approved or []))
    for decision, numbers in lists:
        for number in numbers:
            if number in decisions and decisions[number] != decision:
                raise ContractError(f"shot {number}: given as both {decisions[number]} and {decision}")
            decisions[number] = decision  # type: ignore[assignment]
    return decisions
