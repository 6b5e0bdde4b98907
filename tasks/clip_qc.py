"""Clip QC: black and frozen runs, frame count, fps and duration of every video a shot made, and of its clip; and
the clip's playback speed (source frames per output second over the video model's fps: 1.00 ± 0.05)."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from pydantic import BaseModel, Field

from reelflow.media.motion import frames_for
from reelflow.media.probe import probe_video
from reelflow.media.qc import check_video, decode_lumas
from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.storyboard import Approach
from reelflow.state.cache import is_planned
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 2
HELD = (Approach.PUSH, Approach.STATIC)  # held frames: no video model, no segments
SPEED_TOLERANCE = 0.05  # a clip plays the model's motion at 1.00 ± this


class ClipQC(BaseModel):
    """What Clip QC found on one try of a shot's video."""

    failures: list[str] = Field(default_factory=list, description="one line per failed check, naming the file")
    entries: list[ManifestEntry] = Field(default_factory=list, description="the findings file, for the manifest")

    @property
    def passed(self) -> bool:
        return not self.failures


def expected_frames(job: ShotJob, role: str) -> int:
    """Frames a file of the shot should have: the clip its duration at the project's fps, a segment its plan's."""
    if role == "clip":
        return frames_for(job.shot.duration_s, job.project.fps)
    return job.shot.video_plan.segment(role).frames


def shown_frames(segment_frames: list[int], trim: int) -> int:
    """Source frames a clip shows: its segments joined, each shared boundary frame once, less the `trim` frames cut
    from the end (tasks/clip.py)."""
    return max(1, sum(segment_frames) - max(0, len(segment_frames) - 1) - trim)


def _speed_failure(job: ShotJob, segment_frames: list[int], clip: Path) -> list[str]:
    """The clip's playback speed, as the segments made and the clip's own length say, if it is off by more than
    SPEED_TOLERANCE: one line naming the clip."""
    plan, info = job.shot.video_plan, probe_video(clip)
    seconds = (info.frames or 0) / (info.fps or job.project.fps)
    if seconds <= 0:
        return []  # an empty clip: its frame count and duration fail already
    source = shown_frames(segment_frames, plan.trimmed)
    speed = source / seconds / plan.limits.fps  # source frames per output second over the model's fps
    if abs(speed - 1.0) <= SPEED_TOLERANCE:
        return []
    name = job.name.with_(suffix="clip", ext="mp4").format()
    return [f"clip: speed: {name} plays at {speed:.2f}× ({source} source frames in {seconds:.2f} s, "
            f"{plan.limits.name} makes {plan.limits.fps} fps), expected 1.00 ± {SPEED_TOLERANCE:.2f}"]


def _failures(job: ShotJob, files: dict[str, Path]) -> list[str]:
    """Every failed check, `role: message`; frozen runs count in generated segments only (a clip holds a still
    frame by design, and retiming a segment repeats its frames). Segments play at the model's fps."""
    failures: list[str] = []
    lumas = decode_lumas(list(files.values()))
    for (role, path), luma in zip(files.items(), lumas, strict=True):
        frames = expected_frames(job, role)
        fps = job.project.fps if role == "clip" else job.shot.video_plan.limits.fps
        duration = job.shot.duration_s if role == "clip" else frames / fps
        report = check_video(path, frames=frames, fps=fps, duration_s=duration, thresholds=job.project.qc.gate1,
                             luma=luma)
        failures += [f"{role}: {f.message}" for f in report.failures if role != "clip" or f.check != "frozen_run"]
    segments = [len(luma) for role, luma in zip(files, lumas, strict=True) if role != "clip"]
    if segments:  # held frames play no model's video
        failures += _speed_failure(job, segments, files["clip"])
    return failures


@task(name="clip-qc", task_run_name="{job.label}-clip-qc{job.try_suffix}", **stage_task_options())
def check_clips(job: ShotJob, video: StageResult, clip: StageResult) -> ClipQC:
    """Clip QC on each video segment and on the shot clip, cached on their content and the thresholds."""
    emit(StageEvent(job.run, job.shot.shot, "clip-qc", "running"))
    files: dict[str, AssetRef] = {role: ref for role, ref in sorted(video.assets.items()) if role != "clip"}
    files["clip"] = clip.assets["clip"]
    roles = list(files)

    def make(scratch: Path) -> list[Path]:
        out = scratch / "clip_qc.json"
        out.write_text(json.dumps(_failures(job, {role: files[role].path for role in roles})))
        return [out]

    plan = job.shot.video_plan
    params = {
        "thresholds": job.project.qc.gate1.model_dump(), "roles": roles, "fps": job.project.fps,
        "duration_s": job.shot.duration_s,
        "frames": {role: expected_frames(job, role) for role in roles},
        "model_fps": plan.limits.fps, "trim": plan.trimmed, "speed_tolerance": SPEED_TOLERANCE,
    }
    outcome = run_media(job, stage="clip-qc", version=VERSION, model="clip-qc", params=params,
                        inputs=[files[role] for role in roles], make=make)
    if is_planned(outcome.file):
        return ClipQC()  # a dry run's video still to be made: priced as passing
    return ClipQC(failures=list(json.loads(outcome.file.path.read_text())),
                  entries=[manifest_entry(job, outcome, suffix=None, ext="json")])
