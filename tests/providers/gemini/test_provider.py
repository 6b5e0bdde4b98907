"""The Gemini provider end to end through google-genai against FakeGemini: sizes, costs, ledger, refusals, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.providers.base import ImageEditor, ImageGenerator, VisionJudge
from reelflow.providers.gemini.errors import translate
from reelflow.providers.gemini.provider import ABANDONED, MISSING_KEY, GeminiProvider
from reelflow.providers.gemini.wire import aspect_ratio, image_size, response_image, response_json
from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    ContractError,
    MissingCredentials,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
    UnusableOutput,
    is_retryable,
)
from reelflow.schemas.requests import EditRequest, FrameNotes, ImageRequest, JudgeRequest, LoraRef, UpscaleRequest
from reelflow.state.db import Database
from reelflow.state.ledger import Charge, Ledger, Ticket

from fakes.gemini import FakeGemini

FLASH_IMAGE = "gemini-2.5-flash-image"
PRO_IMAGE = "gemini-3-pro-image-preview"
JUDGE = "gemini-2.5-flash"
ENDPOINT = f"gemini/{FLASH_IMAGE}"
FLASH_PRICE = 0.039
ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "REELFLOW_GEMINI_BASE_URL", "REELFLOW_GEMINI_TIMEOUT_S", "GOOGLE_GENAI_HTTP_CLIENT")


def gradient(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    """A small RGB test image: a vertical ramp tinted by `colour`."""
    ramp = Image.linear_gradient("L").resize(size)
    save_png(Image.merge("RGB", [ramp.point(lambda value, c=c: (value + c) // 2) for c in colour]), path)
    return path


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    with FakeGemini() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def provider(fake: FakeGemini) -> GeminiProvider:
    return GeminiProvider.from_env()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at(tmp_path / ".reelflow")


@pytest.fixture
def still(tmp_path: Path) -> Path:
    return gradient(tmp_path / "in" / "still.png", (96, 168), (200, 80, 40))


def upscale(still: Path, *, prompt: str | None = "Jinx at the moon pool") -> UpscaleRequest:
    return UpscaleRequest(model=FLASH_IMAGE, image=still, width=300, height=528, prompt=prompt)


def judge(still: Path, prompt: str) -> JudgeRequest:
    return JudgeRequest(model=JUDGE, image=still, prompt=prompt, characters=("JINX",), location="MOON_POOL")


def ticket(ledger: Ledger, key: str, *, run: str = "run-1", price: float = FLASH_PRICE) -> Ticket:
    """A ticket as the render task writes it: charged to `run`, at the request's price."""
    return ledger.ticket(key, "gemini", Charge(run=run, stage="upscale", episode=1, shot=3, price_usd=price))


def events(ledger: Ledger) -> list[tuple[str, str, float]]:
    """(status, endpoint, cost) of every request, in the order they were submitted."""
    return [(row.status, row.endpoint, row.cost_usd) for row in ledger.rows()]


def test_it_implements_the_image_and_judge_protocols(provider: GeminiProvider) -> None:
    assert isinstance(provider, ImageGenerator) and isinstance(provider, ImageEditor) and isinstance(provider, VisionJudge)
    assert provider.name == "gemini"
    assert provider.default_models == {"upscale": FLASH_IMAGE, "keyframes": FLASH_IMAGE, "candidates": PRO_IMAGE, "qc": JUDGE}


