"""The fal provider end to end against FakeFal, through fal-client: files, costs, ledger rows, errors, resume, deadline."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fal_client import SyncClient
from fal_client.client import FalClientHTTPError
from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.media.probe import probe_video
from reelflow.providers.base import FrameToVideo, ImageEditor, ImageGenerator, LoraTrainer
from reelflow.providers.fal import endpoints
from reelflow.providers.fal.provider import WIRE_VERSIONS, FalProvider
from reelflow.providers.fal.queue import download
from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    ContractError,
    MissingCredentials,
    OutcomeUnknown,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
    UnusableOutput,
    is_retryable,
)
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import (
    EditRequest,
    FrameNotes,
    ImageRequest,
    LoraRef,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
)
from reelflow.schemas.wire.fal import WireViolation
from reelflow.state.db import Database
from reelflow.state.ledger import Charge, Ledger, LedgerTicket
from reelflow.tasks.training import noise_labels

from fakes.fal import FakeFal

KEY = "sha-of-the-operation"
NOTES = FrameNotes(project="TST", episode=1, shot=2, approach="standard_flf", role="first")
# Prices as fal bills them, from the price table (schemas/prices.toml), in the units the provider must pass.
PRICES = load_prices()
FLUX_PRICE = PRICES.cost(endpoints.FLUX2_LORA, size=(512, 768))  # a keyframe(): one megapixel, rounded up
CLIP_PRICE = PRICES.cost(endpoints.WAN_FLF, frames=17, fps=16, resolution="720p")  # 17 frames billed at 16 fps


def keyframe(model: str = endpoints.FLUX2_LORA, prompt: str = "Ana grips the throttle", **changes: object) -> ImageRequest:
    """FLUX.2's smallest sizes (512..2048 per side, on its 16-pixel grid): fast, and what fal accepts."""
    fields: dict[str, object] = {"model": model, "prompt": prompt, "width": 512, "height": 768, "seed": 11}
    return ImageRequest.model_validate(fields | changes)


def ticket(ledger: Ledger, key: str = KEY, *, run: str = "run-1", price: float = FLUX_PRICE) -> LedgerTicket:
    """A ticket as the render task writes it: charged to `run`, at the request's price."""
    return ledger.ticket(key, "fal", Charge(run=run, stage="keyframes", episode=1, shot=2, price_usd=price))


def events(ledger: Ledger) -> list[tuple[str, str, float]]:
    """(status, endpoint, cost) of every request, in the order they were submitted."""
    return [(row.status, row.endpoint, row.cost_usd) for row in ledger.rows()]


def reopened(ledger: Ledger) -> Ledger:
    """The same state database through a connection of its own, as another process would open it."""
    return Ledger(Database(ledger.db.path))


def answer_with(fake: FakeFal, monkeypatch: pytest.MonkeyPatch, matches: Callable[[str, str], bool], status: int,
                body: object, times: int = 1) -> None:
    """The fake answers `status` and `body` to the next `times` requests `matches(method, path)` picks."""
    real, left = fake.answer, [times]

    def answer(method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, object]:
        if left[0] > 0 and matches(method, urlsplit(target).path):
            left[0] -= 1
            return status, body
        return real(method, target, headers, raw)

    monkeypatch.setattr(fake, "answer", answer)


def is_result(method: str, path: str) -> bool:
    """fal-client fetching a request's result (not its status, not a cancel)."""
    return method == "GET" and "/requests/" in path and not path.endswith(("/status", "/cancel"))


def test_the_provider_has_every_capability_and_its_defaults() -> None:
    provider = FalProvider("k")
    assert provider.name == "fal"
    for capability in (ImageGenerator, ImageEditor, FrameToVideo, LoraTrainer):
        assert isinstance(provider, capability)
    assert provider.default_models == {
        "keyframes": "fal-ai/flux-2/lora", "previz": "fal-ai/z-image/turbo", "upscale": "fal-ai/seedvr/upscale/image",
        "video": "fal-ai/wan/v2.2-a14b/image-to-video/lora", "candidates": "fal-ai/qwen-image-edit-2511-multiple-angles",
        "training": "fal-ai/flux-2-trainer",
    }


