"""Render an episode: validate the storyboard, fan out across shots, cut, and write the manifest.

Each shot runs as its own task (keyframes → gates → upscale → video → clip) on a thread pool; provider
calls are bounded per provider. A failing shot does not stop the others: the run ends with a report.
The dailies decide takes: an approved shot is kept as it is, a retake renders take T+1, new footage always goes to a
new take (tasks/takes.py), and the cut uses each shot's approved take, else its latest.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import replace
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.futures import PrefectFuture
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from reelflow.flows.cancel import RENDER_HOOKS, ledger_run
from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.providers.registry import providers_for, require_providers
from reelflow.schemas.assets import AssetRef, Manifest
from reelflow.schemas.dailies import Dailies
from reelflow.schemas.env import checkout_here
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import ProjectFolder, base_name, load_project, load_storyboard
from reelflow.schemas.project import RENDER_STAGES
from reelflow.schemas.report import BudgetLine, RenderReport, ShotCounts, ShotLine, money_words
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.budget import Budgets, Caps
from reelflow.state.cache import dry_run
from reelflow.state.checkout import reading
from reelflow.state.dailies import changing_dailies, now, read_dailies
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.limits import limit_for
from reelflow.state.loras import read_registry
from reelflow.state.manifest import merge, published_clip, read_manifest, restore_take, save_merged
from reelflow.state.reports import save_report
from reelflow.state.store import store_for
from reelflow.tasks.cut import cut_episode, cut_path
from reelflow.tasks.gpu import pods_during
from reelflow.tasks.job import SHORT_CHAIN_RANK, ShotJob, shot_seed
from reelflow.tasks.shot import (
    KeyframesHeld,
    ShotFailed,
    ShotOutcome,
    UpgradeKept,
    current_clip,
    price_shot,
    render_shot,
    request_problems,
)
from reelflow.tasks.takes import as_made, at_take, fresh_take
from reelflow.tasks.upgrades import matching_clip, same_inputs, shot_inputs

SHOT_MEMORY_BYTES = 48 * 2**20  # what one shot in flight may hold at once: a few decoded frames and encoder buffers


def memory_bound() -> int:
    """How many shots this machine's available memory can hold in flight (4 to 256)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 32
    return max(4, min(256, available // SHOT_MEMORY_BYTES))


SHOT_WORKERS = int(os.environ.get("REELFLOW_SHOT_WORKERS", "0")) or memory_bound()


def shots_in_flight(folder: ProjectFolder, stages: Iterable[str] = RENDER_STAGES) -> int:
    """Shots to render at once: twice the calls the stages' providers take at once (a shot waits on media work and
    on its own earlier calls between provider calls), bounded by memory. With fal at 40, 80 shots; offline, 8."""
    slots = sum(limit_for(name, folder.project.concurrency) for name in providers_for(folder.project, stages))
    return max(1, min(SHOT_WORKERS, 2 * slots))


def start_order(jobs: list[ShotJob]) -> list[ShotJob]:
    """The jobs in the order to start them: the long chains longest first (standard FLF, then triptychs), so an
    episode never waits at its end on a long chain started last (at fal's 40 slots a standard FLF shot started last
    adds its whole chain to the wall); the held frames spread evenly among them. A held frame's calls are short but
    its own media work (push, clip, checks) is not: started last, 57 of them made the last 10 s of a 200-shot render
    wait on the CPU (wall / bound 1.13 at concurrency 10); spread, that work runs while long chains wait on their
    providers (1.06)."""
    ranked = sorted(jobs, key=lambda job: (job.chain_rank, -job.shot.duration_s))
    long = [job for job in ranked if job.chain_rank < SHORT_CHAIN_RANK]
    short = [job for job in ranked if job.chain_rank >= SHORT_CHAIN_RANK]
    # Each list keeps its order, spread over the run: long job k at k / len(long), short job i in the middle of its
    # share, (i + 1/2) / len(short).
    placed = [(k / len(long), 0, job) for k, job in enumerate(long)]
    placed += [((i + 0.5) / len(short), 1, job) for i, job in enumerate(short)]
    return [job for _, _, job in sorted(placed, key=lambda entry: entry[:2])]


def submit_shots(task: Any, jobs: list[ShotJob], window: int, **options: Any) -> dict[int, PrefectFuture[Any]]:
    """Submit each shot's task (with `options`) as soon as fewer than `window` are running: the rest wait here.

    The job (and each option) goes in quoted: Prefect would otherwise walk its whole storyboard and project looking
    for futures, on every task run (the most CPU an episode's orchestration spent).
    """
    gate = threading.BoundedSemaphore(window)
    futures: dict[int, PrefectFuture[Any]] = {}
    for job in jobs:
        gate.acquire()
        future = task.submit(quote(job), **{name: quote(value) for name, value in options.items()})
        future.add_done_callback(lambda _: gate.release())
        futures[job.shot.shot] = future
    return futures


def select_shots(storyboard: Storyboard, numbers: list[int] | None, file_name: str) -> list[int]:
    """The shots to render, in cut order; unknown numbers are a contract error."""
    known = [shot.shot for shot in storyboard.shots]
    if not numbers:
        return known
    unknown = sorted(set(numbers) - set(known))
    if unknown:
        raise ContractError(f"{file_name}: --shots: shot {unknown[0]} is not in the storyboard (1..{len(known)})")
    return [n for n in known if n in set(numbers)]


def shot_jobs(folder: ProjectFolder, storyboard: Storyboard, takes: dict[int, int], run: str,
              max_cost_usd: float | None = None, parent_run: str | None = None) -> list[ShotJob]:
    """One job per shot to render, at the take given for it, in storyboard order."""
    loras = read_registry(folder.root)
    jobs = []
    for number, take in takes.items():
        shot = storyboard.shot(number)
        jobs.append(ShotJob(
            run=run,
            root=folder.root.resolve(),
            project=folder.project,
            episode=storyboard.episode,
            shot=shot,
            name=base_name(folder.project, storyboard, shot, take),
            seed=shot_seed(folder.project.code, storyboard.episode, shot, take),
            take=take,
            max_cost_usd=max_cost_usd,
            parent_run=parent_run,
            lora_registry=loras,
        ))
    return jobs


def takes_now(jobs: list[ShotJob], dailies: Dailies, manifest: Manifest) -> list[ShotJob]:
    """The jobs at the takes a render makes: a shot rendered again keeps the seed its take was made with and goes to a
    new take where its inputs changed since (tasks/takes.py); a retake's take and seed are new. Each carries the
    keyframes a person approved for its video, if any."""
    made = [fresh_take(job if job.take != dailies.shot(job.shot.shot).take else as_made(job, manifest), manifest)
            for job in jobs]
    return [job.model_copy(update={"approved_frames": dailies.shot(job.shot.shot).approved_frames}) for job in made]


def held_cost(jobs: list[ShotJob], held: dict[int, KeyframesHeld]) -> float:
    """What the held shots' upscale and video would cost from the keyframes they stopped at (priced, nothing made)."""
    with dry_run() as plan:
        for job in jobs:
            if job.shot.shot in held:
                with suppress(ReelflowError):  # what cannot be priced now is said when it is rendered
                    price_shot(at_take(job, held[job.shot.shot].take))
    return plan.total_usd


def refuse_invalid_requests(folder: ProjectFolder, episode: int, jobs: list[ShotJob]) -> None:
    """Stop before anything is paid if a service's published schema would refuse a request: one line per shot."""
    problems = request_problems(jobs)
    if problems:
        name = folder.storyboard_path(episode).name
        raise ContractError("\n".join(f"{name}: {problem}" for problem in problems))


def budget_line(folder: ProjectFolder, run: str, max_cost_usd: float | None, failures: Iterable[ShotFailed],
                parent_run: str | None = None) -> BudgetLine:
    """What this run (with the run it is part of) and the project have charged, what remains under the caps, why a
    cap stopped shots, and where one would have had the local provider's shadow cost been charged."""
    caps = Caps(project_usd=folder.project.budget_usd, run_usd=max_cost_usd)
    budgets = Budgets(database(folder.state_dir))
    spend = budgets.spend(parent_run or run, caps)
    stopped = next((failure.reason for failure in failures if failure.over_budget), None)
    return BudgetLine(project_usd=caps.project_usd, run_cap_usd=caps.run_usd, spent_run_usd=spend.run_usd,
                      spent_project_usd=spend.project_usd, remaining_usd=spend.remaining_usd, stopped=stopped,
                      shadow_stop=budgets.shadow_stop(parent_run or run, caps))


def _shot_table(report: RenderReport) -> str:
    rows = [
        f"| {line.shot} | T{line.take:02d} | {line.approach} | {line.status} | {line.review or ''} | {line.provider_calls} "
        f"| ${line.cost_usd:.3f} | {line.reason or ''} |"
        for line in report.lines
    ]
    return "\n".join([
        f"# Episode {report.episode:03d}",
        "",
        f"Cut: `{report.output or report.cut_skipped}`  ",
        *([f"Stale (cut from clips of an older storyboard): shots {', '.join(map(str, report.stale_shots))}  "]
          if report.stale_shots else []),
        *[f"Kept: {line}  " for line in report.decisions_kept],
        *([f"Kept, made by an older reelflow (`--rerender-upgraded` makes them again): shots "
           f"{', '.join(str(shot.shot) for shot in report.upgraded_kept)}  "] if report.upgraded_kept else []),
        f"Shots: {report.shots.rendered} rendered, {report.shots.cached} cached, {report.shots.kept} approved and kept, "
        f"{report.shots.failed} failed · provider calls {report.provider_calls} · "
        f"{money_words(report.charged_usd, report.shadow_usd)}",
        *([f"Held for keyframe review: {report.shots.held} shots; their upscale and video, ${report.held_usd:.3f}, "
           "are made once their keyframes are approved  "] if report.shots.held else []),
        "",
        "| shot | take | approach | status | gates | calls | cost | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        *(["", "| pod | GPU | $/hr | seconds | cost so far | status |", "| --- | --- | --- | --- | --- | --- |"]
          if report.pods else []),
        *[f"| {pod.id or pod.name} | {pod.gpu} | ${pod.cost_per_hr:.2f} | {pod.seconds:.0f} | ${pod.cost_usd:.3f} "
          f"| {pod.status} |" for pod in report.pods],
    ])


def record_dailies(folder: ProjectFolder, storyboard: Storyboard, outcomes: dict[int, ShotOutcome],
                   failures: dict[int, ShotFailed], lines: dict[int, ShotLine],
                   seen: dict[int, int], held: dict[int, KeyframesHeld]) -> tuple[Dailies, dict[int, str]]:
    """Write each shot's gate and clip checks to the dailies; a shot with a new or changed take becomes generated or
    needs_review, a held one keyframes_review, unless someone decided on it while the run went (its `version` is not
    the one read at the start): that decision stands. Returns the dailies and one line per decision kept, by shot.
    """
    kept: dict[int, str] = {}
    with changing_dailies(folder, storyboard) as dailies:
        for number, stopped in held.items():
            review = dailies.shot(number)
            review.gates = [t for t in review.gates if t.take != stopped.take] + stopped.tries
            if review.version != seen.get(number, 0):
                last = review.history[-1]
                kept[number] = f"{last.status} by {last.by} during the render: the decision stands"
                continue
            review.held(stopped.take, stopped.frames, at=now())
        for number, outcome in outcomes.items():
            review = dailies.shot(number)
            review.gates = [t for t in review.gates if t.take != outcome.take] + outcome.tries
            review.clip_checks = [c for c in review.clip_checks if c.take != outcome.take] + outcome.clip_checks
            if review.version != seen.get(number, 0):
                last = review.history[-1]
                kept[number] = (f"{last.status} by {last.by} during the render: the decision stands "
                                f"(T{outcome.take:02d}'s checks added)")
                continue
            changed = lines[number].status == "rendered" or review.take != outcome.take
            if changed or review.status in ("pending", "retake"):
                review.rendered(outcome.take, outcome.route, at=now())
        for number, failure in failures.items():
            review, take = dailies.shot(number), lines[number].take
            review.gates = [t for t in review.gates if t.take != take] + failure.tries
            review.clip_checks = [c for c in review.clip_checks if c.take != take] + failure.clip_checks
    return dailies, kept


def cut_clips(
    folder: ProjectFolder, storyboard: Storyboard, dailies: Dailies, outcomes: dict[int, ShotOutcome | UpgradeKept],
    manifest: Manifest, run: str,
) -> tuple[dict[int, AssetRef], dict[int, AssetRef], list[int], dict[tuple[int, int], str]]:
    """Each shot's clip for the cut, at its approved (else latest) take: made or kept now; for an approved take, its
    published clip as the manifest records it (what its reviewer approved, whatever the storyboard says now); else in
    the cache for the current storyboard, or published from the inputs the shot has now (by an older reelflow).
    Returns those, the clips published earlier that no longer match the storyboard (stale), the shots with no clip at
    all, and the inputs of the takes found in the cache as they were published (for the manifest).
    """
    takes = {shot.shot: dailies.shot(shot.shot).cut_take for shot in storyboard.shots}
    current = {n: o.clip for n, o in outcomes.items() if o.take == takes[n]}
    assets_dir = folder.assets_dir(storyboard.episode)
    missing: list[int] = []
    for number, take in takes.items():
        if number not in current and dailies.shot(number).approved_take == take:
            restore_take(store_for(folder.state_dir), assets_dir, manifest, number, take)  # approved on another host
            approved = published_clip(assets_dir, manifest, number, take)
            if approved is None:
                missing.append(number)  # never another clip in its place: only the approved bytes stand for it
            else:
                current[number] = approved
    others = {n: take for n, take in takes.items() if n not in current and n not in missing}
    stale: dict[int, AssetRef] = {}
    inputs: dict[tuple[int, int], str] = {}
    for job in shot_jobs(folder, storyboard, others, run):
        job = as_made(job, manifest)
        number = job.shot.shot
        clip = current_clip(job)
        if clip is not None:
            current[number] = clip
            if not same_inputs(job, manifest) and (published := published_clip(assets_dir, manifest, number, job.take)):
                if published.sha256 == clip.sha256:  # what the take published is what its inputs make now
                    inputs[number, job.take] = shot_inputs(job)
        elif (kept := matching_clip(job, manifest)) is not None:
            current[number] = kept
        elif (old := published_clip(assets_dir, manifest, number, job.take)) is not None:
            stale[number] = old
        else:
            missing.append(number)
    return current, stale, sorted(missing), inputs


def kept_words(kept: UpgradeKept) -> str:
    """Why a take was kept though its stages would make work again, and what that would cost, in one line."""
    upgrade = kept.upgrade
    return (f"T{kept.take:02d} kept, made by an older reelflow from the inputs it has now: {'; '.join(upgrade.reasons)}; "
            f"making it again costs ${upgrade.cost_usd:.3f} (--rerender-upgraded)")


def cut_problem(stale: list[int], missing: list[int], allow_stale: bool, held: Iterable[int] = ()) -> str | None:
    """Why the episode cannot be cut, in one line; None when it can."""
    why, held = [], set(held)
    waiting = [number for number in missing if number in held]
    if waiting:
        why.append(f"shots {', '.join(map(str, waiting))} wait for keyframe review "
                   f"(reelflow dailies … --approve-keyframes {','.join(map(str, waiting))})")
    if other := [number for number in missing if number not in held]:
        why.append(f"shots {', '.join(map(str, other))} have no clip")
    if stale and not allow_stale:
        why.append(f"shots {', '.join(map(str, stale))} have only clips of an older storyboard "
                   "(render them, or cut with --allow-stale)")
    return f"no cut: {'; '.join(why)}" if why else None


@flow(
    name="render-episode",
    flow_run_name=run_name("render"),
    on_running=[tag_run(RENDER_STAGES)],
    task_runner=ThreadPoolTaskRunner(max_workers=SHOT_WORKERS),
    **RENDER_HOOKS,
    **FLOW_OPTIONS,
)
def render_episode(
    project: str,
    episode: int,
    shots: list[int] | None = None,
    max_cost_usd: float | None = None,
    retakes: bool = False,
    allow_stale: bool = False,
    parent_run: str | None = None,
    rerender_upgraded: bool = False,
    gpu: bool = False,
    until: Literal["keyframes"] | None = None,
) -> RenderReport | State:
    """Render the selected shots of one episode (all by default; only retakes with `retakes`) and cut it.

    A shot whose keyframes a person should see first (project.json `review.keyframes`: those Gate 2 sent to review by
    default) stops after its gates, status keyframes_review, until someone approves exactly those frames; `until`
    "keyframes" stops every shot there. The report's `held_usd` is what their upscale and video will cost.

    The cut takes only clips that match the current storyboard, unless `allow_stale` lets older ones in; an approved
    take's clip is cut as it was approved.
    `parent_run` is the ledger run of a run over several episodes: `max_cost_usd` is then that run's cap, shared.

    Approved shots are never rendered again. Shots that only an upgrade of reelflow would make again (their own
    inputs unchanged) keep their takes unless `rerender_upgraded` or project.json's `"upgrades": "rerender"` asks
    for them; the report lists them with what making them again costs. Paid calls stop at this run's
    `max_cost_usd` and at the project's `budget_usd` (its total over every run and process).
    With failed shots the run ends Failed (visible as such in the UI), still carrying the report.
    `gpu` renders the stages project.json's `gpu_providers` names on the GPU (the gpu pool's deployment). The
    project's checkout stays still while it renders: a push's run moves it once no render reads it.

    Args:
        project: The project folder's absolute path on the worker's machine.
        episode: The episode number.
        shots: The shots to render; by default all.
        max_cost_usd: A cap on this run's spend in USD (the project's budget_usd holds too).
        retakes: Render only the shots sent back for a retake.
        allow_stale: Cut with clips of an older storyboard where a shot has no current one.
        parent_run: The ledger run of a run over several episodes (set by render-pending and render-changed).
        rerender_upgraded: Make again the shots only an upgrade of reelflow would change.
        gpu: Render the stages project.json's gpu_providers names on the GPU.
        until: "keyframes": stop every shot after its keyframes' gates, for review before video is paid for.
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    with reading(load_project(project).root):
        return episode_render(project, episode, shots, max_cost_usd, retakes, allow_stale, parent_run,
                              rerender_upgraded, gpu, until == "keyframes")


def episode_render(project: str, episode: int, shots: list[int] | None, max_cost_usd: float | None, retakes: bool,
                   allow_stale: bool, parent_run: str | None, rerender_upgraded: bool,
                   gpu: bool, until_keyframes: bool = False) -> RenderReport | State:
    """render-episode's work, while the project's checkout is held still."""
    logger = get_run_logger()
    started, began = time.monotonic(), time.time()
    folder = load_project(project)
    if gpu:
        folder = replace(folder, project=folder.project.on_gpu())
    storyboard = load_storyboard(folder, episode)
    numbers = select_shots(storyboard, shots, folder.storyboard_path(episode).name)
    require_providers(folder.project, RENDER_STAGES)
    before = read_dailies(folder, storyboard)
    takes, kept = before.takes_to_render(numbers, retakes_only=retakes)
    seen = {review.shot: review.version for review in before.shots}

    # The run's calls and cost are the ledger's rows for this run, whichever process made them.
    run = ledger_run()
    found = read_manifest(folder.assets_dir(episode), folder.project.code, episode, folder.state_dir)
    jobs = takes_now(shot_jobs(folder, storyboard, takes, run, max_cost_usd, parent_run), before, found)
    refuse_invalid_requests(folder, episode, jobs)
    keeping = not rerender_upgraded and folder.project.upgrades == "keep"
    futures = submit_shots(render_shot, start_order(jobs), shots_in_flight(folder), manifest=found, keep_upgraded=keeping,
                           until_keyframes=until_keyframes)
    outcomes: dict[int, ShotOutcome] = {}
    failures: dict[int, ShotFailed] = {}
    upgraded: dict[int, UpgradeKept] = {}
    held: dict[int, KeyframesHeld] = {}
    for job in jobs:
        try:
            result = futures[job.shot.shot].result()
        except ShotFailed as exc:
            failures[job.shot.shot] = exc
            logger.error("shot %s failed at %s: %s", job.shot.shot, exc.stage, exc.reason)
            continue
        if isinstance(result, UpgradeKept):
            upgraded[job.shot.shot] = result
            logger.warning("shot %s: %s", job.shot.shot, kept_words(result))
        elif isinstance(result, KeyframesHeld):
            held[job.shot.shot] = result
            logger.info("shot %s: keyframes wait for review (T%02d)", job.shot.shot, result.take)
        else:
            outcomes[job.shot.shot] = result
    spend = Ledger(database(folder.state_dir)).run_spend(run)
    lines: dict[int, ShotLine] = {}
    for job in jobs:
        number = job.shot.shot
        calls, cost = spend.get(number, (0, 0.0))
        line = ShotLine(shot=number, approach=job.shot.generation_approach.value, take=job.take, provider_calls=calls,
                        cost_usd=cost, status="rendered" if calls else "cached")
        if number in failures:
            line.status, line.stage, line.reason = "failed", failures[number].stage, failures[number].reason
        elif number in upgraded:
            line.status, line.reason = "upgraded_kept", kept_words(upgraded[number])
        elif number in held:
            stopped = held[number]
            line.status, line.review, line.take = "keyframes_review", stopped.route, stopped.take
            line.reason = (f"keyframes wait for review: approve them (reelflow dailies … --approve-keyframes {number}) "
                           "and render again to make the video")
        else:
            outcome = outcomes[number]
            line.review, line.take = outcome.route, outcome.take
            if outcome.take != takes[number]:
                line.reason = outcome.passed_over or (f"T{takes[number]:02d} was made from other inputs and is kept as "
                                                      f"it is: this render's footage is T{outcome.take:02d}")
        lines[number] = line
    dailies, decisions_kept = record_dailies(folder, storyboard, outcomes, failures, lines, seen, held)
    for number, why in decisions_kept.items():
        logger.warning("shot %s: %s", number, why)
        lines[number].reason = why
    for number in kept:
        take = dailies.shot(number).take
        lines[number] = ShotLine(shot=number, approach=storyboard.shot(number).generation_approach.value, status="kept",
                                 take=take, reason=f"approved take T{take:02d} kept; mark it retake to change it")
    report_lines = [lines[number] for number in numbers if number in lines]

    # The cut: every shot's clip at its approved (else latest) take, as the current storyboard makes it.
    assets_dir = folder.assets_dir(episode)
    manifest = read_manifest(assets_dir, folder.project.code, episode, folder.state_dir)
    current, stale, missing, inputs = cut_clips(folder, storyboard, dailies, outcomes | upgraded, manifest, run)
    waiting = [review.shot for review in dailies.shots if review.status in ("keyframes_review", "keyframes_approved")]
    cut_skipped = cut_problem(sorted(stale), missing, allow_stale, waiting)
    cut_entry = None
    if cut_skipped is None:
        clips = current | stale
        cut_entry = cut_episode(folder.root.resolve(), episode, quote([clips[s.shot] for s in storyboard.shots]), assets_dir)
    else:
        logger.warning(cut_skipped)
    if stale and cut_entry is not None:
        logger.warning("cut with clips of an older storyboard: shots %s", ", ".join(map(str, sorted(stale))))
    finished: dict[int, ShotOutcome | KeyframesHeld] = outcomes | held
    rendered = {(n, o.take): o.entries for n, o in finished.items()}
    made = [at_take(job, finished[job.shot.shot].take) for job in jobs if job.shot.shot in finished]
    inputs |= {(job.shot.shot, job.take): shot_inputs(job) for job in made}
    seeds = {(job.shot.shot, job.take): job.seed for job in made}
    manifest_path = save_merged(folder.state_dir, folder.dailies_path(episode).name, assets_dir, folder.project.code,
                                episode, lambda latest: merge(latest, rendered, cut_entry, inputs, seeds))

    counts = ShotCounts(
        total=len(report_lines),
        rendered=sum(line.status == "rendered" for line in report_lines),
        cached=sum(line.status == "cached" for line in report_lines),
        kept=sum(line.status == "kept" for line in report_lines),
        failed=sum(line.status == "failed" for line in report_lines),
        held=sum(line.status == "keyframes_review" for line in report_lines),
    )
    report = RenderReport(
        episode=episode,
        output=str(cut_path(assets_dir, episode)) if cut_entry else None,
        manifest=str(manifest_path),
        shots=counts,
        provider_calls=sum(calls for calls, _ in spend.values()),
        cost_usd=round(sum(cost for _, cost in spend.values()), 6),
        shadow_usd=Ledger(database(folder.state_dir)).run_shadow(run),
        lines=report_lines,
        cut_skipped=cut_skipped,
        stale_shots=sorted(stale) if cut_entry is not None else [],
        decisions_kept=[f"shot {number}: {why}" for number, why in sorted(decisions_kept.items())],
        upgraded_kept=[upgraded[number].upgrade for number in numbers if number in upgraded],
        budget_usd=max_cost_usd if max_cost_usd is not None else folder.project.budget_usd,
        budget=budget_line(folder, run, max_cost_usd, failures.values(), parent_run),
        pods=pods_during(folder.state_dir, began),
        held_usd=held_cost(jobs, held) if held else 0.0,
    )
    create_markdown_artifact(
        key=f"{folder.project.code.lower()}-ep{episode:03d}-render",
        markdown=_shot_table(report),
        description=f"{folder.project.title} episode {episode}: shots, status and cost",
    )
    logger.info("episode %s: %s in %.1f s", episode, counts.model_dump(), time.monotonic() - started)
    save_report(folder.state_dir, run, report.model_dump_json().encode())
    if counts.failed:
        failed = ", ".join(f"{line.shot} ({line.stage})" for line in report.lines if line.status == "failed")
        return Failed(message=f"{counts.failed} of {counts.total} shots failed: {failed}", data=report)
    return report
