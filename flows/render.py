"""Render an episode: validate the storyboard, fan out across shots, cut, and write the manifest.

Each shot runs as its own task (keyframes → upscale → video → clip) on a thread pool; provider calls
are bounded per provider. A failing shot does not stop the others: the run ends with a report.
"""

from __future__ import annotations

import os
import time
import uuid

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from reelflow.providers.registry import require_providers
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder, base_name, load_project, load_storyboard
from reelflow.schemas.loras import LoraRegistry
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import RenderReport, ShotCounts, ShotLine
from reelflow.schemas.storyboard import Storyboard
from reelflow.tasks.budget import close_budget, open_budget
from reelflow.tasks.cut import cut_episode, cut_path
from reelflow.tasks.events import Tally, subscribe
from reelflow.tasks.manifest import merge, published_clip, read_manifest, write_manifest
from reelflow.tasks.plan import ShotJob, shot_seed
from reelflow.tasks.shot import ShotFailed, ShotOutcome, render_shot

SHOT_WORKERS = int(os.environ.get("REELFLOW_SHOT_WORKERS", "8"))
KEYFRAME_LORA_BASE = "flux-2"
VIDEO_LORA_BASE = "wan-2.2"


def select_shots(storyboard: Storyboard, numbers: list[int] | None, file_name: str) -> list[int]:
    """The shots to render, in cut order; unknown numbers are a contract error."""
    known = [shot.shot for shot in storyboard.shots]
    if not numbers:
        return known
    unknown = sorted(set(numbers) - set(known))
    if unknown:
        raise ContractError(f"{file_name}: --shots: shot {unknown[0]} is not in the storyboard (1..{len(known)})")
    return [n for n in known if n in set(numbers)]


def read_loras(folder: ProjectFolder) -> LoraRegistry:
    path = folder.root / "visual" / "lora_registry.json"
    if not path.is_file():
        return LoraRegistry()
    try:
        return LoraRegistry.model_validate_json(path.read_bytes())
    except ValueError as exc:
        raise ContractError(f"lora_registry.json: {' '.join(str(exc).split())[:200]}") from None


def plan_jobs(folder: ProjectFolder, storyboard: Storyboard, numbers: list[int], run: str) -> list[ShotJob]:
    loras = read_loras(folder)
    jobs = []
    for number in numbers:
        shot = storyboard.shot(number)
        jobs.append(ShotJob(
            run=run,
            root=folder.root.resolve(),
            project=folder.project,
            episode=storyboard.episode,
            shot=shot,
            name=base_name(folder.project, storyboard, shot),
            seed=shot_seed(folder.project.code, storyboard.episode, shot),
            loras=loras.for_shot(shot.characters_in_shot, KEYFRAME_LORA_BASE),
            video_loras=loras.for_shot(shot.characters_in_shot, VIDEO_LORA_BASE),
        ))
    return jobs


def _shot_table(report: RenderReport) -> str:
    rows = [
        f"| {line.shot} | {line.approach} | {line.status} | {line.provider_calls} | ${line.cost_usd:.3f} | {line.reason or ''} |"
        for line in report.lines
    ]
    return "\n".join([
        f"# Episode {report.episode:03d}",
        "",
        f"Cut: `{report.output or report.cut_skipped}`  ",
        f"Shots: {report.shots.rendered} rendered, {report.shots.cached} cached, {report.shots.failed} failed · "
        f"provider calls {report.provider_calls} · cost ${report.cost_usd:.3f}",
        "",
        "| shot | approach | status | calls | cost | note |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ])


@flow(
    name="render-episode",
    flow_run_name="ep{episode:03d}-render",
    task_runner=ThreadPoolTaskRunner(max_workers=SHOT_WORKERS),
    log_prints=False,
)
def render_episode(
    project: str, episode: int, shots: list[int] | None = None, max_cost_usd: float | None = None
) -> RenderReport | State:
    """Render the selected shots of one episode (all by default) and cut the episode.

    Paid calls stop at `max_cost_usd` (else the project's `budget_usd`). With failed shots the run
    ends Failed (visible as such in the UI), still carrying the report.
    """
    logger = get_run_logger()
    started = time.monotonic()
    folder = load_project(project)
    storyboard = load_storyboard(folder, episode)
    numbers = select_shots(storyboard, shots, folder.storyboard_path(episode).name)
    require_providers(folder.project, RENDER_STAGES)

    run = uuid.uuid4().hex
    tally = Tally(run)
    unsubscribe = subscribe(tally)
    budget = open_budget(run, max_cost_usd if max_cost_usd is not None else folder.project.budget_usd)
    try:
        jobs = plan_jobs(folder, storyboard, numbers, run)
        futures: dict[int, PrefectFuture[ShotOutcome]] = {job.shot.shot: render_shot.submit(job) for job in jobs}
        outcomes: dict[int, ShotOutcome] = {}
        lines: list[ShotLine] = []
        for job in jobs:
            number = job.shot.shot
            line = ShotLine(shot=number, approach=job.shot.generation_approach.value, status="cached")
            try:
                outcomes[number] = futures[number].result()
            except ShotFailed as exc:
                line.status, line.stage, line.reason = "failed", exc.stage, exc.reason
                logger.error("shot %s failed at %s: %s", number, exc.stage, exc.reason)
            line.provider_calls = tally.calls.get(number, 0)
            line.cost_usd = round(tally.cost.get(number, 0.0), 6)
            if line.status != "failed" and line.provider_calls:
                line.status = "rendered"
            lines.append(line)
    finally:
        unsubscribe()
        close_budget(run)

    # The cut takes every shot's clip: rendered now, or published by an earlier render and still intact.
    assets_dir = folder.assets_dir(episode)
    manifest = read_manifest(assets_dir, folder.project.code, episode)
    clips = [
        outcomes[shot.shot].clip if shot.shot in outcomes else published_clip(assets_dir, manifest, shot.shot)
        for shot in storyboard.shots
    ]
    cut_entry, cut_skipped = None, None
    if all(clips):
        cut_entry = cut_episode(folder.root.resolve(), episode, clips, assets_dir)
    else:
        missing = [shot.shot for shot, clip in zip(storyboard.shots, clips) if clip is None]
        cut_skipped = f"no cut: shots {', '.join(map(str, missing))} have no clip"
        logger.warning(cut_skipped)
    manifest_path = write_manifest(assets_dir, merge(manifest, {n: o.entries for n, o in outcomes.items()}, cut_entry))

    counts = ShotCounts(
        total=len(lines),
        rendered=sum(line.status == "rendered" for line in lines),
        cached=sum(line.status == "cached" for line in lines),
        failed=sum(line.status == "failed" for line in lines),
    )
    report = RenderReport(
        episode=episode,
        output=str(cut_path(assets_dir, episode)) if cut_entry else None,
        manifest=str(manifest_path),
        shots=counts,
        provider_calls=sum(tally.calls.values()),
        cost_usd=round(sum(tally.cost.values()), 6),
        lines=lines,
        cut_skipped=cut_skipped,
        budget_usd=budget.cap_usd,
    )
    create_markdown_artifact(
        key=f"{folder.project.code.lower()}-ep{episode:03d}-render",
        markdown=_shot_table(report),
        description=f"{folder.project.title} episode {episode}: shots, status and cost",
    )
    logger.info("episode %s: %s in %.1f s", episode, counts.model_dump(), time.monotonic() - started)
    if counts.failed:
        failed = ", ".join(f"{line.shot} ({line.stage})" for line in report.lines if line.status == "failed")
        return Failed(message=f"{counts.failed} of {counts.total} shots failed: {failed}", data=report)
    return report
