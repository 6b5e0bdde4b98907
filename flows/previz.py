"""Previz an episode: one cheap hero frame per shot, a manifest and an HTML contact sheet to review them.

Each shot runs as its own cached task on a thread pool; a failing shot does not stop the others.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from reelflow.flows.cancel import RENDER_HOOKS, ledger_run
from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.flows.render import SHOT_WORKERS, select_shots, shot_jobs, shots_in_flight, submit_shots
from reelflow.media.hashing import sha256_file
from reelflow.providers.registry import require_providers
from reelflow.schemas.env import checkout_here
from reelflow.schemas.load import load_project, load_storyboard
from reelflow.schemas.report import money_words
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.store import write_atomic
from reelflow.tasks.job import ShotJob, StageResult
from reelflow.tasks.previz import make_previz, previz_dir
from reelflow.tasks.previz_sheet import contact_sheet_markdown, markdown_text, write_previz_sheet

MANIFEST = "previz_manifest.json"
REVIEW = "previz_review.html"


class PrevizFrame(BaseModel):
    """One shot's previz frame: what it shows and how it was made."""

    shot: int
    approach: str
    characters: list[str]
    location: str
    prompt: str
    name: str
    sha256: str
    provider: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    cost_usd: float = 0.0
    request_id: str | None = None


class PrevizManifest(BaseModel):
    """`previz_manifest.json`: every shot's current frame and what the frames cost to make."""

    project: str
    episode: int
    cost_usd: float = 0.0
    frames: list[PrevizFrame] = Field(default_factory=list)


class PrevizFailure(BaseModel):
    shot: int
    reason: str


class PrevizReport(BaseModel):
    """What a previz run made: frames, failures, this run's calls and cost, and where to review them."""

    episode: int
    frames: int
    failed: list[PrevizFailure] = Field(default_factory=list)
    cost_usd: float  # the whole: charged + shadow
    provider_calls: int
    html: str
    manifest: str
    charged_usd: float = 0.0  # what providers charged (or will, for requests still pending)
    shadow_usd: float = 0.0  # the local provider's part: priced as the cloud, nothing charged


def _frame(job: ShotJob, result: StageResult) -> PrevizFrame:
    entry = result.entries[0]
    return PrevizFrame(
        shot=job.shot.shot,
        approach=job.shot.generation_approach.value,
        characters=list(job.shot.characters_in_shot),
        location=job.shot.location,
        prompt=job.shot.hero_prompt,
        name=str(entry.name),
        sha256=entry.sha256,
        provider=entry.provider,
        model=entry.model,
        params=entry.params,
        seed=entry.seed,
        cost_usd=entry.cost_usd,
        request_id=entry.request_id,
    )


def _kept_frames(folder: Path, storyboard: Storyboard, attempted: set[int]) -> list[PrevizFrame]:
    """Frames of an earlier run for shots not attempted now, while their files are intact."""
    path = folder / MANIFEST
    if not path.is_file():
        return []
    known = {shot.shot for shot in storyboard.shots}
    old = PrevizManifest.model_validate_json(path.read_bytes())
    return [
        frame for frame in old.frames
        if frame.shot in known and frame.shot not in attempted
        and (folder / frame.name).is_file() and sha256_file(folder / frame.name) == frame.sha256
    ]


def _summary(report: PrevizReport, title: str, sheet_key: str) -> str:
    failed = "".join(f"\n- shot {f.shot}: {markdown_text(f.reason)}" for f in report.failed)
    return (
        f"# Previz: {markdown_text(title)}, episode {report.episode:03d}\n\n"
        f"Frames: {report.frames} made, {len(report.failed)} failed · provider calls {report.provider_calls}"
        f" · {money_words(report.charged_usd, report.shadow_usd)}\n\n"
        f"Review: the `{sheet_key}` artifact shows every frame; full size on disk: `{report.html}`{failed}\n"
    )


@flow(
    name="previz-episode",
    flow_run_name=run_name("previz"),
    on_running=[tag_run(("previz",))],
    task_runner=ThreadPoolTaskRunner(max_workers=SHOT_WORKERS),
    **RENDER_HOOKS,
    **FLOW_OPTIONS,
)
def previz_episode(project: str, episode: int, shots: list[int] | None = None, gpu: bool = False) -> PrevizReport | State:
    """Make one previz frame per selected shot (all by default), then the manifest and the contact sheet.

    With failed shots the run ends Failed (visible as such in the UI), still carrying the report. `gpu` makes the
    frames with project.json's `gpu_providers` (the gpu pool's deployment).

    Args:
        project: The project folder's absolute path on the worker's machine.
        episode: The episode number.
        shots: The shots to make frames of; by default all.
        gpu: Make the frames on the GPU, with project.json's gpu_providers.
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    started = time.monotonic()
    folder = load_project(project)
    if gpu:
        folder = replace(folder, project=folder.project.on_gpu())
    storyboard = load_storyboard(folder, episode)
    numbers = select_shots(storyboard, shots, folder.storyboard_path(episode).name)
    require_providers(folder.project, ("previz",))

    run = ledger_run()
    frames: list[PrevizFrame] = []
    failed: list[PrevizFailure] = []
    jobs = shot_jobs(folder, storyboard, dict.fromkeys(numbers, 1), run)
    futures = submit_shots(make_previz, jobs, shots_in_flight(folder, ("previz",)))
    for job in jobs:
        try:
            frames.append(_frame(job, futures[job.shot.shot].result()))
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            failed.append(PrevizFailure(shot=job.shot.shot, reason=reason))
            logger.error("shot %s previz failed: %s", job.shot.shot, reason)
    ledger = Ledger(database(folder.state_dir))
    spend, shadow = ledger.run_spend(run), ledger.run_shadow(run)

    out_dir = previz_dir(folder.root.resolve(), episode)
    kept = _kept_frames(out_dir, storyboard, set(numbers))
    current = sorted(kept + frames, key=lambda frame: frame.shot)
    manifest = PrevizManifest(
        project=folder.project.code, episode=episode,
        cost_usd=round(sum(frame.cost_usd for frame in current), 6), frames=current,
    )
    manifest_path = out_dir / MANIFEST
    write_atomic(manifest_path, manifest.model_dump_json(indent=2).encode())
    title = f"{folder.project.title} · episode {episode:03d} previz"
    html_path = write_previz_sheet(out_dir / REVIEW, title, current)

    total = round(sum(usd for _, usd in spend.values()), 6)
    report = PrevizReport(
        episode=episode,
        frames=len(frames),
        failed=failed,
        cost_usd=total,
        provider_calls=sum(calls for calls, _ in spend.values()),
        html=str(html_path),
        manifest=str(manifest_path),
        charged_usd=round(total - shadow, 6),
        shadow_usd=shadow,
    )
    key = f"{folder.project.code.lower()}-ep{episode:03d}-previz"
    create_markdown_artifact(
        key=f"{key}-review", markdown=contact_sheet_markdown(title, current, out_dir),
        description=f"{folder.project.title} episode {episode}: the previz contact sheet",
    )
    create_markdown_artifact(
        key=key, markdown=_summary(report, folder.project.title, f"{key}-review"),
        description=f"{folder.project.title} episode {episode}: previz frames and cost",
    )
    logger.info("episode %s previz: %s frames, %s failed in %.1f s",
                episode, len(frames), len(failed), time.monotonic() - started)
    if failed:
        shots_failed = ", ".join(str(failure.shot) for failure in failed)
        return Failed(message=f"{len(failed)} of {len(numbers)} previz frames failed: {shots_failed}", data=report)
    return report
