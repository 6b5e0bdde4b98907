"""The Gemini provider end to end through google-genai against FakeGemini: sizes, costs, ledger, refusals, errors."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.providers.base import ImageEditor, ImageGenerator, VisionJudge
from reelflow.providers.gemini.errors import translate
from reelflow.providers.gemini.provider import DEFAULT_MODELS, MISSING_KEY, GeminiProvider
from reelflow.providers.gemini.wire import aspect_ratio, image_size, response_image, response_json
from reelflow.providers.local.provider import DEFAULT_MODELS as LOCAL_DEFAULTS
from reelflow.providers.local.provider import priced_as
from reelflow.schemas import gemini_models
from reelflow.schemas.errors import (
    AccountRestricted,
    BadRequest,
    ContentRejected,
    ContractError,
    MissingCredentials,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    TransportError,
    UnusableOutput,
    is_retryable,
)
from reelflow.schemas.gemini_models import gemini_model
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import EditRequest, FrameNotes, ImageRequest, JudgeRequest, LoraRef, UpscaleRequest
from reelflow.state.db import Database
from reelflow.state.ledger import Charge, Ledger, LedgerTicket

from fakes.gemini import FakeGemini

FLASH_IMAGE = "gemini-3.1-flash-image"
PRO_IMAGE = "gemini-3-pro-image"
JUDGE = "gemini-3.5-flash-lite"
ENDPOINT = f"gemini/{FLASH_IMAGE}"
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


def priced(model: str) -> float:
    """One call's price in prices.toml (the provider charges exactly that)."""
    return load_prices().cost(model)


def ticket(ledger: Ledger, key: str, *, run: str = "run-1", price: float | None = None) -> LedgerTicket:
    """A ticket as the render task writes it: charged to `run`, at the request's price."""
    price = priced(FLASH_IMAGE) if price is None else price
    return ledger.ticket(key, "gemini", Charge(run=run, stage="upscale", episode=1, shot=3, price_usd=price))


def events(ledger: Ledger) -> list[tuple[str, str, float]]:
    """(status, endpoint, cost) of every request, in the order they were submitted."""
    return [(row.status, row.endpoint, row.cost_usd) for row in ledger.rows()]


def test_it_implements_the_image_and_judge_protocols(provider: GeminiProvider) -> None:
    assert isinstance(provider, ImageGenerator) and isinstance(provider, ImageEditor) and isinstance(provider, VisionJudge)
    assert provider.name == "gemini"
    assert provider.default_models == {"upscale": FLASH_IMAGE, "keyframes": FLASH_IMAGE, "candidates": PRO_IMAGE, "qc": JUDGE}


@pytest.mark.parametrize("local", [False, True], ids=["gemini", "local-shadow"])
def test_default_gemini_ids_are_current_and_of_the_right_kind(local: bool) -> None:
    """The local provider keeps the names it draws as (its cache identity) and is priced as their current ids."""
    defaults = {stage: priced_as(model) for stage, model in LOCAL_DEFAULTS.items()} if local else DEFAULT_MODELS
    gemini = {stage: model for stage, model in defaults.items() if model.startswith("gemini-")}
    assert set(gemini) >= {"upscale", "candidates", "qc"}
    for stage, model in gemini.items():
        row = gemini_model(model)
        assert row is not None and row.status in ("ga", "preview", "retiring"), (stage, model)
        assert row.kind == ("text" if stage == "qc" else "image"), (stage, model)
        assert local or row.status != "retiring", (stage, model)


