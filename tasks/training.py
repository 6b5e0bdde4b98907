"""Training a character LoRA: the selection checked, zipped with same-named captions, trained, and registered."""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from prefect import task

from reelflow.media.hashing import sha256_file
from reelflow.media.images import white_background
from reelflow.media.phash import dhash, near_duplicates
from reelflow.media.probe import probe_image
from reelflow.schemas.assets import AssetRef
from reelflow.schemas.characters import (
    EXPRESSION_RANGE,
    LORA_TYPES,
    SELECTION_RANGE,
    WARDROBE_RANGE,
    Candidate,
    CandidateManifest,
    LoraType,
)
from reelflow.schemas.loras import LoraEntry, is_url
from reelflow.schemas.project import Character, Location, Wardrobe
from reelflow.schemas.requests import TrainedLora, TrainRequest
from reelflow.state.candidates import MANIFEST, candidates_dir
from reelflow.state.generated import write_generated
from reelflow.state.loras import read_registry
from reelflow.tasks.calls import call_provider, run_media
from reelflow.tasks.candidates import ANGLES, Cell, caption
from reelflow.tasks.job import CharacterJob
from reelflow.tasks.retry import stage_task_options

VERSION = 1
DATASET_VERSION = 1
MIN_BACKGROUNDS = 5
IDENTITY_SHARE = 0.8  # captions naming the fixed identity: at this share the LoRA would not learn it from the trigger
STOPWORDS = frozenset("a an and the of in on with to at by for from her his their its is are was who has have".split())
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same selection zips to the same bytes


