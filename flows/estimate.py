"""What a render would submit now, and what it would cost: the render's own stages, walked as a dry run.

Cached work costs nothing; a stage downstream of work still to be made is priced as made too. The local
provider prices its calls at their shadow (cloud) cost, so an estimate equals its render's `cost_usd`. Shots that
only an upgrade of reelflow would make again are listed with why and what that costs; the total counts them only
where the project re-renders them (`"upgrades": "rerender"`), as its render does. Shots whose keyframes wait for review are listed
with what their upscale and video will cost once approved (held back, not in the total).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from reelflow.flows.render import refuse_invalid_requests, select_shots, shot_jobs, takes_now
from reelflow.providers.registry import require_providers
from reelflow.schemas.errors import ContentRejected
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import UpgradedShot
from reelflow.state.cache import dry_run
from reelflow.state.dailies import read_dailies
from reelflow.state.manifest import read_manifest
from reelflow.tasks.shot import ClipRejected, KeyframesRejected, find_upgrade, price_shot


class BlockedShot(BaseModel):
    """A shot that cannot be rendered as it stands: a provider refused it earlier with no fallback to take it, or
    every try the project allows was already made and failed its gates."""

    shot: int
    reason: str


class HeldShot(BaseModel):
    """A shot stopped at its keyframes for review: what its upscale and video will cost once they are approved."""

    shot: int
    take: int
    cost_usd: float


class Estimate(BaseModel):
    episode: int
    total_usd: float
    by_stage: dict[str, float]
    calls_by_stage: dict[str, int]
    blocked: list[BlockedShot] = Field(default_factory=list)
    upgrades: Literal["keep", "rerender"] = "keep"  # what the render does with the upgraded shots (project.json)
    upgraded: list[UpgradedShot] = Field(default_factory=list, description="takes only an upgrade would make again")
    held: list[HeldShot] = Field(default_factory=list, description="shots whose keyframes wait for review")

    @property
    def held_usd(self) -> float:
        """What the held shots' upscale and video will cost once their keyframes are approved."""
        return round(sum(shot.cost_usd for shot in self.held), 6)

    @property
    def upgraded_usd(self) -> float:
        """What making every upgraded shot again would cost."""
        return round(sum(shot.cost_usd for shot in self.upgraded), 6)


def estimate_episode(
    project: Path | str, episode: int, shots: list[int] | None = None, retakes: bool = False
) -> Estimate:
    """Price the render of these shots (all by default, or the retakes) as it would run now, submitting nothing.

    Keyframes are priced as passing the gates on their first try; each regeneration would add its own cost. Content a
    provider refused earlier is priced on the stage's fallback; a shot with no fallback is listed as blocked. A shot
    only an upgrade of reelflow would make again is listed as upgraded, and priced in the total only where the project
    re-renders such shots.
    """
    folder = load_project(project)
    storyboard = load_storyboard(folder, episode)
    numbers = select_shots(storyboard, shots, folder.storyboard_path(episode).name)
    require_providers(folder.project, RENDER_STAGES)
    dailies = read_dailies(folder, storyboard)
    takes, _ = dailies.takes_to_render(numbers, retakes_only=retakes)
    manifest = read_manifest(folder.assets_dir(episode), folder.project.code, episode, folder.state_dir)
    jobs = takes_now(shot_jobs(folder, storyboard, takes, run="estimate"), dailies, manifest)
    refuse_invalid_requests(folder, episode, jobs)
    blocked: list[BlockedShot] = []
    upgraded: list[UpgradedShot] = []
    held: list[HeldShot] = []
    with dry_run() as plan:
        for job in jobs:
            waits = dailies.shot(job.shot.shot).status == "keyframes_review"
            if waits and folder.project.review.keyframes != "none":  # a render stops it there again
                with dry_run() as waiting:
                    price_shot(job)
                held.append(HeldShot(shot=job.shot.shot, take=job.take, cost_usd=waiting.total_usd))
                continue
            if (kept := find_upgrade(job, manifest)) is not None:
                upgraded.append(kept.upgrade)
                if folder.project.upgrades == "keep":
                    continue
            try:
                price_shot(job)
            except (ContentRejected, KeyframesRejected, ClipRejected) as exc:
                blocked.append(BlockedShot(shot=job.shot.shot, reason=" ".join(str(exc).split())))
    return Estimate(
        episode=episode,
        total_usd=plan.total_usd,
        by_stage={stage: plan.cost_by_stage.get(stage, 0.0) for stage in RENDER_STAGES},
        calls_by_stage={stage: plan.calls_by_stage.get(stage, 0) for stage in RENDER_STAGES},
        blocked=blocked,
        upgrades=folder.project.upgrades,
        upgraded=upgraded,
        held=held,
    )