def test_upscale_is_one_call_resampled_to_the_exact_size_with_a_completed_ledger_row(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scratch" / "out.png"
    generation = provider.upscale_image(upscale(still), out, ticket=ticket(ledger, "k1"))

    assert generation.files == [out] and load_image(out).size == (300, 528)
    assert (generation.provider, generation.model, generation.cost_usd) == ("gemini", FLASH_IMAGE, priced(FLASH_IMAGE))
    assert generation.request_id is not None and generation.request_id.startswith("fake-")
    assert fake.calls_per_model() == {FLASH_IMAGE: 1}
    call = fake.calls[0]
    assert (call.version, call.images, call.aspect_ratio, call.image_size, call.json_mode) == ("v1beta", 1, "9:16", "1K", False)
    assert "300x528" in call.prompt and "Jinx at the moon pool" in call.prompt
    assert events(ledger) == [("completed", ENDPOINT, priced(FLASH_IMAGE))]
    [row] = ledger.rows()
    assert (row.provider, row.cache_key, row.price_usd, row.run, row.detail) == ("gemini", "k1", priced(FLASH_IMAGE), "run-1", "")
    assert ledger.spent() == priced(FLASH_IMAGE) and ledger.pending("k1") is None
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
    assert generation.cost_usd == priced(FLASH_IMAGE)
    call = fake.calls[0]
    assert (call.images, call.aspect_ratio) == (0, "16:9")
    assert "A lighthouse at dusk" in call.prompt and "Avoid: text, watermark" in call.prompt


def test_a_keyframe_sends_its_reference_images_inline_after_the_prompt(
    provider: GeminiProvider, fake: FakeGemini, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    references = (gradient(tmp_path / "costume.png", (64, 64), (200, 10, 10)),
                  gradient(tmp_path / "set.png", (90, 50), (10, 10, 200)))
    request = ImageRequest(model=FLASH_IMAGE, prompt="Ana at the helm", width=200, height=112, seed=3,
                           references=references)
    sent: list[list[object]] = []
    generate = provider._generate
    monkeypatch.setattr(provider, "_generate", lambda model, contents, config: sent.append(contents) or generate(
        model, contents, config))
    provider.generate_image(request, tmp_path / "out.png")

    assert load_image(tmp_path / "out.png").size == (200, 112)
    call = fake.calls[0]
    assert call.images == 2 and "Ana at the helm" in call.prompt and "references" in call.prompt
    [(text, *parts)] = sent
    assert isinstance(text, str) and text.startswith("Ana at the helm")
    assert [Image.open(io.BytesIO(part.inline_data.data)).getpixel((0, 0)) for part in parts] == [
        load_image(path).getpixel((0, 0)) for path in references], "each reference, in order, as an inline image"
    with pytest.raises(BadRequest, match="at most 3 reference images; got 4"):
        provider.check(request.model_copy(update={"references": references * 2}))
    assert len(fake.calls) == 1


@pytest.mark.parametrize(("size", "tier"), [((768, 1344), "1K"), ((1536, 2688), "2K"), ((3072, 5376), "4K")])
def test_the_size_tier_asked_for_is_the_tier_charged(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, tmp_path: Path, size: tuple[int, int], tier: str
) -> None:
    request = ImageRequest(model=PRO_IMAGE, prompt="A lighthouse", width=size[0], height=size[1])
    generation = provider.generate_image(request, tmp_path / "out.png", ticket=ticket(ledger, "k"))
    price = load_prices().cost(PRO_IMAGE, resolution=tier)
    assert (fake.calls[0].image_size, fake.calls[0].aspect_ratio) == (tier, "9:16")
    assert generation.cost_usd == price and events(ledger) == [("completed", f"gemini/{PRO_IMAGE}", price)]


def test_edit_sends_the_image_and_its_references(provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path) -> None:
    references = (gradient(tmp_path / "ref1.png", (64, 64), (10, 200, 10)),
                  gradient(tmp_path / "ref2.png", (50, 90), (10, 10, 200)))
    request = EditRequest(model=PRO_IMAGE, image=still, prompt="Give her the red coat", references=references,
                          width=120, height=210, horizontal_angle=45)
    generation = provider.edit_image(request, tmp_path / "edit.png")

    assert load_image(tmp_path / "edit.png").size == (120, 210)
    assert generation.cost_usd == priced(PRO_IMAGE)
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
    charged = ticket(ledger, "q1", price=priced(JUDGE))
    verdict = provider.judge_image(judge(still, "Jinx dives into the moon pool"), ticket=charged)

    # Gemini reports the tokens it billed: the row keeps what it billed beside the list estimate, and costs that.
    billed = fake.billed_usd
    assert billed != priced(JUDGE) and (verdict.score, verdict.passed, verdict.cost_usd) == (0.9, True, billed)
    assert [(row.price_usd, row.billed_usd) for row in ledger.rows()] == [(priced(JUDGE), billed)]
    assert verdict.reasons == ["fake judge: matches the prompt"]
    call = fake.calls[0]
    assert (call.model, call.json_mode, call.images) == (JUDGE, True, 1)
    assert call.temperature is None  # gemini-3.5-flash-lite ignores sampling parameters: none is sent
    assert "JINX" in call.prompt and "MOON_POOL" in call.prompt
    assert events(ledger) == [("completed", f"gemini/{JUDGE}", billed)]


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
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]
    assert ledger.rows()[-1].detail.startswith("content_rejected: ")
    assert ledger.spent() == priced(FLASH_IMAGE) and ledger.billed_failures("k2") == 1
    assert not (tmp_path / "out.png").exists()


def test_an_image_safety_finish_is_content_rejected_and_billed(
    provider: GeminiProvider, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    with pytest.raises(ContentRejected, match="IMAGE_SAFETY") as caught:
        provider.upscale_image(upscale(still, prompt="gore on the deck"), tmp_path / "out.png", ticket=ticket(ledger, "k6"))
    assert caught.value.billed and not is_retryable(caught.value)
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]


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
    # Gemini answered that it did not run it: nothing to record, nothing pending, nothing spent.
    assert events(ledger) == [] and ledger.pending("k3") is None and ledger.spent() == 0.0 and fake.billed_usd == 0.0


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
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]
    assert ledger.rows()[0].detail.startswith("unusable_output: ") and ledger.billed_failures("k4") == 1
    assert not (tmp_path / "out.png").exists()


