"""The Gemini model table and the request config built from it: facts, the SDK's documented values, refusals by field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel

from reelflow.providers.gemini.errors import translate
from reelflow.providers.gemini.wire import (
    ACCOUNT_STOPPED,
    INT32,
    REFUSING,
    ImageCall,
    JudgeCall,
    checked,
    image_call,
    judge_call,
    wire_seed,
)
from reelflow.schemas import gemini_models
from reelflow.schemas.errors import BadRequest
from reelflow.schemas.gemini_models import (
    ASPECT_RATIOS,
    GEMINI_MODELS,
    IMAGE_SIZES,
    MODALITIES,
    gemini_model,
    model_problem,
    shut_down_problem,
    usable_ids,
)

from fakes.gemini import FINISH_REASONS, FakeGemini


class Score(BaseModel):
    score: float


BEFORE_FLASH_SHUTDOWN = date(2026, 11, 30)  # the last day gemini-2.5-flash answers (it shuts down 2026-12-01)


def on(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    """Make `day` the date the model table compares shutdown dates with."""
    monkeypatch.setattr(gemini_models, "today", lambda: day)


def test_the_announced_facts() -> None:
    expected = {
        "gemini-2.5-flash-image": ("image", "shut_down", date(2026, 10, 2), "gemini-3.1-flash-image"),
        "gemini-3-pro-image-preview": ("image", "shut_down", date(2026, 6, 25), "gemini-3-pro-image"),
        "gemini-3.1-flash-image": ("image", "ga", None, None),
        "gemini-3-pro-image": ("image", "ga", None, None),
        "gemini-2.5-flash": ("text", "retiring", date(2026, 12, 1), "gemini-3.5-flash-lite"),
        "gemini-3.5-flash-lite": ("text", "ga", None, None),
    }
    for model, fact in expected.items():
        row = gemini_model(model)
        assert row is not None and (row.kind, row.status, row.shutdown, row.replacement) == fact, model


def test_the_table_is_consistent(monkeypatch: pytest.MonkeyPatch) -> None:
    on(monkeypatch, BEFORE_FLASH_SHUTDOWN)
    for model, row in GEMINI_MODELS.items():
        assert model == row.id and model.startswith("gemini-")
        assert row.source.startswith(("https://", "google-genai ")), model
        if row.status in ("shut_down", "retiring"):
            assert row.shutdown is not None and row.replacement is not None, model
        if row.replacement is not None:
            replacement = gemini_model(row.replacement)
            assert replacement is not None and replacement.usable and replacement.kind == row.kind, model
        if row.kind == "text":
            assert row.image_sizes == (), model
    assert usable_ids("image") == ["gemini-3.1-flash-image", "gemini-3-pro-image"]
    assert usable_ids("text")[-1] == "gemini-2.5-flash", "retiring ids come last"


def test_a_retiring_id_is_unusable_from_its_shutdown_date(monkeypatch: pytest.MonkeyPatch) -> None:
    flash = gemini_model("gemini-2.5-flash")
    assert flash is not None and flash.status == "retiring"
    assert flash.usable_on(date(2026, 11, 30)) and not flash.usable_on(date(2026, 12, 1))
    on(monkeypatch, BEFORE_FLASH_SHUTDOWN)
    assert flash.usable and shut_down_problem("gemini-2.5-flash") is None and "gemini-2.5-flash" in usable_ids("text")
    on(monkeypatch, date(2026, 12, 1))
    assert not flash.usable and "gemini-2.5-flash" not in usable_ids("text")
    said = "gemini-2.5-flash was shut down on 2026-12-01; use gemini-3.5-flash-lite"
    assert shut_down_problem("gemini-2.5-flash") == model_problem("gemini-2.5-flash", "text") == said
    assert model_problem("gemini-3.5-flash-lite", "text") is None  # no shutdown announced: usable on any date


def test_the_documented_values_are_the_installed_sdks() -> None:
    """aspect_ratio and image_size as google-genai's ImageConfig documents them; modalities and finish reasons it knows."""
    described = types.ImageConfig.model_fields
    assert tuple(re.findall(r'"(\d+:\d+)"', described["aspect_ratio"].description or "")) == ASPECT_RATIOS
    assert tuple(dict.fromkeys(re.findall(r"`(\dK)`", described["image_size"].description or ""))) == IMAGE_SIZES
    assert set(MODALITIES) <= {modality.value for modality in types.Modality}
    assert {reason.value for reason in REFUSING | ACCOUNT_STOPPED} <= FINISH_REASONS
    assert {"ESCALATION", "PUP_LIMITED_DISABLED"} <= FINISH_REASONS  # the fake can script both


