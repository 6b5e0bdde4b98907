"""Keys a schema does not know: one that nearly spells a field of its level is a typo, any other is a note.

Pure: it reads pydantic models and documents already parsed from JSON, never files.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel

Loc = tuple[str | int, ...]
CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
SEPARATORS = re.compile(r"[-\s]+")


@dataclass(frozen=True)
class UnknownKey:
    """A key no field of its level takes; `suggestion`: the field it nearly spells; `allowed`: the model keeps such keys."""

    loc: Loc
    key: str
    suggestion: str | None
    allowed: bool
    fields: tuple[str, ...]

    @property
    def refused(self) -> bool:
        """A near miss of a field, or any unknown key where the model keeps none."""
        return self.suggestion is not None or not self.allowed


def spelling(key: str) -> str:
    """The key in lower snake case: `firstFramePrompt`, `First-Frame-Prompt` and `first_frame_prompt` read alike."""
    return SEPARATORS.sub("_", CAMEL_HUMP.sub("_", key.strip())).lower()


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions, substitutions, adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i, char in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (char != other))
            if i > 1 and j > 1 and char == b[j - 2] and a[i - 2] == other:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def allowed_edits(field: str) -> int:
    """How many edits from `field` still count as a typo of it: none under 3 letters, 1 up to 7, 2 from 8."""
    return 0 if len(field) < 3 else 1 if len(field) <= 7 else 2


def near_miss(key: str, fields: tuple[str, ...]) -> str | None:
    """The field `key` nearly spells, or None; a field itself is never a miss.

    A near miss starts with the field's first letter (so `tone` is no typo of `zone`) and is at most
    `allowed_edits(field)` edits from it once both are in lower snake case; the closest wins, the first on a tie.
    """
    if key in fields:
        return None
    spelled = spelling(key)
    close = [(distance, index) for index, field in enumerate(fields)
             if spelled[:1] == spelling(field)[:1]
             and (distance := edit_distance(spelled, spelling(field))) <= allowed_edits(field)]
    return fields[min(close)[1]] if close else None


def json_keys(model: type[BaseModel]) -> dict[str, Any]:
    """Each key a field may go by in JSON (every string alias, then its name) and the field's annotation."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        aliases = field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else [
            field.validation_alias, field.alias]
        for key in [*aliases, name]:  # an alias first: it is what a suggestion names
            if isinstance(key, str):
                keys[key] = field.annotation
    return keys


def unknown_keys(model: type[BaseModel], document: Any) -> list[UnknownKey]:
    """Every key of `document`, and of the objects it nests that have a schema, that no field takes, in order."""
    return list(_walk(model, document, ()))


def _walk(annotation: Any, value: Any, loc: Loc) -> Iterator[UnknownKey]:
    """The unknown keys inside `value`, read as `annotation` types it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        yield from _walk(args[0], value, loc)
    elif origin in (Union, types.UnionType):  # the choice that fits best (a pod or a serverless endpoint)
        found = [list(_walk(choice, value, loc)) for choice in args if _nests(choice, value)]
        if found:
            yield from min(found, key=len)
    elif origin is list and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(args[0], item, (*loc, index))
    elif origin is dict and isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(args[1], item, (*loc, key))
    elif origin is None and isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
        yield from _model_keys(annotation, value, loc)


def _nests(annotation: Any, value: Any) -> bool:
    """Whether `value` may hold keys of `annotation`: an object of a model, a list or a mapping."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _nests(args[0], value)
    if origin in (list, dict, Union, types.UnionType):
        return isinstance(value, list | dict)
    return isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict)


def _model_keys(model: type[BaseModel], document: dict[str, Any], loc: Loc) -> Iterator[UnknownKey]:
    """The unknown keys of one object of `model` and of the objects its fields nest, in document order."""
    keys = json_keys(model)
    fields = tuple(keys)
    allowed = model.model_config.get("extra") != "forbid"
    for key, value in document.items():
        if key in keys:
            yield from _walk(keys[key], value, (*loc, key))
        else:
            yield UnknownKey(loc, key, near_miss(key, fields), allowed, fields)
