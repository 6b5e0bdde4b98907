"""Each fal endpoint's wire shape: our request in, fal's arguments out; fal's result in, output URLs out.

Pure functions, no I/O. Field names were checked against fal's published schemas (Nov 2026):

- `fal-ai/flux-2/lora`: prompt, guidance_scale — https://fal.ai/models/fal-ai/flux-2/lora/llms.txt;
  image_size {width, height} (512..2048), num_inference_steps (default 28), seed, num_images, loras
  [{path, scale}] (up to 3) — schema facts quoted at https://lora-atelier.vercel.app/inference/flux-2--lora and
  the `ImageSize` / `LoRAInput` types of fal-ai/fal-js `libs/client/src/types`; result `images[{url, width, height}]`.
- `fal-ai/flux-2/lora/edit`: the same fields as `fal-ai/flux-2/lora` plus `image_urls` (required; at most 3, see
  schemas/wire/fal.py) — https://fal.ai/models/fal-ai/flux-2/lora/edit/api and fal-ai/fal-js `Flux2LoraEditInput`;
  result `images[{url, width, height}]` (`Flux2LoraEditOutput = v4Output`, as flux-2/lora's). Keyframes with reference
  images (costume, set) go there.
- `fal-ai/z-image/turbo`: prompt, image_size, num_inference_steps 1..8 (default 8), seed, num_images, output_format;
  result images — https://fal.ai/docs/model-api-reference/image-generation-api/z-image-turbo (and its image-to-image
  page). `fal-ai/z-image/turbo/lora` adds `loras` (up to 3) —
  https://fal.ai/docs/model-api-reference/image-generation-api/z-image-turbo-lora.
- `fal-ai/wan/v2.2-a14b/image-to-video/lora`: image_url, prompt, num_frames 17..161, frames_per_second 4..60 (16),
  interpolation multiplies the frames unless num_interpolated_frames is 0 — https://fal.ai/models/fal-ai/wan/v2.2-a14b/
  image-to-video/llms.txt; num_inference_steps 2..40 (27) — the services' published schemas in
  ../shared/reference/prefect-and-services.md; LoRA `transformer`: "high" | "low" | "both" (default "high": which of
  WAN 2.2's two noise experts loads the adapter) — fal's generated `LoRAWeight` type; result `video{url}`. end_image_url and
  resolution "720p" are as briefed, not found in a page this search could read.
- `fal-ai/seedvr/upscale/image`: image_url, upscale_mode "factor" | "target", upscale_factor 1..10 —
  https://fal.ai/models/fal-ai/seedvr/upscale/image/llms.txt; result `image` (singular).
- `fal-ai/qwen-image-edit-2511-multiple-angles`: image_urls (list), horizontal_angle 0..360, vertical_angle -30..90,
  zoom — https://fal.ai/models/fal-ai/qwen-image-edit-2511-multiple-angles/llms.txt; result images.
- `fal-ai/nano-banana-pro/edit`: prompt, image_urls, resolution 1K | 2K | 4K, output_format, num_images; result images —
  https://fal.ai/docs/model-api-reference/image-generation-api/nano-banana-pro.md and its mirrors; `seed` an integer
  (fal-ai/fal-js `NanoBananaProEditInput`, "The seed for the random number generator").
- `fal-ai/z-image-trainer`: image_data_url (zip), steps (>= 100), default_caption —
  https://fal.ai/models/fal-ai/z-image-trainer/llms.txt. `fal-ai/flux-2-trainer` takes the same zip field (briefed).
- WAN 2.2: `fal-ai/wan-22-image-trainer` takes training_data_url and trigger_phrase (both required) —
  https://fal.ai/models/fal-ai/wan-22-image-trainer/llms.txt; it trains from images and returns a high-noise and a
  low-noise adapter. (`fal-ai/wan-22-trainer/{t2v,i2v}-a14b` exist too; the i2v one needs video data.)
- Trainer results are read by key, as fal-ai/fal-js `libs/client/src/types/endpoints.ts` (Aug 2026) types them:
  `Wan22ImageTrainerOutput` {config_file, diffusers_lora_file "Low noise LoRA file", high_noise_lora "High noise LoRA
  file"}; the Z-Image and FLUX.2 trainers' `Output` {config_file, diffusers_lora_file}. A URL's text says nothing.
- Safety checker: the text-to-image endpoints' output (fal-js `v4Output`, shared by flux-2/lora and z-image/turbo
  [+ /lora]) carries `has_nsfw_concepts: Array<boolean>`, one per image ("Whether the generated images contain NSFW
  concepts"); `enable_safety_checker` defaults to true (fal-js zod `zFlux2LoraInput`). A flagged image comes back
  blacked out, in a completed request that is billed. The edit outputs (Nano Banana Pro, Qwen angles) have no such field.
- Errors: 422 `detail[{loc, msg, type}]`, `type == "content_policy_violation"` —
  https://wavespeed.ai/blog/de/ai-guides/fal-ai-content-policy-violation-422-fix/ quoting fal's error reference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reelflow.schemas.errors import BadRequest, ContentRejected, UnusableOutput
from reelflow.schemas.requests import EditRequest, ImageRequest, LoraRef, TrainRequest, UpscaleRequest, VideoRequest
from reelflow.schemas.wire.fal import (
    FLUX2_LORA,
    FLUX2_LORA_EDIT,
    FLUX2_TRAINER,
    NANO_BANANA_EDIT,
    QWEN_ANGLES,
    SEEDVR_UPSCALE,
    WAN22_TRAINER,
    WAN_FLF,
    Z_IMAGE_TRAINER,
    Z_IMAGE_TURBO,
    Z_IMAGE_TURBO_LORA,
    validate,
)

__all__ = [
    "FLUX2_LORA", "FLUX2_LORA_EDIT", "FLUX2_TRAINER", "NANO_BANANA_EDIT", "QWEN_ANGLES", "SEEDVR_UPSCALE",
    "WAN22_TRAINER", "WAN_FLF", "Z_IMAGE_TRAINER", "Z_IMAGE_TURBO", "Z_IMAGE_TURBO_LORA",
]

Z_IMAGE_MAX_STEPS = 8
SIZE_MULTIPLE = 16
WAN_FRAMES = (17, 161)
UPSCALE_FACTORS = (1.0, 10.0)
# The result keys of each trainer's LoRA weights (sources above); WAN 2.2's come high-noise expert first, then low-noise,
# the order in which the registry labels them (tasks/training.py `noise_labels`).
WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    Z_IMAGE_TRAINER: ("diffusers_lora_file",),
    FLUX2_TRAINER: ("diffusers_lora_file",),
    WAN22_TRAINER: ("high_noise_lora", "diffusers_lora_file"),
}

Arguments = dict[str, Any]
logger = logging.getLogger("prefect.reelflow")


@dataclass(frozen=True)
class Output:
    """One file fal produced: where to download it, and the size fal says it has (when it says)."""

    url: str
    width: int | None = None
    height: int | None = None


def _loras(loras: tuple[LoraRef, ...]) -> list[dict[str, Any]]:
    """Each adapter at the URL fal reads it from now (`url`, see providers/fal/loras.py), else its registry path."""
    return [{"path": lora.url or lora.path, "scale": lora.scale} for lora in loras]


def expect_model(model: str, endpoint: str, kind: str) -> None:
    """Refuse a request whose model is not the one endpoint this capability maps to."""
    if model != endpoint:
        raise BadRequest(f"fal: model {model!r} is not {kind} endpoint (have: {endpoint})", provider="fal")


def _check_image_size(endpoint: str, width: int, height: int) -> None:
    """Refuse sizes the model would round: an output of another size is paid for and unusable."""
    if width < 1 or height < 1 or width % SIZE_MULTIPLE or height % SIZE_MULTIPLE:
        raise BadRequest(
            f"fal: {endpoint}: image_size: {width}x{height} must be positive multiples of {SIZE_MULTIPLE}", provider="fal"
        )


def image_endpoint(request: ImageRequest) -> str:
    """The text-to-image endpoint a request goes to: Z-Image Turbo has a separate LoRA endpoint, and FLUX.2 with
    reference images is its LoRA edit endpoint."""
    if request.model == FLUX2_LORA:
        return FLUX2_LORA_EDIT if request.references else FLUX2_LORA
    if request.references:
        raise BadRequest(f"fal: {request.model} takes no reference images (only {FLUX2_LORA} does)", provider="fal")
    if request.model in (Z_IMAGE_TURBO, Z_IMAGE_TURBO_LORA):
        return Z_IMAGE_TURBO_LORA if request.loras else Z_IMAGE_TURBO
    raise BadRequest(
        f"fal: model {request.model!r} is not a text-to-image endpoint (have: {FLUX2_LORA}, {Z_IMAGE_TURBO})", provider="fal"
    )


def text_to_image(request: ImageRequest, image_urls: list[str] | None = None) -> Arguments:
    """FLUX.2 [dev] with LoRAs, or Z-Image Turbo (8 steps at most), at exactly the requested size; a request with
    reference images goes to FLUX.2's LoRA edit endpoint with `image_urls`, their uploads in the request's order."""
    endpoint = image_endpoint(request)
    _check_image_size(endpoint, request.width, request.height)
    steps = request.steps if endpoint == FLUX2_LORA else min(request.steps, Z_IMAGE_MAX_STEPS)
    arguments: Arguments = {
        "prompt": request.prompt,
        "image_size": {"width": request.width, "height": request.height},
        "num_inference_steps": steps,
        "seed": request.seed,
        "num_images": 1,
        "output_format": "png",
    }
    if request.loras:
        arguments["loras"] = _loras(request.loras)
    if endpoint == FLUX2_LORA_EDIT:
        if len(image_urls or []) != len(request.references):
            raise BadRequest(f"fal: {endpoint}: {len(request.references)} reference images but "
                             f"{len(image_urls or [])} image_urls", provider="fal")
        arguments["image_urls"] = list(image_urls or [])
    return validate(endpoint, arguments)


def _transformer(lora: LoraRef) -> str:
    """Which WAN 2.2 expert loads the adapter: the registry's noise label, else both (fal's default is "high" only)."""
    if lora.transformer is None:
        logger.info("fal: %s: LoRA %s has no noise label (high/low); it goes to both experts", WAN_FLF, lora.path)
    return lora.transformer or "both"


def _aspect_ratio(width: int, height: int) -> str:
    return "9:16" if height > width else "16:9" if width > height else "1:1"


def check_frames(num_frames: int) -> None:
    """Refuse frame counts WAN would not produce exactly (it makes 4k+1 frames)."""
    low, high = WAN_FRAMES
    if not low <= num_frames <= high or (num_frames - 1) % 4:
        raise BadRequest(f"fal: {WAN_FLF}: num_frames: {num_frames} must be 4k+1 between {low} and {high}", provider="fal")


def first_last_video(request: VideoRequest, first_url: str, last_url: str) -> Arguments:
    """WAN 2.2 A14B from `first` to `last` in exactly `num_frames` frames: no frame interpolation."""
    check_frames(request.num_frames)
    arguments: Arguments = {
        "image_url": first_url,
        "end_image_url": last_url,
        "prompt": request.prompt,
        "num_frames": request.num_frames,
        "frames_per_second": request.fps,
        "resolution": "720p",
        "aspect_ratio": _aspect_ratio(request.width, request.height),
        "num_interpolated_frames": 0,
        "seed": request.seed,
    }
    if request.negative_prompt:
        arguments["negative_prompt"] = request.negative_prompt
    if request.steps is not None:  # project.json's wan.steps (its cfg and shift are not sent)
        arguments["num_inference_steps"] = request.steps
    if request.loras:
        arguments["loras"] = [
            {"path": lora.url or lora.path, "scale": lora.scale, "transformer": _transformer(lora)} for lora in request.loras
        ]
    return validate(WAN_FLF, arguments)


def upscale_factor(source: tuple[int, int], target: tuple[int, int]) -> float:
    """The smallest factor (to 0.01, within fal's 1..10) whose output covers the target size."""
    low, high = UPSCALE_FACTORS
    needed = max(target[0] / source[0], target[1] / source[1])
    return min(high, max(low, math.ceil(needed * 100) / 100))


def upscaled_size(source: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """The size SeedVR2 makes (and fal bills, per output megapixel): the source times the factor `upscale` sends."""
    factor = upscale_factor(source, target)
    return round(source[0] * factor), round(source[1] * factor)


def upscale(request: UpscaleRequest, image_url: str, source: tuple[int, int]) -> Arguments:
    """SeedVR2 by a factor that covers the requested size; the provider resamples to it exactly."""
    return validate(SEEDVR_UPSCALE, {
        "image_url": image_url,
        "upscale_mode": "factor",
        "upscale_factor": upscale_factor(source, (request.width, request.height)),
        "seed": request.seed,
        "output_format": "png",
    })


def multiple_angles(request: EditRequest, image_urls: list[str]) -> Arguments:
    """Qwen Image Edit 2511 turning the camera around the subject of the first image."""
    arguments: Arguments = {"image_urls": image_urls[:1], "seed": request.seed, "num_images": 1}
    angles = {"horizontal_angle": request.horizontal_angle, "vertical_angle": request.vertical_angle, "zoom": request.zoom}
    arguments.update({name: value for name, value in angles.items() if value is not None})
    return validate(QWEN_ANGLES, arguments)


def _resolution(width: int | None, height: int | None) -> str:
    longest = max(width or 0, height or 0)
    return "1K" if longest <= 1024 else "2K" if longest <= 2048 else "4K"


def identity_edit(request: EditRequest, image_urls: list[str]) -> Arguments:
    """Nano Banana Pro editing the image by instruction, with the references after it, at the request's seed."""
    return validate(NANO_BANANA_EDIT, {
        "prompt": request.prompt,
        "image_urls": image_urls,
        "resolution": _resolution(request.width, request.height),
        "output_format": "png",
        "num_images": 1,
        "seed": request.seed,
    })


EDITS: dict[str, Callable[[EditRequest, list[str]], Arguments]] = {
    NANO_BANANA_EDIT: identity_edit,
    QWEN_ANGLES: multiple_angles,
}


def edit_endpoint(request: EditRequest) -> Callable[[EditRequest, list[str]], Arguments]:
    """The mapping for the edit endpoint the request's model names."""
    mapping = EDITS.get(request.model)
    if mapping is None:
        raise BadRequest(f"fal: model {request.model!r} is not an edit endpoint (have: {', '.join(EDITS)})", provider="fal")
    return mapping


def image_zip_trainer(request: TrainRequest, zip_url: str) -> Arguments:
    """Z-Image and FLUX.2 training from a zip of captioned images; the trigger captions uncaptioned ones."""
    return validate(request.model, {"image_data_url": zip_url, "steps": request.steps, "default_caption": request.trigger})


def wan_trainer(request: TrainRequest, zip_url: str) -> Arguments:
    """WAN 2.2 LoRA training from a zip of captioned images."""
    return validate(WAN22_TRAINER, {"training_data_url": zip_url, "trigger_phrase": request.trigger, "steps": request.steps})


TRAINERS: dict[str, Callable[[TrainRequest, str], Arguments]] = {
    Z_IMAGE_TRAINER: image_zip_trainer,
    FLUX2_TRAINER: image_zip_trainer,
    WAN22_TRAINER: wan_trainer,
}


def trainer(request: TrainRequest) -> Callable[[TrainRequest, str], Arguments]:
    """The mapping for the trainer the request's model names."""
    mapping = TRAINERS.get(request.model)
    if mapping is None:
        raise BadRequest(f"fal: model {request.model!r} is not a trainer (have: {', '.join(TRAINERS)})", provider="fal")
    return mapping


def _unusable(endpoint: str, what: str) -> UnusableOutput:
    return UnusableOutput(f"fal: {endpoint}: result has {what}", provider="fal")


def _file(endpoint: str, value: Any) -> Output:
    if not isinstance(value, dict) or not isinstance(value.get("url"), str) or not value["url"]:
        raise _unusable(endpoint, "a file without a url")
    width, height = value.get("width"), value.get("height")
    sized = isinstance(width, int) and isinstance(height, int)
    return Output(value["url"], width if sized else None, height if sized else None)


def images(endpoint: str, result: dict[str, Any]) -> list[Output]:
    """`images[{url, width, height}]`: text-to-image and edits, but those `has_nsfw_concepts` flags (fal blacked them
    out). When every image is flagged the content was refused: ContentRejected, billed (fal completed the request)."""
    files = result.get("images")
    if not isinstance(files, list) or not files:
        raise _unusable(endpoint, "no images")
    flags = result.get("has_nsfw_concepts")
    flagged = {index for index, flag in enumerate(flags) if flag is True} if isinstance(flags, list) else set()
    kept = [_file(endpoint, item) for index, item in enumerate(files) if index not in flagged]
    if not kept:
        raise ContentRejected(f"fal: {endpoint}: content policy: the safety checker flagged the output "
                              "(has_nsfw_concepts); fal returned it blacked out", provider="fal", billed=True)
    return kept


def image(endpoint: str, result: dict[str, Any]) -> list[Output]:
    """`image{url, width, height}`: SeedVR2 upscales."""
    if "image" not in result:
        raise _unusable(endpoint, "no image")
    return [_file(endpoint, result["image"])]


def video(endpoint: str, result: dict[str, Any]) -> list[Output]:
    """`video{url}`: WAN image-to-video."""
    if "video" not in result:
        raise _unusable(endpoint, "no video")
    return [_file(endpoint, result["video"])]


def weights(endpoint: str, result: dict[str, Any]) -> list[str]:
    """The URLs of the trainer's LoRA weights, taken by their result keys in `WEIGHT_FILES` order (WAN 2.2: the
    high-noise expert's, then the low-noise one's)."""
    keys = WEIGHT_FILES[endpoint]
    missing = [key for key in keys if result.get(key) is None]
    if missing:
        raise _unusable(endpoint, f"no LoRA weights ({', '.join(missing)} missing)")
    return [_file(endpoint, result[key]).url for key in keys]
