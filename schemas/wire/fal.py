"""fal's published input schemas for every endpoint reelflow calls: names, types, ranges, enums, required fields.

Every argument dict reelflow sends is validated here before any upload or submit; the fake fal in `tests/`
validates the bodies it receives with the same models and answers 422 as fal does. Unknown fields are refused
(`extra="forbid"`): nothing is sent that the service does not document. Sources (checked 2026-11-25): the
endpoints' model pages (`https://fal.ai/models/<endpoint>/api`, their `llms.txt`) and the generated types of
fal-ai/fal-js (`libs/client/src/types/endpoints.ts`); ranges the issue audit listed are marked with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelflow.schemas.errors import BadRequest

CHECKED = "2026-11-25"

FLUX2_LORA = "fal-ai/flux-2/lora"
FLUX2_LORA_EDIT = "fal-ai/flux-2/lora/edit"  # FLUX.2 [dev] with LoRAs and reference images
Z_IMAGE_TURBO = "fal-ai/z-image/turbo"
Z_IMAGE_TURBO_LORA = "fal-ai/z-image/turbo/lora"
WAN_FLF = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
SEEDVR_UPSCALE = "fal-ai/seedvr/upscale/image"
QWEN_ANGLES = "fal-ai/qwen-image-edit-2511-multiple-angles"
NANO_BANANA_EDIT = "fal-ai/nano-banana-pro/edit"
Z_IMAGE_TRAINER = "fal-ai/z-image-trainer"
FLUX2_TRAINER = "fal-ai/flux-2-trainer"
WAN22_TRAINER = "fal-ai/wan-22-image-trainer"

Seed = Annotated[int, Field(ge=0)]
Url = Annotated[str, Field(min_length=1)]
ImageFormat = Literal["jpeg", "png", "webp"]


class _Input(BaseModel):
    """An endpoint's input: every field fal documents for it, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Flux2Size(_Input):
    """fal-ai/flux-2/lora `image_size` as explicit dimensions: 512..2048 per side."""

    width: Annotated[int, Field(ge=512, le=2048)]
    height: Annotated[int, Field(ge=512, le=2048)]


class ImageSize(_Input):
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]


class LoraWeight(_Input):
    """`LoRAInput`: weights URL and scale 0..4."""

    path: Url
    scale: Annotated[float, Field(ge=0.0, le=4.0)] = 1.0


class WanLoraWeight(LoraWeight):
    """WAN 2.2's `LoRAWeight`: which of its two noise experts loads the adapter (fal's default is "high")."""

    transformer: Literal["high", "low", "both"] = "high"


class Flux2LoraInput(_Input):
    """https://fal.ai/models/fal-ai/flux-2/lora/api: steps 4..50, at most 3 LoRAs."""

    prompt: Annotated[str, Field(min_length=1)]
    image_size: Flux2Size
    num_inference_steps: Annotated[int, Field(ge=4, le=50)] = 28
    guidance_scale: float | None = None
    seed: Seed | None = None
    num_images: Annotated[int, Field(ge=1, le=4)] = 1
    output_format: ImageFormat = "png"
    loras: Annotated[list[LoraWeight], Field(max_length=3)] = Field(default_factory=list)


# fal-ai/flux-2/lora/edit's image_urls: fal's own schema description, as quoted by
# https://lora-atelier.vercel.app/inference/flux-2--lora--edit ("A maximum of 3 images are allowed, if more are
# provided, only the first 3 will be used") and https://docs.aimlapi.com/api-references/image-models/flux/flux-2-lora-edit
# (maxItems 3); fal-ai/fal-js `Flux2LoraEditInput` (Aug 2026) says 4. Three holds under both.
FLUX2_EDIT_MAX_IMAGES = 3


class Flux2LoraEditInput(Flux2LoraInput):
    """https://fal.ai/models/fal-ai/flux-2/lora/edit/api: FLUX.2 [dev] with LoRAs (at most 3) editing from reference
    images; every other field as `fal-ai/flux-2/lora` (fal-ai/fal-js `Flux2LoraEditInput`: the same fields plus
    `image_urls`, required)."""

    image_urls: Annotated[list[Url], Field(min_length=1, max_length=FLUX2_EDIT_MAX_IMAGES)]


class ZImageTurboInput(_Input):
    """https://fal.ai/models/fal-ai/z-image/turbo/api: steps 1..8."""

    prompt: Annotated[str, Field(min_length=1)]
    image_size: ImageSize
    num_inference_steps: Annotated[int, Field(ge=1, le=8)] = 8
    seed: Seed | None = None
    num_images: Annotated[int, Field(ge=1, le=4)] = 1
    output_format: ImageFormat = "png"


class ZImageTurboLoraInput(ZImageTurboInput):
    """https://fal.ai/models/fal-ai/z-image/turbo/lora/api: Z-Image Turbo with at most 3 LoRAs."""

    loras: Annotated[list[LoraWeight], Field(max_length=3)] = Field(default_factory=list)


class WanFlfInput(_Input):
    """https://fal.ai/models/fal-ai/wan/v2.2-a14b/image-to-video/lora/api: num_frames 17..161, an integer fps 4..60,
    num_interpolated_frames 0..4 (fal-js zod `zWanV22A14bImageToVideoLoraInput`: "Must be between 0 and 4")."""

    image_url: Url
    end_image_url: Url | None = None
    prompt: Annotated[str, Field(min_length=1)]
    negative_prompt: str | None = None
    num_frames: Annotated[int, Field(ge=17, le=161)] = 81
    frames_per_second: Annotated[int, Field(ge=4, le=60)] = 16
    resolution: Literal["480p", "580p", "720p"] = "720p"
    aspect_ratio: Literal["auto", "16:9", "9:16", "1:1"] = "auto"
    num_interpolated_frames: Annotated[int, Field(ge=0, le=4)] = 1
    # fal's default 27 when unsent (../shared/reference/prefect-and-services.md, the services' published schemas)
    num_inference_steps: Annotated[int, Field(ge=2, le=40)] | None = None
    seed: Seed | None = None
    loras: list[WanLoraWeight] = Field(default_factory=list)  # no documented cap


