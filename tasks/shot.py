"""One shot from storyboard to clip: keyframes → gates → upscale → video → clip → clip QC, each a retryable cached task.

Keyframes the gates reject are made again with a new seed, and so is video that Clip QC fails, together at most
the project's `max_regenerations` times per shot; a shot whose keyframes never pass stops there, before any video
is paid for. Keyframes a person should see first (project.json `review.keyframes`, or `--until keyframes`) stop the
shot after its gates too: its upscale and video are made once someone approves exactly those frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.utilities.annotations import quote
from pydantic import BaseModel

from reelflow.schemas.assets import AssetRef, Manifest, ManifestEntry
from reelflow.schemas.dailies import ClipCheck, KeyframeTry
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.qc import Route
from reelflow.schemas.report import UpgradedShot
from reelflow.state.budget import BudgetExceeded
from reelflow.state.cache import dry_run
from reelflow.state.limits import priority
from reelflow.state.progress import StageEvent, emit
from reelflow.state.store import materialise
from reelflow.tasks.clip import make_clip
from reelflow.tasks.clip_qc import HELD, check_clips
from reelflow.tasks.gates import GateResult, gate_keyframes
from reelflow.tasks.job import ShotJob, StageResult, attempt_seed, video_seed
from reelflow.tasks.keyframes import make_keyframes
from reelflow.tasks.retry import NOT_CACHED
from reelflow.tasks.takes import publish_take
from reelflow.tasks.upgrades import changed_keys, matching_clip, same_inputs
from reelflow.tasks.upscale import upscale_keyframes
from reelflow.tasks.video import make_video


class ShotFailed(ReelflowError):
    """A shot stopped at a stage; the message says which and why, in one line."""

    def __init__(self, shot: int, stage: str, reason: str, tries: list[KeyframeTry] | None = None,
                 over_budget: bool = False, clip_checks: list[ClipCheck] | None = None) -> None:
        super().__init__(f"shot {shot}: {stage}: {reason}")
        self.shot, self.stage, self.reason, self.tries = shot, stage, reason, tries or []
        self.over_budget, self.clip_checks = over_budget, clip_checks or []

    def __reduce__(self) -> tuple[type[ShotFailed], tuple[int, str, str, list[KeyframeTry], bool, list[ClipCheck]]]:
        return ShotFailed, (self.shot, self.stage, self.reason, self.tries, self.over_budget, self.clip_checks)


class KeyframesRejected(ReelflowError):
    """Every try of a shot's keyframes was rejected by the gates."""

    def __init__(self, tries: list[KeyframeTry]) -> None:
        last = tries[-1]
        why = "; ".join(last.gate1 + last.reasons) or "scores below the reject threshold"
        super().__init__(f"keyframes rejected {len(tries)} times (last: {why})")
        self.tries = tries


class ClipRejected(ReelflowError):
    """Every try of a shot's video failed Clip QC."""

    def __init__(self, checks: list[ClipCheck]) -> None:
        super().__init__(f"clip QC failed {len(checks)} time{'s' if len(checks) > 1 else ''} "
                         f"(last: {'; '.join(checks[-1].failures)})")


class UpgradeKept(BaseModel):
    """A take kept as it is: only an upgrade of reelflow would make it again (tasks/upgrades.py)."""

    shot: int
    take: int
    clip: AssetRef  # the take's published clip
    upgrade: UpgradedShot


class KeyframesHeld(BaseModel):
    """A shot stopped after its keyframes' gates for a person to review the frames: nothing after them was made."""

    shot: int
    take: int
    frames: dict[str, str]  # the raw keyframes' sha256 by role: what an approval names
    entries: list[ManifestEntry]
    route: Route
    tries: list[KeyframeTry]
    passed_over: str | None = None


class ShotOutcome(BaseModel):
    shot: int
    take: int
    clip: AssetRef
    entries: list[ManifestEntry]
    route: Route
    tries: list[KeyframeTry]
    clip_checks: list[ClipCheck]
    passed_over: str | None = None  # why the job's own take was not the one published (its files hold other footage)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or error.__class__.__name__
    return text if isinstance(error, ReelflowError) else f"{error.__class__.__name__}: {text}"


def _try(job: ShotJob, gate: GateResult, attempt: int) -> KeyframeTry:
    return KeyframeTry(take=job.take, attempt=attempt, seed=job.seed, route=gate.route, gate1=gate.gate1,
                       scores=gate.scores, reasons=gate.reasons)


