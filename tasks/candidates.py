"""Character candidates: a diversity grid over angles, places, expressions, light and wardrobes, each cell made from
keystones.

`threepass` (recommended): Qwen multi-angle turns the camera → Nano Banana Pro swaps the background, expression and
light keeping the identity → SeedVR2 upscales. `hybrid`: Qwen, then a Gemini Flash edit. `gemini`: one Gemini edit
from the keystones. Every call goes through the cache and the ledger like a render's.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prefect import task

from reelflow.media.hashing import sha256_file
from reelflow.media.probe import probe_image
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.characters import KEYSTONE_SUFFIXES, LORA_TYPES, Candidate, CandidateMode, LineageStep, LoraType
from reelflow.schemas.errors import ContractError, MediaError
from reelflow.schemas.load import ProjectFolder, load_storyboard_file
from reelflow.schemas.project import Location, Wardrobe
from reelflow.schemas.requests import EditRequest, UpscaleRequest
from reelflow.schemas.wire.fal import NANO_BANANA_EDIT, QWEN_ANGLES, SEEDVR_UPSCALE
from reelflow.state.cache import Outcome
from reelflow.state.candidates import candidates_dir
from reelflow.state.generated import write_generated
from reelflow.tasks.calls import call_provider
from reelflow.tasks.job import CharacterJob
from reelflow.tasks.retry import stage_task_options

VERSION = 1
STAGE = "candidates"
MAX_KEYSTONES = 3  # Gemini takes at most three input images: the front one, the closest angle, one more
MIN_BACKGROUNDS, MAX_BACKGROUNDS = 5, 10
CAPTION_WARDROBE_WORDS = 10  # a caption names a wardrobe in at most this many words: the place needs room too
SKIN = ("Photorealistic skin with visible pores, fine lines, freckles and natural imperfections; no airbrushing, "
        "no beauty filter, no smoothing.")


@dataclass(frozen=True)
class Angle:
    """A camera position around the character, in Qwen multi-angle's numbers, and how a caption says it."""

    label: str
    horizontal: float
    vertical: float
    zoom: float
    framing: str
    phrase: str


ANGLES: tuple[Angle, ...] = (
    Angle("front", 0, 0, 5, "medium", "seen from the front at eye level"),
    Angle("front close-up", 0, 0, 9, "close-up", "seen from the front, close to the face"),
    Angle("three-quarter right", 45, 0, 5, "medium", "turned three-quarters to the right"),
    Angle("three-quarter left", 315, 0, 5, "medium", "turned three-quarters to the left"),
    Angle("profile right", 90, 0, 6, "medium", "in right profile"),
    Angle("profile left", 270, 0, 6, "medium", "in left profile"),
    Angle("low front", 0, -30, 3, "full", "seen from below, looking up at them"),
    Angle("high three-quarter", 30, 45, 5, "medium", "seen from above at a three-quarter angle"),
    Angle("back three-quarter", 150, 0, 3, "full", "seen from behind over the shoulder"),
    Angle("full body front", 0, 0, 0, "full", "standing, seen from the front"),
)
FRAMINGS = {"close-up": "a close-up of the face and shoulders", "medium": "a medium shot from the waist up",
            "full": "a full-body shot from head to toe"}
EXPRESSIONS: dict[str, str] = {
    "neutral": "a calm, neutral expression",
    "soft smile": "a soft, closed-mouth smile",
    "laughing": "an open, unguarded laugh",
    "determined": "a determined, focused look",
    "worried": "a worried frown",
    "angry": "an angry glare",
    "surprised": "a surprised look with raised brows",
}
LIGHTING: dict[str, str] = {
    "soft daylight": "soft, diffuse daylight",
    "golden hour": "warm golden-hour sunlight",
    "overcast": "cool, flat overcast light",
    "low-key": "moody low-key light with deep shadows",
    "neon rim": "magenta and cyan neon rim light",
}


@dataclass(frozen=True)
class Keystone:
    """A keystone image and the angle its name says it shows (None: not said)."""

    ref: AssetRef
    angle: float | None

    @property
    def name(self) -> str:
        return self.ref.path.name


@dataclass(frozen=True)
class Cell:
    """One point of the diversity grid: what a candidate shows."""

    angle: Angle
    location: Location
    expression: str
    lighting: str
    wardrobe: Wardrobe | None = None  # None: the character lists no wardrobes (it wears what the keystones show)


@dataclass(frozen=True)
class Step:
    """One call of a mode's chain: which provider and model make it."""

    name: str  # "angle", "edit" or "upscale"
    provider: str
    model: str


