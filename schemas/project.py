"""`project.json` and `breakdown.json` as the project-layout contract defines them."""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from reelflow.schemas.env import blob_url_problem, scaled_sizes, state_url_problem
from reelflow.schemas.errors import ContractError
from reelflow.schemas.gemini_models import PREFIX as GEMINI_PREFIX
from reelflow.schemas.gemini_models import model_problem, shut_down_problem
from reelflow.schemas.names import NO_CHARACTER
from reelflow.schemas.qc import Routing
from reelflow.schemas.storyboard import WardrobeName

# `runpod` is `comfyui` on the project's `comfyui.runpod` settings (the storyboard spec's name for the GPU fallback).
ProviderName = Literal["local", "fal", "gemini", "runpod", "comfyui"]
GPU_PROVIDERS: frozenset[str] = frozenset({"runpod", "comfyui"})
StageName = Literal["candidates", "training", "previz", "keyframes", "upscale", "video", "qc"]
STAGES: tuple[str, ...] = StageName.__args__
RENDER_STAGES: tuple[str, ...] = ("keyframes", "qc", "upscale", "video")  # the stages an episode render calls
AspectRatio = Literal["9:16", "16:9"]

ProjectCode = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{1,5}$")]
CharacterId = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$")]
LocationId = Annotated[str, StringConstraints(min_length=1)]

PRODUCTION_SIZES: dict[str, tuple[int, int]] = scaled_sizes({"9:16": (768, 1344), "16:9": (1344, 768)})

# The five fields of a cron expression: name, lowest and highest value, names a value may go by.
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
CRON_ITEM = re.compile(r"(?:\*|(?P<low>[0-9A-Za-z]+)(?:-(?P<high>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?")


@cache
def iana_zones() -> frozenset[str]:
    """The IANA time zone names zoneinfo knows (what Prefect's schedules accept)."""
    return frozenset(available_timezones())