def gated_keyframes(job: ShotJob, run: Callable[..., Any], tries: list[KeyframeTry]) -> tuple[ShotJob, StageResult]:
    """Keyframes that pass the gates or need review, and the job (seed) that made them; every try is appended to `tries`."""
    for attempt in range(1, job.project.qc.max_regenerations + 2):
        attempt_job = job.model_copy(update={"seed": attempt_seed(job.seed, attempt), "attempt": attempt})
        raw = run(make_keyframes, attempt_job)
        gate = run(gate_keyframes, attempt_job, raw)
        tries.append(_try(attempt_job, gate, attempt))
        if gate.route != "reject":
            return attempt_job, raw.model_copy(update={"entries": raw.entries + gate.entries})
    raise KeyframesRejected(tries)


def checked_video(job: ShotJob, frames: StageResult, run: Callable[..., Any], checks: list[ClipCheck],
                  regenerations: int) -> list[StageResult]:
    """Video and clip that pass Clip QC, made again with a new seed up to `regenerations` times; every check appended."""
    for attempt in range(1, regenerations + 2):
        attempt_job = job.model_copy(update={"seed": video_seed(job.seed, attempt), "attempt": attempt})
        video = run(make_video, attempt_job, frames)
        clip = run(make_clip, attempt_job, video)
        qc = run(check_clips, attempt_job, video, clip)
        checks.append(ClipCheck(take=job.take, attempt=attempt, seed=attempt_job.seed, passed=qc.passed,
                                failures=qc.failures))
        if qc.passed:
            return [video, clip.model_copy(update={"entries": clip.entries + qc.entries})]
        if job.shot.generation_approach in HELD:
            break  # a held frame comes out the same whatever the seed: another try cannot help
    raise ClipRejected(checks)


def later_stages(job: ShotJob, raw: StageResult, run: Callable[..., Any], tries: list[KeyframeTry],
                 checks: list[ClipCheck]) -> list[StageResult]:
    """upscale → video → clip (checked) from keyframes that passed the gates (or a person approved)."""
    frames = run(upscale_keyframes, job, raw)
    regenerations = job.project.qc.max_regenerations - (len(tries) - 1)
    return [frames, *checked_video(job, frames, run, checks, regenerations)]


def shot_stages(job: ShotJob, run: Callable[..., Any], tries: list[KeyframeTry],
                checks: list[ClipCheck]) -> list[StageResult]:
    """keyframes (gated) → upscale → video → clip (checked), each fed the one before; `run(stage_task, *args)` runs one."""
    job, raw = gated_keyframes(job, run, tries)
    return [raw, *later_stages(job, raw, run, tries, checks)]


def frame_hashes(raw: StageResult) -> dict[str, str]:
    """The raw keyframes' sha256 by role: what a person approves."""
    return {role: ref.sha256 for role, ref in raw.assets.items()}


def held_for_review(job: ShotJob, route: Route, frames: dict[str, str], until_keyframes: bool) -> bool:
    """Whether the shot stops after its gates: `--until keyframes`, or the project's `review.keyframes` asks a person
    to see these frames first (those Gate 2 sent to review, or all) and nobody approved exactly them."""
    if until_keyframes:
        return True
    policy = job.project.review.keyframes
    if policy == "none" or (policy == "needs_review" and route != "review"):
        return False
    return job.approved_frames != frames


def named_frames(job: ShotJob, raw: StageResult) -> StageResult:
    """The raw keyframes named `_raw<role>` (e.g. `_rawfirst.png`): what a person reviews, and approved."""
    roles = {ref.sha256: role for role, ref in raw.assets.items()}
    entries = [
        entry.model_copy(update={"name": job.asset_path(f"raw{roles[entry.sha256]}", "png").name})
        if entry.name is None and entry.stage in ("keyframes", "split") and entry.sha256 in roles else entry
        for entry in raw.entries
    ]
    return raw.model_copy(update={"entries": entries})


