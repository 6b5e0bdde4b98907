"""Upscale: every keyframe to the episode's production size (768x1344 or 1344x768)."""

from __future__ import annotations

from functools import partial

from prefect import task

from reelflow.schemas.assets import AssetRef
from reelflow.schemas.requests import UpscaleRequest
from reelflow.state.cache import Outcome
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import call_provider, in_parallel, manifest_entry
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 1


@task(name="upscale", task_run_name="{job.label}-upscale{job.try_suffix}", **stage_task_options())
def upscale_keyframes(job: ShotJob, raw: StageResult) -> StageResult:
    """Production-size keyframes, published by role: `_first`, `_hero`, `_last`, and a long shot's `_mid1`, …"""
    emit(StageEvent(job.run, job.shot.shot, "upscale", "running"))
    width, height = job.project.production_size
    result = StageResult()

    def upscale(frame: AssetRef) -> Outcome:
        return call_provider(
            job, stage="upscale", version=VERSION, capability="upscale_image", ext="png", inputs=[frame],
            build=lambda model: UpscaleRequest(
                model=model, seed=job.seed, image=frame.path, width=width, height=height,
                prompt=f"Upscale to {width}x{height}; keep composition, faces and every detail.",
                source_size=(frame.media.width, frame.media.height) if frame.media.width else None,
            ),
        )

    roles = list(raw.assets)
    outcomes = in_parallel([partial(upscale, raw.assets[role]) for role in roles])
    for role, outcome in zip(roles, outcomes, strict=True):
        result.assets[role] = outcome.file
        result.entries.append(manifest_entry(job, outcome, suffix=role, ext="png"))
    return result
