"""Gemini's generateContent wire both ways: the request config checked and built, images, refusals and JSON back.

Checked against the docs (addresses as the search tool gave them):
- https://ai.google.dev/api/rest/v1beta/GenerationConfig — `POST /v1beta/{model=models/*}:generateContent`
  with `contents[]` and `generationConfig` (`responseModalities`, `imageConfig`, `responseMimeType`,
  `responseSchema`, `temperature`, `seed`); https://ai.google.dev/api?hl=ja — the key goes in
  `x-goog-api-key`. `seed` is an int32 (github.com/googleapis/go-genai types.go: `Seed *int32`), so reelflow's
  seeds, which run to 2**32 - 1, are folded into it (`wire_seed`). `temperature` is 0 to 2 (a client's reading,
  https://docs.camel-ai.org/reference/camel.configs.gemini_config; Google's own page was not found). It is sent
  only to models that still take it (`GeminiModel.sampling`): temperature, top_p and top_k are deprecated and
  ignored from gemini-3.5-flash-lite on (https://github.com/anomalyco/opencode/pull/38924 quoting
  https://ai.google.dev/gemini-api/docs/latest-model).
- https://ai.google.dev/gemini-api/docs/nanobanana — the image models answer with image parts in
  `candidates[].content.parts[].inlineData` (base64 `data`, `mimeType`).
- Model ids, aspect ratios, size tiers and modalities: the table in reelflow.schemas.gemini_models (google-genai
  3.4.0 `types.ImageConfig`, `types.Modality`, and Google's deprecations page).
- https://ai.google.dev/api/python/google/ai/generativelanguage/GenerateContentResponse/PromptFeedback and
  .../GenerateContentResponse — a set `promptFeedback.blockReason` means the prompt was blocked and no
  candidates come back.
- google-genai 3.4.0 `types.FinishReason` (and
  https://googleapis.github.io/js-genai/release_docs/enums/types.FinishReason.html): SAFETY, PROHIBITED_CONTENT,
  BLOCKLIST, SPII, RECITATION and IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT, IMAGE_RECITATION say the content was
  refused; NO_IMAGE ("expected to generate an image, but didn't"), IMAGE_OTHER, OTHER, MAX_TOKENS and
  MALFORMED_RESPONSE do not: they are a billed answer with nothing usable in it. ESCALATION ("Request was filtered
  by an escalation rule") is a refusal too. PUP_LIMITED_DISABLED ("token generation stopped because the user
  account is limited or disabled due to Prohibited Use Policy (PUP) violations") says nothing about this request:
  the account is stopped, so it is AccountRestricted, never retried — google-genai 3.4.0 `types.FinishReason`
  docstrings, and https://googleapis.github.io/kotlin-genai/google-genai-kotlin/com.google.genai.kotlin.types/-finish-reason/-companion/-e-s-c-a-l-a-t-i-o-n.html
  and .../-p-u-p_-l-i-m-i-t-e-d_-d-i-s-a-b-l-e-d.html.
- https://firebase.google.com/docs/vertex-ai/structured-output — `responseMimeType: application/json` with a
  `responseSchema` (an OpenAPI subset) constrains the text part to JSON of that schema.

Every request is built through `ImageCall` or `JudgeCall`: each field is checked against the documented values
before anything is sent, a violation is a one-line BadRequest naming the wire field, and a field the models do
not declare cannot be sent (`extra="forbid"`, here and in google-genai's own types).
Safety is never an exception in google-genai: a 200 response with no usable output is read here.
"""

from __future__ import annotations

import io
import math
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from google.genai import types
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from reelflow.providers.gemini.errors import NAME, one_line
from reelflow.schemas.errors import AccountRestricted, BadRequest, ContentRejected, UnusableOutput
from reelflow.schemas.gemini_models import (
    ASPECT_RATIOS,
    AspectRatio,
    ImageSize,
    Kind,
    Modality,
    gemini_model,
    model_problem,
)

IMAGE_SIZES = (("1K", 1024 * 1024), ("2K", 2048 * 2048), ("4K", 4096 * 4096))  # pixels each tier holds
REFUSING = frozenset({
    types.FinishReason.SAFETY, types.FinishReason.PROHIBITED_CONTENT, types.FinishReason.BLOCKLIST,
    types.FinishReason.SPII, types.FinishReason.RECITATION, types.FinishReason.IMAGE_SAFETY,
    types.FinishReason.IMAGE_PROHIBITED_CONTENT, types.FinishReason.IMAGE_RECITATION, types.FinishReason.ESCALATION,
})
ACCOUNT_STOPPED = frozenset({types.FinishReason.PUP_LIMITED_DISABLED})
INT32 = 2**31
Seed = Annotated[int, Field(ge=-INT32, le=INT32 - 1)]  # an int32: googleapis/go-genai types.go `GenerationConfig.Seed *int32`
Schema = TypeVar("Schema", bound=BaseModel)
Call = TypeVar("Call", bound="_Call")


