"""What a render reports: per-shot status, totals, calls and cost."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# kept: an approved take, never rendered again; upgraded_kept: a take only an upgrade of reelflow would make again;
# keyframes_review: stopped after its keyframes' gates, its upscale and video held back until a person approves them
ShotStatus = Literal["rendered", "cached", "kept", "failed", "upgraded_kept", "keyframes_review"]


class ShotLine(BaseModel):
    shot: int
    approach: str
    status: ShotStatus
    provider_calls: int = 0
    cost_usd: float = 0.0
    take: int = 1
    review: str | None = None
    stage: str | None = None
    reason: str | None = None


def money_words(charged_usd: float, shadow_usd: float) -> str:
    """Spend as people should read it: what was charged, and the local provider's shadow cost named as such."""
    words = f"charged ${charged_usd:.3f}"
    if shadow_usd:
        words += f" · shadow cost ${shadow_usd:.3f} (local provider: nothing charged)"
    return words


class UpgradedShot(BaseModel):
    """A take whose outputs a reelflow upgrade re-keyed while the shot's own inputs stayed: why, and what making it
    again would cost now (the local provider's calls at their shadow cost)."""

    shot: int
    take: int
    reasons: list[str]  # which stage's key changed, e.g. "video: reelflow's video stage changed (version 1 → 2)"
    cost_usd: float
    provider_calls: int


class ShotCounts(BaseModel):
    total: int
    rendered: int
    cached: int
    failed: int
    kept: int = 0
    held: int = 0  # stopped at their keyframes for review


class BudgetLine(BaseModel):
    """Money against the caps: charged in this run, charged in the project (every run, every process), what remains.
    The local provider's shadow cost never counts against a cap; `shadow_stop` says where it would have."""

    project_usd: float | None = None
    run_cap_usd: float | None = None
    spent_run_usd: float = 0.0
    spent_project_usd: float = 0.0
    remaining_usd: float | None = None
    stopped: str | None = None  # the one-line budget message when a cap refused a call
    shadow_stop: str | None = None  # where a cap would have stopped the run had the shadow cost been charged


class PodLine(BaseModel):
    """A pod as `reelflow gpu status` and a render's report show it."""

    id: str | None
    name: str
    project: str
    gpu: str
    status: str  # starting | running | stopped | terminated
    cost_per_hr: float
    started_at: str  # ISO 8601, UTC
    lease_until: str
    seconds: float
    cost_usd: float


class RenderReport(BaseModel):
    episode: int
    output: str | None
    manifest: str
    shots: ShotCounts
    provider_calls: int
    cost_usd: float  # the whole: charged + shadow
    shadow_usd: float = 0.0  # the local provider's part: priced as the cloud, nothing charged
    lines: list[ShotLine] = Field(default_factory=list)
    cut_skipped: str | None = None
    stale_shots: list[int] = Field(default_factory=list, description="shots cut from a clip of an older storyboard")
    decisions_kept: list[str] = Field(default_factory=list, description="decisions people made during the run, kept")
    upgraded_kept: list[UpgradedShot] = Field(
        default_factory=list, description="takes only an upgrade of reelflow would make again, kept as they are")
    budget_usd: float | None = None
    budget: BudgetLine = Field(default_factory=BudgetLine)
    pods: list[PodLine] = Field(default_factory=list, description="the GPU pods that ran during the render")
    held_usd: float = Field(0.0, description="what the held shots' upscale and video will cost once their keyframes "
                            "are approved: money not spent on frames nobody has seen")

    @property
    def charged_usd(self) -> float:
        """What providers charged (or will, for requests still pending) in this run."""
        return round(self.cost_usd - self.shadow_usd, 6)

    def summary(self) -> dict[str, object]:
        """The `--json` object: episode, output, manifest, shot counts, provider calls, cost, failures, per-shot lines,
        and the GPU pods the run used."""
        failed = [line for line in self.lines if line.status == "failed"]
        failures = [{"shot": line.shot, "stage": line.stage, "reason": line.reason} for line in failed]
        return {
            "episode": self.episode,
            "output": self.output,
            "manifest": self.manifest,
            "shots": self.shots.model_dump(exclude=None if self.shots.held else {"held"}),  # as before when none held
            "provider_calls": self.provider_calls,
            "cost_usd": round(self.cost_usd, 6),
            "charged_usd": self.charged_usd,
            "shadow_usd": round(self.shadow_usd, 6),
            "failures": failures,
            "lines": [line.model_dump(include={"shot", "take", "status", "review", "provider_calls", "cost_usd", "reason"})
                      for line in self.lines],
            "budget": self.budget.model_dump(),
            "cut_skipped": self.cut_skipped,
            "stale_shots": self.stale_shots,
            "decisions_kept": self.decisions_kept,
            "upgraded_kept": [shot.model_dump() for shot in self.upgraded_kept],
            "pods": [pod.model_dump() for pod in self.pods],
            "held_usd": round(self.held_usd, 6),
        } | ({"budget_usd": self.budget_usd} if self.budget_usd is not None else {})


class GroupSpend(BaseModel):
    """Requests and spend of one group in `reelflow ledger` (a provider, a stage, an episode or a day)."""

    requests: int = 0
    spent_usd: float = 0.0


class LedgerRequest(BaseModel):
    """One request in `reelflow ledger`: where it went, for which shot, what it cost (or will, while pending)."""

    request_id: str
    provider: str
    endpoint: str
    status: str
    stage: str | None = None
    episode: int | None = None
    shot: int | None = None
    price_usd: float = 0.0
    cost_usd: float = 0.0
    billed_usd: float | None = None
    detail: str = ""
    submitted_at: float


class LedgerReport(BaseModel):
    """What a project has spent: totals, by provider, stage, episode, shot and day; pending and unknown requests;
    billed failures.

    `spent_usd` counts pending and unknown requests at their price; `shadow_usd` is the local provider's part (priced
    as the cloud, charged nothing) and `charged_usd` the rest.
    """

    episode: int | None = None
    requests: int = 0
    spent_usd: float = 0.0
    charged_usd: float = 0.0
    shadow_usd: float = 0.0
    by_provider: dict[str, GroupSpend] = Field(default_factory=dict)
    by_stage: dict[str, GroupSpend] = Field(default_factory=dict)
    by_episode: dict[str, GroupSpend] = Field(default_factory=dict)
    by_day: dict[str, GroupSpend] = Field(default_factory=dict)
    pending: list[LedgerRequest] = Field(default_factory=list)
    billed_failures: list[LedgerRequest] = Field(default_factory=list)
    unknown: list[LedgerRequest] = Field(default_factory=list, description="requests whose outcome never came: at their price")
    estimated_usd: float = 0.0  # every request at its list price (cancelled ones aside)
    billed_usd: float = 0.0  # what the services said they billed, where they said it
    by_shot: dict[str, GroupSpend] = Field(default_factory=dict)


class ReapedPod(BaseModel):
    """A pod `reelflow gpu reap` terminated or kept, and why."""

    id: str | None
    name: str
    project: str
    reason: str


class ReapReport(BaseModel):
    reaped: list[ReapedPod] = Field(default_factory=list)
    kept: list[ReapedPod] = Field(default_factory=list)

