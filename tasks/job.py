"""What a shot's stages need to know (ShotJob) and what each stage hands on (StageResult)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger
from pydantic import BaseModel, ConfigDict, Field

from reelflow.schemas.assets import AssetRef, ManifestEntry
from reelflow.schemas.loras import LoraRegistry
from reelflow.schemas.names import AssetName
from reelflow.schemas.project import Project
from reelflow.schemas.requests import FrameNotes, FrameRole, LoraRef
from reelflow.schemas.storyboard import Approach, Shot
from reelflow.state.budget import Budgets, Caps
from reelflow.state.db import database
from reelflow.state.ledger import Ledger
from reelflow.state.store import AssetStore, store_for

# Shots by how long their chain of provider calls runs, longest first. At the services' times every call of a
# standard FLF shot leads to one 81-frame video (WAN: 138 s; 159 s from its first call), every call of a triptych
# to 49-frame ones (39 s; 60 s from its first), a held frame's to none (21 s): the rank orders calls as their
# remaining chains do.
CHAIN_RANK = {Approach.STANDARD_FLF: 0, Approach.TRIPTYCH: 1, Approach.PUSH: 2, Approach.STATIC: 2}
SHORT_CHAIN_RANK = 2  # held frames: no video call, a chain of 21 s


def _derived(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def shot_seed(project_code: str, episode: int, shot: Shot, take: int = 1) -> int:
    """Take 1: the shot's `seed` if it has one, else one derived from project, episode and shot; a retake mixes in its take."""
    seed = shot.seed % 2**32 if shot.seed is not None else _derived(f"{project_code}:{episode}:{shot.shot}")
    return seed if take == 1 else _derived(f"{seed}:T{take}")


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of a keyframe try: the take's own seed first, then a new one for each regeneration."""
    return seed if attempt == 1 else _derived(f"{seed}:try{attempt}")


def video_seed(seed: int, attempt: int) -> int:
    """The seed of a video try: the keyframes' seed first, then a new one for each regeneration Clip QC asks for."""
    return seed if attempt == 1 else _derived(f"{seed}:video-try{attempt}")


class Job(BaseModel):
    """Work for one project in one run: where its state is, what it may spend, and how its logs name it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    run: str
    root: Path
    project: Project
    max_cost_usd: float | None = None
    parent_run: str | None = None  # the run this one is part of, whose cap (max_cost_usd) its calls share

    @property
    def label(self) -> str:
        return self.project.code

    @property
    def episode_number(self) -> int | None:
        """The episode the ledger charges this job's calls to (None: not an episode's)."""
        return None

    @property
    def shot_number(self) -> int | None:
        """The shot the ledger charges this job's calls to, and the live view shows (None: not a shot's)."""
        return None

    @property
    def store(self) -> AssetStore:
        return store_for(self.state_dir)

    @property
    def state_dir(self) -> Path:
        return self.root / ".reelflow"

    @property
    def ledger(self) -> Ledger:
        """The project's ledger of paid requests."""
        return Ledger(database(self.state_dir))

    @property
    def budgets(self) -> Budgets:
        return Budgets(database(self.state_dir))

    @property
    def caps(self) -> Caps:
        """The project's total budget and this run's cap."""
        return Caps(project_usd=self.project.budget_usd, run_usd=self.max_cost_usd)


class CharacterJob(Job):
    """One piece of a character's LoRA work: a candidate (`item` "c007") or the training."""

    character: str
    item: str

    @property
    def label(self) -> str:
        """e.g. `JINX-c007`, `JINX-train-flux2`."""
        return f"{self.character}-{self.item}"


class ShotJob(Job):
    """One shot of one episode, with everything its stages read."""

    episode: int
    shot: Shot
    name: AssetName
    seed: int
    take: int = 1
    attempt: int = 1
    lora_registry: LoraRegistry = Field(default_factory=LoraRegistry)
    approved_frames: dict[str, str] | None = None  # raw keyframes (sha256 by role) a person approved for video

    @property
    def chain_rank(self) -> int:
        """0 for the shots whose calls lead to the longest chains (CHAIN_RANK): started and served first."""
        return CHAIN_RANK[self.shot.generation_approach]

    @property
    def label(self) -> str:
        """How a person reads this shot in the Prefect UI, e.g. `ep001-S07` (`ep001-S07-T02` for a retake)."""
        label = f"ep{self.episode:03d}-S{self.shot.shot:02d}"
        return label if self.take == 1 else f"{label}-T{self.take:02d}"

    @property
    def episode_number(self) -> int:
        return self.episode

    @property
    def shot_number(self) -> int:
        return self.shot.shot

    @property
    def try_suffix(self) -> str:
        """`-try2` on the task runs of a regeneration (a stage made again with a new seed), else nothing."""
        return "" if self.attempt == 1 else f"-try{self.attempt}"

    @property
    def assets_dir(self) -> Path:
        return self.root / "storyboards" / "assets" / f"ep_{self.episode:03d}"

    def loras_for(self, model: str) -> tuple[LoraRef, ...]:
        """The shot's character LoRAs that fit `model`'s base model, with the project's copies of their weights."""
        return self.lora_registry.for_model(self.shot.characters_in_shot, model, shared=self.project.shared_lora_scale,
                                            root=self.root)

    def triggered(self, model: str, prompt: str) -> str:
        """`prompt` with the trigger words of the LoRAs `model` gets in front."""
        triggers = [lora.trigger for lora in self.loras_for(model) if lora.trigger]
        return ", ".join([*triggers, prompt])

    def asset_path(self, suffix: str, ext: str) -> Path:
        return self.assets_dir / self.name.with_(suffix=suffix, ext=ext).format()

    def notes(self, role: FrameRole) -> FrameNotes:
        return FrameNotes(
            project=self.project.code,
            episode=self.episode,
            shot=self.shot.shot,
            approach=self.shot.generation_approach.value,
            role=role,
            characters=tuple(self.shot.characters_in_shot),
            location=self.shot.location,
        )


class StageResult(BaseModel):
    """Assets a stage made (blob references by role) and their manifest entries."""

    assets: dict[str, AssetRef] = Field(default_factory=dict)
    entries: list[ManifestEntry] = Field(default_factory=list)


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The task (or flow) run's logger inside a run, else reelflow's Prefect logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("reelflow")
