"""Read a project folder into validated models; every problem is one line naming file, shot and field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reelflow.schemas.errors import ContractError
from reelflow.schemas.names import NO_CHARACTER, AssetName, shot_digits_for
from reelflow.schemas.project import Breakdown, Project
from reelflow.schemas.storyboard import Shot, Storyboard

STORYBOARD_FILE = re.compile(r"storyboard_ep_(\d{3})\.json")
Model = TypeVar("Model", bound=BaseModel)


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
        return self.storyboards_dir / f"storyboard_ep_{episode:03d}.json"

    def assets_dir(self, episode: int) -> Path:
        return self.storyboards_dir / "assets" / f"ep_{episode:03d}"

    def dailies_path(self, episode: int) -> Path:
        return self.storyboards_dir / f"dailies_ep_{episode:03d}.json"

    def storyboard_paths(self) -> list[Path]:
        return sorted(self.storyboards_dir.glob("storyboard_ep_*.json"))


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


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _describe(file_name: str, error: dict[str, Any], document: Any) -> str:
    """One line for a pydantic error; storyboard shot errors name the shot by its number."""
    loc = tuple(error["loc"])
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
    return ": ".join(where + [_message(error)])


def _parse(model: type[Model], path: Path) -> Model:
    text = _read_json(path)
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        document = json.loads(text)
        lines = list(dict.fromkeys(_describe(path.name, e, document) for e in exc.errors()))
        raise ContractError("\n".join(lines)) from None


def load_project(root: Path | str) -> ProjectFolder:
    """Load and validate `project.json` and `breakdown.json`."""
    root = Path(root)
    if not root.is_dir():
        raise ContractError(f"{root}: not a project folder")
    return ProjectFolder(root, _parse(Project, root / "project.json"), _parse(Breakdown, root / "breakdown.json"))


def load_storyboard(folder: ProjectFolder, episode: int) -> Storyboard:
    """Load one episode's storyboard and check it against the project and breakdown."""
    return load_storyboard_file(folder, folder.storyboard_path(episode))


def load_storyboard_file(folder: ProjectFolder, path: Path) -> Storyboard:
    """Parse and check one storyboard; every problem (fields, numbering, unknown ids) is reported in one pass."""
    match = STORYBOARD_FILE.fullmatch(path.name)
    if match is None:
        raise ContractError(f"{path.name}: file name must be storyboard_ep_NNN.json")
    try:
        storyboard = _parse(Storyboard, path)
    except ContractError as exc:
        lines = str(exc).splitlines()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise exc from None
        lines += [line for line in raw_checks(folder, document, path.name) if line not in lines]
        raise ContractError("\n".join(sorted(lines, key=_shot_order))) from None
    problems = cross_check(folder, storyboard, path.name, int(match[1]))
    if problems:
        raise ContractError("\n".join(problems))
    return storyboard


def _shot_order(line: str) -> tuple[int, str]:
    """Sort key: lines about the whole file first, then by shot number."""
    found = re.match(r"[^:]+: shot (\d+):", line)
    return (int(found[1]) if found else 0, "")


def raw_checks(folder: ProjectFolder, document: Any, file_name: str) -> list[str]:
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
    characters, locations = folder.breakdown.character_ids, folder.breakdown.location_ids
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


def cross_check(folder: ProjectFolder, storyboard: Storyboard, file_name: str, file_episode: int) -> list[str]:
    """Checks that need the project: episode vs file name, character and location ids, asset names."""
    problems = []
    if storyboard.episode != file_episode:
        problems.append(f"{file_name}: episode: {storyboard.episode} does not match {file_episode:03d} in the file name")
    characters, locations = folder.breakdown.character_ids, folder.breakdown.location_ids
    for shot in storyboard.shots:
        where = f"{file_name}: shot {shot.shot}"
        for char in shot.characters_in_shot:
            if char not in characters:
                problems.append(f"{where}: characters_in_shot: {char!r} is not a character in breakdown.json")
        if shot.location not in locations:
            problems.append(f"{where}: location: {shot.location!r} is not a location in breakdown.json")
        if shot.asset_name is not None and not problems:
            expected = base_name(folder.project, storyboard, shot).base
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
    """Validate a project and every storyboard; returns (storyboards checked, problem lines)."""
    folder = load_project(root)
    problems: list[str] = []
    paths = folder.storyboard_paths()
    for path in paths:
        try:
            load_storyboard_file(folder, path)
        except ContractError as exc:
            problems.extend(str(exc).splitlines())
    return len(paths), problems
