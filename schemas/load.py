"""Read a project folder into validated models; every problem is one line naming file, shot and field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from reelflow.schemas.errors import ContractError
from reelflow.schemas.names import NO_CHARACTER, AssetName, shot_digits_for
from reelflow.schemas.near_miss import UnknownKey, unknown_keys
from reelflow.schemas.project import Breakdown, Project
from reelflow.schemas.refs import problems as refs_problems
from reelflow.schemas.storyboard import Shot, Storyboard

STORYBOARD_FILE = re.compile(r"storyboard_ep_(\d{3})\.json")
Model = TypeVar("Model", bound=BaseModel)
VALUE_SHOWN = 40  # a bad value is quoted in an error line up to this many characters
UNQUOTED_ERRORS = frozenset({"missing", "value_error", "assertion_error"})  # pydantic errors whose line quotes no value


def storyboard_file(root: Path, episode: int) -> Path:
    """Where a project keeps one episode's storyboard."""
    return root / "storyboards" / f"storyboard_ep_{episode:03d}.json"


def storyboard_files(root: Path) -> list[Path]:
    """Every storyboard file of a project, by episode."""
    return sorted((root / "storyboards").glob("storyboard_ep_*.json"))


@dataclass(frozen=True)
class ProjectFolder:
    """A validated project: its folder, `project.json` and `breakdown.json`."""

    root: Path
    project: Project
    breakdown: Breakdown

    @property
    def storyboards_dir(self) -> Path:
        return self.root / "storyboards"

    @property
    def state_dir(self) -> Path:
        """Internal state (cache index, blobs, locks): one hidden folder of the project."""
        return self.root / ".reelflow"

    def storyboard_path(self, episode: int) -> Path:
        return storyboard_file(self.root, episode)

    def assets_dir(self, episode: int) -> Path:
        return self.storyboards_dir / "assets" / f"ep_{episode:03d}"

    def dailies_path(self, episode: int) -> Path:
        return self.storyboards_dir / f"dailies_ep_{episode:03d}.json"

    def storyboard_paths(self) -> list[Path]:
        return storyboard_files(self.root)


@dataclass(frozen=True)
class Parsed(Generic[Model]):
    """One file read against its model: the model (None when its fields fail), every problem, the JSON document."""

    model: Model | None
    problems: list[str]
    document: Any = None

    def valid_model(self) -> Model:
        """The model of a file without problems; ContractError with one line per problem otherwise."""
        _raise_problems(self)
        assert self.model is not None  # a file whose fields fail has problems
        return self.model


def _raise_problems(*parsed: Parsed[Any]) -> None:
    """One ContractError with every problem of the files, one line each; nothing when they have none."""
    problems = [line for one in parsed for line in one.problems]
    if problems:
        raise ContractError("\n".join(problems))


def _read_json(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path.name}: cannot be read ({exc.__class__.__name__})") from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return text


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in loc).replace(".[", "[")


def _shown(value: Any) -> str:
    """A bad value as an error line quotes it: a string as Python writes it, anything else as JSON, cut short."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= VALUE_SHOWN else f"{text[:VALUE_SHOWN - 3]}..."


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message in lower case, after the bad value unless the message is the project's own or none was given."""
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    message = message[:1].lower() + message[1:]
    if error["type"] in UNQUOTED_ERRORS or isinstance(error.get("input"), dict):
        return message
    return f"{_shown(error.get('input'))}: {message}"


def _where(file_name: str, loc: tuple[Any, ...], document: Any) -> list[str]:
    """The parts of a line that locate a field: the file, the shot by its number (storyboards), the field path."""
    where = [file_name]
    if len(loc) >= 2 and loc[0] == "shots" and isinstance(loc[1], int):
        shots = document.get("shots") if isinstance(document, dict) else None
        raw = shots[loc[1]] if isinstance(shots, list) and loc[1] < len(shots) else None
        number = raw.get("shot") if isinstance(raw, dict) else None
        numbered = isinstance(number, int) and not isinstance(number, bool)
        where.append(f"shot {number}" if numbered else f"shot at position {loc[1] + 1}")
        loc = loc[2:]
    loc = tuple(part for part in loc if not (isinstance(part, str) and part.startswith(("function-", "tagged-union"))))
    if loc:
        where.append(_field_path(loc))
    return where