class _Call(BaseModel):
    """One generateContent request's model and config: declared fields only, each checked before sending."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    KIND: ClassVar[Kind]
    WIRE: ClassVar[dict[str, str]] = {"model": "model", "seed": "generation_config.seed"}

    model: str  # path `models/{model}`; known and not shut down (schemas/gemini_models.py)

    @field_validator("model")
    @classmethod
    def _usable(cls, value: str) -> str:
        problem = model_problem(value, cls.KIND)
        if problem is not None:
            raise ValueError(problem)
        return value


class ImageCall(_Call):
    """An image request: `generationConfig.{responseModalities, imageConfig.{aspectRatio, imageSize}, seed}`."""

    KIND = "image"
    WIRE = _Call.WIRE | {
        "response_modalities": "generation_config.response_modalities",
        "aspect_ratio": "generation_config.image_config.aspect_ratio",
        "image_size": "generation_config.image_config.image_size",
    }

    response_modalities: tuple[Modality, ...] = ("IMAGE",)  # types.Modality; an image call asks for IMAGE
    aspect_ratio: AspectRatio  # types.ImageConfig.aspect_ratio's documented list
    image_size: ImageSize | None = None  # types.ImageConfig.image_size; only for models with size tiers
    seed: Seed = 0

    @field_validator("response_modalities")
    @classmethod
    def _asks_for_an_image(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "IMAGE" not in value:
            raise ValueError(f"an image call must ask for IMAGE; got {', '.join(value) or 'none'}")
        return value

    @field_validator("image_size")
    @classmethod
    def _tier_of_the_model(cls, value: str | None, info: ValidationInfo) -> str | None:
        row = gemini_model(str(info.data.get("model", "")))
        if value is not None and row is not None and value not in row.image_sizes:
            takes = f"takes {', '.join(row.image_sizes)}" if row.image_sizes else "takes no size tier"
            raise ValueError(f"{value!r}: {row.id} {takes}")
        return value

    def config(self) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            response_modalities=list(self.response_modalities),
            image_config=types.ImageConfig(aspect_ratio=self.aspect_ratio, image_size=self.image_size),
            seed=self.seed,
        )


class JudgeCall(_Call):
    """A structured-output request: `generationConfig.{responseMimeType, responseSchema, seed}`, and `temperature`
    only for a model that still takes sampling parameters."""

    KIND = "text"
    WIRE = _Call.WIRE | {
        "response_mime_type": "generation_config.response_mime_type",
        "response_schema": "generation_config.response_schema",
        "temperature": "generation_config.temperature",
    }

    response_mime_type: Literal["application/json"] = "application/json"
    response_schema: type[BaseModel]
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None  # None: not sent
    seed: Seed = 0

    @field_validator("temperature")
    @classmethod
    def _model_takes_sampling(cls, value: float | None, info: ValidationInfo) -> float | None:
        row = gemini_model(str(info.data.get("model", "")))
        if value is not None and row is not None and not row.sampling:
            raise ValueError(f"{row.id} ignores sampling parameters (deprecated from gemini-3.5-flash-lite on); send none")
        return value

    def config(self) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            response_mime_type=self.response_mime_type, response_schema=self.response_schema,
            temperature=self.temperature, seed=self.seed,
        )


def checked(call: type[Call], **fields: Any) -> Call:
    """`call(**fields)`, or a one-line BadRequest naming the wire field that breaks the documented values."""
    try:
        return call(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "request"
        message = str(first["msg"]).removeprefix("Value error, ")
        model = fields.get("model", "?")
        raise BadRequest(
            one_line(f"{NAME} {model}: refused before sending: {call.WIRE.get(field, field)}: {message}"), provider=NAME
        ) from None


def check_model(model: str, kind: Kind) -> None:
    """BadRequest (one line, nothing sent) for a shut-down, unknown or wrong-kind model id."""
    problem = model_problem(model, kind)
    if problem is not None:
        raise BadRequest(one_line(f"{NAME} {model}: refused before sending: model: {problem}"), provider=NAME)


def aspect_ratio(width: int, height: int) -> str:
    """The supported aspect ratio nearest to width:height (by log ratio)."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)


def image_size(model: str, width: int, height: int) -> str | None:
    """The smallest output tier holding width x height, for models that take one (Gemini 3 image); else None."""
    row = gemini_model(model)
    tiers = [(name, pixels) for name, pixels in IMAGE_SIZES if row is not None and name in row.image_sizes]
    if not tiers:
        return None
    return next((name for name, pixels in tiers if width * height <= pixels), tiers[-1][0])


