"""A character's LoRA dataset on disk: `visual/lora_candidates/<CHAR>/manifest.json` and the training types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reelflow.schemas.wire.fal import FLUX2_TRAINER, WAN22_TRAINER, Z_IMAGE_TRAINER

CandidateMode = Literal["threepass", "hybrid", "gemini"]
LoraType = Literal["z_image", "flux2", "wan22"]
KEYSTONE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SELECTION_RANGE = (15, 25)  # images a LoRA dataset should hold (the seed's proven range)
WARDROBE_RANGE = (3, 5)  # distinct wardrobes a selection should show (the seed's dataset requirements)
EXPRESSION_RANGE = (5, 7)  # distinct expressions a selection should show (the seed's dataset requirements)


class LoraTypeSpec(BaseModel):
    """How one LoRA type is trained and captioned."""

    trainer: str
    base_model: str
    steps: int
    caption_words: tuple[int, int]


LORA_TYPES: dict[str, LoraTypeSpec] = {
    "z_image": LoraTypeSpec(trainer=Z_IMAGE_TRAINER, base_model="z-image", steps=2000, caption_words=(20, 50)),
    "flux2": LoraTypeSpec(trainer=FLUX2_TRAINER, base_model="flux-2", steps=1000, caption_words=(30, 80)),
    "wan22": LoraTypeSpec(trainer=WAN22_TRAINER, base_model="wan-2.2", steps=1000, caption_words=(30, 80)),
}


class LineageStep(BaseModel):
    """One call that made a candidate: enough to make it again."""

    step: str  # "angle", "edit" or "upscale"
    provider: str
    model: str
    params: dict[str, object] = Field(default_factory=dict)
    seed: int | None = None
    inputs: list[str] = Field(default_factory=list)  # sha256 of each input image, in order
    sha256: str
    cost_usd: float = 0.0
    request_id: str | None = None


class Candidate(BaseModel):
    """One candidate image: where it sits in the diversity grid, its caption, how it was made, and the pick."""

    file: str
    sha256: str
    angle: str
    horizontal_angle: float
    vertical_angle: float
    zoom: float
    framing: str
    location: str
    expression: str
    lighting: str
    caption: str
    wardrobe: str | None = None  # None: the character lists no wardrobes, or made before wardrobes were recorded
    keystones: list[str] = Field(default_factory=list)
    lineage: list[LineageStep] = Field(default_factory=list)
    seed: int
    cost_usd: float = 0.0
    selected: bool = False


class CandidateManifest(BaseModel):
    """Every candidate of a character, the selection a person made, and what making them cost."""

    project: str
    character: str
    trigger: str
    mode: CandidateMode
    caption_type: LoraType  # the LoRA type `caption` is written for
    seed: int
    cost_usd: float = 0.0
    wardrobes: list[str] | None = None  # the grid's wardrobe axis; None: made before wardrobes were recorded
    candidates: list[Candidate] = Field(default_factory=list)
    selected_by: str | None = None  # who saved the selection last: "pick page" or "--select"
    selected_at: str | None = None

    def selected(self) -> list[Candidate]:
        return [candidate for candidate in self.candidates if candidate.selected]

    def spread(self, field: Literal["wardrobe", "expression", "location", "angle"]) -> list[str]:
        """The distinct values of one grid field among the selected, sorted; an unknown wardrobe is none of them."""
        return sorted({value for candidate in self.selected() if (value := getattr(candidate, field)) is not None})


class CandidateFailure(BaseModel):
    file: str
    reason: str


class CandidatesReport(BaseModel):
    """What a candidates run made, kept from the cache, and failed, with this run's calls and cost."""

    character: str
    mode: CandidateMode
    manifest: str
    files: list[str] = Field(default_factory=list)  # this run's candidates, made or cached
    made: int = 0
    cached: int = 0
    failed: list[CandidateFailure] = Field(default_factory=list)
    provider_calls: int = 0
    cost_usd: float = 0.0  # charged + shadow
    charged_usd: float = 0.0
    shadow_usd: float = 0.0


class TrainingReport(BaseModel):
    """What a training run registered: the dataset it trained on, the entries, and this run's calls and cost."""

    character: str
    type: LoraType
    registry: str
    dataset: str
    dataset_sha256: str
    images: int
    entries: list[dict[str, object]] = Field(default_factory=list)
    provider_calls: int = 0
    cost_usd: float = 0.0
    charged_usd: float = 0.0
    shadow_usd: float = 0.0