def test_a_pending_request_from_a_dead_process_is_unknown_and_made_again(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    ticket(Ledger(Database(ledger.db.path)), "k5", run="died").submitted(ENDPOINT, "died-mid-call")
    generation = provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k5", run="next"))

    abandoned, made = ledger.rows()
    # Gemini may have answered (and billed) the call the dead process never read: it counts at its price.
    assert (abandoned.status, abandoned.request_id, abandoned.price_usd) == ("unknown", "died-mid-call", priced(FLASH_IMAGE))
    assert abandoned.detail.startswith("unknown: a synchronous request was cut off")
    assert (made.status, made.cost_usd) == ("completed", priced(FLASH_IMAGE)) and made.request_id != "died-mid-call"
    assert ledger.pending("k5") is None and fake.calls_per_model() == {FLASH_IMAGE: 1}
    assert generation.cost_usd == priced(FLASH_IMAGE) and ledger.spent() == 2 * priced(FLASH_IMAGE)


@pytest.mark.parametrize("transport", ["httpx2", "httpx"])
def test_a_slow_answer_is_an_unknown_outcome_counted_at_its_price(
    fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", transport)
    monkeypatch.setenv("REELFLOW_GEMINI_TIMEOUT_S", "0.2")
    fake.delay_s = 1.0
    with pytest.raises(OutcomeUnknown, match="no answer after the request was sent") as caught:
        GeminiProvider.from_env().upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k-slow"))
    # The request left: Gemini may have generated and billed it. Never a blind retry; counted at its price.
    assert caught.value.billed and not is_retryable(caught.value)
    (row,) = ledger.rows()
    assert (row.status, row.price_usd) == ("unknown", priced(FLASH_IMAGE)) and ledger.spent() == priced(FLASH_IMAGE)
    assert ledger.billed_failures("k-slow") == 1


@pytest.mark.parametrize("transport", ["httpx2", "httpx"])
def test_a_refused_connection_is_a_transport_error(
    still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", transport)
    with FakeGemini() as gone:
        url = gone.url
    with pytest.raises(TransportError, match="not sent") as caught:
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


def test_unusable_answers_are_billed_unusable_outputs() -> None:
    def answer(*parts: types.Part, finish: types.FinishReason = types.FinishReason.STOP) -> types.GenerateContentResponse:
        content = types.Content(role="model", parts=list(parts))
        return types.GenerateContentResponse(candidates=[types.Candidate(content=content, finish_reason=finish)])

    with pytest.raises(UnusableOutput, match="unusable output") as caught:
        response_json(answer(types.Part(text="not json")), JUDGE, types.ImageConfig)
    assert caught.value.billed and not is_retryable(caught.value)
    with pytest.raises(UnusableOutput, match="image part is empty"):
        response_image(answer(types.Part(inline_data=types.Blob(mime_type="image/png", data=b""))), FLASH_IMAGE)
    # An answer that only talks, or stops short of an image, was billed and may succeed when submitted again.
    with pytest.raises(UnusableOutput, match=r"no image \(STOP\): I cannot draw that"):
        response_image(answer(types.Part(text="I cannot draw that")), FLASH_IMAGE)
    with pytest.raises(UnusableOutput, match=r"no image \(NO_IMAGE\)"):
        response_image(answer(finish=types.FinishReason.NO_IMAGE), FLASH_IMAGE)
    with pytest.raises(UnusableOutput, match=r"no image \(no candidates\)"):
        response_image(types.GenerateContentResponse(candidates=[]), FLASH_IMAGE)
    with pytest.raises(UnusableOutput, match=r"no text \(no candidates\)"):
        response_json(types.GenerateContentResponse(), JUDGE, types.ImageConfig)


def test_aspect_ratio_and_size_tier() -> None:
    assert [aspect_ratio(*size) for size in [(768, 1344), (1344, 768), (512, 512), (1000, 1500), (2520, 1080)]] == [
        "9:16", "16:9", "1:1", "2:3", "21:9"]
    assert image_size("gemini-2.5-flash-image", 768, 1344) is None  # it never took a size tier
    assert image_size(JUDGE, 768, 1344) is None
    for model in (FLASH_IMAGE, PRO_IMAGE):
        assert [image_size(model, *size) for size in [(768, 1344), (1536, 2688), (3072, 5376), (9000, 9000)]] == [
            "1K", "2K", "4K", "4K"]


def test_cache_params_leave_out_what_gemini_ignores(provider: GeminiProvider) -> None:
    notes = FrameNotes(project="LEV", episode=1, shot=2, approach="standard_flf", role="first")
    request = ImageRequest(model=FLASH_IMAGE, prompt="p", width=64, height=64, steps=40, notes=notes,
                           loras=(LoraRef(path="w.safetensors"),))
    params = provider.cache_params(request)
    assert not {"notes", "steps", "loras"} & set(params)
    assert {"model": FLASH_IMAGE, "prompt": "p", "width": 64, "height": 64, "seed": 0}.items() <= params.items()


REFUSALS = ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "ESCALATION"]
NOT_REFUSALS = ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "MAX_TOKENS", "MALFORMED_RESPONSE"]


@pytest.mark.parametrize("reason", REFUSALS)
def test_each_refusing_finish_reason_is_content_rejected_and_billed(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path, reason: str
) -> None:
    fake.finish_next(types.FinishReason[reason].value)
    with pytest.raises(ContentRejected, match=rf"output blocked \({reason}\)") as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k"))
    assert caught.value.billed and not is_retryable(caught.value) and not isinstance(caught.value, UnusableOutput)
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]
    assert ledger.rows()[0].detail.startswith("content_rejected: ")