def _describe(file_name: str, error: dict[str, Any], document: Any) -> str:
    """One line for a pydantic error; storyboard shot errors name the shot by its number."""
    return ": ".join(_where(file_name, tuple(error["loc"]), document) + [_message(error)])


def _refusal(file_name: str, found: UnknownKey, document: Any) -> str:
    """One line for a key the contract refuses: a near miss of a field names that field."""
    where = ": ".join(_where(file_name, found.loc, document))
    if found.suggestion is not None:
        return f"{where}: {json.dumps(found.key)}: unknown key; did you mean {json.dumps(found.suggestion)}?"
    return f"{where}: {json.dumps(found.key)}: unknown key (keys: {', '.join(found.fields)})"


def _parsed(model: type[Model], path: Path) -> Parsed[Model]:
    """Read one file against its model: field errors and refused keys (near misses of a field), in one pass."""
    try:
        text = _read_json(path)
    except ContractError as exc:
        return Parsed(None, [str(exc)])
    document = json.loads(text)
    refused = [_refusal(path.name, found, document) for found in unknown_keys(model, document) if found.refused]
    try:
        return Parsed(model.model_validate_json(text), refused, document)
    except ValidationError as exc:
        # unknown keys of a model that keeps none are refused above, naming the field they nearly spell
        errors = [_describe(path.name, e, document) for e in exc.errors() if e["type"] != "extra_forbidden"]
        return Parsed(None, list(dict.fromkeys(errors + refused)), document)


def _project_files(root: Path | str) -> tuple[Path, Parsed[Project], Parsed[Breakdown]]:
    """The project folder with its `project.json` and `breakdown.json` read, problems and all."""
    root = Path(root)
    if not root.is_dir():
        raise ContractError(f"{root}: not a project folder")
    return root, _parsed(Project, root / "project.json"), _parsed(Breakdown, root / "breakdown.json")


def load_project(root: Path | str) -> ProjectFolder:
    """Load and validate `project.json` and `breakdown.json`; the problems of both come in one pass."""
    root, project, breakdown = _project_files(root)
    _raise_problems(project, breakdown)
    return ProjectFolder(root, project.valid_model(), breakdown.valid_model())


def load_episode(root: Path | str, episode: int) -> tuple[ProjectFolder, Storyboard]:
    """Load the project and one episode's storyboard; the problems of all three files come in one pass.

    The storyboard is checked when `breakdown.json` is valid (its ids are checked against it).
    """
    root, project, breakdown = _project_files(root)
    if breakdown.model is None:
        raise ContractError("\n".join(project.problems + breakdown.problems))
    storyboard = check_storyboard(storyboard_file(root, episode), breakdown.model, project.model)
    _raise_problems(project, breakdown, storyboard)
    return ProjectFolder(root, project.valid_model(), breakdown.model), storyboard.valid_model()


def load_storyboard(folder: ProjectFolder, episode: int) -> Storyboard:
    """Load one episode's storyboard and check it against the project and breakdown."""
    return load_storyboard_file(folder, folder.storyboard_path(episode))


def load_storyboard_file(folder: ProjectFolder, path: Path) -> Storyboard:
    """Parse and check one storyboard; every problem (fields, keys, numbering, unknown ids) is reported in one pass."""
    return check_storyboard(path, folder.breakdown, folder.project).valid_model()


def check_storyboard(path: Path, breakdown: Breakdown, project: Project | None) -> Parsed[Storyboard]:
    """Read one storyboard and check it against the breakdown and, when it is valid, the project."""
    match = STORYBOARD_FILE.fullmatch(path.name)
    if match is None:
        return Parsed(None, [f"{path.name}: file name must be storyboard_ep_NNN.json"])
    parsed = _parsed(Storyboard, path)
    if parsed.model is None:
        more = raw_checks(breakdown, parsed.document, path.name)
    else:
        more = cross_check(breakdown, project, parsed.model, path.name, int(match[1]))
    more += refs_problems(path.parent.parent, breakdown, parsed.document, path.name)  # wardrobes against refs on disk
    lines = parsed.problems + [line for line in more if line not in parsed.problems]
    return Parsed(parsed.model, sorted(lines, key=_shot_order), parsed.document)


