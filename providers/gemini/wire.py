"""Gemini's generateContent wire both ways: image config and image parts out, images, refusals and JSON back.

Checked against the docs (addresses as the search tool gave them):
- https://ai.google.dev/api/rest/v1beta/GenerationConfig — `POST /v1beta/{model=models/*}:generateContent`
  with `contents[]` and `generationConfig`; https://ai.google.dev/api?hl=ja — the key goes in `x-goog-api-key`.
- https://ai.google.dev/gemini-api/docs/nanobanana — gemini-2.5-flash-image and gemini-3-pro-image-preview
  answer with image parts in `candidates[].content.parts[].inlineData` (base64 `data`, `mimeType`).
- https://firebase.google.com/docs/reference/js/ai.imageconfig and
  https://hexdocs.pm/gemini_ex/Gemini.Types.GenerationConfig.ImageConfig.html — `imageConfig.aspectRatio`
  and `imageConfig.imageSize` ("2K"/"4K", documented for Gemini 3 Pro Image); the SDK's ImageConfig lists
  the ratios below and sizes 1K/2K/4K.
- https://ai.google.dev/api/python/google/ai/generativelanguage/GenerateContentResponse/PromptFeedback and
  .../GenerateContentResponse — a set `promptFeedback.blockReason` means the prompt was blocked and no
  candidates come back; no candidates only when the prompt was at fault.
- https://googleapis.github.io/js-genai/release_docs/enums/types.FinishReason.html — finishReason values
  IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT, IMAGE_RECITATION, IMAGE_OTHER, NO_IMAGE beside SAFETY and co.
- https://firebase.google.com/docs/vertex-ai/structured-output — `responseMimeType: application/json` with a
  `responseSchema` (an OpenAPI subset) constrains the text part to JSON of that schema.
Safety is never an exception in google-genai: a 200 response with no usable image is read here.
"""

from __future__ import annotations

import io
import math
from typing import TypeVar

from google.genai import types
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ValidationError

from reelflow.providers.gemini.errors import NAME, one_line
from reelflow.schemas.errors import ContentRejected, UnusableOutput

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")
IMAGE_SIZES = (("1K", 1024 * 1024), ("2K", 2048 * 2048), ("4K", 4096 * 4096))
SIZED_MODELS = "gemini-3"
REJECTING = frozenset({
    types.FinishReason.SAFETY, types.FinishReason.PROHIBITED_CONTENT, types.FinishReason.BLOCKLIST,
    types.FinishReason.SPII, types.FinishReason.RECITATION, types.FinishReason.IMAGE_SAFETY,
    types.FinishReason.IMAGE_PROHIBITED_CONTENT, types.FinishReason.IMAGE_RECITATION,
    types.FinishReason.IMAGE_OTHER, types.FinishReason.NO_IMAGE,
})
Schema = TypeVar("Schema", bound=BaseModel)


def aspect_ratio(width: int, height: int) -> str:
    """The supported aspect ratio nearest to width:height (by log ratio)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)


def image_size(model: str, width: int, height: int) -> str | None:
    """The smallest output tier holding width x height, for models that take one (Gemini 3); else None."""
    if not model.startswith(SIZED_MODELS):
        return None
    return next((name for name, pixels in IMAGE_SIZES if width * height <= pixels), IMAGE_SIZES[-1][0])


def image_config(model: str, width: int, height: int) -> types.ImageConfig:
    """Aspect ratio (and size tier where the model has one) for an output of width x height."""
    return types.ImageConfig(aspect_ratio=aspect_ratio(width, height), image_size=image_size(model, width, height))


def image_part(image: Image.Image) -> types.Part:
    """An input image as an inline PNG part."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png")


def _parts(response: types.GenerateContentResponse) -> list[types.Part]:
    """The parts of the first candidate."""
    candidate = response.candidates[0] if response.candidates else None
    return list(candidate.content.parts or []) if candidate is not None and candidate.content is not None else []


def _text(response: types.GenerateContentResponse) -> str:
    """The first candidate's text, thoughts left out."""
    return "".join(part.text for part in _parts(response) if part.text and not part.thought)


def _rejection(response: types.GenerateContentResponse) -> str | None:
    """Why Gemini refused the content, if it did: a blocked prompt or a safety finish reason."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        said = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        return f"prompt blocked ({feedback.block_reason.value}){said}"
    candidate = response.candidates[0] if response.candidates else None
    if candidate is not None and candidate.finish_reason in REJECTING:
        said = candidate.finish_message or _text(response)
        return f"output blocked ({candidate.finish_reason.value}){f': {said}' if said else ''}"
    return None


def _reject(model: str, reason: str) -> ContentRejected:
    return ContentRejected(one_line(f"{NAME} {model}: {reason}"), provider=NAME)


def response_image(response: types.GenerateContentResponse, model: str) -> Image.Image:
    """The final image (drafts skipped), decoded: ContentRejected if refused or absent, UnusableOutput (billed) if unusable."""
    reason = _rejection(response)
    if reason is not None:
        raise _reject(model, reason)
    blobs = [part.inline_data for part in _parts(response) if not part.thought and part.inline_data is not None
             and (part.inline_data.mime_type or "image/").startswith("image/")]
    if not blobs:
        candidate = response.candidates[0] if response.candidates else None
        finish = candidate.finish_reason.value if candidate is not None and candidate.finish_reason else "no candidates"
        said = _text(response)
        raise _reject(model, f"returned no image ({finish}){f': {said}' if said else ''}")
    data = blobs[-1].data
    if not data:
        raise UnusableOutput(f"{NAME} {model}: unusable output: the image part is empty", provider=NAME)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise UnusableOutput(f"{NAME} {model}: unusable output: image does not decode ({one_line(str(error), 120)})",
                          provider=NAME) from None
    if image.width < 1 or image.height < 1:
        raise UnusableOutput(f"{NAME} {model}: unusable output: image is {image.width}x{image.height}", provider=NAME)
    return image


def response_json(response: types.GenerateContentResponse, model: str, schema: type[Schema]) -> Schema:
    """The response's JSON text validated as `schema`; ContentRejected if refused, UnusableOutput (billed) if unusable."""
    reason = _rejection(response)
    if reason is not None:
        raise _reject(model, reason)
    text = _text(response)
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(item) for item in first["loc"]) or "response"
        raise UnusableOutput(f"{NAME} {model}: unusable output: {where}: {one_line(first['msg'], 120)}", provider=NAME) from None