def trigger_word(project_code: str, character: str) -> str:
    """The token a LoRA learns the character by, e.g. `jinx_lev`: rare enough not to be an English word."""
    return f"{character.lower()}_{project_code.lower()}"


def keystone_angle(name: str) -> float | None:
    """The horizontal angle a keystone's file name says it shows: front, back, left/right profile or three-quarter."""
    words = set(name.lower().replace("-", "_").replace(".", "_").split("_"))
    side = 90.0 if "right" in words else 270.0 if "left" in words else None
    if "back" in words:
        return 180.0
    if words & {"3q", "quarter", "threequarter", "three"} and side is not None:
        return 45.0 if side == 90.0 else 315.0
    if words & {"profile", "side"} or side is not None:
        return side
    return 0.0 if "front" in words else None


def read_keystones(folder: ProjectFolder, character: str) -> list[Keystone]:
    """The character's keystone images (png, jpg, webp), sorted by name; each must open as an image."""
    where = candidates_dir(folder.root, character) / "keystones"
    files = sorted(path for path in where.glob("*") if path.is_file() and path.suffix.lower() in KEYSTONE_SUFFIXES) \
        if where.is_dir() else []
    if not files:
        raise ContractError(f"visual/lora_candidates/{character}/keystones: no keystone images (png, jpg, webp)")
    keystones, problems = [], []
    for path in files:
        try:
            keystones.append(Keystone(AssetRef(path=path, sha256=sha256_file(path), media=probe_image(path)),
                                      keystone_angle(path.name)))
        except MediaError as exc:
            problems.append(f"visual/lora_candidates/{character}/keystones/{path.name}: {exc}")
    if problems:
        raise ContractError("\n".join(problems))
    return keystones


def _turn(a: float, b: float) -> float:
    return min(abs(a - b) % 360, 360 - abs(a - b) % 360)


def keystones_for(keystones: list[Keystone], horizontal: float, index: int) -> list[Keystone]:
    """At most three keystones for a candidate: the front one, the closest to its angle, and one more for depth."""
    front = next((k for k in keystones if k.angle == 0.0), keystones[0])
    rest = [k for k in keystones if k is not front]
    if not rest:
        return [front]
    known = [k for k in rest if k.angle is not None]
    closest = min(known, key=lambda k: _turn(k.angle or 0.0, horizontal)) if known else rest[index % len(rest)]
    others = [k for k in rest if k is not closest]
    return [front, closest, *([others[index % len(others)]] if others else [])][:MAX_KEYSTONES]


def character_locations(folder: ProjectFolder, character: str) -> list[Location]:
    """The places the character appears, most shots first; under five, the project's other places fill up to five.

    At most ten: the grid spreads the candidates over them evenly.
    """
    by_id = {location.id: location for location in folder.breakdown.locations}
    shots: dict[str, int] = {}
    for path in folder.storyboard_paths():
        for shot in load_storyboard_file(folder, path).shots:
            if character in shot.characters_in_shot:
                shots[shot.location] = shots.get(shot.location, 0) + 1
    chosen = sorted(shots, key=lambda place: (-shots[place], place))[:MAX_BACKGROUNDS]
    for location in folder.breakdown.locations:
        if len(chosen) >= MIN_BACKGROUNDS:
            break
        if location.id not in chosen:
            chosen.append(location.id)
    return [by_id[place] for place in chosen]