def test_a_limited_account_stops_without_retry_resubmit_or_fallback(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path
) -> None:
    fake.finish_next("PUP_LIMITED_DISABLED", times=2)
    said = "the Gemini account is limited or disabled for Prohibited Use Policy violations (PUP_LIMITED_DISABLED)"
    with pytest.raises(AccountRestricted, match=re.escape(said)) as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k"))
    error = caught.value
    assert not is_retryable(error) and not isinstance(error, (UnusableOutput, ContentRejected)) and "\n" not in str(error)
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]  # Gemini answered 200: counted at its price
    assert ledger.rows()[0].detail.startswith("account_restricted: ")
    with pytest.raises(AccountRestricted):
        provider.judge_image(judge(still, "Jinx"))
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("reason", [reason.value for reason in types.BlockedReason])
def test_any_prompt_block_reason_is_content_rejected(
    provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path, reason: str
) -> None:
    fake.block_next(reason)
    with pytest.raises(ContentRejected, match=rf"prompt blocked \({reason}\)"):
        provider.upscale_image(upscale(still), tmp_path / "out.png")


@pytest.mark.parametrize("reason", NOT_REFUSALS)
def test_each_non_refusing_stop_is_a_billed_unusable_output(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path, reason: str
) -> None:
    fake.finish_next(types.FinishReason[reason].value)
    with pytest.raises(UnusableOutput, match=rf"unusable output: no image \({reason}\)") as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k"))
    assert caught.value.billed and not is_retryable(caught.value) and not isinstance(caught.value, ContentRejected)
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]
    assert ledger.rows()[0].detail.startswith("unusable_output: ") and ledger.billed_failures("k") == 1
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(("script", "said"), [
    (lambda fake: fake.no_candidates(), "no image (no candidates)"),
    (lambda fake: fake.finish_next("STOP", text="Here is a description instead."), "no image (STOP): Here is a description"),
], ids=["no-candidate", "text-only"])
def test_a_missing_candidate_or_image_is_a_billed_unusable_output(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path, script, said: str
) -> None:
    script(fake)
    with pytest.raises(UnusableOutput) as caught:
        provider.upscale_image(upscale(still), tmp_path / "out.png", ticket=ticket(ledger, "k"))
    assert said in str(caught.value) and caught.value.billed
    assert events(ledger) == [("failed", ENDPOINT, priced(FLASH_IMAGE))]


