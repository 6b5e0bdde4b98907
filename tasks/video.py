"""Video: first-last-frame segments as the shot's plan lays them out (schemas/segments.py), or a Ken Burns push or
static hold (no video model).

A split FLF shot's halves run at once (each needs only its own keyframes); within a run, each consecutive segment
starts on the last decoded frame of the one before, extracted as a PNG by a cached media stage, so the joins match
frame for frame.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import task

from reelflow.media.concat import last_frame
from reelflow.media.ffmpeg import x264_settings
from reelflow.media.motion import ken_burns, static_hold
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.env import scaled_sizes
from reelflow.schemas.requests import VideoRequest
from reelflow.schemas.segments import Segment
from reelflow.schemas.storyboard import Approach
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import call_provider, in_parallel, manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 1
MOTION_VERSION = 3
LAST_FRAME_VERSION = 1
VIDEO_SIZE = scaled_sizes({"9:16": (720, 1280), "16:9": (1280, 720)})
PUSH_ZOOM = (1.0, 1.15)


def _segment(job: ShotJob, segment: Segment, first: AssetRef, last: AssetRef) -> StageResult:
    """One video model call: the segment's frames at the model's rate, from `first` to `last`."""
    width, height = VIDEO_SIZE[job.project.aspect_ratio]
    fps = job.shot.video_plan.limits.fps
    outcome = call_provider(
        job, stage="video", version=VERSION, capability="first_last_video", ext="mp4", inputs=[first, last],
        build=lambda model: VideoRequest(
            model=model, seed=job.seed, first=first.path, last=last.path, prompt=job.shot.motion_prompt or "",
            negative_prompt=job.shot.negative_prompt, num_frames=segment.frames, fps=fps,
            width=width, height=height, loras=job.loras_for(model), notes=job.notes("first"),
            steps=job.project.wan.steps, cfg=job.project.wan.cfg, shift=job.project.wan.shift,
        ),
    )
    suffix = segment.name
    return StageResult(assets={suffix: outcome.file}, entries=[manifest_entry(job, outcome, suffix=suffix, ext="mp4")])


def _last_frame(job: ShotJob, video: AssetRef) -> StageResult:
    """The last decoded frame of a segment, as a PNG: the first image of the segment that continues it."""
    outcome = run_media(
        job, stage="last-frame", version=LAST_FRAME_VERSION, model="last-frame", params={}, inputs=[video],
        make=lambda scratch: [last_frame(video.path, scratch / "last.png")],
    )
    return StageResult(assets={"last-frame": outcome.file}, entries=[manifest_entry(job, outcome, suffix=None, ext="png")])


def _run(job: ShotJob, keyframes: dict[str, AssetRef], segments: list[Segment]) -> StageResult:
    """Consecutive segments in order, each after the first starting on the last frame of the one before."""
    result = StageResult()
    for segment in segments:
        if segment.continues is None:
            first = keyframes[segment.first]
        else:
            continued = _last_frame(job, result.assets[segment.continues])
            first = continued.assets["last-frame"]
            result.entries += continued.entries
        made = _segment(job, segment, first, keyframes[segment.last])
        result.assets.update(made.assets)
        result.entries += made.entries
    return result


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
    """Video segments (`_seg1`, `_seg2`, …) of FLF shots as their plan lays them out, or the finished `_clip` for
    held frames."""
    emit(StageEvent(job.run, job.shot.shot, "video", "running"))
    result = StageResult()
    plan = job.shot.video_plan
    if not plan.segments:
        _held(job, keyframes.assets["first"], result)
        return result
    runs: list[list[Segment]] = []  # each starts on a keyframe: a split FLF's halves need only their own, made at once
    for segment in plan.segments:
        if segment.continues is None:
            runs.append([])
        runs[-1].append(segment)
    for made in in_parallel([partial(_run, job, keyframes.assets, run) for run in runs]):
        result.assets.update(made.assets)
        result.entries += made.entries
    return result
