"""Google Gemini through google-genai: text to image, instruction edits, upscales and the Gate 2 judge.

Environment: GEMINI_API_KEY (falling back to GOOGLE_API_KEY), REELFLOW_GEMINI_BASE_URL (another endpoint,
e.g. the test fake), REELFLOW_GEMINI_TIMEOUT_S (per request, default 120). The client makes exactly one
attempt per call (retries belong to the Prefect tasks) and speaks API version v1beta, where the
generateContent reference documents image output and structured output (sources in wire.py).

Model ids come from reelflow.schemas.gemini_models: the defaults are current ids, and a shut-down, unknown or
wrong-kind id (or a config value Gemini does not document) is a BadRequest before anything is sent or recorded.

Ledger: generateContent is synchronous, so there is no request id to poll after a crash, and no way to find a
request whose answer never came. A call cut off mid-way (a timeout after the request left, a lost connection, a
process that died) is `unknown`, counted at its price, and made again only within the project's billed_retries.
Where Gemini says what it billed (`usage_metadata`'s tokens, for the per-token judge) the row keeps it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from google import genai
from google.genai import types
from pydantic import BaseModel, Field

from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.providers.base import UNRECORDED, Ticket
from reelflow.providers.gemini.errors import NAME, one_line, translate
from reelflow.providers.gemini.wire import (
    check_model,
    image_call,
    image_part,
    judge_call,
    response_image,
    response_json,
)
from reelflow.providers.sizes import billed_size
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import BadRequest, MissingCredentials, ProviderError
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.refs import GEMINI_MAX_REFERENCES
from reelflow.schemas.requests import (
    EditRequest,
    Generation,
    ImageRequest,
    JudgeRequest,
    UpscaleRequest,
    Verdict,
    _Request,
)

DEFAULT_MODELS: dict[str, str] = {  # current ids (schemas/gemini_models.py, where their sources are)
    "upscale": "gemini-3.1-flash-image",
    "keyframes": "gemini-3.1-flash-image",
    "candidates": "gemini-3-pro-image",
    "qc": "gemini-3.5-flash-lite",
}
API_VERSION = "v1beta"
DEFAULT_TIMEOUT_S = 120.0
PASS_SCORE = 0.6
MAX_REFERENCES = 2
IGNORED_FIELDS = frozenset({"notes", "steps", "loras"})
MISSING_KEY = "GEMINI_API_KEY is not set: export your Google AI Studio key as GEMINI_API_KEY"
UPSCALE_BRIEF = (
    "Upscale this image to a sharp, high-resolution {width}x{height} version. Keep the composition, framing, "
    "identities, colours and lighting exactly; add fine detail only; do not add, remove or move anything."
)
REFERENCES_BRIEF = (
    "The images after this text are references: draw each character in the costume they show and the place as the "
    "set they show; take nothing else from them (not their pose, framing or background)."
)
JUDGE_BRIEF = (
    "You are the quality-control judge of an AI-rendered serial drama. Score from 0 to 1 how well the image "
    "shows what the shot asks for: 1 exactly, 0.6 acceptable, below 0.6 it must be redone. List the named "
    "characters you can identify, say whether the location matches, and give short reasons for anything "
    "that lowers the score."
)
Result = TypeVar("Result")


class Judgement(BaseModel):
    """The structured answer the judge model must give (sent as the response schema)."""

    score: float = Field(ge=0, le=1, description="How well the image matches the shot, 0 to 1.")
    matches_prompt: bool = Field(description="The image shows what the shot describes.")
    characters_present: list[str] = Field(description="Names of the listed characters visible in the image.")
    location_matches: bool = Field(description="The setting is the requested location.")
    reasons: list[str] = Field(description="Short reasons for anything that lowers the score.")


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise BadRequest(f"{NAME}: size {width}x{height} must be positive width and height", provider=NAME)


def _check_references(request: ImageRequest) -> None:
    if len(request.references) > GEMINI_MAX_REFERENCES:
        raise BadRequest(f"{NAME}: a keyframe takes at most {GEMINI_MAX_REFERENCES} reference images; got "
                         f"{len(request.references)}", provider=NAME)


def _edit_text(request: EditRequest) -> str:
    """The edit instruction, with the camera move and the role of reference images spelled out."""
    lines = [f"Edit the first image: {request.prompt}"]
    camera = []
    if request.horizontal_angle is not None:
        camera.append(f"view the subject from {request.horizontal_angle:g} degrees around it (0 is the front)")
    if request.vertical_angle is not None:
        camera.append(f"camera elevation {request.vertical_angle:g} degrees")
    if request.zoom is not None:
        camera.append(f"zoom level {request.zoom:g}")
    if camera:
        lines.append(f"Camera: {'; '.join(camera)}. Keep the subject's identity, costume and lighting.")
    if request.references:
        lines.append("The other images are references: keep the identity, face, costume and style they show.")
    return "\n".join(lines)


def _judge_text(request: JudgeRequest) -> str:
    characters = ", ".join(request.characters) or "none named"
    return f"{JUDGE_BRIEF}\n\nShot: {request.prompt}\nCharacters: {characters}\nLocation: {request.location or 'any'}"


def _verdict_reasons(request: JudgeRequest, judgement: Judgement) -> list[str]:
    """The judge's reasons, plus the missing characters and a wrong location it reported."""
    reasons = list(judgement.reasons)
    seen = {name.strip().lower() for name in judgement.characters_present}
    missing = [name for name in request.characters if name.lower() not in seen]
    if missing:
        reasons.append(f"characters missing: {', '.join(missing)}")
    if request.location and not judgement.location_matches:
        reasons.append(f"location is not {request.location}")
    return reasons


