"""Shot clip: the shot's segments joined, the frames made past its duration cut, and fitted to exactly
`duration_s` at the project's fps and production size: the model's motion plays at 1.00×."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from reelflow.media.concat import fit_clip
from reelflow.media.ffmpeg import x264_settings
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 5


@task(name="clip", task_run_name="{job.label}-clip{job.try_suffix}", **stage_task_options())
def make_clip(job: ShotJob, video: StageResult) -> StageResult:
    """The `_clip` of an FLF shot; held-frame shots already made theirs in the video stage."""
    if "clip" in video.assets:
        return StageResult(assets={"clip": video.assets["clip"]})
    emit(StageEvent(job.run, job.shot.shot, "clip", "running"))
    plan = job.shot.video_plan
    segments = [video.assets[segment.name] for segment in plan.segments]
    size, fps, duration = job.project.production_size, job.project.fps, job.shot.duration_s

    def make(scratch: Path) -> list[Path]:
        out = scratch / "clip.mp4"
        fit_clip([s.path for s in segments], out, duration_s=duration, fps=fps, size=size, shared_boundaries=True,
                 trim=plan.trimmed)
        return [out]

    outcome = run_media(
        job, stage="clip", version=VERSION, model="fit-clip",
        params={"duration_s": duration, "fps": fps, "size": list(size), "x264": x264_settings(), "trim": plan.trimmed},
        inputs=segments, make=make,
    )
    return StageResult(assets={"clip": outcome.file}, entries=[manifest_entry(job, outcome, suffix="clip", ext="mp4")])
