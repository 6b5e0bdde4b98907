"""Keyframes: a triptych strip split into first / hero / last, or single first (and last) frames."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PIL import Image
from prefect import task

from reelflow.media.images import save_png, split_triptych
from reelflow.schemas.env import scaled_sizes
from reelflow.schemas.refs import Picked, ShotRefs, default_wardrobes, facing, pick, reference_limit, shot_refs
from reelflow.schemas.requests import FrameRole, ImageRequest
from reelflow.schemas.segments import MID
from reelflow.schemas.storyboard import Approach, Shot
from reelflow.state.cache import Outcome
from reelflow.state.progress import StageEvent, emit
from reelflow.tasks.calls import call_provider, in_parallel, manifest_entry, run_media
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.retry import stage_task_options

VERSION = 1
SPLIT_VERSION = 1
STRIP_SIZE = scaled_sizes({"9:16": (1536, 912), "16:9": (912, 1536)})
FRAME_SIZE = scaled_sizes({"9:16": (576, 1024), "16:9": (1024, 576)})
STEPS = 28
FRAME_PROMPTS: dict[str, str] = {"first": "first_frame_prompt", "last": "last_frame_prompt"}


def _image_request(job: ShotJob, model: str, prompt: str, size: tuple[int, int], role: FrameRole) -> ImageRequest:
    refs = frame_refs(job, model, prompt)
    notes = job.notes(role)
    return ImageRequest(
        model=model,
        seed=job.seed,
        prompt=job.triggered(model, prompt),
        negative_prompt=job.shot.negative_prompt,
        width=size[0],
        height=size[1],
        steps=STEPS,
        loras=job.loras_for(model),
        notes=notes.model_copy(update={"wardrobe": refs.wardrobe}) if refs.wardrobe else notes,
        references=refs.paths,
    )


def frame_refs(job: ShotJob, model: str, prompt: str) -> Picked:
    """The reference images (costume, set) a keyframe of the shot shows `model`, as many as it takes: schemas/refs.py
    picks them, the closest angle where the camera or `prompt` says how the frame sees its characters."""
    limit = reference_limit(model)
    refs = shot_refs(job.root, job.shot, default_wardrobes(job.root)) if limit else ShotRefs((), ())
    camera = job.shot.camera.shot_type if job.shot.camera is not None else None
    return pick(refs, limit, facing(f"{camera or ''}\n{prompt}"))


def mid_prompt(shot: Shot, role: str) -> str:
    """An intermediate keyframe of a long shot: one frame of its motion, as far into the shot as the frame sits."""
    into = round(100 * shot.video_plan.position(role))
    if shot.generation_approach is Approach.TRIPTYCH:
        scene = f"The shot: {shot.triptych_prompt}\nIts middle moment: {shot.prompt('hero_frame.prompt')}"
    else:
        scene = f"The shot starts: {shot.first_frame_prompt}\nIt ends: {shot.last_frame_prompt}"
    return f"A single frame {into}% of the way through the shot.\n{scene}\nThe motion: {shot.motion_prompt}"


def frame_prompt(job: ShotJob, role: str) -> str:
    """What the keyframe of `role` was asked to show (a triptych panel: the strip's prompt and the hero's)."""
    shot = job.shot
    if role.startswith(MID):
        return mid_prompt(shot, role)
    if shot.generation_approach is Approach.TRIPTYCH:
        return f"{shot.triptych_prompt}\nHero (middle panel): {shot.prompt('hero_frame.prompt')}"
    return shot.prompt(FRAME_PROMPTS[role]) or ""


def _split(scratch: Path, strip: Path) -> list[Path]:
    outputs = []
    with Image.open(strip) as image:
        for role, panel in zip(("first", "hero", "last"), split_triptych(image)):
            path = scratch / f"{role}.png"
            save_png(panel, path)
            outputs.append(path)
    return outputs


@task(name="keyframes", task_run_name="{job.label}-keyframes{job.try_suffix}", **stage_task_options())
def make_keyframes(job: ShotJob) -> StageResult:
    """Generate the shot's raw keyframes (before upscale), by its generation approach; a long shot's intermediate
    keyframes (`mid1`, …) are single frames whatever the approach."""
    emit(StageEvent(job.run, job.shot.shot, "keyframes", "running"))
    shot, aspect = job.shot, job.project.aspect_ratio
    result = StageResult()
    if shot.generation_approach is Approach.TRIPTYCH:
        prompt = frame_prompt(job, "hero")
        strip = call_provider(
            job, stage="keyframes", version=VERSION, capability="generate_image", ext="png", inputs=[],
            build=lambda model: _image_request(job, model, prompt, STRIP_SIZE[aspect], "strip"),
        )
        result.entries.append(manifest_entry(job, strip, suffix="strip", ext="png"))
        panels = run_media(
            job, stage="split", version=SPLIT_VERSION, model="split-thirds", params={}, inputs=[strip.file],
            make=lambda scratch: _split(scratch, strip.file.path), outputs=3,
        )
        for index, role in enumerate(("first", "hero", "last")):
            result.assets[role] = panels.files[index]
            result.entries.append(manifest_entry(job, panels, suffix=None, ext="png", index=index))
    def frame(role: str) -> Outcome:
        text = frame_prompt(job, role)
        return call_provider(
            job, stage="keyframes", version=VERSION, capability="generate_image", ext="png", inputs=[],
            build=lambda model: _image_request(job, model, text, FRAME_SIZE[aspect], role),
        )

    roles = [role for role in shot.keyframe_roles if role not in result.assets]  # a triptych's panels are made
    for role, outcome in zip(roles, in_parallel([partial(frame, role) for role in roles]), strict=True):
        result.assets[role] = outcome.file
        result.entries.append(manifest_entry(job, outcome, suffix=None, ext="png"))
    return result