class SeedvrUpscaleInput(_Input):
    """https://fal.ai/models/fal-ai/seedvr/upscale/image/api: factor 1..10; JPEG unless PNG is asked for."""

    image_url: Url
    upscale_mode: Literal["target", "factor"] = "factor"
    upscale_factor: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    target_resolution: Literal["720p", "1080p", "1440p", "2160p"] | None = None
    seed: Seed | None = None
    output_format: Literal["png", "jpg", "webp"] = "jpg"


class QwenAnglesInput(_Input):
    """https://fal.ai/models/fal-ai/qwen-image-edit-2511-multiple-angles/api: angles 0..360 and -30..90, zoom 0..10."""

    image_urls: Annotated[list[Url], Field(min_length=1)]
    horizontal_angle: Annotated[float, Field(ge=0.0, le=360.0)] | None = None
    vertical_angle: Annotated[float, Field(ge=-30.0, le=90.0)] | None = None
    zoom: Annotated[float, Field(ge=0.0, le=10.0)] | None = None
    lora_scale: Annotated[float, Field(ge=0.0, le=4.0)] | None = None
    guidance_scale: Annotated[float, Field(ge=1.0, le=20.0)] | None = None
    num_inference_steps: Annotated[int, Field(ge=1, le=50)] | None = None  # lora_scale .. steps: reference notes
    seed: Seed | None = None
    num_images: Annotated[int, Field(ge=1, le=4)] = 1


class NanoBananaProEditInput(_Input):
    """https://fal.ai/models/fal-ai/nano-banana-pro/edit/api: prompt 3..50,000 characters; an integer `seed` ("The seed
    for the random number generator", no range: fal-js `NanoBananaProEditInput`, zod `seed: z.int()`)."""

    prompt: Annotated[str, Field(min_length=3, max_length=50_000)]
    image_urls: Annotated[list[Url], Field(min_length=1)]
    resolution: Literal["1K", "2K", "4K"] = "1K"
    aspect_ratio: Literal["auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"] | None = None
    output_format: ImageFormat = "png"
    num_images: Annotated[int, Field(ge=1, le=4)] = 1
    seed: Seed | None = None


class ImageZipTrainerInput(_Input):
    """fal-ai/flux-2-trainer and fal-ai/z-image-trainer: a zip of captioned images, steps 100..10,000."""

    image_data_url: Url
    steps: Annotated[int, Field(ge=100, le=10_000)] = 1000
    default_caption: str | None = None
    learning_rate: Annotated[float, Field(gt=0.0)] | None = None


class Wan22ImageTrainerInput(_Input):
    """https://fal.ai/models/fal-ai/wan-22-image-trainer/api: training_data_url and trigger_phrase required, steps 10..6,000."""

    training_data_url: Url
    trigger_phrase: Annotated[str, Field(min_length=1)]
    steps: Annotated[int, Field(ge=10, le=6_000)] = 1000
    learning_rate: Annotated[float, Field(gt=0.0)] | None = None


INPUTS: dict[str, type[_Input]] = {
    FLUX2_LORA: Flux2LoraInput,
    FLUX2_LORA_EDIT: Flux2LoraEditInput,
    Z_IMAGE_TURBO: ZImageTurboInput,
    Z_IMAGE_TURBO_LORA: ZImageTurboLoraInput,
    WAN_FLF: WanFlfInput,
    SEEDVR_UPSCALE: SeedvrUpscaleInput,
    QWEN_ANGLES: QwenAnglesInput,
    NANO_BANANA_EDIT: NanoBananaProEditInput,
    Z_IMAGE_TRAINER: ImageZipTrainerInput,
    FLUX2_TRAINER: ImageZipTrainerInput,
    WAN22_TRAINER: Wan22ImageTrainerInput,
}


class WireViolation(BadRequest):
    """Arguments an endpoint's published schema refuses; `problems` holds one `field: value: rule` per violation."""

    kind = "wire_violation"

    def __init__(self, endpoint: str, problems: list[dict[str, Any]]) -> None:
        self.endpoint, self.problems = endpoint, problems
        super().__init__(f"{endpoint}: " + "; ".join(describe(problem) for problem in problems), provider="fal")

    def __reduce__(self) -> tuple[type[WireViolation], tuple[str, list[dict[str, Any]]]]:
        return WireViolation, (self.endpoint, self.problems)


def describe(problem: dict[str, Any]) -> str:
    """`loras: [4 items]: List should have at most 3 items after validation, not 4` from one pydantic error."""
    where = ".".join(str(part) for part in problem.get("loc", ())) or "body"
    value = problem.get("input")
    shown = f"[{len(value)} items]" if isinstance(value, list) else repr(value)
    return f"{where}: {shown}: {problem.get('msg', 'invalid')}"


def validate(endpoint: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the endpoint's schema accepts them, or WireViolation naming every field it refuses."""
    schema = INPUTS.get(endpoint)
    if schema is None:
        raise WireViolation(endpoint, [{"loc": ("endpoint",), "input": endpoint, "msg": f"not one of {', '.join(INPUTS)}"}])
    try:
        schema.model_validate(arguments)
    except ValidationError as error:
        raise WireViolation(endpoint, [dict(item) for item in error.errors(include_url=False)]) from None
    return arguments
