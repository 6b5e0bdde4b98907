"""A character's LoRA, from keystones to the registry: `build_character_dataset`, then a person picks, then
`train_character_lora`.

1. The dataset flow spreads `count` candidates over a diversity grid (angles × the character's places × expressions
   × light × its wardrobes) and makes each from at most three keystones, one task per candidate, in parallel.
2. A person curates them (`reelflow pick`), which marks the selection in the candidates' `manifest.json`.
3. The training flow checks the selection, zips it with captions written for the LoRA type, trains through the
   ledger, and registers the weights in `visual/lora_registry.json`, where every keyframe and video stage reads them.
"""

from __future__ import annotations

import uuid

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from reelflow.flows.naming import FLOW_OPTIONS, run_name, tag_run
from reelflow.flows.render import SHOT_WORKERS
from reelflow.providers.registry import get_provider, require_providers
from reelflow.schemas.characters import (
    LORA_TYPES,
    CandidateFailure,
    CandidateManifest,
    CandidateMode,
    CandidatesReport,
    LoraType,
    TrainingReport,
)
from reelflow.schemas.env import checkout_here
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder, load_project
from reelflow.schemas.project import Character
from reelflow.state.candidates import manifest_path, read_candidates, record_candidates, require_candidates
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.loras import register_loras
from reelflow.tasks.candidates import (
    candidate_seed,
    character_locations,
    diversity_grid,
    make_candidate,
    mode_steps,
    read_keystones,
    trigger_word,
)
from reelflow.tasks.job import CharacterJob
from reelflow.tasks.training import dataset_problems, selected_refs, train_lora, training_captions, zip_dataset


def find_character(folder: ProjectFolder, character: str) -> Character:
    """The breakdown's character with this id, or a one-line error listing the ids there are."""
    for known in folder.breakdown.characters:
        if known.id == character:
            return known
    have = ", ".join(known.id for known in folder.breakdown.characters) or "none"
    raise ContractError(f"breakdown.json: characters: no character {character!r} (have: {have})")


def check_candidates_run(folder: ProjectFolder, character: str, mode: CandidateMode, seed: int) -> None:
    """Everything a candidates run needs, checked before anything is written: the character, its keystones, the
    providers' keys, and a manifest made the same way (another mode, seed or set of wardrobes would overwrite its
    files with other pictures)."""
    known = find_character(folder, character)
    read_keystones(folder, character)
    choice = folder.project.stage("candidates")
    for step in mode_steps(mode, choice.use, choice.model):
        get_provider(step.provider)
    old = read_candidates(folder.root, character)
    if old is not None and (old.mode, old.seed) != (mode, seed):
        raise ContractError(
            f"visual/lora_candidates/{character}/manifest.json: made with --mode {old.mode} --seed {old.seed}; "
            f"run with those, or move the folder away to start a new set")
    wardrobes = [wardrobe.id for wardrobe in known.wardrobes]
    if old is not None and (old.wardrobes or []) != wardrobes:
        made = ", ".join(old.wardrobes or []) or "no wardrobes"
        raise ContractError(
            f"visual/lora_candidates/{character}/manifest.json: made with {made}; breakdown.json now lists "
            f"{', '.join(wardrobes) or 'none'} for {character}: move the folder away to start a new set")


def check_training_run(folder: ProjectFolder, character: str, lora_type: LoraType) -> CandidateManifest:
    """The character, its selection (every dataset problem, one line each) and the trainer's key, before any work."""
    known = find_character(folder, character)
    manifest = require_candidates(folder.root, character)
    locations = {location.id: location for location in folder.breakdown.locations}
    wardrobes = {wardrobe.id: wardrobe for wardrobe in known.wardrobes}
    problems = dataset_problems(folder.root, manifest, known,
                                training_captions(manifest, lora_type, locations, wardrobes))
    if problems:
        raise ContractError("\n".join(problems))
    require_providers(folder.project, ("training",))
    return manifest


def _spend(folder: ProjectFolder, run: str) -> tuple[int, float, float]:
    """This run's provider calls, its cost (charged + shadow), and the shadow part."""
    ledger = Ledger(database(folder.state_dir))
    spend = ledger.run_spend(run)
    return sum(calls for calls, _ in spend.values()), round(sum(usd for _, usd in spend.values()), 6), ledger.run_shadow(run)


