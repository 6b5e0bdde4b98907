"""Reference images that hold a character's costume and a location's set in every keyframe made of them.

On disk (the project layout): `visual/characters/<CHAR>/refs/<wardrobe>_<angle>.png`, one image per wardrobe and
camera angle, the angles named as the candidates' keystones are (`ANGLES`), and `visual/locations/<LOC>/refs/*.png`
under any names. A shot's `wardrobe` (`{"MARA": "oilskin"}`) picks a character's refs, else the character's
`default_wardrobe` in breakdown.json; a character with neither gets none. A location's refs go with every shot set
there. A wardrobe named without refs on disk, or a shot's `wardrobe` naming a character not in the shot, is one
problem line naming the file, the shot and the field (`problems`).

A keyframe request carries at most as many refs as its model takes (`reference_limit`): each character's, in the
shot's order, then the location's, taken in turns so that each is shown before any is shown twice. A character's
refs come front first (`ANGLE_ORDER`); where the frame's words say which way the camera looks at the characters
(`facing`: "from behind", "in profile", ...), only the ref of the closest angle is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reelflow.schemas import gpu
from reelflow.schemas.errors import ContractError
from reelflow.schemas.gemini_models import gemini_model
from reelflow.schemas.project import Breakdown
from reelflow.schemas.storyboard import WARDROBE_PATTERN, Shot
from reelflow.schemas.wire.fal import FLUX2_EDIT_MAX_IMAGES, FLUX2_LORA, FLUX2_LORA_EDIT

REF_SUFFIX = ".png"
# The camera's angle around a character (degrees, 0 the front, 90 its right side), named as the keystones' file
# names say it (README "Characters"; tasks/candidates.py `keystone_angle` reads the same words).
ANGLES: dict[str, float] = {
    "front": 0.0, "3q_right": 45.0, "profile_right": 90.0, "back": 180.0, "profile_left": 270.0, "3q_left": 315.0,
}
ANGLE_ORDER: tuple[str, ...] = ("front", "3q_right", "3q_left", "profile_right", "profile_left", "back")
WARDROBE = re.compile(WARDROBE_PATTERN)
# Words a frame's camera or prompt says which way the camera sees its characters with, most specific first.
FACINGS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("from behind", (180.0,)), ("back view", (180.0,)), ("rear view", (180.0,)),
    ("left profile", (270.0,)), ("profile left", (270.0,)), ("right profile", (90.0,)), ("profile right", (90.0,)),
    ("profile", (90.0, 270.0)), ("side view", (90.0, 270.0)),
    ("three-quarter", (45.0, 315.0)), ("three quarter", (45.0, 315.0)), ("3/4 view", (45.0, 315.0)),
    ("front view", (0.0,)), ("facing the camera", (0.0,)), ("faces the camera", (0.0,)), ("head-on", (0.0,)),
)
# How many reference images each keyframe model takes beside its prompt. FLUX.2 [dev] on ComfyUI: Black Forest Labs
# recommend at most 6 ("FLUX.2 [dev]: Recommended max 6", https://docs.bfl.ml/guides/prompting_editing_overview).
# Gemini: three input images (the seed's "Gemini max 3 input images"; providers/gemini takes as many for edits).
FLUX2_DEV_MAX_REFERENCES = 6
GEMINI_MAX_REFERENCES = 3


def reference_limit(model: str) -> int:
    """How many reference images `model` takes for a keyframe: fal's FLUX.2 (its LoRA edit endpoint), FLUX.2 [dev] on
    ComfyUI, Gemini's image models; 0 for any other (Z-Image takes none)."""
    if model in (FLUX2_LORA, FLUX2_LORA_EDIT):
        return FLUX2_EDIT_MAX_IMAGES
    if model == gpu.FLUX2_DEV:
        return FLUX2_DEV_MAX_REFERENCES
    row = gemini_model(model)
    return GEMINI_MAX_REFERENCES if row is not None and row.kind == "image" else 0


def character_refs_dir(root: Path, character: str) -> Path:
    return root / "visual" / "characters" / character / "refs"


def location_refs_dir(root: Path, location: str) -> Path:
    return root / "visual" / "locations" / location / "refs"


@dataclass(frozen=True)
class Ref:
    """One reference image of a character: its file, the wardrobe it shows and the angle it shows it from."""

    path: Path
    wardrobe: str
    angle: str


