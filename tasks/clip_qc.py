"""Clip QC: black and frozen runs, frame count, fps and duration of every video a shot made, and of its clip."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from pydantic import BaseModel, Field

from reelflow.media.motion import frames_for
from reelflow.media.qc import check_video, decode_lumas
from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.storyboard import Approach
from reelflow.state.cache import is_planned
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options
from reelflow.tasks.video import SPLIT_FLF_FRAMES, STANDARD_FLF_FRAMES

VERSION = 1
HELD = (Approach.PUSH, Approach.STATIC)  # held frames: no video model, no segments


class ClipQC(BaseModel):
    """What Clip QC found on one try of a shot's video."""

    failures: list[str] = Field(default_factory=list, description="one line per failed check, naming the file")
    entries: list[ManifestEntry] = Field(default_factory=list, description="the findings file, for the manifest")

    @property
    def passed(self) -> bool:
        return not self.failures


def expected_frames(job: ShotJob, role: str) -> int:
    """Frames a file of the shot should have: the clip its duration at the project's fps, a segment its request's."""
    if role == "clip":
        return frames_for(job.shot.duration_s, job.project.fps)
    return SPLIT_FLF_FRAMES if job.shot.generation_approach is Approach.TRIPTYCH else STANDARD_FLF_FRAMES


def _failures(job: ShotJob, files: dict[str, Path]) -> list[str]:
    """Every failed check, `role: message`; frozen runs count in generated segments only (a clip holds a still
    frame by design, and retiming a segment repeats its frames)."""
    fps, failures = job.project.fps, []
    lumas = decode_lumas(list(files.values()))
    for (role, path), luma in zip(files.items(), lumas, strict=True):
        frames = expected_frames(job, role)
        duration = job.shot.duration_s if role == "clip" else frames / fps
        report = check_video(path, frames=frames, fps=fps, duration_s=duration, thresholds=job.project.qc.gate1,
                             luma=luma)
        failures += [f"{role}: {f.message}" for f in report.failures if role != "clip" or f.check != "frozen_run"]
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

    params = {
        "thresholds": job.project.qc.gate1.model_dump(), "roles": roles, "fps": job.project.fps,
        "duration_s": job.shot.duration_s,
        "frames": {role: expected_frames(job, role) for role in roles},
    }
    outcome = run_media(job, stage="clip-qc", version=VERSION, model="clip-qc", params=params,
                        inputs=[files[role] for role in roles], make=make)
    if is_planned(outcome.file):
        return ClipQC()  # a dry run's video still to be made: priced as passing
    return ClipQC(failures=list(json.loads(outcome.file.path.read_text())),
                  entries=[manifest_entry(job, outcome, suffix=None, ext="json")])
