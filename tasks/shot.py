"""One shot from storyboard to clip: keyframes → upscale → video → clip, each a retryable cached task."""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel

from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.errors import ReelflowError
from reelflow.tasks.clip import make_clip
from reelflow.tasks.events import StageEvent, emit
from reelflow.tasks.keyframes import make_keyframes
from reelflow.tasks.plan import ShotJob
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


@task(name="shot", task_run_name="{job.label}")
def render_shot(job: ShotJob) -> ShotOutcome:
    """Run the shot's stages in order; a failure names the stage and the reason."""
    stage, results = "keyframes", []
    try:
        raw = make_keyframes(job)
        results.append(raw)
        stage = "upscale"
        frames = upscale_keyframes(job, raw)
        results.append(frames)
        stage = "video"
        video = make_video(job, frames)
        results.append(video)
        stage = "clip"
        clip = make_clip(job, video)
        results.append(clip)
    except Exception as exc:
        reason = _one_line(exc)
        emit(StageEvent(job.run, job.shot.shot, stage, "failed", detail=reason))
        raise ShotFailed(job.shot.shot, stage, reason) from exc
    entries = [entry for result in results for entry in result.entries]
    for entry in entries:
        if entry.name is not None:
            blob = job.store.blob_path(entry.sha256, entry.name.rsplit(".", 1)[1])
            materialise(blob, entry.sha256, job.assets_dir / entry.name)
    return ShotOutcome(shot=job.shot.shot, clip=clip.assets["clip"], entries=entries)