def _read(ticket: Ticket, endpoint: str, request_id: str, cost: float, step: Callable[[], Result]) -> Result:
    """`step()` on a 200 answer; if it raises (no usable image, unreadable JSON, a refusal) the request is recorded
    failed at `cost`: Gemini billed the answer. It is marked so, and never retried blindly."""
    try:
        return step()
    except Exception as error:
        if isinstance(error, ProviderError):
            error.billed = True
        detail = f"{error.kind}: {error}" if isinstance(error, ProviderError) else f"{type(error).__name__}: {error}"
        ticket.failed(endpoint, request_id, one_line(detail), cost_usd=cost)
        raise


def billed_usd(model: str, response: types.GenerateContentResponse) -> float | None:
    """What Gemini billed for a per-token model, from the answer's `usage_metadata` (prompt tokens in; candidate and
    thinking tokens out); None where the model is priced per image or the answer carries no usage."""
    usage = response.usage_metadata
    if usage is None or usage.prompt_token_count is None:
        return None
    out = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return load_prices().token_cost(model, usage.prompt_token_count, out)


class GeminiProvider:
    """Gemini's native image models, sized exactly by resampling, and the Gate 2 judge; LoRAs and steps are ignored."""

    name = NAME

    def __init__(self, api_key: str, *, base_url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if not api_key.strip():
            raise MissingCredentials(MISSING_KEY, provider=NAME)
        self.default_models = dict(DEFAULT_MODELS)
        options = types.HttpOptions(
            base_url=base_url,
            api_version=API_VERSION,
            timeout=max(1, round(timeout_s * 1000)),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(vertexai=False, api_key=api_key.strip(), http_options=options)

    @classmethod
    def from_env(cls) -> GeminiProvider:
        """A provider keyed by GEMINI_API_KEY (or GOOGLE_API_KEY); MissingCredentials when neither is set."""
        key = os.environ.get("GEMINI_API_KEY", "").strip() or os.environ.get("GOOGLE_API_KEY", "").strip()
        if not key:
            raise MissingCredentials(MISSING_KEY, provider=NAME)
        base_url = os.environ.get("REELFLOW_GEMINI_BASE_URL", "").strip() or None
        return cls(key, base_url=base_url, timeout_s=env_number("REELFLOW_GEMINI_TIMEOUT_S", DEFAULT_TIMEOUT_S, positive=True))

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """Every field Gemini's output depends on: not the frame notes, steps or LoRAs."""
        return {field: value for field, value in request.params().items() if field not in IGNORED_FIELDS}

    def estimate(self, request: _Request) -> float:
        """The price table's cost of one call: an image at the tier its output size asks for, or a judge call."""
        return load_prices().cost_of(request, size=billed_size(request))

    def check(self, request: _Request) -> None:
        """BadRequest, with no I/O, for what Gemini would refuse: the model id, and the config where the size is known."""
        if isinstance(request, JudgeRequest):
            judge_call(request.model, Judgement, request.seed)
            return
        check_model(request.model, "image")
        if isinstance(request, ImageRequest):
            _check_references(request)
        width, height = getattr(request, "width", None), getattr(request, "height", None)
        if isinstance(width, int) and isinstance(height, int):
            _check_size(width, height)
            image_call(request.model, width, height, seed=request.seed)

    def generate_image(self, request: ImageRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """Text to image, resampled to exactly request.width x request.height; reference images (costume, set) go
        after the text as inline parts, with a line saying what to take from them."""
        check_model(request.model, "image")
        _check_size(request.width, request.height)
        _check_references(request)
        text = request.prompt + (f"\n\nAvoid: {request.negative_prompt}" if request.negative_prompt else "")
        if request.references:
            text += f"\n\n{REFERENCES_BRIEF}"
        references = [image_part(load_image(path)) for path in request.references]
        return self._image(request, out, [text, *references], (request.width, request.height), ticket)

    def edit_image(self, request: EditRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """The image edited by instruction, with up to two reference images (Gemini takes three inputs)."""
        check_model(request.model, "image")
        if len(request.references) > MAX_REFERENCES:
            raise BadRequest(
                f"{NAME}: edit takes at most {MAX_REFERENCES} reference images beside the image; got {len(request.references)}",
                provider=NAME,
            )
        _check_size(1 if request.width is None else request.width, 1 if request.height is None else request.height)
        source = load_image(request.image)
        references = [image_part(load_image(path)) for path in request.references]
        contents: list[Any] = [_edit_text(request), image_part(source), *references]
        return self._image(request, out, contents, request.output_size(source.size), ticket)

    def upscale_image(self, request: UpscaleRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """The image redrawn at high resolution, then resampled to exactly request.width x request.height."""
        check_model(request.model, "image")
        _check_size(request.width, request.height)
        text = UPSCALE_BRIEF.format(width=request.width, height=request.height)
        if request.prompt:
            text += f"\nThe image shows: {request.prompt}"
        contents: list[Any] = [text, image_part(load_image(request.image))]
        return self._image(request, out, contents, (request.width, request.height), ticket)

    def judge_image(self, request: JudgeRequest, *, ticket: Ticket | None = None) -> Verdict:
        """Gate 2: a structured score of the image against the shot; it passes at 0.6."""
        call = judge_call(request.model, Judgement, request.seed)
        contents: list[Any] = [_judge_text(request), image_part(load_image(request.image))]
        judgement, _, _, cost = self._call(
            request.model, contents, call.config(), lambda response: response_json(response, request.model, Judgement), ticket,
        )
        return Verdict(
            score=judgement.score, passed=judgement.score >= PASS_SCORE,
            reasons=_verdict_reasons(request, judgement), cost_usd=cost,
        )

    def _image(
        self, request: _Request, out: Path, contents: list[Any], size: tuple[int, int], ticket: Ticket | None
    ) -> Generation:
        """One image call: the output verified, resampled to `size` and saved as PNG at `out`."""
        model = request.model
        call = image_call(model, *size, seed=request.seed)

        def write(response: types.GenerateContentResponse) -> None:
            save_png(resize_cover(response_image(response, model), size), out)

        _, request_id, seconds, cost = self._call(model, contents, call.config(), write, ticket, resolution=call.image_size)
        return Generation(provider=NAME, model=model, files=[out], cost_usd=cost, request_id=request_id, seconds=seconds)

    def _call(
        self,
        model: str,
        contents: list[Any],
        config: types.GenerateContentConfig,
        read: Callable[[types.GenerateContentResponse], Result],
        ticket: Ticket | None,
        *,
        resolution: str | None = None,
    ) -> tuple[Result, str, float, float]:
        """generateContent once, under the ledger: (what `read` made of it, request id, seconds, cost: what Gemini
        said it billed, else the price of the `resolution` tier the config asks for, where the model is priced by
        tier)."""
        endpoint = f"{NAME}/{model}"
        cost = load_prices().cost(model, resolution=resolution)
        ticket = ticket or UNRECORDED
        ticket.resume(endpoint, pollable=False)  # a call cut off mid-way cannot be asked about: it becomes unknown
        started = time.monotonic()
        with ticket.sending(endpoint) as sent:
            response = self._generate(model, contents, config)
            request_id = response.response_id or uuid.uuid4().hex
            sent.accepted(request_id)
        result = _read(ticket, endpoint, request_id, cost, lambda: read(response))
        billed = billed_usd(model, response)
        ticket.completed(endpoint, request_id, cost, billed_usd=billed)
        return result, request_id, time.monotonic() - started, cost if billed is None else billed

    def _generate(
        self, model: str, contents: list[Any], config: types.GenerateContentConfig
    ) -> types.GenerateContentResponse:
        """The SDK call, its exceptions translated to reelflow's taxonomy where they are known."""
        try:
            return self._client.models.generate_content(model=model, contents=contents, config=config)
        except Exception as error:
            translated = translate(error, model)
            if translated is None:
                raise
            raise translated from error
