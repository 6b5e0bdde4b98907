"""What a render reports: per-shot status, totals, calls and cost."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ShotStatus = Literal["rendered", "cached", "kept", "failed"]


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


class ShotCounts(BaseModel):
    total: int
    rendered: int
    cached: int
    failed: int
    kept: int = 0


class BudgetLine(BaseModel):
    """Money against the caps: spent in this run, spent in the project (every run, every process), what remains."""

    project_usd: float | None = None
    run_cap_usd: float | None = None
    spent_run_usd: float = 0.0
    spent_project_usd: float = 0.0
    remaining_usd: float | None = None
    stopped: str | None = None  # the one-line budget message when a cap refused a call


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
    budget_usd: float | None = None
    budget: BudgetLine = Field(default_factory=BudgetLine)

    @property
    def charged_usd(self) -> float:
        """What providers charged (or will, for requests still pending) in this run."""
        return round(self.cost_usd - self.shadow_usd, 6)

    def summary(self) -> dict[str, object]:
        """The `--json` object: episode, output, manifest, shot counts, provider calls, cost, failures, per-shot lines."""
        failed = [line for line in self.lines if line.status == "failed"]
        failures = [{"shot": line.shot, "stage": line.stage, "reason": line.reason} for line in failed]
        return {
            "episode": self.episode,
            "output": self.output,
            "manifest": self.manifest,
            "shots": self.shots.model_dump(),
            "provider_calls": self.provider_calls,
            "cost_usd": round(self.cost_usd, 6),
            "charged_usd": self.charged_usd,
            "shadow_usd": round(self.shadow_usd, 6),
            "failures": failures,
            "lines": [line.model_dump(include={"shot", "take", "status", "review", "provider_calls", "cost_usd"})
                      for line in self.lines],
            "budget": self.budget.model_dump(),
            "cut_skipped": self.cut_skipped,
            "stale_shots": self.stale_shots,
            "decisions_kept": self.decisions_kept,
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
    detail: str = ""
    submitted_at: float


class LedgerReport(BaseModel):
    """What a project has spent: totals, by provider, stage, episode and day; pending requests; billed failures.

    `spent_usd` counts pending requests at their price; `shadow_usd` is the local provider's part (priced as the
    cloud, charged nothing) and `charged_usd` the rest.
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