def _cron_value(value: str, lowest: int, names: tuple[str, ...]) -> int | None:
    """A cron field's value as a number (a name counts from the field's lowest), or None when it is neither."""
    if value.lower() in names:
        return names.index(value.lower()) + lowest
    return int(value) if value.isdigit() else None


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a 5-field cron (minute hour day-of-month month day-of-week), or None when it is."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        return f"{expression!r} is not a cron of 5 fields: minute hour day-of-month month day-of-week"
    for text, (name, lowest, highest, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            match = CRON_ITEM.fullmatch(item)
            if match is None:
                return f"{expression!r}: {name} {item!r} is not *, N or N-M, each with an optional /STEP"
            bounds = [value for value in (match["low"], match["high"]) if value is not None]
            numbers = [_cron_value(value, lowest, names) for value in bounds]
            for value, number in zip(bounds, numbers, strict=True):
                if number is None or not lowest <= number <= highest:
                    return f"{expression!r}: {name} {value!r} is not in {lowest}-{highest}"
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                return f"{expression!r}: {name} range {item!r} runs backwards"
            if match["step"] is not None and int(match["step"]) == 0:
                return f"{expression!r}: {name} step in {item!r} must be 1 or more"
    return None


class _Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class StageChoice(_Contract):
    """Which provider serves a stage, which one takes content it rejects, and an optional model."""

    use: ProviderName
    fallback: ProviderName | None = None
    model: str | None = None

    @field_validator("model")
    @classmethod
    def _current_gemini_id(cls, model: str | None, info: ValidationInfo) -> str | None:
        """A shut-down Gemini id is refused, naming its replacement; for `use: gemini`, so is an unknown one."""
        if model is None:
            return model
        problem = shut_down_problem(model)
        if problem is None and info.data.get("use") == "gemini" and model.startswith(GEMINI_PREFIX):
            problem = model_problem(model)
        if problem is not None:
            raise ValueError(problem)
        return model


class Wan(_Contract):
    """WAN 2.2's sampling, read by every provider that takes it: the seed's 30 steps, cfg 6, shift 5."""

    # what each model allows is its server's to say (ComfyUI's /object_info is checked before anything is queued)
    steps: Annotated[int, Field(ge=1)] = 30
    cfg: Annotated[float, Field(ge=0)] = 6.0
    shift: Annotated[float, Field(ge=0)] = 5.0


class Review(_Contract):
    """Which shots stop after their keyframes' gates, for a person to approve the frames before upscale and video are
    paid for: those Gate 2 sent to review (`needs_review`), every shot (`all`), or none."""

    keyframes: Literal["needs_review", "all", "none"] = "needs_review"


class RunpodPod(_Contract):
    """A RunPod pod that reelflow starts, uses and terminates: the first GPU type with capacity, the image, and the
    network volume that holds the models."""

    mode: Literal["pod"]
    gpu_types: Annotated[list[str], Field(min_length=1)]
    image: str = "runpod/comfyui:latest"  # RunPod's ComfyUI pod image (gpu-path.md A6)
    network_volume_id: str | None = None
    datacenter: str | None = None  # the volume's (its S3 endpoint); None: RunPod picks one for the volume
    idle_stop_s: Annotated[float, Field(gt=0)] = 600.0  # the lease: the pod stops this long after its last work
    boot_timeout_s: Annotated[float, Field(gt=0)] = 1800.0  # RUNNING and ComfyUI answering ("up to 30 minutes")
    cloud_type: Literal["SECURE", "COMMUNITY", "ALL"] = "SECURE"
    container_disk_gb: Annotated[int, Field(ge=1)] = 50
    cost_per_hr: Annotated[float, Field(gt=0)] | None = None  # the $/hr a budget holds before RunPod names one


class RunpodServerless(_Contract):
    """A RunPod serverless endpoint running worker-comfyui, billed per second of worker time."""

    mode: Literal["serverless"]
    endpoint_id: Annotated[str, Field(min_length=1)]
    price_per_s: Annotated[float, Field(gt=0)]  # the endpoint's $/s (RunPod's serverless pricing for its GPU)
    idle_s: Annotated[float, Field(ge=0)] = 5.0  # the endpoint's idle timeout, billed after each job (RunPod's default)
    execution_timeout_s: Annotated[float, Field(ge=5)] = 600.0  # the job policy's executionTimeout (RunPod's default)
    ttl_s: Annotated[float, Field(ge=10)] = 86400.0  # the job policy's ttl: queue plus run (RunPod's default)


class ComfyUI(_Contract):
    """Where ComfyUI runs: a server the studio runs (`url`), or RunPod (`runpod`); model file names by role."""

    url: str | None = None
    runpod: Annotated[RunpodPod | RunpodServerless, Field(discriminator="mode")] | None = None
    models: dict[str, str] = Field(default_factory=dict)  # role -> file name (providers/comfyui/models.py)
    auth_header_env: str | None = None  # the environment variable holding `Name: value`, sent to a `url` server

    @model_validator(mode="after")
    def _one_place(self) -> ComfyUI:
        if (self.url is None) == (self.runpod is None):
            raise ValueError('give exactly one of "url" (a ComfyUI server) and "runpod" (a pod or serverless endpoint)')
        if self.url is not None and not re.match(r"^https?://[^/]+", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL")
        return self


def _gpu_defaults() -> dict[str, StageChoice]:
    return {stage: StageChoice(use="comfyui") for stage in ("keyframes", "upscale", "video")}


class Project(_Contract):
    code: ProjectCode
    title: str
    aspect_ratio: AspectRatio
    fps: int = Field(ge=1, le=120)
    providers: dict[str, StageChoice] = Field(default_factory=lambda: {"default": StageChoice(use="local")})
    concurrency: dict[ProviderName, Annotated[int, Field(ge=1, le=64)]] = Field(default_factory=dict)
    budget_usd: Annotated[float, Field(gt=0)] | None = None  # the project's total, across every run and process
    billed_retries: Annotated[int, Field(ge=0, le=5)] = 1  # re-submits of a request billed with unusable output
    qc: Routing = Field(default_factory=Routing)
    review: Review = Field(default_factory=Review)
    timezone: str = "UTC"  # the IANA zone the nightly schedule runs in
    nightly: str = "0 2 * * *"  # cron (5 fields) of the nightly render of every episode with pending shots
    # each character LoRA's strength in a shot with several characters (default: an equal part, 0.5 for two)
    shared_lora_scale: Annotated[float, Field(gt=0, le=1)] | None = None
    # shots only an upgrade of reelflow would make again (their own inputs unchanged): kept as they are, or rendered
    upgrades: Literal["keep", "rerender"] = "keep"
    wan: Wan = Field(default_factory=Wan)
    comfyui: ComfyUI | None = None
    # the stages a render on the gpu pool (render-episode-gpu) sends to the GPU; the rest follow `providers`
    gpu_providers: dict[str, StageChoice] = Field(default_factory=_gpu_defaults)
    # past one machine: the project's state in Postgres and its blobs in S3 (REELFLOW_STATE_URL / REELFLOW_BLOB_URL win)
    state_url: str | None = None
    blob_url: str | None = None

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, timezone: str) -> str:
        """An IANA zone name as Prefect's schedules take it (`UTC`, `Europe/Paris`)."""
        if timezone not in iana_zones():
            raise ValueError(f"{timezone!r} is not an IANA time zone name, e.g. UTC or Europe/Paris")
        return timezone

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, url: str | None) -> str | None:
        """A Postgres URL without a password (it belongs in the environment or a pgpass file)."""
        if url is None:
            return None
        problem = state_url_problem(url)
        if problem is None and urlsplit(url).password is not None:
            problem = "holds a password: give it in PGPASSWORD or a pgpass file, never in project.json"
        if problem is not None:
            raise ValueError(problem)
        return url

    @field_validator("blob_url")
    @classmethod
    def _blob_url(cls, url: str | None) -> str | None:
        """`s3://bucket[/prefix]`."""
        problem = None if url is None else blob_url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @field_validator("nightly")
    @classmethod
    def _cron(cls, nightly: str) -> str:
        """A 5-field cron expression."""
        problem = cron_problem(nightly)
        if problem is not None:
            raise ValueError(problem)
        return nightly

    @field_validator("providers", "gpu_providers", mode="before")
    @classmethod
    def _known_stages(cls, providers: object) -> object:
        """Stage names must be known; a bare provider name means `{"use": name}`."""
        if not isinstance(providers, dict):
            return providers
        for key in providers:
            if key != "default" and key not in STAGES:
                raise ValueError(f"unknown stage {key!r} (stages: default, {', '.join(STAGES)})")
        return {key: {"use": value} if isinstance(value, str) else value for key, value in providers.items()}

    def gpu_problem(self, choices: dict[str, StageChoice], field: str) -> str | None:
        """Why `choices` cannot run on this project's GPU settings, or None."""
        for stage, choice in choices.items():
            for name in (choice.use, choice.fallback):
                if name == "comfyui" and self.comfyui is None:
                    return f'{field}.{stage}: comfyui needs a "comfyui" block: {{"url": ...}} or {{"runpod": {{...}}}}'
                if name == "runpod" and (self.comfyui is None or self.comfyui.runpod is None):
                    return f'{field}.{stage}: runpod needs "comfyui": {{"runpod": {{"mode": "pod" | "serverless", ...}}}}'
        return None

    def on_gpu(self) -> Project:
        """This project as the gpu pool renders it: its `gpu_providers` in place of those stages' providers."""
        problem = self.gpu_problem(self.gpu_providers, "gpu_providers")
        if problem is not None:
            raise ContractError(f"project.json: {problem}")
        return self.model_copy(update={"providers": self.providers | self.gpu_providers})

    def stage(self, stage: str) -> StageChoice:
        """The provider choice for a stage, falling back to `default`, then to `local`."""
        return self.providers.get(stage) or self.providers.get("default") or StageChoice(use="local")

    @property
    def production_size(self) -> tuple[int, int]:
        return PRODUCTION_SIZES[self.aspect_ratio]


