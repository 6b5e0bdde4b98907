"""Video: split FLF (two segments), standard FLF (one), Ken Burns push or static hold (no video model)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import task

from reelflow.media.ffmpeg import x264_settings
from reelflow.media.motion import ken_burns, static_hold
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.env import scaled_sizes
from reelflow.schemas.requests import VideoRequest
from reelflow.schemas.storyboard import Approach
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import call_provider, in_parallel, manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 1
MOTION_VERSION = 3
VIDEO_SIZE = scaled_sizes({"9:16": (720, 1280), "16:9": (1280, 720)})
SPLIT_FLF_FRAMES = 49
STANDARD_FLF_FRAMES = 81
PUSH_ZOOM = (1.0, 1.15)


def _segment(job: ShotJob, first: AssetRef, last: AssetRef, frames: int, suffix: str) -> StageResult:
    width, height = VIDEO_SIZE[job.project.aspect_ratio]
    outcome = call_provider(
        job, stage="video", version=VERSION, capability="first_last_video", ext="mp4", inputs=[first, last],
        build=lambda model: VideoRequest(
            model=model, seed=job.seed, first=first.path, last=last.path, prompt=job.shot.motion_prompt or "",
            negative_prompt=job.shot.negative_prompt, num_frames=frames, fps=job.project.fps,
            width=width, height=height, loras=job.loras_for(model), notes=job.notes("first"),
            steps=job.project.wan.steps, cfg=job.project.wan.cfg, shift=job.project.wan.shift,
        ),
    )
    return StageResult(assets={suffix: outcome.file}, entries=[manifest_entry(job, outcome, suffix=suffix, ext="mp4")])


def _held(job: ShotJob, first: AssetRef, result: StageResult) -> None:
    size, fps, duration = job.project.production_size, job.project.fps, job.shot.duration_s
    push = job.shot.generation_approach is Approach.PUSH

    def make(scratch: Path) -> list[Path]:
        out = scratch / "clip.mp4"
        if push:
            ken_burns(first.path, out, duration_s=duration, fps=fps, size=size, zoom=PUSH_ZOOM)
        else:
            static_hold(first.path, out, duration_s=duration, fps=fps, size=size)
        return [out]

    params = {"duration_s": duration, "fps": fps, "size": list(size), "x264": x264_settings()}
    params |= {"zoom": list(PUSH_ZOOM)} if push else {}
    outcome = run_media(
        job, stage="video", version=MOTION_VERSION, model="ken-burns" if push else "static-hold",
        params=params, inputs=[first], make=make,
    )
    result.assets["clip"] = outcome.file
    result.entries.append(manifest_entry(job, outcome, suffix="clip", ext="mp4"))


@task(name="video", task_run_name="{job.label}-video{job.try_suffix}", **stage_task_options())
def make_video(job: ShotJob, keyframes: StageResult) -> StageResult:
    """Video segments (`_seg1`, `_seg2`) for FLF shots, or the finished `_clip` for held frames."""
    emit(StageEvent(job.run, job.shot.shot, "video", "running"))
    frames, result = keyframes.assets, StageResult()
    approach = job.shot.generation_approach
    if approach is Approach.TRIPTYCH:  # the two halves need only their own frames: made at once
        halves = in_parallel([partial(_segment, job, frames["first"], frames["hero"], SPLIT_FLF_FRAMES, "seg1"),
                              partial(_segment, job, frames["hero"], frames["last"], SPLIT_FLF_FRAMES, "seg2")])
        for half in halves:
            result.assets.update(half.assets)
            result.entries += half.entries
    elif approach is Approach.STANDARD_FLF:
        result = _segment(job, frames["first"], frames["last"], STANDARD_FLF_FRAMES, "seg1")
    else:
        _held(job, frames["first"], result)
    return result