def diversity_grid(count: int, locations: list[Location], seed: int, wardrobes: Sequence[Wardrobe] = ()) -> list[Cell]:
    """`count` cells of angles × places × expressions × light × wardrobes, spread evenly and the same for the same seed.

    Each cell is the unused combination whose values (and angle-place, place-expression, angle-expression pairs, and
    with several wardrobes place-wardrobe and wardrobe-expression pairs) have been used least so far, ties broken in
    a seeded order: every value comes round before any repeats, and a longer run extends a shorter one. With one
    wardrobe or none the grid is the one made before wardrobes were an axis.
    """
    outfits: list[Wardrobe | None] = list(wardrobes) or [None]
    combos = list(itertools.product(ANGLES, locations, EXPRESSIONS, LIGHTING, outfits))
    random.Random(seed).shuffle(combos)
    index: dict[object, int] = {}

    def keys(combo: tuple[Angle, Location, str, str, Wardrobe | None]) -> tuple[list[int], list[int]]:
        """The combination's values and pairs, as indexes into the use counts."""
        angle, place, expression, light, outfit = combo
        parts: list[object] = [angle, place.id, expression, light]
        pairs: list[object] = [(angle, place.id), (place.id, expression), (angle, expression)]
        if len(outfits) > 1 and outfit is not None:
            worn = ("wardrobe", outfit.id)
            parts.append(worn)
            pairs += [(place.id, worn), (worn, expression)]
        return ([index.setdefault(key, len(index)) for key in parts],
                [index.setdefault(key, len(index)) for key in pairs])

    keyed = [keys(combo) for combo in combos]
    parts, pairs = np.array([p for p, _ in keyed]), np.array([q for _, q in keyed])
    used = np.zeros(len(index), dtype=np.int64)
    free = np.ones(len(combos), dtype=bool)
    cells: list[Cell] = []
    for _ in range(min(count, len(combos))):
        load = used[parts].sum(axis=1) + 2 * used[pairs].sum(axis=1)
        best = int(np.argmin(np.where(free, load, np.iinfo(np.int64).max)))  # the first least: the seeded order
        free[best] = False
        np.add.at(used, parts[best], 1)
        np.add.at(used, pairs[best], 1)
        angle, place, expression, light, outfit = combos[best]
        cells.append(Cell(angle, place, expression, light, outfit))
    return cells


def wardrobe_words(wardrobe: Wardrobe) -> str:
    """How a prompt names a wardrobe: its description, else its name in words."""
    return (wardrobe.description or wardrobe.id.replace("_", " ").replace("-", " ")).strip().rstrip(".")


def place_words(location: Location) -> list[str]:
    """How a caption names a place: its description, else its id and zone in words."""
    text = location.description or " ".join(filter(None, [location.id.replace("_", " ").lower(),
                                                          f"in the {location.zone} zone" if location.zone else ""]))
    return text.rstrip(".").split()


def caption(trigger: str, cell: Cell, lora_type: LoraType) -> str:
    """The trigger word and only what varies (framing, angle, wardrobe, expression, light, place), in the type's word
    range.

    Never the fixed identity (face, hair, build, and the outfit when the character lists no wardrobes): the LoRA must
    learn those from the trigger alone. A listed wardrobe varies, so it is named: a prompt can then ask for it.
    """
    low, high = LORA_TYPES[lora_type].caption_words
    framing, expression, light = FRAMINGS[cell.angle.framing], EXPRESSIONS[cell.expression], LIGHTING[cell.lighting]
    worn = " ".join(wardrobe_words(cell.wardrobe).split()[:CAPTION_WARDROBE_WORDS]) if cell.wardrobe else ""
    if lora_type == "z_image":
        dressed = f"wearing {worn}, " if worn else ""
        head = f"{trigger}, {framing}, {cell.angle.phrase}, {dressed}with {expression}, lit by {light}, in front of"
        tail = ""
    else:
        dressed = f"They are dressed in {worn}. " if worn else ""
        head = (f"A photograph of {trigger}: {framing}, {cell.angle.phrase}. {dressed}They wear {expression}. "
                f"The light is {light}. Behind them:")
        tail = " Nothing else in the frame draws attention."
    room = high - len(head.split()) - len(tail.split())
    place = place_words(cell.location)[:room]
    text = f"{head} {' '.join(place)}.{tail}"
    while len(text.split()) < low:
        text += f" The setting is recognisably {cell.location.id.replace('_', ' ').lower()}."
    return text


def mode_steps(mode: CandidateMode, provider: str, edit_model: str | None) -> list[Step]:
    """The chain of calls a mode makes. The local provider makes every step (as the cloud models, priced as them);
    otherwise each model's own service does: fal for Qwen, Nano Banana Pro and SeedVR2, Gemini for Gemini."""
    chains: dict[str, list[tuple[str, str]]] = {
        "threepass": [("angle", QWEN_ANGLES), ("edit", edit_model or NANO_BANANA_EDIT), ("upscale", SEEDVR_UPSCALE)],
        "hybrid": [("angle", QWEN_ANGLES), ("edit", edit_model or "gemini-3.1-flash-image")],
        "gemini": [("edit", edit_model or "gemini-3-pro-image")],
    }
    return [
        Step(name, provider if provider == "local" else "gemini" if model.startswith("gemini-") else "fal", model)
        for name, model in chains[mode]
    ]


def edit_size(final: tuple[int, int]) -> tuple[int, int]:
    """The identity edit at 1K (Nano Banana's cheapest tier), with the final image's aspect."""
    width, height = final
    scale = 1024 / max(width, height)
    return round(width * scale / 8) * 8, round(height * scale / 8) * 8


