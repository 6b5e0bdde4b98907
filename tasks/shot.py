"""One shot from storyboard to clip: keyframes → upscale → video → clip, each a retryable cached task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from pydantic import BaseModel

from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.errors import ReelflowError
from reelflow.tasks.clip import make_clip
from reelflow.tasks.events import StageEvent, emit
from reelflow.tasks.keyframes import make_keyframes
from reelflow.tasks.plan import ShotJob, StageResult
from reelflow.tasks.store import materialise
from reelflow.tasks.upscale import upscale_keyframes
from reelflow.tasks.video import make_video


class ShotFailed(ReelflowError):
    """A shot stopped at a stage; the message says which and why, in one line."""

    def __init__(self, shot: int, stage: str, reason: str) -> None:
        super().__init__(f"shot {shot}: {stage}: {reason}")
        self.shot, self.stage, self.reason = shot, stage, reason


class ShotOutcome(BaseModel):
    shot: int
    clip: AssetRef
    entries: list[ManifestEntry]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or error.__class__.__name__
    return text if isinstance(error, ReelflowError) else f"{error.__class__.__name__}: {text}"


def shot_stages(job: ShotJob, run: Callable[..., StageResult]) -> list[StageResult]:
    """keyframes → upscale → video → clip, each fed the one before; `run(stage_task, *args)` runs one."""
    raw = run(make_keyframes, job)
    frames = run(upscale_keyframes, job, raw)
    video = run(make_video, job, frames)
    return [raw, frames, video, run(make_clip, job, video)]


@task(name="shot", task_run_name="{job.label}")
def render_shot(job: ShotJob) -> ShotOutcome:
    """Run the shot's stages as tasks; publish its named assets only once all succeeded."""
    current = "keyframes"

    def run(stage_task: Task[..., StageResult], *args: Any) -> StageResult:
        nonlocal current
        current = stage_task.name
        return stage_task(*args)

    try:
        results = shot_stages(job, run)
    except Exception as exc:
        reason = _one_line(exc)
        emit(StageEvent(job.run, job.shot.shot, current, "failed", detail=reason))
        raise ShotFailed(job.shot.shot, current, reason) from exc
    entries = [entry for result in results for entry in result.entries]
    for entry in entries:
        if entry.name is not None:
            blob = job.store.blob_path(entry.sha256, entry.name.rsplit(".", 1)[1])
            materialise(blob, entry.sha256, job.assets_dir / entry.name)
    return ShotOutcome(shot=job.shot.shot, clip=results[-1].assets["clip"], entries=entries)


def plan_shot(job: ShotJob) -> None:
    """Walk the shot's stages without Prefect; inside `planning()` this prices what a render would make."""
    shot_stages(job, lambda stage_task, *args: stage_task.fn(*args))
