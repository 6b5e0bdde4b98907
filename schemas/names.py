"""Asset names: `{PRJ}_EP{NNN}_S{NN}_T{NN}_{CHAR}[_{suffix}].{ext}`, formatted and parsed exactly."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reelflow.schemas.errors import ContractError

PROJECT_CODE = re.compile(r"[A-Z][A-Z0-9]{1,5}")
CHARACTER_ID = re.compile(r"[A-Z0-9]{2,12}")
SUFFIX = re.compile(r"[a-z0-9]+")
EXTENSION = re.compile(r"[a-z0-9]+")
NO_CHARACTER = "ENV"

_NAME = re.compile(
    r"(?P<project>[A-Z][A-Z0-9]{1,5})_EP(?P<episode>\d{3})_S(?P<shot>\d{2,3})_T(?P<take>\d{2})"
    r"_(?P<character>[A-Z0-9]{2,12})(?:_(?P<suffix>[a-z0-9]+))?(?:\.(?P<ext>[a-z0-9]+))?"
)


@dataclass(frozen=True)
class AssetName:
    """The fields of one asset name; `ext=None` is the base name a storyboard's `asset_name` holds."""

    project: str
    episode: int
    shot: int
    take: int
    character: str
    suffix: str | None = None
    ext: str | None = None
    shot_digits: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not PROJECT_CODE.fullmatch(self.project):
            problems.append(f"project code {self.project!r} must be 2-6 upper-case letters or digits")
        if not 1 <= self.episode <= 999:
            problems.append(f"episode {self.episode} must be 1 to 999")
        if self.shot_digits not in (2, 3) or not 1 <= self.shot < 10**self.shot_digits:
            problems.append(f"shot {self.shot} does not fit {self.shot_digits} digits")
        if not 1 <= self.take <= 99:
            problems.append(f"take {self.take} must be 1 to 99")
        if not CHARACTER_ID.fullmatch(self.character):
            problems.append(f"character {self.character!r} must be 2-12 upper-case letters or digits")
        if self.suffix is not None and not SUFFIX.fullmatch(self.suffix):
            problems.append(f"suffix {self.suffix!r} must be lower-case letters or digits")
        if self.ext is not None and not EXTENSION.fullmatch(self.ext):
            problems.append(f"extension {self.ext!r} must be lower-case letters or digits")
        if problems:
            raise ContractError("asset name: " + "; ".join(problems))

    @property
    def base(self) -> str:
        """The name without suffix and extension."""
        shot = str(self.shot).zfill(self.shot_digits)
        return f"{self.project}_EP{self.episode:03d}_S{shot}_T{self.take:02d}_{self.character}"

    def format(self) -> str:
        name = self.base
        if self.suffix is not None:
            name += f"_{self.suffix}"
        if self.ext is not None:
            name += f".{self.ext}"
        return name

    def __str__(self) -> str:
        return self.format()

    def with_(self, *, suffix: str | None = None, ext: str | None = None, take: int | None = None) -> AssetName:
        """The same shot's name with another suffix, extension or take."""
        return AssetName(
            self.project, self.episode, self.shot, self.take if take is None else take,
            self.character, suffix, ext, self.shot_digits,
        )

    @classmethod
    def parse(cls, name: str) -> AssetName:
        """Parse a name; anything that does not match the convention is an error, never a guess."""
        match = _NAME.fullmatch(name)
        if match is None:
            pattern = "{PRJ}_EP{NNN}_S{NN}_T{NN}_{CHAR}[_{suffix}].{ext}"
            raise ContractError(f"asset name {name!r} does not match {pattern}")
        shot = match["shot"]
        return cls(
            project=match["project"],
            episode=int(match["episode"]),
            shot=int(shot),
            take=int(match["take"]),
            character=match["character"],
            suffix=match["suffix"],
            ext=match["ext"],
            shot_digits=len(shot),
        )


def shot_digits_for(shot_count: int) -> int:
    """Two digits for shot numbers, three where a storyboard has 100 or more shots."""
    return 3 if shot_count >= 100 else 2