class Wardrobe(_Contract):
    """One outfit of a character: its name (as shots and datasets name it) and how it looks, for prompts and captions."""

    id: WardrobeName
    description: str | None = None


class Character(_Contract):
    id: CharacterId
    name: str | None = None
    height_cm: float | None = None
    description: str | None = None
    default_wardrobe: WardrobeName | None = None  # the refs a shot uses when its `wardrobe` names none for this character
    # the outfits the character wears in the series (a bare name is `{"id": name}`): a LoRA dataset shows 3-5 of them
    wardrobes: list[Wardrobe] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == NO_CHARACTER:
            raise ValueError(f"{NO_CHARACTER} is reserved for shots without characters")
        return value

    @field_validator("wardrobes", mode="before")
    @classmethod
    def _bare_names(cls, wardrobes: object) -> object:
        """A bare wardrobe name means `{"id": name}`."""
        if not isinstance(wardrobes, list):
            return wardrobes
        return [{"id": item} if isinstance(item, str) else item for item in wardrobes]

    @model_validator(mode="after")
    def _known_wardrobes(self) -> Character:
        """Each wardrobe once; a `default_wardrobe` is one of them when they are listed."""
        names = [wardrobe.id for wardrobe in self.wardrobes]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"wardrobes: {name!r} appears twice")
        if names and self.default_wardrobe is not None and self.default_wardrobe not in names:
            raise ValueError(f"default_wardrobe {self.default_wardrobe!r} is not one of its wardrobes ({', '.join(names)})")
        return self


class Location(_Contract):
    id: LocationId
    zone: str | None = None
    description: str | None = None


class Breakdown(_Contract):
    characters: list[Character]
    locations: list[Location]
    props: list[dict[str, object]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Breakdown:
        for label, ids in (("characters", [c.id for c in self.characters]), ("locations", [loc.id for loc in self.locations])):
            seen: set[str] = set()
            for item_id in ids:
                if item_id in seen:
                    raise ValueError(f"{label}: id {item_id} appears twice")
                seen.add(item_id)
        return self

    @property
    def character_ids(self) -> set[str]:
        return {c.id for c in self.characters}

    @property
    def location_ids(self) -> set[str]:
        return {loc.id for loc in self.locations}