@pytest.mark.parametrize(("model", "problem"), [
    ("gemini-2.5-flash-image", "gemini-2.5-flash-image was shut down on 2026-10-02; use gemini-3.1-flash-image"),
    ("gemini-3-pro-image-preview", "gemini-3-pro-image-preview was shut down on 2026-06-25; use gemini-3-pro-image"),
    ("gemini-3-pro-image", None),
    ("gemini-2.5-flash", None),
    ("fal-ai/flux-2/lora", None),
])
def test_shut_down_problem(monkeypatch: pytest.MonkeyPatch, model: str, problem: str | None) -> None:
    on(monkeypatch, BEFORE_FLASH_SHUTDOWN)
    assert shut_down_problem(model) == problem


def test_model_problem_knows_kinds() -> None:
    assert model_problem("gemini-3.5-flash-lite", "text") is None
    assert model_problem("gemini-3.5-flash-lite", "image") == (
        "gemini-3.5-flash-lite makes text, not images (image models: gemini-3.1-flash-image, gemini-3-pro-image)")
    assert "is not a Gemini model reelflow knows" in (model_problem("gemini-3.1-flash-imag", "image") or "")


IMAGE = {"model": "gemini-3-pro-image", "aspect_ratio": "9:16"}


@pytest.mark.parametrize(("change", "field"), [
    ({"aspect_ratio": "4:5"}, "generation_config.image_config.aspect_ratio"),
    ({"image_size": "8K"}, "generation_config.image_config.image_size"),
    ({"image_size": "1k"}, "generation_config.image_config.image_size"),
    ({"response_modalities": ("TEXT",)}, "generation_config.response_modalities"),
    ({"response_modalities": ("IMAGE", "VIDEO")}, "generation_config.response_modalities"),
    ({"seed": 2**31}, "generation_config.seed"),
    ({"model": "gemini-2.5-flash-image"}, "model"),
    ({"person_generation": "ALLOW_ALL"}, "person_generation"),
])
def test_an_image_config_outside_the_documented_values_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        checked(ImageCall, **IMAGE | change)
    message = str(caught.value)
    assert message.startswith(f"gemini {change.get('model', IMAGE['model'])}: refused before sending: {field}: "), message
    assert "\n" not in message and not caught.value.billed


@pytest.mark.parametrize(("change", "field"), [
    ({"temperature": 2.5}, "generation_config.temperature"),
    ({"temperature": 0.0}, "generation_config.temperature"),  # gemini-3.5-flash-lite ignores sampling parameters
    ({"response_mime_type": "text/plain"}, "generation_config.response_mime_type"),
    ({"model": "gemini-3-pro-image"}, "model"),
])
def test_a_judge_config_outside_the_documented_values_names_the_field(change: dict[str, Any], field: str) -> None:
    fields = {"model": "gemini-3.5-flash-lite", "response_schema": Score} | change
    with pytest.raises(BadRequest, match=rf"refused before sending: {re.escape(field)}: "):
        checked(JudgeCall, **fields)


def test_the_built_config_sends_only_the_declared_fields() -> None:
    config = image_call("gemini-3.1-flash-image", 1344, 768, seed=7).config()
    assert config.model_dump(exclude_none=True) == {
        "response_modalities": ["IMAGE"], "image_config": {"aspect_ratio": "16:9", "image_size": "1K"}, "seed": 7}
    judged = judge_call("gemini-3.5-flash-lite", Score, seed=3).config()
    assert judged.model_dump(exclude_none=True) == {"response_mime_type": "application/json", "response_schema": Score, "seed": 3}
    sampled = judge_call("gemini-3.5-flash", Score, seed=3).config()  # a model that still takes temperature gets 0
    assert sampled.model_dump(exclude_none=True) == {
        "response_mime_type": "application/json", "response_schema": Score, "temperature": 0.0, "seed": 3}


