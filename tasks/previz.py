"""Previz: one cheap hero frame per shot, the review point before any keyframe or video spend."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from reelflow.schemas.env import scaled_sizes
from reelflow.schemas.requests import ImageRequest
from reelflow.state.progress import StageEvent, emit
from reelflow.state.store import materialise
from reelflow.tasks.calls import call_provider, manifest_entry
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 1
FRAME_SIZE = scaled_sizes({"9:16": (512, 896), "16:9": (896, 512)})
STEPS = 8
SUFFIX = "previz"


def previz_dir(root: Path, episode: int) -> Path:
    """Where an episode's previz frames, manifest and review sheet live."""
    return root / "previz" / f"ep_{episode:03d}"


def _request(job: ShotJob, model: str) -> ImageRequest:
    width, height = FRAME_SIZE[job.project.aspect_ratio]
    return ImageRequest(
        model=model,
        seed=job.seed,
        prompt=job.triggered(model, job.shot.hero_prompt),
        negative_prompt=job.shot.negative_prompt,
        width=width,
        height=height,
        steps=STEPS,
        loras=job.loras_for(model),
        notes=job.notes("previz"),
    )


@task(name="previz", task_run_name="{job.label}-previz", **stage_task_options())
def make_previz(job: ShotJob) -> StageResult:
    """Generate the shot's previz frame and copy it, by its asset name, into `previz/ep_NNN/`."""
    emit(StageEvent(job.run, job.shot.shot, "previz", "running"))
    frame = call_provider(
        job, stage="previz", version=VERSION, capability="generate_image", ext="png", inputs=[],
        build=lambda model: _request(job, model),
    )
    entry = manifest_entry(job, frame, suffix=SUFFIX, ext="png")
    materialise(frame.file.path, frame.file.sha256, previz_dir(job.root, job.episode) / str(entry.name))
    return StageResult(assets={SUFFIX: frame.file}, entries=[entry])