def edit_prompt(cell: Cell, keep_angle: bool) -> str:
    """The identity edit: same person, new place, expression and light (and the cell's wardrobe), with natural skin."""
    place = " ".join(place_words(cell.location))
    camera = "Keep the camera angle and framing of the first image." if keep_angle else \
        f"Show them {cell.angle.phrase}, as {FRAMINGS[cell.angle.framing]}."
    person = (f"the same face, identity, body proportions and hair as in the reference images, dressed in "
              f"{wardrobe_words(cell.wardrobe)}" if cell.wardrobe else
              "the same face, identity, body proportions, hair and outfit as in the reference images")
    return (f"Keep this exact person: {person}. {camera} Replace the background with {place}. Give them "
            f"{EXPRESSIONS[cell.expression]}. Light the scene with {LIGHTING[cell.lighting]}. {SKIN}")


def candidate_seed(project_code: str, character: str, seed: int, index: int) -> int:
    return int(hashlib.sha256(f"{project_code}:{character}:{seed}:{index}".encode()).hexdigest()[:8], 16)


def _lineage(step: Step, outcome: Outcome) -> LineageStep:
    made = outcome.provenance
    return LineageStep(step=step.name, provider=made.provider, model=made.model, params=made.params, seed=made.seed,
                       inputs=[ref.sha256 for ref in made.inputs], sha256=outcome.file.sha256,
                       cost_usd=made.cost_usd, request_id=made.request_id)


@task(name="candidate", task_run_name="{job.label}", **stage_task_options())
def make_candidate(job: CharacterJob, index: int, cell: Cell, keystones: list[Keystone], steps: list[Step],
                   caption_type: LoraType, trigger: str, seed: int) -> tuple[Candidate, bool]:
    """One candidate through its mode's chain, written as `visual/lora_candidates/<CHAR>/<CHAR>_cNNN.png`; and
    whether any of its steps was made now (not all found in the cache)."""
    final = job.project.production_size
    picked = keystones_for(keystones, cell.angle.horizontal, index)
    image, references = picked[0].ref, [k.ref for k in picked[1:]]
    lineage: list[LineageStep] = []
    made = False
    for step in steps:
        source, refs = image, references
        if step.name == "angle":
            outcome = call_provider(
                job, stage=STAGE, version=VERSION, capability="edit_image", ext="png", inputs=[source],
                use=(step.provider, step.model),
                build=lambda model, source=source: EditRequest(
                    model=model, seed=seed, image=source.path, prompt=f"Turn the camera: {cell.angle.label}",
                    horizontal_angle=cell.angle.horizontal, vertical_angle=cell.angle.vertical, zoom=cell.angle.zoom,
                ),
            )
        elif step.name == "edit":
            width, height = edit_size(final) if step is not steps[-1] else final
            outcome = call_provider(
                job, stage=STAGE, version=VERSION, capability="edit_image", ext="png", inputs=[source, *refs],
                use=(step.provider, step.model),
                build=lambda model, source=source, refs=refs, width=width, height=height: EditRequest(
                    model=model, seed=seed, image=source.path, references=tuple(ref.path for ref in refs),
                    prompt=edit_prompt(cell, keep_angle=steps[0].name == "angle"), width=width, height=height,
                ),
            )
        else:
            outcome = call_provider(
                job, stage=STAGE, version=VERSION, capability="upscale_image", ext="png", inputs=[source],
                use=(step.provider, step.model),
                build=lambda model, source=source: UpscaleRequest(
                    model=model, seed=seed, image=source.path, width=final[0], height=final[1]),
            )
        lineage.append(_lineage(step, outcome))
        made = made or outcome.made
        image = outcome.file
    name = f"{job.character}_c{index:03d}.png"
    write_generated(job.root, candidates_dir(job.root, job.character) / name, image)
    return Candidate(
        file=name, sha256=image.sha256, angle=cell.angle.label, horizontal_angle=cell.angle.horizontal,
        vertical_angle=cell.angle.vertical, zoom=cell.angle.zoom, framing=cell.angle.framing,
        location=cell.location.id, expression=cell.expression, lighting=cell.lighting,
        wardrobe=cell.wardrobe.id if cell.wardrobe else None,
        caption=caption(trigger, cell, caption_type), keystones=[k.name for k in picked], lineage=lineage,
        seed=seed, cost_usd=round(sum(step.cost_usd for step in lineage), 6),
    ), made