def test_the_judge_reads_refusals_and_cut_off_answers_alike(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path
) -> None:
    fake.finish_next("SAFETY")
    with pytest.raises(ContentRejected, match=r"output blocked \(SAFETY\)"):
        provider.judge_image(judge(still, "Jinx"), ticket=ticket(ledger, "q1", price=priced(JUDGE)))
    fake.finish_next("MAX_TOKENS", text='{"score": 0.9, "matches_pro')
    with pytest.raises(UnusableOutput, match=r"\(MAX_TOKENS\)") as caught:
        provider.judge_image(judge(still, "Jinx"), ticket=ticket(ledger, "q2", price=priced(JUDGE)))
    assert caught.value.billed
    assert [row.detail.split(":")[0] for row in ledger.rows()] == ["content_rejected", "unusable_output"]


RETIRED = [("gemini-2.5-flash-image", "2026-10-02", "gemini-3.1-flash-image"),
           ("gemini-3-pro-image-preview", "2026-06-25", "gemini-3-pro-image")]


@pytest.mark.parametrize(("model", "day", "replacement"), RETIRED)
def test_a_shut_down_id_is_refused_before_any_call(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, tmp_path: Path,
    model: str, day: str, replacement: str,
) -> None:
    calls = [
        lambda: provider.upscale_image(upscale(still).model_copy(update={"model": model}), tmp_path / "o.png",
                                       ticket=ticket(ledger, "k")),
        lambda: provider.generate_image(ImageRequest(model=model, prompt="p", width=64, height=64), tmp_path / "o.png"),
        lambda: provider.edit_image(EditRequest(model=model, image=still, prompt="p"), tmp_path / "o.png"),
        lambda: provider.check(ImageRequest(model=model, prompt="p", width=64, height=64)),
    ]
    for call in calls:
        with pytest.raises(BadRequest) as caught:
            call()
        message = str(caught.value)
        assert message == f"gemini {model}: refused before sending: model: {model} was shut down on {day}; use {replacement}"
        assert not is_retryable(caught.value) and not caught.value.billed
    assert fake.calls == [] and ledger.rows() == []