@dataclass(frozen=True)
class Worn:
    """A character's wardrobe in a shot and its refs (front first)."""

    character: str
    wardrobe: str
    refs: tuple[Ref, ...]


@dataclass(frozen=True)
class ShotRefs:
    """Every reference image a shot may use: its characters' wardrobes, then its location's set."""

    worn: tuple[Worn, ...]
    location: tuple[Path, ...]

    def __bool__(self) -> bool:
        return bool(self.location) or any(worn.refs for worn in self.worn)


@dataclass(frozen=True)
class Picked:
    """The refs one request carries, in order, and the wardrobe of each character they show."""

    paths: tuple[Path, ...]
    wardrobe: tuple[tuple[str, str], ...]


def parse_ref_name(name: str) -> tuple[str, str] | None:
    """(wardrobe, angle) of a ref's file name `<wardrobe>_<angle>.png`; None for any other name."""
    if not name.lower().endswith(REF_SUFFIX):
        return None
    stem = name[: -len(REF_SUFFIX)]
    for angle in sorted(ANGLES, key=len, reverse=True):
        wardrobe = stem.removesuffix(f"_{angle}")
        if wardrobe != stem and WARDROBE.match(wardrobe):
            return wardrobe, angle
    return None


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file()) if folder.is_dir() else []


def wardrobes(root: Path, character: str) -> dict[str, tuple[Ref, ...]]:
    """A character's refs on disk by wardrobe, each wardrobe's in `ANGLE_ORDER`."""
    found: dict[str, list[Ref]] = {}
    for path in _files(character_refs_dir(root, character)):
        named = parse_ref_name(path.name)
        if named is not None:
            found.setdefault(named[0], []).append(Ref(path, *named))
    return {name: tuple(sorted(refs, key=lambda ref: ANGLE_ORDER.index(ref.angle))) for name, refs in sorted(found.items())}


def content_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def location_refs(root: Path, location: str) -> tuple[Path, ...]:
    """A location's refs on disk (`*.png`), by content (their names say nothing: a renamed ref is the same ref)."""
    found = [path for path in _files(location_refs_dir(root, location)) if path.suffix.lower() == REF_SUFFIX]
    return tuple(sorted(found, key=lambda path: (content_sha256(path), path.name)))


def defaults_of(breakdown: Breakdown) -> dict[str, str]:
    """Each character's `default_wardrobe` (those that have one)."""
    return {character.id: character.default_wardrobe for character in breakdown.characters if character.default_wardrobe}