def test_generate_image_writes_the_requested_size_and_records_one_paid_request(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "first.png"
    generation = provider.generate_image(keyframe(), out, ticket=ticket(ledger))
    with Image.open(out) as image:
        assert (image.format, image.size) == ("PNG", (512, 768))
    assert (generation.provider, generation.model, generation.files) == ("fal", endpoints.FLUX2_LORA, [out])
    assert generation.cost_usd == FLUX_PRICE > 0 and generation.seconds > 0
    assert generation.request_id in fake.jobs and fake.submits == {endpoints.FLUX2_LORA: 1}
    assert fake.status_polls[generation.request_id] >= 3  # IN_QUEUE, IN_PROGRESS, COMPLETED
    [row] = ledger.rows()
    assert (row.status, row.endpoint, row.request_id, row.provider) == (
        "completed", endpoints.FLUX2_LORA, generation.request_id, "fal")
    assert (row.price_usd, row.cost_usd, row.run, row.shot, row.shadow) == (FLUX_PRICE, FLUX_PRICE, "run-1", 2, False)
    assert row.settled_at is not None and row.settled_at >= row.submitted_at
    assert ledger.spent() == FLUX_PRICE and ledger.spent("run-1") == FLUX_PRICE and ledger.pending(KEY) is None
    assert list(out.parent.iterdir()) == [out]


def test_z_image_with_loras_goes_to_its_lora_endpoint(provider: FalProvider, fake: FakeFal, tmp_path: Path) -> None:
    weights = tmp_path / "ana.safetensors"
    weights.write_bytes(b"ana weights")
    lora = LoraRef(path=str(weights), trigger="ana_v1", character="ANA")
    generation = provider.generate_image(keyframe(endpoints.Z_IMAGE_TURBO, loras=(lora,)), tmp_path / "previz.png")
    assert generation.model == endpoints.Z_IMAGE_TURBO_LORA
    assert generation.cost_usd == PRICES.cost(endpoints.Z_IMAGE_TURBO_LORA, size=(512, 768))  # the LoRA endpoint's rate
    body = fake.jobs[generation.request_id].body
    [sent] = body["loras"]
    assert body["num_inference_steps"] == 8 and sent["scale"] == 1.0
    assert fake.serves(sent["path"]) and fake.uploads == [sha256_file(weights)], "the local weights, uploaded"


def test_first_last_video_has_exactly_the_frames_asked(
    provider: FalProvider, fake: FakeFal, portrait: Path, ending: Path, tmp_path: Path
) -> None:
    for noise in ("high", "low"):
        (tmp_path / f"ana_{noise}.safetensors").write_bytes(f"ana {noise} weights".encode())
    loras = (LoraRef(path=str(tmp_path / "ana_high.safetensors"), character="ANA", transformer="high"),
             LoraRef(path=str(tmp_path / "ana_low.safetensors"), character="ANA", transformer="low"))
    request = VideoRequest(model=endpoints.WAN_FLF, first=portrait, last=ending, prompt="Ana turns", num_frames=17,
                           fps=16, width=64, height=112, loras=loras)
    out = tmp_path / "clip.mp4"
    generation = provider.first_last_video(request, out)
    info = probe_video(out)
    assert (info.frames, info.fps, info.width, info.height) == (17, 16.0, 720, 1280)
    assert generation.cost_usd == CLIP_PRICE > 0 and generation.model == endpoints.WAN_FLF
    body = fake.jobs[generation.request_id].body
    assert [lora["transformer"] for lora in body["loras"]] == ["high", "low"] and body["num_interpolated_frames"] == 0
    assert len(fake.uploads) == 4, "first and last frames, and both adapters' weights"


def test_upscale_resamples_to_exactly_the_requested_size(
    provider: FalProvider, fake: FakeFal, portrait: Path, tmp_path: Path
) -> None:
    request = UpscaleRequest(model=endpoints.SEEDVR_UPSCALE, image=portrait, width=100, height=150)
    generation = provider.upscale_image(request, tmp_path / "up.png")
    with Image.open(tmp_path / "up.png") as image:
        assert image.size == (100, 150)
    assert fake.jobs[generation.request_id].body["upscale_factor"] == 2.09
    # billed on SeedVR2's output, 48x80 x 2.09 = 100x167, not on the 100x150 it is resampled to
    assert generation.cost_usd == provider.estimate(request) == PRICES.cost(endpoints.SEEDVR_UPSCALE, size=(100, 167))


def test_nine_upscales_are_estimated_at_the_output_fal_bills(provider: FalProvider, fake: FakeFal, tmp_path: Path) -> None:
    """fal bills SeedVR2 $0.001 per output megapixel (1024 x 1024 pixels, rounded up); the output is the source times
    the factor sent, the smallest hundredth covering 1080x1920."""
    sources = {  # source size: (factor, output, megapixels billed); 1080x1920 itself would be 2 MP
        (512, 768): (2.5, (1280, 1920), 3),  # 2,457,600 px
        (576, 1024): (1.88, (1083, 1925), 2),  # 2,084,775 px
        (720, 720): (2.67, (1922, 1922), 4),  # 3,694,084 px
    }
    shots = []
    for number in range(9):
        size = list(sources)[number % 3]
        Image.new("RGB", size, (90, 60, 30)).save(tmp_path / f"shot{number}.png")
        shots.append(UpscaleRequest(model=endpoints.SEEDVR_UPSCALE, image=tmp_path / f"shot{number}.png", width=1080,
                                    height=1920, seed=number))
    assert [provider.estimate(shot) for shot in shots] == [0.003, 0.002, 0.004] * 3
    assert round(sum(provider.estimate(shot) for shot in shots), 6) == 0.027  # not 9 x 2 MP = 0.018
    generation = provider.upscale_image(shots[0], tmp_path / "up.png")
    factor, output, _ = sources[(512, 768)]
    assert fake.jobs[generation.request_id].body["upscale_factor"] == factor and generation.cost_usd == 0.003
    assert endpoints.upscaled_size((512, 768), (1080, 1920)) == output


def test_edits_by_instruction_and_by_angle(
    provider: FalProvider, fake: FakeFal, portrait: Path, ending: Path, tmp_path: Path
) -> None:
    identity = EditRequest(model=endpoints.NANO_BANANA_EDIT, image=portrait, prompt="same face, night", references=(ending,),
                           width=64)
    generation = provider.edit_image(identity, tmp_path / "identity.png")
    with Image.open(tmp_path / "identity.png") as image:
        assert image.size == (64, 107)
    assert generation.cost_usd == PRICES.cost(endpoints.NANO_BANANA_EDIT, resolution="1K")
    assert len(fake.jobs[generation.request_id].body["image_urls"]) == 2
    angle = EditRequest(model=endpoints.QWEN_ANGLES, image=portrait, prompt="profile", horizontal_angle=90)
    turned = provider.edit_image(angle, tmp_path / "angle.png")
    with Image.open(tmp_path / "angle.png") as image:
        assert image.size == (48, 80)
    # no image_size is sent to Qwen: fal bills the input image's size (the 48x80 portrait)
    assert turned.model == endpoints.QWEN_ANGLES and turned.cost_usd == PRICES.cost(endpoints.QWEN_ANGLES, size=(48, 80))
    assert len(fake.uploads) == 2  # the portrait went up once for both edits


def test_trainers_return_weights(provider: FalProvider, fake: FakeFal, dataset: Path, ledger: Ledger,
                                 tmp_path: Path) -> None:
    request = TrainRequest(model=endpoints.Z_IMAGE_TRAINER, images_zip=dataset, trigger="ana_v1", steps=2000)
    price = PRICES.cost(endpoints.Z_IMAGE_TRAINER, steps=2000)
    (tmp_path / "z").mkdir()
    trained = provider.train_lora(request, tmp_path / "z", ticket=ticket(ledger, price=price))
    assert trained.cost_usd == price > 0 and trained.trigger == "ana_v1" and trained.request_id in fake.jobs
    assert [url.rsplit("/", 1)[-1] for url in trained.weights] == ["lora.safetensors"]
    assert [path.name for path in trained.files] == ["0-lora.safetensors"]
    assert trained.files[0].read_bytes().startswith(b"fake weights diffusers_lora_file")  # downloaded, to be hashed
    (tmp_path / "wan").mkdir()
    wan = provider.train_lora(request.model_copy(update={"model": endpoints.WAN22_TRAINER}), tmp_path / "wan")
    assert len(wan.files) == 2 and all(path.parent == tmp_path / "wan" for path in wan.files)
    assert fake.jobs[wan.request_id].body["trigger_phrase"] == "ana_v1"
    assert events(ledger) == [("completed", endpoints.Z_IMAGE_TRAINER, price)]  # the call without a ticket wrote nothing
    assert ledger.rows()[0].request_id == trained.request_id


def test_wan_adapters_get_their_noise_from_the_result_keys_not_the_urls(
    provider: FalProvider, fake: FakeFal, dataset: Path, tmp_path: Path
) -> None:
    request = TrainRequest(model=endpoints.WAN22_TRAINER, images_zip=dataset, trigger="ana_v1", steps=1000)
    wan = provider.train_lora(request, tmp_path)
    assert not any(word in url.lower() for url in wan.weights for word in ("high", "low", "noise"))
    # what the registry records for each file (tasks/training.py), against the key fal gave the file under
    labelled = dict(zip(noise_labels("wan22", wan.weights), wan.files, strict=True))
    assert labelled["high"].read_bytes().startswith(b"fake weights high_noise_lora ")
    assert labelled["low"].read_bytes().startswith(b"fake weights diffusers_lora_file ")
    assert list(fake.jobs[wan.request_id].outcome[1]) == ["diffusers_lora_file", "high_noise_lora", "config_file"]


def test_an_image_the_safety_checker_flagged_is_content_rejected_and_billed_at_its_price(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    with pytest.raises(ContentRejected, match=r"^fal: fal-ai/flux-2/lora: content policy: the safety checker") as caught:
        provider.generate_image(keyframe(prompt="an nsfw scene"), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.billed and not is_retryable(caught.value) and not isinstance(caught.value, UnusableOutput)
    [job] = fake.jobs.values()
    assert job.outcome is not None and job.outcome[1]["has_nsfw_concepts"] == [True]  # a completed request
    assert events(ledger) == [("failed", endpoints.FLUX2_LORA, FLUX_PRICE)] and ledger.pending(KEY) is None
    assert not (tmp_path / "x.png").exists()
    provider.generate_image(keyframe(), tmp_path / "ok.png")  # unflagged: `has_nsfw_concepts: [false]`
    assert [job.outcome[1]["has_nsfw_concepts"] for job in fake.jobs.values() if job.outcome] == [[True], [False]]


def test_content_policy_is_rejected_and_the_request_settled_billed_at_its_price(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    flagged = r"fal: fal-ai/flux-2/lora: content policy: prompt: The content was flagged"
    with pytest.raises(ContentRejected, match=flagged) as caught:
        provider.generate_image(keyframe(prompt="a forbidden scene"), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.billed and not is_retryable(caught.value)  # a 422 for an accepted request: fal may bill it
    assert caught.value.request_id in fake.jobs
    assert events(ledger) == [("failed", endpoints.FLUX2_LORA, FLUX_PRICE)]
    [row] = ledger.rows()
    assert "content policy" in row.detail and row.request_id == caught.value.request_id
    assert ledger.pending(KEY) is None and ledger.spent() == FLUX_PRICE and ledger.billed_failures(KEY) == 1
    assert fake.total_submits() == 1 and not (tmp_path / "x.png").exists()


def test_rate_limits_and_server_errors_on_submit_are_retryable_and_unrecorded(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    fake.rate_limited = 1
    with pytest.raises(RateLimited, match=r"fal: fal-ai/flux-2/lora: rate limited \(429\)") as limited:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    fake.server_errors = 1
    with pytest.raises(ServerError, match=r"server error \(500\)") as failed:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert is_retryable(limited.value) and is_retryable(failed.value)
    assert not limited.value.billed and not failed.value.billed
    assert ledger.rows() == [] and ledger.spent() == 0.0 and fake.total_submits() == 0
    provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert fake.total_submits() == 1 and events(ledger) == [("completed", endpoints.FLUX2_LORA, FLUX_PRICE)]


def test_a_request_the_schema_refuses_is_stopped_before_any_submit_naming_field_value_and_range(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    too_wide = r"^fal-ai/flux-2/lora: image_size\.width: 8192: Input should be less than or equal to 2048$"
    with pytest.raises(WireViolation, match=too_wide) as caught:
        provider.generate_image(keyframe(width=8192), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.endpoint == endpoints.FLUX2_LORA
    assert [(problem["loc"], problem["input"]) for problem in caught.value.problems] == [(("image_size", "width"), 8192)]
    too_small = r"image_size\.width: 256: Input should be greater than or equal to 512"
    with pytest.raises(WireViolation, match=too_small):
        provider.generate_image(keyframe(width=256), tmp_path / "x.png", ticket=ticket(ledger))
    with pytest.raises(BadRequest, match="image_size: 100x768 must be positive multiples of 16") as refused:
        provider.generate_image(keyframe(width=100), tmp_path / "x.png", ticket=ticket(ledger, "other-key"))
    assert not refused.value.billed and not is_retryable(refused.value)
    # refused before any submit: fal never saw them, nothing is recorded, nothing is billed
    assert fake.total_submits() == 0 and fake.jobs == {} and ledger.rows() == [] and ledger.spent() == 0.0
    assert ledger.pending(KEY) is None and not (tmp_path / "x.png").exists()


def test_a_video_the_schema_refuses_is_never_submitted(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, portrait: Path, ending: Path, tmp_path: Path
) -> None:
    request = VideoRequest(model=endpoints.WAN_FLF, first=portrait, last=ending, prompt="Ana turns", num_frames=17,
                           fps=61, width=720, height=1280)
    with pytest.raises(WireViolation, match=r"frames_per_second: 61: Input should be less than or equal to 60$"):
        provider.first_last_video(request, tmp_path / "clip.mp4", ticket=ticket(ledger, price=CLIP_PRICE))
    with pytest.raises(BadRequest, match=r"num_frames: 200 must be 4k\+1 between 17 and 161"):
        provider.first_last_video(request.model_copy(update={"fps": 16, "num_frames": 200}), tmp_path / "clip.mp4",
                                  ticket=ticket(ledger, price=CLIP_PRICE))
    assert fake.total_submits() == 0 and ledger.rows() == [] and not (tmp_path / "clip.mp4").exists()


@pytest.mark.parametrize(("model", "changes", "field", "rule", "value"), [
    (endpoints.FLUX2_LORA, {"image_size": {"width": 8192, "height": 768}}, ["image_size", "width"],
     "Input should be less than or equal to 2048", 8192),
    (endpoints.FLUX2_LORA, {"guidance": 3.5}, ["guidance"], "Extra inputs are not permitted", 3.5),
    (endpoints.Z_IMAGE_TURBO, {"num_inference_steps": 20}, ["num_inference_steps"],
     "Input should be less than or equal to 8", 20),
])
def test_the_fake_answers_422_naming_the_field_for_a_body_that_breaks_the_schema(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path,
    model: str, changes: dict[str, object], field: list[str], rule: str, value: object,
) -> None:
    """fal-client straight at the fake, past reelflow's own validation: the fake enforces the same schema table."""
    body = endpoints.text_to_image(keyframe(model)) | changes
    handle = SyncClient(key=fake.key).submit(model, body)  # the provider fixture pointed fal-client at the fake
    with pytest.raises(FalClientHTTPError) as refused:
        handle.get()
    assert refused.value.status_code == 422
    [problem] = refused.value.response.json()["detail"]
    assert problem["loc"][0] == "body" and [part for part in problem["loc"] if part != "body"] == field
    assert (problem["msg"], problem["input"]) == (rule, value)

    # the same 422 reached through the provider (it resumes the request id recorded for its key): billed, named
    ticket(ledger).submitted(model, handle.request_id)
    with pytest.raises(BadRequest, match=rf"^fal: {model}: {'.'.join(field)}: {rule}$") as caught:
        provider.generate_image(keyframe(model), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.billed and not is_retryable(caught.value) and caught.value.request_id == handle.request_id
    [row] = ledger.rows()
    assert (row.status, row.request_id) == ("failed", handle.request_id) and ".".join(field) in row.detail
    assert fake.total_submits() == 1 and not (tmp_path / "x.png").exists()


def test_a_refused_key_is_missing_credentials(fake: FakeFal, monkeypatch: pytest.MonkeyPatch, portrait: Path,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("FAL_KEY", "wrong-key")
    provider = FalProvider.from_env()
    with pytest.raises(MissingCredentials, match=r"^FAL_KEY was refused by fal.ai \(401\)$"):
        provider.generate_image(keyframe(), tmp_path / "x.png")
    request = UpscaleRequest(model=endpoints.SEEDVR_UPSCALE, image=portrait, width=96, height=160)
    with pytest.raises(MissingCredentials, match=r"FAL_KEY was refused by fal.ai \(401\)"):
        provider.upscale_image(request, tmp_path / "up.png")
    assert fake.total_submits() == 0 and fake.uploads == []


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_key_stops_before_anything_else(clean_env: None, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is not None:
        monkeypatch.setenv("FAL_KEY", value)
    monkeypatch.setenv("REELFLOW_FAL_POLL_S", "not a number")
    with pytest.raises(MissingCredentials, match=r"^FAL_KEY is not set: export your fal.ai key as FAL_KEY$"):
        FalProvider.from_env()


def test_bad_timing_settings_are_contract_errors(fake: FakeFal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "soon")
    with pytest.raises(ContractError, match="REELFLOW_FAL_DEADLINE_S: 'soon' is not a number"):
        FalProvider.from_env()
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "0")
    with pytest.raises(ContractError, match="must be more than 0"):
        FalProvider.from_env()


def test_a_request_recorded_before_a_crash_is_polled_not_submitted_again(
    fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    request = keyframe()
    crashed = FalProvider.from_env()
    handle = SyncClient(key=fake.key).submit(endpoints.FLUX2_LORA, endpoints.text_to_image(request))
    ticket(ledger, run="crashed").submitted(endpoints.FLUX2_LORA, handle.request_id)
    del crashed
    assert ledger.spent("crashed") == FLUX_PRICE  # pending: counted at its price

    generation = FalProvider.from_env().generate_image(request, tmp_path / "x.png", ticket=ticket(reopened(ledger), run="next"))
    assert generation.request_id == handle.request_id
    assert fake.submits == {endpoints.FLUX2_LORA: 1} and fake.status_polls[handle.request_id] >= 3
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.cost_usd, row.run) == ("completed", handle.request_id, FLUX_PRICE, "next")
    assert ledger.spent("crashed") == 0.0 and ledger.spent("next") == FLUX_PRICE
    FalProvider.from_env().generate_image(request, tmp_path / "again.png", ticket=ticket(ledger))
    assert fake.total_submits() == 2 and list(fake.submits_by_body.values()) == [2]
    assert [row.status for row in ledger.rows()] == ["completed", "completed"]


def test_a_resumed_request_fal_no_longer_knows_is_unknown_at_its_price(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    ticket(ledger).submitted(endpoints.FLUX2_LORA, "gone-request")
    with pytest.raises(OutcomeUnknown, match="fal no longer knows request gone-request") as caught:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    # It may have run and billed before fal forgot it: money, never a blind retry.
    assert caught.value.billed and not is_retryable(caught.value)
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.price_usd) == ("unknown", "gone-request", FLUX_PRICE)
    assert "no longer knows" in row.detail and ledger.pending(KEY) is None and fake.total_submits() == 0
    assert ledger.spent() == FLUX_PRICE and ledger.billed_failures(KEY) == 1
    provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert fake.total_submits() == 1 and [row.status for row in ledger.rows()] == ["unknown", "completed"]


def test_past_the_deadline_a_requested_cancel_stays_pending_and_the_next_attempt_uses_its_output(
    fake: FakeFal, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.slow_s = 30.0
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "0.2")
    out = tmp_path / "x.png"
    requested = r"no result after 0.2 s; cancel of request \w+ requested, still pending"
    with pytest.raises(ProviderTimeout, match=requested) as timed_out:
        FalProvider.from_env().generate_image(keyframe(), out, ticket=ticket(ledger, run="timed-out"))
    request_id = timed_out.value.request_id
    assert is_retryable(timed_out.value) and not timed_out.value.billed
    assert fake.cancels == [request_id] and not out.exists()
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.cost_usd) == ("pending", request_id, 0.0) and "cancel requested" in row.detail
    assert ledger.pending(KEY) == request_id and ledger.spent() == FLUX_PRICE  # it may still run and bill

    # fal did not stop it: the request runs to the end. The next attempt polls it instead of paying again.
    fake.jobs[request_id].cancelled, fake.slow_s = False, 0.0
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "30")
    generation = FalProvider.from_env().generate_image(keyframe(), out, ticket=ticket(ledger, run="resumed"))
    assert generation.request_id == request_id and fake.total_submits() == 1 and fake.cancels == [request_id]
    with Image.open(out) as image:
        assert image.size == (512, 768)
    [row] = ledger.rows()
    assert (row.status, row.cost_usd, row.run) == ("completed", FLUX_PRICE, "resumed")
    assert ledger.pending(KEY) is None and ledger.spent() == FLUX_PRICE and ledger.spent("timed-out") == 0.0


@pytest.mark.parametrize(("status", "body", "settled", "spent", "said"), [
    (200, {"status": "OK"}, "cancelled", 0.0, r"request \w+ removed from the queue, nothing billed"),
    (202, {"status": "CANCELLATION_REQUESTED"}, "pending", FLUX_PRICE, r"cancel of request \w+ requested, still pending"),
    (503, {"detail": "Service Unavailable"}, "pending", FLUX_PRICE, r"cancel failed \(503\), still pending"),
])
def test_past_the_deadline_only_a_request_fal_removed_from_its_queue_is_cancelled(
    fake: FakeFal, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: int, body: dict[str, str],
    settled: str, spent: float, said: str,
) -> None:
    fake.slow_s = 30.0
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "0.1")
    answer_with(fake, monkeypatch, lambda method, path: method == "PUT" and path.endswith("/cancel"), status, body)
    with pytest.raises(ProviderTimeout, match=rf"no result after 0.1 s; {said}") as timed_out:
        FalProvider.from_env().generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert is_retryable(timed_out.value) and not timed_out.value.billed
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.cost_usd) == (settled, timed_out.value.request_id, 0.0)
    assert ledger.spent() == spent
    assert ledger.pending(KEY) == (None if settled == "cancelled" else timed_out.value.request_id)


def test_past_the_deadline_a_request_fal_no_longer_knows_is_unknown(
    fake: FakeFal, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake.slow_s = 30.0
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "0.1")
    answer_with(fake, monkeypatch, lambda method, path: method == "PUT" and path.endswith("/cancel"), 404,
                {"detail": "Request not found"})
    with pytest.raises(OutcomeUnknown, match="fal no longer knows request"):
        FalProvider.from_env().generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    [row] = ledger.rows()
    assert row.status == "unknown" and ledger.spent() == FLUX_PRICE and ledger.pending(KEY) is None


def test_a_request_that_finished_as_it_was_cancelled_is_fetched(fake: FakeFal, ledger: Ledger,
                                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake.slow_s, fake.finish_before_cancel = 30.0, True
    monkeypatch.setenv("REELFLOW_FAL_DEADLINE_S", "0.05")
    generation = FalProvider.from_env().generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert fake.cancels == [generation.request_id] and (tmp_path / "x.png").is_file()
    assert events(ledger) == [("completed", endpoints.FLUX2_LORA, FLUX_PRICE)]
    assert ledger.rows()[0].request_id == generation.request_id and fake.total_submits() == 1


def test_a_corrupt_download_is_unusable_billed_and_never_completed(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, portrait: Path, ending: Path, tmp_path: Path
) -> None:
    fake.corrupt_outputs = 2
    with pytest.raises(UnusableOutput, match="output image does not decode") as image_error:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert events(ledger) == [("failed", endpoints.FLUX2_LORA, FLUX_PRICE)]
    assert "does not decode" in ledger.rows()[0].detail
    request = VideoRequest(model=endpoints.WAN_FLF, first=portrait, last=ending, prompt="turn", num_frames=17, fps=16,
                           width=64, height=112)
    with pytest.raises(UnusableOutput, match="fal-ai/wan/v2.2-a14b/image-to-video/lora: output video") as video_error:
        provider.first_last_video(request, tmp_path / "clip.mp4", ticket=ticket(ledger, "clip-key", price=CLIP_PRICE))
    for error in (image_error.value, video_error.value):
        assert error.billed and not error.retryable and not is_retryable(error) and not isinstance(error, ServerError)
    assert events(ledger) == [("failed", endpoints.FLUX2_LORA, FLUX_PRICE), ("failed", endpoints.WAN_FLF, CLIP_PRICE)]
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "clip.mp4").exists()
    assert ledger.spent() == round(FLUX_PRICE + CLIP_PRICE, 6)
    assert ledger.billed_failures(KEY) == 1 and ledger.pending(KEY) is None


def test_a_result_that_is_not_an_object_is_unusable_and_billed(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answer_with(fake, monkeypatch, is_result, 200, ["not", "an", "object"])
    with pytest.raises(UnusableOutput, match="result is not a JSON object") as caught:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.billed and caught.value.request_id in fake.jobs
    assert events(ledger) == [("failed", endpoints.FLUX2_LORA, FLUX_PRICE)] and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("status", "left"), [(500, "failed"), (503, "pending")])
def test_a_server_error_on_the_result_is_never_billed(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    status: int, left: str,
) -> None:
    answer_with(fake, monkeypatch, is_result, status, {"detail": "upstream"})
    with pytest.raises(ServerError, match=rf"server error \({status}\)") as caught:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert is_retryable(caught.value) and not caught.value.billed
    [row] = ledger.rows()
    assert (row.status, row.cost_usd) == (left, 0.0)
    generation = provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    if left == "pending":  # a gateway error says nothing about the request: it is polled again, not paid twice
        assert generation.request_id == caught.value.request_id and fake.total_submits() == 1
        assert events(ledger) == [("completed", endpoints.FLUX2_LORA, FLUX_PRICE)]
    else:
        assert fake.total_submits() == 2 and [row.status for row in ledger.rows()] == ["failed", "completed"]
        assert ledger.spent() == FLUX_PRICE


def test_estimate_and_cache_params(provider: FalProvider, dataset: Path) -> None:
    # each call is priced at the endpoint it goes to, in the units fal bills it by
    assert provider.estimate(keyframe()) == FLUX_PRICE
    assert provider.estimate(keyframe(width=1024, height=2048)) == PRICES.cost(endpoints.FLUX2_LORA, size=(1024, 2048))
    assert provider.estimate(keyframe(endpoints.Z_IMAGE_TURBO, loras=(LoraRef(path="a"),))) == PRICES.cost(
        endpoints.Z_IMAGE_TURBO_LORA, size=(512, 768))
    video = VideoRequest(model=endpoints.WAN_FLF, first=Path("a.png"), last=Path("b.png"), prompt="p", num_frames=81,
                         fps=16, width=720, height=1280)
    assert provider.estimate(video) == PRICES.cost(endpoints.WAN_FLF, frames=81, fps=16, resolution="720p")
    train = TrainRequest(model=endpoints.WAN22_TRAINER, images_zip=dataset, trigger="ana_v1", steps=1000)
    assert provider.estimate(train) == PRICES.cost(endpoints.WAN22_TRAINER, steps=1000)
    assert provider.estimate(train.model_copy(update={"steps": 2000})) > provider.estimate(train)
    params = provider.cache_params(keyframe(notes=NOTES))
    assert "notes" not in params and params["prompt"] == "Ana grips the throttle" and params["width"] == 512
    assert "wire_version" not in params  # version 1 is implicit: keys made before versions existed stay valid
    assert provider.cache_params(video) == json.loads(video.model_dump_json(exclude={"first", "last", "notes", "steps",
                                                                                     "cfg", "shift"})) | {"wire_version": 2}
    tuned = video.model_copy(update={"steps": 30, "cfg": 6.0, "shift": 5.0})
    assert provider.cache_params(tuned) == provider.cache_params(video) | {"steps": 30}, "fal's WAN takes only the steps"
    # SeedVR now asks for PNG: its wire version 2 keys its outputs apart from the JPEG-derived ones made before
    assert WIRE_VERSIONS == {endpoints.SEEDVR_UPSCALE: 2, endpoints.NANO_BANANA_EDIT: 2, endpoints.WAN_FLF: 2}
    up = UpscaleRequest(model=endpoints.SEEDVR_UPSCALE, image=Path("in.png"), width=1024, height=1536, seed=2)
    assert provider.cache_params(up) == {"model": endpoints.SEEDVR_UPSCALE, "seed": 2, "width": 1024, "height": 1536,
                                         "prompt": None, "wire_version": 2}
    assert "wire_version" not in provider.cache_params(train)


CLIENT = """
import sys
from pathlib import Path
from reelflow.providers.fal.provider import FalProvider
from reelflow.state.ledger import Charge, Ledger
from reelflow.schemas.requests import ImageRequest
request = ImageRequest.model_validate_json(sys.argv[1])
ticket = Ledger.at(Path(sys.argv[3])).ticket(sys.argv[4], "fal", Charge(run="killed", price_usd=float(sys.argv[5])))
FalProvider.from_env().generate_image(request, Path(sys.argv[2]), ticket=ticket)
"""


def test_a_client_killed_mid_wait_in_another_process_is_resumed(fake: FakeFal, ledger: Ledger, tmp_path: Path) -> None:
    fake.slow_s = 60.0
    request = keyframe()
    client = subprocess.Popen([sys.executable, "-c", CLIENT, request.model_dump_json(), str(tmp_path / "killed.png"),
                               str(ledger.db.path.parent), KEY, str(FLUX_PRICE)])
    try:
        waited = time.monotonic()
        while ledger.pending(KEY) is None:
            assert client.poll() is None and time.monotonic() - waited < 30, "the client never recorded its request"
            time.sleep(0.02)
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait()
    [row] = ledger.rows()
    assert (row.status, row.run, row.price_usd) == ("pending", "killed", FLUX_PRICE) and ledger.spent() == FLUX_PRICE
    fake.slow_s = 0.0
    generation = FalProvider.from_env().generate_image(request, tmp_path / "x.png", ticket=ticket(ledger, run="resumed"))
    assert generation.request_id == row.request_id and fake.total_submits() == 1
    [row] = ledger.rows()
    assert (row.status, row.cost_usd, row.run) == ("completed", FLUX_PRICE, "resumed")
    assert not (tmp_path / "killed.png").exists() and ledger.spent() == FLUX_PRICE


def test_a_failed_status_poll_leaves_the_request_pending_for_the_next_attempt(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    fake.status_errors = 1
    with pytest.raises(ServerError, match=r"server error \(503\)") as failed:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert is_retryable(failed.value) and not failed.value.billed
    assert ledger.pending(KEY) == failed.value.request_id and [row.status for row in ledger.rows()] == ["pending"]
    generation = provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert generation.request_id == failed.value.request_id and fake.total_submits() == 1
    assert events(ledger) == [("completed", endpoints.FLUX2_LORA, FLUX_PRICE)]


def test_downloads_that_are_missing_or_unreachable(fake: FakeFal, tmp_path: Path) -> None:
    with pytest.raises(UnusableOutput, match=r"fal: e: download: the output is not there \(404\)"):
        download(f"{fake.url}/files/none/out.png", tmp_path / "out.png", "e")
    with pytest.raises(TransportError, match="fal: e: download: ConnectError"):
        download("http://127.0.0.1:9/files/out.png", tmp_path / "out.png", "e")


def test_a_submit_whose_answer_is_lost_is_unknown_at_its_price(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    fake.drop_submits = 1
    with pytest.raises(OutcomeUnknown, match="no answer to the submit") as caught:
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert caught.value.billed and not is_retryable(caught.value)
    [row] = ledger.rows()
    assert (row.status, row.price_usd) == ("unknown", FLUX_PRICE) and row.request_id.startswith("submitting-")
    assert ledger.spent() == FLUX_PRICE == fake.billed_usd and ledger.billed_failures(KEY) == 1


def test_a_submit_whose_body_is_lost_is_found_by_fal_s_request_id_header_and_never_paid_again(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path
) -> None:
    fake.garble_submits = 1
    generation = provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    [row] = ledger.rows()
    assert (row.status, row.request_id, row.cost_usd) == ("completed", generation.request_id, FLUX_PRICE)
    assert fake.total_submits() == 1 and generation.request_id in fake.jobs and fake.billed_usd == FLUX_PRICE


def test_a_row_is_written_before_the_request_leaves(
    provider: FalProvider, fake: FakeFal, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    submit = fake._submit

    def watched(endpoint: str, raw: bytes) -> tuple[int, object]:
        seen.append([row.status for row in ledger.rows()])
        return submit(endpoint, raw)

    monkeypatch.setattr(fake, "_submit", watched)
    provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    assert seen == [["submitting"]] and [row.status for row in ledger.rows()] == ["completed"]


def test_a_submit_answered_past_the_timeout_is_unknown_at_its_price(
    fake: FakeFal, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELFLOW_FAL_TIMEOUT_S", "0.5")
    fake.stall_new_bodies, fake.stall_s = 1, 2.0  # fal runs and bills it, and answers after the client gave up
    provider = FalProvider.from_env()
    with pytest.raises(OutcomeUnknown, match="no answer to the submit"):
        provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))
    [row] = ledger.rows()
    assert row.status == "unknown" and ledger.spent() == FLUX_PRICE == fake.billed_usd
    provider.generate_image(keyframe(), tmp_path / "x.png", ticket=ticket(ledger))  # within billed_retries: again
    assert [row.status for row in ledger.rows()] == ["unknown", "completed"]
    assert ledger.spent() == pytest.approx(fake.billed_usd) and fake.total_submits() == 2