def _shot_order(line: str) -> tuple[int, str]:
    """Sort key: lines about the whole file first, then by shot number."""
    found = re.match(r"[^:]+: shot (\d+):", line)
    return (int(found[1]) if found else 0, "")


def raw_checks(breakdown: Breakdown, document: Any, file_name: str) -> list[str]:
    """The checks a storyboard whose fields failed still gets: shot numbering and ids the breakdown lacks."""
    shots = document.get("shots") if isinstance(document, dict) else None
    if not isinstance(shots, list):
        return []
    problems, seen = [], set()
    numbers = [shot.get("shot") if isinstance(shot, dict) else None for shot in shots]
    for number in numbers:
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            continue  # the field check says what is wrong with it
        if number in seen:
            problems.append(f"{file_name}: shot {number}: shot: number {number} appears twice")
        elif number > len(shots):
            problems.append(f"{file_name}: shot {number}: shot: numbers must run 1..{len(shots)} without gaps")
        seen.add(number)
    characters, locations = breakdown.character_ids, breakdown.location_ids
    for shot, number in zip(shots, numbers, strict=True):
        if not isinstance(shot, dict) or not isinstance(number, int):
            continue
        where = f"{file_name}: shot {number}"
        cast = shot.get("characters_in_shot")
        for char in cast if isinstance(cast, list) else []:
            if isinstance(char, str) and char not in characters:
                problems.append(f"{where}: characters_in_shot: {char!r} is not a character in breakdown.json")
        location = shot.get("location")
        if isinstance(location, str) and location not in locations:
            problems.append(f"{where}: location: {location!r} is not a location in breakdown.json")
    return problems


def cross_check(
    breakdown: Breakdown, project: Project | None, storyboard: Storyboard, file_name: str, file_episode: int
) -> list[str]:
    """Checks that need the project: episode vs file name, character and location ids, asset names (with a project)."""
    problems = []
    if storyboard.episode != file_episode:
        problems.append(f"{file_name}: episode: {storyboard.episode} does not match {file_episode:03d} in the file name")
    characters, locations = breakdown.character_ids, breakdown.location_ids
    for shot in storyboard.shots:
        where = f"{file_name}: shot {shot.shot}"
        for char in shot.characters_in_shot:
            if char not in characters:
                problems.append(f"{where}: characters_in_shot: {char!r} is not a character in breakdown.json")
        if shot.location not in locations:
            problems.append(f"{where}: location: {shot.location!r} is not a location in breakdown.json")
        if shot.asset_name is not None and project is not None and not problems:
            expected = base_name(project, storyboard, shot).base
            if shot.asset_name != expected:
                problems.append(f"{where}: asset_name: {shot.asset_name!r} should be {expected!r}")
    return problems


def base_name(project: Project, storyboard: Storyboard, shot: Shot, take: int = 1) -> AssetName:
    """The shot's asset name for a take, without suffix or extension."""
    return AssetName(
        project=project.code,
        episode=storyboard.episode,
        shot=shot.shot,
        take=take,
        character=shot.characters_in_shot[0] if shot.characters_in_shot else NO_CHARACTER,
        shot_digits=shot_digits_for(len(storyboard.shots)),
    )


def validate_folder(root: Path | str) -> tuple[int, list[str]]:
    """Validate a project and every storyboard; returns (storyboards checked, problem lines).

    Storyboards are checked when `breakdown.json` is valid (their ids are checked against it).
    """
    root, project, breakdown = _project_files(root)
    problems = project.problems + breakdown.problems
    if breakdown.model is None:
        return 0, problems
    paths = storyboard_files(root)
    for path in paths:
        problems += check_storyboard(path, breakdown.model, project.model).problems
    return len(paths), problems


def key_notes(root: Path | str) -> list[str]:
    """Keys the contracts do not know but keep (creative notes), one line each; unreadable files are left to validation."""
    root = Path(root)
    files = [(Project, root / "project.json", "project.json"), (Breakdown, root / "breakdown.json", "breakdown.json")]
    files += [(Storyboard, path, "storyboard") for path in storyboard_files(root)]
    notes = []
    for model, path, kind in files:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        lines = [f"{': '.join(_where(path.name, found.loc, document))}: {json.dumps(found.key)}: "
                 f"not a {kind} field (kept as a creative note)"
                 for found in unknown_keys(model, document) if not found.refused]
        notes += sorted(lines, key=_shot_order)
    return notes