@flow(
    name="build-character-dataset",
    flow_run_name=run_name("candidates"),
    on_running=[tag_run(("candidates",))],
    task_runner=ThreadPoolTaskRunner(max_workers=SHOT_WORKERS),
    **FLOW_OPTIONS,
)
def build_character_dataset(
    project: str,
    character: str,
    count: int = 24,
    mode: CandidateMode = "threepass",
    seed: int = 0,
    caption_type: LoraType = "flux2",
    max_cost_usd: float | None = None,
) -> CandidatesReport | State:
    """`count` diverse candidates of a character in `visual/lora_candidates/<CHAR>/`, with their manifest.

    Args:
        project: The project folder's absolute path on the worker's machine.
        character: The character's id in breakdown.json, e.g. ANA.
        count: How many candidates to make.
        mode: How each candidate is made (threepass: angle, identity and background edits, then upscale).
        seed: The run's seed; the same seed makes the same candidates.
        caption_type: The captions' style, for the LoRA type to train.
        max_cost_usd: A cap on this run's spend in USD (the project's budget_usd holds too).
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    folder = load_project(project)
    check_candidates_run(folder, character, mode, seed)
    known = find_character(folder, character)
    keystones = read_keystones(folder, character)
    cells = diversity_grid(count, character_locations(folder, character), seed, known.wardrobes)
    choice = folder.project.stage("candidates")
    steps = mode_steps(mode, choice.use, choice.model)
    trigger = trigger_word(folder.project.code, character)

    run = uuid.uuid4().hex
    futures: list[tuple[str, PrefectFuture]] = []
    for index, cell in enumerate(cells, start=1):
        job = CharacterJob(run=run, root=folder.root.resolve(), project=folder.project, max_cost_usd=max_cost_usd,
                           character=character, item=f"c{index:03d}")
        futures.append((f"{character}_c{index:03d}.png", make_candidate.submit(
            quote(job), index, quote(cell), quote(keystones), quote(steps), caption_type, trigger,
            candidate_seed(folder.project.code, character, seed, index))))
    made, fresh, failed = [], 0, []
    for name, future in futures:
        try:
            candidate, now = future.result()
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            failed.append(CandidateFailure(file=name, reason=reason))
            logger.error("%s failed: %s", name, reason)
            continue
        made.append(candidate)
        fresh += now
    record_candidates(folder.root, CandidateManifest(
        project=folder.project.code, character=character, trigger=trigger, mode=mode, caption_type=caption_type,
        seed=seed, wardrobes=[wardrobe.id for wardrobe in known.wardrobes], candidates=made))

    calls, cost, shadow = _spend(folder, run)
    report = CandidatesReport(
        character=character, mode=mode, manifest=str(manifest_path(folder.root, character)),
        files=[candidate.file for candidate in made], made=fresh, cached=len(made) - fresh, failed=failed,
        provider_calls=calls, cost_usd=cost, charged_usd=round(cost - shadow, 6), shadow_usd=shadow,
    )
    logger.info("%s: %s candidates (%s made, %s cached, %s failed), %s calls", character, len(made), report.made,
                report.cached, len(failed), calls)
    if failed:
        return Failed(message=f"{len(failed)} of {len(cells)} candidates failed", data=report)
    return report


@flow(
    name="train-character-lora",
    flow_run_name=run_name("train"),
    on_running=[tag_run(("training",))],
    **FLOW_OPTIONS,
)
def train_character_lora(
    project: str,
    character: str,
    lora_type: LoraType = "flux2",
    steps: int | None = None,
    max_cost_usd: float | None = None,
) -> TrainingReport:
    """Train the character's LoRA on its selected candidates and register it for every later render.

    Args:
        project: The project folder's absolute path on the worker's machine.
        character: The character's id in breakdown.json, e.g. ANA.
        lora_type: The base model the LoRA is trained for.
        steps: Training steps; by default the trainer's.
        max_cost_usd: A cap on this run's spend in USD (the project's budget_usd holds too).
    """
    project = checkout_here(project)  # this host's checkout of the studio's project
    logger = get_run_logger()
    folder = load_project(project)
    manifest = check_training_run(folder, character, lora_type)
    locations = {location.id: location for location in folder.breakdown.locations}
    wardrobes = {wardrobe.id: wardrobe for wardrobe in find_character(folder, character).wardrobes}
    captions = training_captions(manifest, lora_type, locations, wardrobes)
    run = uuid.uuid4().hex
    root = folder.root.resolve()
    job = CharacterJob(run=run, root=root, project=folder.project, max_cost_usd=max_cost_usd, character=character,
                       item=f"train-{lora_type}")
    dataset = zip_dataset(quote(job), quote(selected_refs(root, manifest)), quote(captions), lora_type)
    entries = train_lora(quote(job), quote(dataset), lora_type, steps or LORA_TYPES[lora_type].steps, manifest.trigger)
    registry = register_loras(root, character, entries)
    calls, cost, shadow = _spend(folder, run)
    logger.info("%s: %s LoRA registered (%s), %s calls, $%.3f", character, lora_type,
                ", ".join(entry.path for entry in entries), calls, cost)
    return TrainingReport(
        character=character, type=lora_type, registry=str(registry), dataset=str(dataset.path),
        dataset_sha256=dataset.sha256, images=len(captions),
        entries=[entry.model_dump(mode="json", exclude_none=True) for entry in entries], provider_calls=calls,
        cost_usd=cost, charged_usd=round(cost - shadow, 6), shadow_usd=shadow,
    )