def _two_word_phrases(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {f"{a} {b}" for a, b in zip(words, words[1:], strict=False) if a not in STOPWORDS and b not in STOPWORDS}


def identity_phrases(character: Character) -> set[str]:
    """Phrases that describe who the character is: the name and each two-word phrase of the description, but for
    those its wardrobes' descriptions hold too (a listed wardrobe varies, and captions name it)."""
    phrases = {character.name.lower()} if character.name else set()
    worn = set().union(*(_two_word_phrases(wardrobe.description or "") for wardrobe in character.wardrobes))
    return phrases | (_two_word_phrases(character.description or "") - worn)


def named_phrases(text: str, phrases: set[str]) -> list[str]:
    """The identity phrases a caption contains, as whole words (`ana` is not in the trigger `ana_tst`)."""
    lowered = text.lower()
    return [phrase for phrase in phrases if re.search(rf"\b{re.escape(phrase)}\b", lowered)]


def training_captions(manifest: CandidateManifest, lora_type: LoraType, locations: dict[str, Location],
                      wardrobes: dict[str, Wardrobe]) -> dict[str, str]:
    """Each selected image's caption for `lora_type`: the manifest's own when it was written for that type (a person
    may have edited it) or names a place or wardrobe the breakdown no longer has, else one composed for the type from
    the candidate's grid fields."""
    captions: dict[str, str] = {}
    angles = {angle.label: angle for angle in ANGLES}
    for candidate in manifest.selected():
        worn = wardrobes.get(candidate.wardrobe) if candidate.wardrobe is not None else None
        if manifest.caption_type == lora_type or candidate.angle not in angles or candidate.location not in locations \
                or (candidate.wardrobe is not None and worn is None):
            captions[candidate.file] = candidate.caption
        else:
            cell = Cell(angles[candidate.angle], locations[candidate.location], candidate.expression, candidate.lighting,
                        worn)
            captions[candidate.file] = caption(manifest.trigger, cell, lora_type)
    return captions


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def spread_problems(manifest: CandidateManifest) -> list[str]:
    """The seed's dataset requirements the selection falls short of, one line each: at least 3 wardrobes (it asks for
    3-5) and 5 expressions (5-7). An image made before wardrobes were recorded shows no wardrobe that counts."""
    where = f"visual/lora_candidates/{manifest.character}/{MANIFEST}"
    unknown = sum(1 for candidate in manifest.selected() if candidate.wardrobe is None)
    notes = {"wardrobe": f" and {_counted(unknown, 'image')} of unknown wardrobe" if unknown else "", "expression": ""}
    problems = []
    for field, (low, high) in (("wardrobe", WARDROBE_RANGE), ("expression", EXPRESSION_RANGE)):
        values = manifest.spread(field)
        if len(values) < low:
            problems.append(f"{where}: {manifest.character}: selection has {_counted(len(values), field)} "
                            f"({', '.join(values) or 'none'}){notes[field]}; the seed asks for {low}-{high}")
    return problems


def dataset_warnings(manifest: CandidateManifest, lora_type: LoraType) -> list[str]:
    """What the seed learned that a selection would train into the LoRA anyway: a WAN 2.2 LoRA from stills."""
    if lora_type != "wan22":
        return []
    return [f"visual/lora_candidates/{manifest.character}/{MANIFEST}: wan22: the dataset is {len(manifest.selected())} "
            "images and no video; the seed found that image-trained LoRAs cause flicker in video (video LoRAs, "
            "I2V-trained, are required for WAN 2.2)"]


def dataset_problems(root: Path, manifest: CandidateManifest, character: Character, captions: dict[str, str]) -> list[str]:
    """Every reason the selection would train a poor LoRA, one line each: count, backgrounds, wardrobes, expressions,
    missing or edited files, white backdrops, near-duplicates, identity in the captions."""
    where = f"visual/lora_candidates/{manifest.character}/{MANIFEST}"
    selected = manifest.selected()
    low, high = SELECTION_RANGE
    problems = []
    if not low <= len(selected) <= high:
        problems.append(f"{where}: {len(selected)} images selected; a LoRA dataset needs {low}-{high} "
                        f"(reelflow pick {root} {manifest.character})")
    places = sorted({candidate.location for candidate in selected})
    if len(places) < MIN_BACKGROUNDS:
        problems.append(f"{where}: {len(places)} backgrounds among the selected ({', '.join(places) or 'none'}); "
                        f"a LoRA dataset needs at least {MIN_BACKGROUNDS}")
    problems += spread_problems(manifest)
    folder = candidates_dir(root, manifest.character)
    present: list[Candidate] = []
    for candidate in selected:
        path = folder / candidate.file
        if not path.is_file():
            problems.append(f"{where}: {candidate.file}: the file is missing")
        elif sha256_file(path) != candidate.sha256:
            problems.append(f"{where}: {candidate.file}: changed since it was made (its sha256 differs)")
        else:
            present.append(candidate)
    if present and all(white_background(folder / candidate.file) for candidate in present):
        problems.append(f"{where}: every selected image has a white background; a LoRA needs real places behind the "
                        "character")
    hashes = {candidate.file: dhash(folder / candidate.file) for candidate in present}
    problems += [f"{where}: {a} and {b} are near-duplicates ({bits} of 64 perceptual-hash bits differ); keep one"
                 for a, b, bits in near_duplicates(hashes)]
    phrases = identity_phrases(character)
    named = [named_phrases(text, phrases) for text in captions.values()]
    naming = Counter(phrase for found in named for phrase in found)
    described = sum(1 for found in named if found)
    if captions and described >= IDENTITY_SHARE * len(captions):
        common = min(naming, key=lambda phrase: (-naming[phrase], phrase))
        problems.append(f"{where}: {described} of {len(captions)} captions describe the fixed identity ({common!r}); "
                        "caption only what varies and let the trigger word carry who it is")
    return problems


def selected_refs(root: Path, manifest: CandidateManifest) -> list[AssetRef]:
    folder = candidates_dir(root, manifest.character)
    return [AssetRef(path=folder / c.file, sha256=c.sha256, media=probe_image(folder / c.file)) for c in manifest.selected()]


def _zip(images: list[AssetRef], captions: dict[str, str], out: Path) -> Path:
    """Images with same-named `.txt` captions, in name order, with fixed times: the same selection, the same bytes."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for ref in sorted(images, key=lambda ref: ref.path.name):
            archive.writestr(zipfile.ZipInfo(ref.path.name, ZIP_TIME), ref.path.read_bytes())
            text = zipfile.ZipInfo(f"{ref.path.stem}.txt", ZIP_TIME)
            archive.writestr(text, captions[ref.path.name].encode(), compress_type=zipfile.ZIP_DEFLATED)
    return out


@task(name="dataset", task_run_name="{job.label}-dataset", **stage_task_options())
def zip_dataset(job: CharacterJob, images: list[AssetRef], captions: dict[str, str], lora_type: LoraType) -> AssetRef:
    """The training zip, cached by its images and captions, and kept beside the candidates as the record."""
    outcome = run_media(
        job, stage="dataset", version=DATASET_VERSION, model="zip", inputs=images,
        params={"captions": {name: captions[name] for name in sorted(captions)}},
        make=lambda scratch: [_zip(images, captions, scratch / "dataset.zip")],
    )
    ref = outcome.file
    target = candidates_dir(job.root, job.character) / "training" / f"{job.character}_{lora_type}_{ref.sha256[:8]}.zip"
    write_generated(job.root, target, ref)
    return AssetRef(path=target, sha256=ref.sha256, media=ref.media)


def noise_labels(lora_type: LoraType, weights: list[str]) -> list[str | None]:
    """WAN 2.2's two adapters in the order every trainer returns them: the high-noise expert's, then the low-noise
    one's (fal's `high_noise_lora` and `diffusers_lora_file`, taken by their result keys in providers/fal/endpoints.py
    `weights`); what a URL says is not read. Other types have no label."""
    if lora_type != "wan22":
        return [None] * len(weights)
    return ["high", "low"]


@task(name="train", task_run_name="{job.label}", **stage_task_options())
def train_lora(job: CharacterJob, dataset: AssetRef, lora_type: LoraType, steps: int, trigger: str) -> list[LoraEntry]:
    """Train through the ledger (a crash or a re-run polls the same request, never pays again), keep each weight
    file under `visual/loras/<CHAR>/`, and return the registry entries."""
    spec = LORA_TYPES[lora_type]
    provider = job.project.stage("training").use
    weights = 2 if lora_type == "wan22" else 1
    outcome = call_provider(
        job, stage="training", version=VERSION, capability="train_lora", ext="json", inputs=[dataset],
        use=(provider, spec.trainer), outputs=1 + weights,
        build=lambda model: TrainRequest(model=model, images_zip=dataset.path, trigger=trigger, steps=steps),
    )
    trained = TrainedLora.model_validate_json(outcome.files[0].path.read_bytes())
    made = outcome.provenance
    earlier = {entry.sha256: entry for entry in read_registry(job.root).entries() if entry.sha256}
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    entries = []
    labels = noise_labels(lora_type, trained.weights)
    for location, ref, noise in zip(trained.weights, outcome.files[1:], labels, strict=True):
        suffix = f"_{noise}_noise" if noise else ""
        name = f"{job.character}_{lora_type}_{ref.sha256[:8]}{suffix}.safetensors"
        target = job.root / "visual" / "loras" / job.character / name
        write_generated(job.root, target, ref)
        local = target.relative_to(job.root).as_posix()
        remote = is_url(location)
        before = earlier.get(ref.sha256)  # the same weights registered already: keep when they were made and served
        entries.append(LoraEntry(
            base_model=spec.base_model, path=location if remote else local, trigger=trigger, noise=noise,
            type=lora_type, provider=made.provider, trainer=spec.trainer, steps=steps, dataset_sha256=dataset.sha256,
            request_id=made.request_id, cost_usd=made.cost_usd, sha256=ref.sha256, file=local if remote else None,
            trained_at=(before.trained_at if before else None) or now, url=before.url if before else None,
            url_at=before.url_at if before else None,
        ))
    return entries