@task(name="shot", task_run_name="{job.label}", **NOT_CACHED)
def render_shot(job: ShotJob, manifest: Manifest | None = None, keep_upgraded: bool = False,
                until_keyframes: bool = False) -> ShotOutcome | UpgradeKept | KeyframesHeld:
    """Run the shot's stages as tasks; publish its named assets only once all succeeded, never over other bytes.

    A shot whose keyframes a person should review first (`held_for_review`) stops after its gates and publishes its
    raw keyframes: nothing after them is paid for until someone approves exactly those frames.

    A shot whose every stage is already in the cache reads them back without a task run each, as Prefect's own cache
    skips a task's body: a re-render of an unchanged episode costs one task run per shot, not seven. With
    `keep_upgraded`, a take that only an upgrade of reelflow would make again is kept as it is: nothing is made.
    Where the job's take already holds other footage (on disk, or as `manifest`, the episode's, records it), the work
    is published as the first take after it that does not (tasks/takes.py): no take's files are written again.
    """
    current = "keyframes"
    tries: list[KeyframeTry] = []
    checks: list[ClipCheck] = []
    cached = current_clip(job) is not None
    published = manifest or Manifest(project=job.project.code, episode=job.episode)
    if not cached and keep_upgraded:
        kept = upgraded_take(job, published)
        if kept is not None:
            emit(StageEvent(job.run, job.shot.shot, "shot", "done"))
            return kept

    def run(stage_task: Task[..., Any], *args: Any) -> Any:
        nonlocal current
        current = stage_task.name
        if cached:
            return stage_task.fn(*args)
        return stage_task(*(quote(arg) for arg in args))  # passed as they are: Prefect need not walk the job

    ranked = priority.set(job.chain_rank)  # this shot's calls wait for a provider slot in its chain's rank
    held: dict[str, str] | None = None
    try:
        chosen, raw = gated_keyframes(job, run, tries)
        frames = frame_hashes(raw)
        if not cached and held_for_review(job, tries[-1].route, frames, until_keyframes):
            held, results = frames, [named_frames(job, raw)]
        else:
            approved = job.approved_frames == frames
            results = [named_frames(job, raw) if approved else raw, *later_stages(chosen, raw, run, tries, checks)]
    except Exception as exc:
        reason = _one_line(exc)
        emit(StageEvent(job.run, job.shot.shot, current, "failed", detail=reason))
        raise ShotFailed(job.shot.shot, current, reason, tries, isinstance(exc, BudgetExceeded), checks) from exc
    finally:
        priority.reset(ranked)
    made, entries, passed_over = publish_take(job, [entry for result in results for entry in result.entries], published)
    if made.take != job.take:
        tries = [attempt.model_copy(update={"take": made.take}) for attempt in tries]
        checks = [check.model_copy(update={"take": made.take}) for check in checks]
    for entry in entries:
        if entry.name is not None:
            blob = job.store.blob_path(entry.sha256, entry.name.rsplit(".", 1)[1])
            materialise(blob, entry.sha256, job.assets_dir / entry.name)
    if held is not None:
        emit(StageEvent(job.run, job.shot.shot, "shot", "held", detail="keyframes wait for review"))
        return KeyframesHeld(shot=job.shot.shot, take=made.take, frames=held, entries=entries, route=tries[-1].route,
                             tries=tries, passed_over=passed_over)
    emit(StageEvent(job.run, job.shot.shot, "shot", "done"))
    return ShotOutcome(shot=job.shot.shot, take=made.take, clip=results[-1].assets["clip"], entries=entries,
                       route=tries[-1].route, tries=tries, clip_checks=checks, passed_over=passed_over)


def request_problems(jobs: list[ShotJob]) -> list[str]:
    """Every shot's requests built and checked against the services' schemas, nothing made: one line per refusal."""
    problems = []
    for job in jobs:
        with dry_run(lookups=False):
            try:
                price_shot(job)
            except ContractError as exc:
                problems.append(str(exc))
    return problems


def walk_stages(job: ShotJob) -> list[StageResult]:
    """The shot's stages as plain functions, without Prefect; inside a dry run, what they find cached or would make."""
    return shot_stages(job, lambda stage_task, *args: stage_task.fn(*args), [], [])


def current_clip(job: ShotJob) -> AssetRef | None:
    """The shot's clip as its current storyboard makes it, if every stage of it is in the cache; nothing is made."""
    with dry_run(to_first_miss=True):
        try:
            clip = walk_stages(job)[-1].assets["clip"]
        except ReelflowError:
            return None
    return clip


def price_shot(job: ShotJob) -> None:
    """Walk the shot's stages without Prefect; inside `dry_run()` this prices what a render would make."""
    walk_stages(job)


def upgraded_take(job: ShotJob, manifest: Manifest) -> UpgradeKept | None:
    """For a shot whose stages are not all in the cache: its take as published, why its stages would make work again
    and what that costs, when only reelflow changed since it was made (its recorded inputs are today's)."""
    clip = matching_clip(job, manifest)
    if clip is None:
        return None
    try:
        with dry_run() as plan:
            made = [entry for result in walk_stages(job) for entry in result.entries]
    except ReelflowError:
        return None  # it cannot be made as it stands: a render says why
    reasons = changed_keys(made, manifest.take_entries(job.shot.shot, job.take), list(plan.calls_by_stage))
    if reasons is None:
        return None
    upgrade = UpgradedShot(shot=job.shot.shot, take=job.take, reasons=reasons, cost_usd=plan.total_usd,
                           provider_calls=sum(plan.calls_by_stage.values()))
    return UpgradeKept(shot=job.shot.shot, take=job.take, clip=clip, upgrade=upgrade)


def find_upgrade(job: ShotJob, manifest: Manifest) -> UpgradeKept | None:
    """The shot's take, if only an upgrade of reelflow would make it again; nothing is made."""
    if not same_inputs(job, manifest) or current_clip(job) is not None:
        return None
    return upgraded_take(job, manifest)