def wire_seed(seed: int) -> int:
    """A reelflow seed (0 to 2**32 - 1, storyboards' own or derived) folded into the non-negative int32 range
    Gemini's `seed` takes (go-genai `GenerationConfig.Seed *int32`); the same seed always sends the same value."""
    return seed % INT32


def image_call(model: str, width: int, height: int, seed: int) -> ImageCall:
    """The checked request for an output of width x height: nearest aspect ratio, size tier where the model has one."""
    return checked(ImageCall, model=model, aspect_ratio=aspect_ratio(width, height),
                   image_size=image_size(model, width, height), seed=wire_seed(seed))


def judge_call(model: str, schema: type[BaseModel], seed: int) -> JudgeCall:
    """The checked structured-output request answering with JSON of `schema`: temperature 0 where the model still
    takes it, no sampling parameter where it ignores them. Repeatable verdicts come from reelflow's cache (a judge
    call is keyed by its content and made once), not from the request."""
    row = gemini_model(model)
    temperature = 0.0 if row is not None and row.sampling else None
    return checked(JudgeCall, model=model, response_schema=schema, temperature=temperature, seed=wire_seed(seed))


def image_part(image: Image.Image) -> types.Part:
    """An input image as an inline PNG part."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png")


def _candidate(response: types.GenerateContentResponse) -> types.Candidate | None:
    return response.candidates[0] if response.candidates else None


def _parts(response: types.GenerateContentResponse) -> list[types.Part]:
    """The parts of the first candidate."""
    candidate = _candidate(response)
    return list(candidate.content.parts or []) if candidate is not None and candidate.content is not None else []


def _text(response: types.GenerateContentResponse) -> str:
    """The first candidate's text, thoughts left out."""
    return "".join(part.text for part in _parts(response) if part.text and not part.thought)


def _finish(response: types.GenerateContentResponse) -> str:
    """How the answer ended, for messages: the finish reason, or that there was no candidate."""
    candidate = _candidate(response)
    if candidate is None:
        return "no candidates"
    reason = candidate.finish_reason
    return "no finish reason" if reason is None else str(getattr(reason, "value", reason))


def _rejection(response: types.GenerateContentResponse) -> str | None:
    """Why Gemini refused the content, if it did: any prompt block reason, or a refusing finish reason."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        said = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        return f"prompt blocked ({getattr(feedback.block_reason, 'value', feedback.block_reason)}){said}"
    candidate = _candidate(response)
    if candidate is not None and candidate.finish_reason in REFUSING:
        said = candidate.finish_message or _text(response)
        return f"output blocked ({_finish(response)}){f': {said}' if said else ''}"
    return None


def _refuse_if_blocked(response: types.GenerateContentResponse, model: str) -> None:
    """AccountRestricted when Gemini stopped because the account is limited; ContentRejected when it refused."""
    candidate = _candidate(response)
    if candidate is not None and candidate.finish_reason in ACCOUNT_STOPPED:
        raise AccountRestricted(one_line(
            f"{NAME} {model}: the Gemini account is limited or disabled for Prohibited Use Policy violations "
            f"({_finish(response)}); not retried: restore the account before running again"), provider=NAME)
    reason = _rejection(response)
    if reason is not None:
        raise ContentRejected(one_line(f"{NAME} {model}: {reason}"), provider=NAME)


def _unusable(model: str, what: str) -> UnusableOutput:
    return UnusableOutput(one_line(f"{NAME} {model}: unusable output: {what}"), provider=NAME)


def response_image(response: types.GenerateContentResponse, model: str) -> Image.Image:
    """The final image (drafts skipped), decoded: ContentRejected if refused, UnusableOutput (billed) if absent or unusable."""
    _refuse_if_blocked(response, model)
    blobs = [part.inline_data for part in _parts(response) if not part.thought and part.inline_data is not None
             and (part.inline_data.mime_type or "image/").startswith("image/")]
    if not blobs:
        candidate = _candidate(response)
        said = (candidate.finish_message if candidate is not None else None) or _text(response)
        raise _unusable(model, f"no image ({_finish(response)}){f': {said}' if said else ''}")
    data = blobs[-1].data
    if not data:
        raise _unusable(model, "the image part is empty")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise _unusable(model, f"image does not decode ({one_line(str(error), 120)})") from None
    if image.width < 1 or image.height < 1:
        raise _unusable(model, f"image is {image.width}x{image.height}")
    return image


def response_json(response: types.GenerateContentResponse, model: str, schema: type[Schema]) -> Schema:
    """The response's JSON text validated as `schema`; ContentRejected if refused, UnusableOutput (billed) if unusable."""
    _refuse_if_blocked(response, model)
    text = _text(response)
    if not text:
        raise _unusable(model, f"no text ({_finish(response)})")
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(item) for item in first["loc"]) or "response"
        raise _unusable(model, f"{where}: {one_line(first['msg'], 120)} ({_finish(response)})") from None