@pytest.mark.parametrize(("model", "said"), [
    ("gemini-9-imagine", "'gemini-9-imagine' is not a Gemini model reelflow knows"),
    (JUDGE, f"{JUDGE} makes text, not images"),
])
def test_an_unknown_or_text_model_is_refused_for_an_image(
    provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path, model: str, said: str
) -> None:
    with pytest.raises(BadRequest, match="refused before sending: model: ") as caught:
        provider.upscale_image(upscale(still).model_copy(update={"model": model}), tmp_path / "o.png")
    assert said in str(caught.value) and fake.calls == []


@pytest.mark.parametrize(("model", "said"), [
    ("gemini-2.5-flash-image", "was shut down on 2026-10-02"),
    (FLASH_IMAGE, f"{FLASH_IMAGE} makes images, not text"),
])
def test_the_judge_refuses_an_unusable_model_before_any_call(
    provider: GeminiProvider, fake: FakeGemini, still: Path, model: str, said: str
) -> None:
    request = judge(still, "Jinx").model_copy(update={"model": model})
    for call in (lambda: provider.judge_image(request), lambda: provider.check(request)):
        with pytest.raises(BadRequest, match="refused before sending: model: ") as caught:
            call()
        assert said in str(caught.value)
    assert fake.calls == []


def test_the_retiring_judge_answers_until_its_shutdown_date(
    provider: GeminiProvider, fake: FakeGemini, ledger: Ledger, still: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = judge(still, "Jinx dives").model_copy(update={"model": "gemini-2.5-flash"})
    monkeypatch.setattr(gemini_models, "today", lambda: date(2026, 11, 30))
    assert provider.judge_image(request).passed and fake.calls_per_model() == {"gemini-2.5-flash": 1}
    assert fake.calls[0].temperature == 0.0  # gemini-2.5-flash still takes sampling parameters
    monkeypatch.setattr(gemini_models, "today", lambda: date(2026, 12, 1))
    for call in (lambda: provider.judge_image(request, ticket=ticket(ledger, "q", price=priced(JUDGE))),
                 lambda: provider.check(request)):
        with pytest.raises(BadRequest) as caught:
            call()
        assert str(caught.value) == ("gemini gemini-2.5-flash: refused before sending: model: "
                                     "gemini-2.5-flash was shut down on 2026-12-01; use gemini-3.5-flash-lite")
    assert len(fake.calls) == 1 and ledger.rows() == []


def test_check_passes_what_would_be_sent(provider: GeminiProvider, fake: FakeGemini, still: Path) -> None:
    provider.check(upscale(still))
    provider.check(ImageRequest(model=PRO_IMAGE, prompt="p", width=3000, height=5000))
    provider.check(EditRequest(model=FLASH_IMAGE, image=still, prompt="p"))
    provider.check(judge(still, "Jinx"))
    assert fake.calls == []


def test_a_seed_past_int32_is_folded_into_the_range_gemini_takes(
    provider: GeminiProvider, fake: FakeGemini, still: Path, tmp_path: Path
) -> None:
    big = 2**32 - 5  # shot seeds and derived seeds run to 2**32 - 1; Gemini's seed is an int32
    provider.generate_image(ImageRequest(model=FLASH_IMAGE, prompt="p", width=64, height=64, seed=big), tmp_path / "a.png")
    provider.judge_image(judge(still, "Jinx").model_copy(update={"seed": big}))
    assert [call.status for call in fake.calls] == [200, 200]