@pytest.fixture
def client() -> Iterator[tuple[FakeGemini, genai.Client]]:
    with FakeGemini() as fake:
        options = types.HttpOptions(base_url=fake.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1))
        yield fake, genai.Client(vertexai=False, api_key=fake.api_key, http_options=options)


def _send(client: genai.Client, model: str, config: types.GenerateContentConfig) -> genai_errors.APIError:
    """Send past the provider's own checks, straight through google-genai, and return the error it raised."""
    with pytest.raises(genai_errors.APIError) as caught:
        client.models.generate_content(model=model, contents=["a lighthouse"], config=config)
    return caught.value


@pytest.mark.parametrize(("image_config", "field"), [
    (types.ImageConfig(aspect_ratio="4:5"), "generation_config.image_config.aspect_ratio"),
    (types.ImageConfig(aspect_ratio="9:16", image_size="8K"), "generation_config.image_config.image_size"),
])
def test_the_fake_answers_400_naming_the_field(client: tuple[FakeGemini, genai.Client], image_config, field: str) -> None:
    fake, sdk = client
    config = types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=image_config)
    error = _send(sdk, "gemini-3.1-flash-image", config)
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    translated = translate(error, "gemini-3.1-flash-image")
    assert isinstance(translated, BadRequest) and f"(400 INVALID_ARGUMENT): {field}: " in str(translated)
    assert [call.status for call in fake.calls] == [400]


def test_the_fake_refuses_a_field_outside_the_table() -> None:
    # google-genai itself refuses personGeneration for the Gemini API, so the body goes out raw.
    image_config = {"aspectRatio": "1:1", "personGeneration": "ALLOW_ALL"}
    body = {"contents": [{"role": "user", "parts": [{"text": "a lighthouse"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": image_config}}
    with FakeGemini() as fake:
        answer = httpx.post(f"{fake.url}/v1beta/models/gemini-3.1-flash-image:generateContent", json=body,
                            headers={"x-goog-api-key": fake.api_key})
    assert answer.status_code == 400 and answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "personGeneration"' in answer.json()["error"]["message"]


def test_seeds_are_folded_into_int32_and_the_fake_refuses_one_outside() -> None:
    assert [wire_seed(seed) for seed in (0, 7, INT32 - 1, INT32, 2**32 - 1)] == [0, 7, INT32 - 1, 0, INT32 - 1]
    body = {"contents": [{"parts": [{"text": "a lighthouse"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "seed": 2**32 - 1}}
    with FakeGemini() as fake:
        answer = httpx.post(f"{fake.url}/v1beta/models/gemini-3.1-flash-image:generateContent", json=body,
                            headers={"x-goog-api-key": fake.api_key})
    assert answer.status_code == 400
    assert answer.json()["error"]["details"][0]["fieldViolations"][0]["field"] == "generation_config.seed"


@pytest.mark.parametrize("model", ["gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-9-imagine"])
def test_the_fake_does_not_serve_shut_down_or_unknown_ids(client: tuple[FakeGemini, genai.Client], model: str) -> None:
    _, sdk = client
    error = _send(sdk, model, types.GenerateContentConfig(response_modalities=["IMAGE"]))
    assert (error.code, error.status) == (404, "NOT_FOUND") and f"models/{model} is not found" in (error.message or "")
    assert isinstance(translate(error, model), BadRequest)


def test_the_fake_refuses_images_from_a_text_model_and_json_from_an_image_model(client: tuple[FakeGemini, genai.Client]) -> None:
    _, sdk = client
    assert _send(sdk, "gemini-3.5-flash-lite", types.GenerateContentConfig(response_modalities=["IMAGE"])).code == 400
    assert _send(sdk, "gemini-3-pro-image", types.GenerateContentConfig(response_mime_type="application/json")).code == 400


def test_the_fake_checks_its_scripts() -> None:
    fake = FakeGemini()
    with pytest.raises(ValueError, match="FinishReason"):
        fake.finish_next("IMAGE_REFUSED")
    with pytest.raises(ValueError, match="BlockedReason"):
        fake.block_next("NSFW")