def default_wardrobes(root: Path) -> dict[str, str]:
    """Each character's `default_wardrobe` in the project's breakdown.json (those that have one); the file is read
    again only when it changes (a take's inputs ask for it many times a render)."""
    path = root / "breakdown.json"
    try:
        stat = path.stat()
    except OSError as exc:
        raise ContractError(f"breakdown.json: cannot be read for the characters' default_wardrobe ({exc})") from None
    return dict(_defaults_in(path, stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=64)
def _defaults_in(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    """`default_wardrobes` of breakdown.json as it is at (`mtime_ns`, `size`)."""
    try:
        breakdown = Breakdown.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"breakdown.json: cannot be read for the characters' default_wardrobe ({exc})") from None
    return tuple(defaults_of(breakdown).items())


def _want(character: str, wardrobe: str) -> str:
    return f"visual/characters/{character}/refs/{wardrobe}_<angle>.png ({', '.join(ANGLES)})"


def _missing(root: Path, character: str, wardrobe: str) -> str:
    """Why a wardrobe has no refs: what is wanted, the wardrobes the folder has, and its files named otherwise."""
    have = sorted(wardrobes(root, character))
    odd = [path.name for path in _files(character_refs_dir(root, character)) if parse_ref_name(path.name) is None]
    named = f"; not named so: {', '.join(odd)}" if odd else ""
    return f"no refs on disk: want {_want(character, wardrobe)}; have: {', '.join(have) or 'none'}{named}"


def shot_refs(root: Path, shot: Shot, defaults: dict[str, str]) -> ShotRefs:
    """The refs a shot may use: each character's wardrobe (the shot's, else its default) and the location's.

    A wardrobe without refs on disk (removed since the storyboard was checked) is a ContractError."""
    worn = []
    for character in shot.characters_in_shot:
        wardrobe = (shot.wardrobe or {}).get(character) or defaults.get(character)
        if wardrobe is None:
            continue
        refs = wardrobes(root, character).get(wardrobe, ())
        if not refs:
            raise ContractError(f"shot {shot.shot}: wardrobe.{character}: {wardrobe!r}: {_missing(root, character, wardrobe)}")
        worn.append(Worn(character, wardrobe, refs))
    return ShotRefs(tuple(worn), location_refs(root, shot.location))


def fingerprint(refs: ShotRefs) -> dict[str, Any]:
    """What a shot's refs are, by content: each character's wardrobe and its angles' sha256, the location's sha256.
    A take made from other refs (new bytes, another wardrobe, a file now another angle) is made from other inputs."""
    return {
        "worn": [[worn.character, worn.wardrobe, [[ref.angle, content_sha256(ref.path)] for ref in worn.refs]]
                 for worn in refs.worn],
        "location": [content_sha256(path) for path in refs.location],
    }


def facing(text: str) -> tuple[float, ...] | None:
    """The camera angles around the characters a frame's words name (`FACINGS`), or None when they name none."""
    lowered = text.lower()
    return next((angles for words, angles in FACINGS if words in lowered), None)


def _turn(a: float, b: float) -> float:
    return min(abs(a - b) % 360, 360 - abs(a - b) % 360)


def pick(refs: ShotRefs, limit: int, angles: tuple[float, ...] | None) -> Picked:
    """At most `limit` refs: each character's (the closest angle only where `angles` says how the frame sees them,
    else all, front first) and the location's, taken in turns; the same refs always in the same order."""
    queues: list[list[Path]] = []
    for worn in refs.worn:
        ordered = list(worn.refs)
        if angles is not None:
            ordered = [min(ordered, key=lambda ref: min(_turn(ANGLES[ref.angle], angle) for angle in angles))]
        queues.append([ref.path for ref in ordered])
    queues.append(list(refs.location))
    picked: list[Path] = []
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    shown = set(picked)
    wardrobe = tuple((worn.character, worn.wardrobe) for worn in refs.worn if any(ref.path in shown for ref in worn.refs))
    return Picked(tuple(picked), wardrobe)


def _shot_number(raw: dict[str, Any], index: int) -> str:
    number = raw.get("shot")
    return f"shot {number}" if isinstance(number, int) and not isinstance(number, bool) else f"shot at position {index + 1}"


def problems(root: Path, breakdown: Breakdown, document: Any, file_name: str) -> list[str]:
    """One line per wardrobe problem of a storyboard (its JSON, read whether or not its fields are valid): a
    `wardrobe` naming a character not in the shot, or a wardrobe (the shot's, or a default from breakdown.json) with
    no refs on disk. A default without refs is said once per character, at its first shot."""
    shots = document.get("shots") if isinstance(document, dict) else None
    defaults = defaults_of(breakdown)
    on_disk: dict[str, dict[str, tuple[Ref, ...]]] = {}

    def has(character: str, wardrobe: str) -> bool:
        if character not in on_disk:
            on_disk[character] = wardrobes(root, character)
        return wardrobe in on_disk[character]

    lines: list[str] = []
    defaulted: dict[str, list[str]] = {}
    for index, raw in enumerate(shots if isinstance(shots, list) else []):
        if not isinstance(raw, dict):
            continue
        where = f"{file_name}: {_shot_number(raw, index)}"
        cast = [char for char in raw.get("characters_in_shot") or [] if isinstance(char, str)]
        named = raw.get("wardrobe") if isinstance(raw.get("wardrobe"), dict) else {}
        for character, wardrobe in named.items():
            if character not in cast:
                lines.append(f"{where}: wardrobe.{character}: {json.dumps(character)} is not in characters_in_shot")
            elif isinstance(wardrobe, str) and WARDROBE.match(wardrobe) and not has(character, wardrobe):
                lines.append(f"{where}: wardrobe.{character}: {wardrobe!r}: {_missing(root, character, wardrobe)}")
        for character in cast:
            default = defaults.get(character)
            if character not in named and default is not None and not has(character, default):
                defaulted.setdefault(character, []).append(where)
    for character, shots_using in defaulted.items():
        more = len(shots_using) - 1
        also = f" (and {more} more shot{'s' if more > 1 else ''})" if more else ""
        lines.append(f"{shots_using[0]}: wardrobe.{character}: default_wardrobe {defaults[character]!r} in "
                     f"breakdown.json: {_missing(root, character, defaults[character])}{also}")
    return lines