def test_upscale_is_one_call_resampled_to_the_exact_size_with_a_completed_ledger_row(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scratch" / "out.png"
    generation = provider.upscale_image(upscale(still), out, ticket=ticket(ledger, "k1"))

    assert generation.files == [out] and load_image(out).size == (300, 528)
    assert (generation.provider, generation.model, generation.cost_usd) == ("gemini", FLASH_IMAGE, 0.039)
    assert generation.request_id is not None and generation.request_id.startswith("fake-")
    assert fake.calls_per_model() == {FLASH_IMAGE: 1}
    call = fake.calls[0]
    assert (call.version, call.images, call.aspect_ratio, call.json_mode) == ("v1beta", 1, "9:16", False)
    assert "300x528" in call.prompt and "Jinx at the moon pool" in call.prompt
    assert events(ledger) == [("completed", ENDPOINT, FLASH_PRICE)]
    [row] = ledger.rows()
    assert (row.provider, row.cache_key, row.price_usd, row.run, row.detail) == ("gemini", "k1", FLASH_PRICE, "run-1", "")
    assert ledger.spent() == FLASH_PRICE and ledger.pending("k1") is None
    expected = resize_cover(load_image(still), (300, 528)).resize((30, 53)).tobytes()
    got = load_image(out).resize((30, 53)).tobytes()
    assert max(abs(a - b) for a, b in zip(expected, got)) < 24


def test_generate_asks_for_the_nearest_aspect_and_lands_on_the_exact_size(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path
) -> None:
    request = ImageRequest(model=FLASH_IMAGE, prompt="A lighthouse at dusk", negative_prompt="text, watermark",
                           width=200, height=112, seed=3)
    generation = provider.generate_image(request, tmp_path / "out.png")

    assert load_image(tmp_path / "out.png").size == (200, 112)
    assert generation.cost_usd == 0.039
    call = fake.calls[0]
    assert (call.images, call.aspect_ratio) == (0, "16:9")
    assert "A lighthouse at dusk" in call.prompt and "Avoid: text, watermark" in call.prompt


def test_edit_sends_the_image_and_its_references(provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path) -> None:
    references = (gradient(tmp_path / "ref1.png", (64, 64), (10, 200, 10)),
                  gradient(tmp_path / "ref2.png", (50, 90), (10, 10, 200)))
    request = EditRequest(model=PRO_IMAGE, image=still, prompt="Give her the red coat", references=references,
                          width=120, height=210, horizontal_angle=45)
    generation = provider.edit_image(request, tmp_path / "edit.png")

    assert load_image(tmp_path / "edit.png").size == (120, 210)
    assert generation.cost_usd == 0.134
    call = fake.calls[0]
    assert (call.model, call.images) == (PRO_IMAGE, 3)
    assert "Give her the red coat" in call.prompt and "45 degrees" in call.prompt and "references" in call.prompt


def test_edit_without_a_size_keeps_the_input_size(provider: GeminiProvider, still: Path, tmp_path: Path) -> None:
    provider.edit_image(EditRequest(model=FLASH_IMAGE, image=still, prompt="Night"), tmp_path / "edit.png")
    assert load_image(tmp_path / "edit.png").size == (96, 168)


def test_edit_with_three_references_is_refused_before_any_call(
    provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path
) -> None:
    request = EditRequest(model=FLASH_IMAGE, image=still, prompt="x", references=(still, still, still))
    with pytest.raises(BadRequest, match="at most 2 reference images"):
        provider.edit_image(request, tmp_path / "edit.png")
    assert fake.calls == []


def test_judge_passes_a_matching_image(provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path) -> None:
    verdict = provider.judge_image(judge(still, "Jinx dives into the moon pool"), ticket=ticket(ledger, "q1", price=0.001))

    assert (verdict.score, verdict.passed, verdict.cost_usd) == (0.9, True, 0.001)
    assert verdict.reasons == ["fake judge: matches the prompt"]
    call = fake.calls[0]
    assert (call.model, call.json_mode, call.images) == (JUDGE, True, 1)
    assert "JINX" in call.prompt and "MOON_POOL" in call.prompt
    assert events(ledger) == [("completed", f"gemini/{JUDGE}", 0.001)]


def test_judge_fails_a_mismatch_with_reasons(provider: GeminiProvider, still: Path) -> None:
    verdict = provider.judge_image(judge(still, "Jinx dives into the moon pool (mismatch)"))

    assert (verdict.score, verdict.passed) == (0.2, False)
    assert verdict.reasons == ["fake judge: the prompt says 'mismatch'", "characters missing: JINX", "location is not MOON_POOL"]


def test_a_blocked_prompt_is_content_rejected_and_recorded_billed(
    provider: GeminiProvider, ledger: Ledger, tmp_path: Path
) -> None:
    request = ImageRequest(model=FLASH_IMAGE, prompt="a forbidden ritual", width=64, height=64)
    with pytest.raises(ContentRejected, match=r"prompt blocked \(SAFETY\)") as caught:
        provider.generate_image(request, tmp_path / "out.png", ticket=ticket(ledger, "k2"))

    # Gemini answered 200 and the refusal was read from its answer: the call is billed at its price.
    assert not is_retryable(caught.value) and caught.value.billed and "\n" not in str(caught.value)
    assert events(ledger) == [("failed", ENDPOINT, FLASH_PRICE)]
    assert ledger.rows()[-1].detail.startswith("content_rejected: ")
    assert ledger.spent() == FLASH_PRICE and ledger.billed_failures("k2", "run-1") == 1
    assert not (tmp_path / "out.png").exists()


def test_an_image_safety_finish_is_content_rejected_and_billed(
    provider: GeminiProvider, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    with pytest.raises(ContentRejected, match="IMAGE_SAFETY") as caught:
        provider.upscale_image(upscale(still, prompt="gore on the deck"), tmp_path / "out.png", ticket=ticket(ledger, "k6"))
    assert caught.value.billed and not is_retryable(caught.value)
    assert events(ledger) == [("failed", ENDPOINT, FLASH_PRICE)]


def test_a_429_is_rate_limited_with_no_client_retry(
    provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path
) -> None:
    fake.rate_limit(1)
    with pytest.raises(RateLimited, match=r"\(429 RESOURCE_EXHAUSTED\), retry in 1s") as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png")
    assert is_retryable(caught.value)
    assert [call.status for call in fake.calls] == [429]

    provider.upscale_image(upscale(still), tmp_path / "out.png")
    assert [call.status for call in fake.calls] == [429, 200]


def test_a_503_is_a_retryable_server_error(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    fake.unavailable(1)
    with pytest.raises(ServerError, match="503 UNAVAILABLE") as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k3"))
    assert is_retryable(caught.value) and not caught.value.billed
    assert [call.status for call in fake.calls] == [503]
    assert events(ledger) == [("failed", ENDPOINT, 0.0)] and ledger.pending("k3") is None and ledger.spent() == 0.0
    assert "503 UNAVAILABLE" in ledger.rows()[0].detail


@pytest.mark.parametrize(("status", "said"), [(403, "(403)"), (400, "(400 API_KEY_INVALID)")])
def test_a_refused_key_is_missing_credentials(
    fake: FakeGemini, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int, said: str
) -> None:
    fake.bad_key_status = status
    monkeypatch.setenv("GEMINI_API_KEY", "not-the-key")
    with pytest.raises(MissingCredentials) as caught:
        GeminiProvider.from_env().upscale_image(upscale(still), tmp_path / "out.png")
    assert str(caught.value) == f"GEMINI_API_KEY was refused by Gemini {said}"


def test_a_missing_key_names_gemini_api_key(fake: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(MissingCredentials) as caught:
        GeminiProvider.from_env()
    assert str(caught.value) == MISSING_KEY and "GEMINI_API_KEY" in MISSING_KEY


def test_google_api_key_is_the_fallback(fake: FakeGemini, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", fake.api_key)
    GeminiProvider.from_env().upscale_image(upscale(still), tmp_path / "out.png")
    assert [call.status for call in fake.calls] == [200]


def test_an_undecodable_image_is_unusable_billed_and_never_completed(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    fake.corrupt_images(1)
    with pytest.raises(UnusableOutput, match="does not decode") as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k4"))
    assert caught.value.billed and not is_retryable(caught.value) and not isinstance(caught.value, ServerError)
    assert events(ledger) == [("failed", ENDPOINT, FLASH_PRICE)]
    assert ledger.rows()[0].detail.startswith("unusable_output: ") and ledger.billed_failures("k4", "run-1") == 1
    assert not (tmp_path / "out.png").exists()


def test_a_pending_request_from_a_dead_process_is_abandoned_and_made_again(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    ticket(Ledger(Database(ledger.db.path)), "k5", run="died").submitted(ENDPOINT, "died-mid-call")
    generation = provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k5", run="next"))

    abandoned, made = ledger.rows()
    # Gemini may have answered (and billed) the call the dead process never read: it counts at its price.
    assert (abandoned.status, abandoned.request_id, abandoned.cost_usd) == ("failed", "died-mid-call", FLASH_PRICE)
    assert abandoned.detail == ABANDONED
    assert (made.status, made.cost_usd) == ("completed", FLASH_PRICE) and made.request_id != "died-mid-call"
    assert ledger.pending("k5") is None and fake.calls_per_model() == {FLASH_IMAGE: 1}
    assert generation.cost_usd == FLASH_PRICE and ledger.spent() == 2 * FLASH_PRICE


@pytest.mark.parametrize("transport", ["httpx2", "httpx"])
def test_a_slow_answer_is_a_provider_timeout(
    fake: FakeGemini, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", transport)
    monkeypatch.setenv("REELFLOW_GEMINI_TIMEOUT_S", "0.2")
    fake.delay_s = 1.0
    with pytest.raises(ProviderTimeout, match="no response in time") as caught:
        GeminiProvider.from_env().upscale_image(upscale(still), tmp_path / "out.png")
    assert is_retryable(caught.value)


@pytest.mark.parametrize("transport", ["httpx2", "httpx"])
def test_a_refused_connection_is_a_transport_error(
    still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", transport)
    with FakeGemini() as gone:
        url = gone.url
    with pytest.raises(TransportError, match="connection failed") as caught:
        GeminiProvider("any-key", base_url=url, timeout_s=2).upscale_image(upscale(still), tmp_path / "out.png")
    assert is_retryable(caught.value)


def test_a_bad_timeout_setting_is_a_contract_error(fake: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFLOW_GEMINI_TIMEOUT_S", "soon")
    with pytest.raises(ContractError, match="REELFLOW_GEMINI_TIMEOUT_S"):
        GeminiProvider.from_env()


def test_a_400_names_the_field_it_violates() -> None:
    error = genai_errors.ClientError(400, {"error": {
        "code": 400, "status": "INVALID_ARGUMENT", "message": "Request contains an invalid argument.\n",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"field": "generation_config.image_config.image_size", "description": "bad"}]}],
    }})
    translated = translate(error, FLASH_IMAGE)
    assert isinstance(translated, BadRequest) and not is_retryable(translated)
    assert str(translated) == (f"gemini {FLASH_IMAGE}: request rejected (400 INVALID_ARGUMENT): "
                               "generation_config.image_config.image_size: Request contains an invalid argument.")


def test_unusable_answers_are_unusable_outputs_and_empty_ones_rejections() -> None:
    def answer(*parts: types.Part, finish: types.FinishReason = types.FinishReason.STOP) -> types.GenerateContentResponse:
        content = types.Content(role="model", parts=list(parts))
        return types.GenerateContentResponse(candidates=[types.Candidate(content=content, finish_reason=finish)])

    with pytest.raises(UnusableOutput, match="unusable output") as caught:
        response_json(answer(types.Part(text="not json")), JUDGE, types.ImageConfig)
    assert caught.value.billed and not is_retryable(caught.value)
    with pytest.raises(UnusableOutput, match="image part is empty"):
        response_image(answer(types.Part(inline_data=types.Blob(mime_type="image/png", data=b""))), FLASH_IMAGE)
    with pytest.raises(ContentRejected, match=r"returned no image \(STOP\): I cannot draw that"):
        response_image(answer(types.Part(text="I cannot draw that")), FLASH_IMAGE)
    with pytest.raises(ContentRejected, match="NO_IMAGE"):
        response_image(answer(finish=types.FinishReason.NO_IMAGE), FLASH_IMAGE)


def test_aspect_ratio_and_size_tier() -> None:
    assert [aspect_ratio(*size) for size in [(768, 1344), (1344, 768), (512, 512), (1000, 1500), (2520, 1080)]] == [
        "9:16", "16:9", "1:1", "2:3", "21:9"]
    assert image_size(FLASH_IMAGE, 768, 1344) is None
    assert [image_size(PRO_IMAGE, *size) for size in [(768, 1344), (1536, 2688), (3072, 5376), (9000, 9000)]] == [
        "1K", "2K", "4K", "4K"]


def test_cache_params_leave_out_what_gemini_ignores(provider: GeminiProvider) -> None:
    notes = FrameNotes(project="LEV", episode=1, shot=2, approach="standard_flf", role="first")
    request = ImageRequest(model=FLASH_IMAGE, prompt="p", width=64, height=64, steps=40, notes=notes,
                           loras=(LoraRef(path="w.safetensors"),))
    params = provider.cache_params(request)
    assert not {"notes", "steps", "loras"} & set(params)
    assert {"model": FLASH_IMAGE, "prompt": "p", "width": 64, "height": 64, "seed": 0}.items() <= params.items()
    assert provider.estimate(request) == 0.039
