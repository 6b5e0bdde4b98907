"""The local provider end to end: files, shadow costs, request ids, ledger rows, faults before output, registry."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.media.probe import probe
from reelflow.providers.base import FrameToVideo, ImageEditor, ImageGenerator, LoraTrainer, VisionJudge
from reelflow.providers.local.draw import draw_edit, draw_keyframe, draw_turn
from reelflow.providers.local.faults import FaultSchedule
from reelflow.providers.local.provider import EDIT_VERSION, LOCAL_VERSION, LocalProvider
from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    ContractError,
    MediaError,
    ProviderError,
    RateLimited,
    is_retryable,
)
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import (
    EditRequest,
    FrameNotes,
    FrameRole,
    ImageRequest,
    JudgeRequest,
    UpscaleRequest,
    VideoRequest,
)
from reelflow.schemas.wire.fal import QWEN_ANGLES
from reelflow.state.ledger import Charge, Ledger, LedgerTicket

FLUX = "fal-ai/flux-2/lora"
WAN = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
GEMINI = "gemini-2.5-flash-image"
FLUX_PRICE = load_prices().cost(FLUX, size=(128, 224))  # an image_request(): one megapixel, rounded up
JUDGE_PRICE = load_prices().cost("gemini-2.5-flash")  # one judge call
CLIP_PRICE = load_prices().cost(WAN, frames=81, fps=16)  # 81 frames: 5.06 s at 720p
Ends = tuple[Path, Path]


def image_request(
    role: FrameRole | None = "first", *, width: int = 128, height: int = 224, model: str = FLUX, seed: int = 5
) -> ImageRequest:
    notes = None if role is None else FrameNotes(project="LEV", episode=2, shot=9, approach="standard_flf", role=role,
                                                 characters=("JINX",), location="MOON_POOL")
    return ImageRequest(model=model, prompt="Jinx dives into the moon pool", seed=seed, width=width, height=height, notes=notes)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def provider() -> LocalProvider:
    return LocalProvider(FaultSchedule())


@pytest.fixture
def keyframes(tmp_path: Path) -> Ends:
    first, last = tmp_path / "in" / "first.png", tmp_path / "in" / "last.png"
    save_png(draw_keyframe(image_request("first")), first)
    save_png(draw_keyframe(image_request("last")), last)
    return first, last


def video_request(keyframes: Ends, frames: int = 9, *, width: int = 64, height: int = 112) -> VideoRequest:
    return VideoRequest(model=WAN, first=keyframes[0], last=keyframes[1], prompt="she dives", num_frames=frames,
                        fps=16, width=width, height=height, seed=3)


def shadow_ticket(ledger: Ledger, key: str, price: float, *, run: str = "run-1") -> LedgerTicket:
    """A ticket as the render task writes it for the local provider: shadow-priced as the cloud bills."""
    return ledger.ticket(key, "local", Charge(run=run, stage="keyframes", episode=2, shot=9, price_usd=price, shadow=True))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.at(tmp_path / ".reelflow")


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_it_is_every_media_protocol_with_the_cloud_models_it_stands_in_for(provider: LocalProvider) -> None:
    assert isinstance(provider, ImageGenerator) and isinstance(provider, ImageEditor) and isinstance(provider, FrameToVideo)
    assert isinstance(provider, VisionJudge) and isinstance(provider, LoraTrainer)
    assert provider.name == "local"
    assert provider.default_models == {
        "keyframes": FLUX, "previz": "fal-ai/z-image/turbo", "upscale": GEMINI, "video": WAN, "candidates": GEMINI,
        "qc": "gemini-2.5-flash", "training": "fal-ai/flux-2-trainer",
    }


def test_registry_builds_it_from_the_environment() -> None:
    from reelflow.providers.registry import get_provider

    assert isinstance(get_provider("local"), LocalProvider)


def test_from_env_applies_and_checks_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REELFLOW_LOCAL_FAULTS", "rate_limit=1")
    with pytest.raises(RateLimited):
        LocalProvider.from_env().generate_image(image_request(), tmp_path / "a.png")
    monkeypatch.setenv("REELFLOW_LOCAL_FAULTS", "hiccup=1")
    with pytest.raises(ContractError, match=r"^REELFLOW_LOCAL_FAULTS: unknown fault 'hiccup'"):
        LocalProvider.from_env()


def test_cache_params_are_every_field(provider: LocalProvider, keyframes: Ends) -> None:
    request = image_request("hero")
    assert provider.cache_params(request) == request.params() | {"local_version": LOCAL_VERSION}
    assert provider.cache_params(request)["notes"]["role"] == "hero"
    assert "first" not in provider.cache_params(video_request(keyframes))
    assert "edit_version" not in provider.cache_params(request)


def test_edit_cache_params_name_the_edit_version(provider: LocalProvider, keyframes: Ends) -> None:
    edit = EditRequest(model=QWEN_ANGLES, image=keyframes[0], prompt="turn", horizontal_angle=90.0)
    assert provider.cache_params(edit) == edit.params() | {"local_version": LOCAL_VERSION, "edit_version": EDIT_VERSION}
    assert "image" not in provider.cache_params(edit)


def test_generate_image_writes_the_keyframe_and_reports_the_shadow_cost(provider: LocalProvider, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "folder" / "S09_first.png"
    result = provider.generate_image(image_request(), out)
    assert result.provider == "local" and result.model == FLUX and result.files == [out]
    assert result.cost_usd == FLUX_PRICE > 0
    assert result.request_id is not None and len(result.request_id) == len("local-") + 16
    assert result.seconds >= 0
    assert probe(out).width == 128 and probe(out).height == 224
    assert np.array_equal(np.asarray(load_image(out)), np.asarray(draw_keyframe(image_request())))
    assert leftovers(out.parent) == []


def test_same_request_gives_identical_bytes_and_request_id(provider: LocalProvider, tmp_path: Path) -> None:
    one = provider.generate_image(image_request("strip", width=384, height=224), tmp_path / "a.png")
    two = LocalProvider().generate_image(image_request("strip", width=384, height=224), tmp_path / "b.png")
    assert sha256(tmp_path / "a.png") == sha256(tmp_path / "b.png")
    assert one.request_id == two.request_id
    other = provider.generate_image(image_request("strip", width=384, height=224, seed=6), tmp_path / "c.png")
    assert other.request_id != one.request_id and sha256(tmp_path / "c.png") != sha256(tmp_path / "a.png")


def test_request_id_follows_input_content_not_its_path(provider: LocalProvider, keyframes: Ends, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "same.png"
    copy.parent.mkdir()
    shutil.copy(keyframes[0], copy)
    ids = [
        provider.upscale_image(UpscaleRequest(model=GEMINI, image=path, width=64, height=112), tmp_path / f"up{i}.png").request_id
        for i, path in enumerate((keyframes[0], copy, keyframes[1]))
    ]
    assert ids[0] == ids[1] != ids[2]


def test_upscale_resizes_and_sharpens(provider: LocalProvider, keyframes: Ends, tmp_path: Path) -> None:
    out = tmp_path / "up.png"
    result = provider.upscale_image(UpscaleRequest(model=GEMINI, image=keyframes[0], width=192, height=336), out)
    assert result.cost_usd == load_prices().cost("gemini-3.1-flash-image", resolution="1K")  # priced as the replacement
    upscaled = np.asarray(load_image(out), dtype=np.int16)
    plain = np.asarray(resize_cover(load_image(keyframes[0]), (192, 336)), dtype=np.int16)
    assert upscaled.shape == (336, 192, 3)
    assert 0 < np.abs(upscaled - plain).mean() < 4


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [(100, 150, (100, 150)), (None, None, (128, 224)), (64, None, (64, 112)), (None, 112, (64, 112))],
)
def test_edit_size_is_given_or_follows_the_input(
    provider: LocalProvider, keyframes: Ends, tmp_path: Path,
    width: int | None, height: int | None, expected: tuple[int, int],
) -> None:
    prompt = "Keep her face, swap the background"
    request = EditRequest(model=GEMINI, image=keyframes[0], prompt=prompt, width=width, height=height)
    result = provider.edit_image(request, tmp_path / "edit.png")
    assert (probe(tmp_path / "edit.png").width, probe(tmp_path / "edit.png").height) == expected
    assert result.cost_usd == load_prices().cost("gemini-3.1-flash-image", resolution="1K")  # priced as the replacement


def test_edit_changes_the_image_by_instruction(provider: LocalProvider, keyframes: Ends, tmp_path: Path) -> None:
    for name, prompt in (("a.png", "Turn her head left"), ("b.png", "Turn her head left"), ("c.png", "Make it night")):
        provider.edit_image(EditRequest(model=GEMINI, image=keyframes[0], prompt=prompt), tmp_path / name)
    source = np.asarray(load_image(keyframes[0]), dtype=np.int16)
    assert np.abs(np.asarray(load_image(tmp_path / "a.png"), dtype=np.int16) - source).mean() > 8
    assert sha256(tmp_path / "a.png") == sha256(tmp_path / "b.png") != sha256(tmp_path / "c.png")


def test_the_multiple_angles_model_turns_the_camera_and_other_edits_change_the_backdrop(
    provider: LocalProvider, keyframes: Ends, tmp_path: Path
) -> None:
    source = load_image(keyframes[0])
    turn = EditRequest(model=QWEN_ANGLES, image=keyframes[0], prompt="<sks> right side view", horizontal_angle=90.0, zoom=5.0)
    provider.edit_image(turn, tmp_path / "turn.png")
    turned = draw_turn(source, 90.0, 0.0, 5.0, source.size)
    assert np.array_equal(np.asarray(load_image(tmp_path / "turn.png")), np.asarray(turned))
    for name, request in (("plain.png", turn.model_copy(update={"horizontal_angle": None, "zoom": None})),
                          ("other.png", turn.model_copy(update={"model": GEMINI}))):
        provider.edit_image(request, tmp_path / name)
        drawn = draw_edit(source, request.prompt, request.seed, source.size)
        assert np.array_equal(np.asarray(load_image(tmp_path / name)), np.asarray(drawn))


def test_first_last_video_is_deterministic_with_exact_frames(provider: LocalProvider, keyframes: Ends, tmp_path: Path) -> None:
    result = provider.first_last_video(video_request(keyframes), tmp_path / "a.mp4")
    provider.first_last_video(video_request(keyframes), tmp_path / "b.mp4")
    info = probe(tmp_path / "a.mp4")
    assert (info.frames, info.width, info.height, info.fps) == (9, 64, 112, 16.0)
    assert result.files == [tmp_path / "a.mp4"] and sha256(tmp_path / "a.mp4") == sha256(tmp_path / "b.mp4")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("frames", "cost"), [(49, 49 / 16 * 0.08), (81, 81 / 16 * 0.08)])  # 720p, billed at 16 fps
def test_video_shadow_cost_goes_by_clip_length(
    provider: LocalProvider, keyframes: Ends, tmp_path: Path, frames: int, cost: float
) -> None:
    result = provider.first_last_video(video_request(keyframes, frames, width=32, height=56), tmp_path / "clip.mp4")
    assert result.cost_usd == pytest.approx(cost) and probe(tmp_path / "clip.mp4").frames == frames


def test_models_without_a_price_cost_nothing(provider: LocalProvider, tmp_path: Path) -> None:
    assert provider.generate_image(image_request(model="local/sketch"), tmp_path / "a.png").cost_usd == 0.0
    assert provider.generate_image(image_request(model=WAN), tmp_path / "b.png").cost_usd == 0.0


def test_faults_happen_before_any_output_is_written(keyframes: Ends, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    failing = LocalProvider(FaultSchedule(rates={"rate_limit": 1.0}))
    with pytest.raises(RateLimited) as caught:
        failing.first_last_video(video_request(keyframes), out / "clip.mp4")
    assert caught.value.provider == "local" and is_retryable(caught.value)
    rejecting = LocalProvider(FaultSchedule(rates={"reject": 1.0}))
    with pytest.raises(ContentRejected) as rejected:
        rejecting.generate_image(image_request(), out / "a.png")
    assert rejected.value.request_id == LocalProvider().generate_image(image_request(), tmp_path / "ok.png").request_id
    assert list(out.iterdir()) == []


def test_retries_succeed_and_outputs_never_depend_on_faults(keyframes: Ends, tmp_path: Path) -> None:
    flaky = LocalProvider(FaultSchedule(rates={"rate_limit": 0.5, "server_error": 0.3, "timeout": 0.2}, seed=3))
    failures = 0
    for _ in range(40):
        try:
            flaky.generate_image(image_request("hero"), tmp_path / "flaky.png")
            break
        except ProviderError as error:
            assert is_retryable(error)
            failures += 1
    LocalProvider().generate_image(image_request("hero"), tmp_path / "calm.png")
    assert sha256(tmp_path / "flaky.png") == sha256(tmp_path / "calm.png")
    assert 0 < failures < 40


def test_latency_counts_in_the_reported_seconds(tmp_path: Path) -> None:
    result = LocalProvider(FaultSchedule(latency=0.05)).generate_image(image_request(), tmp_path / "a.png")
    assert result.seconds >= 0.05


def test_bad_sizes_and_missing_inputs_are_refused(provider: LocalProvider, keyframes: Ends, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="0x224"):
        provider.generate_image(image_request(width=0), tmp_path / "a.png")
    with pytest.raises(BadRequest, match="even"):
        provider.first_last_video(video_request(keyframes, width=63), tmp_path / "a.mp4")
    missing = UpscaleRequest(model=GEMINI, image=tmp_path / "missing.png", width=64, height=64)
    with pytest.raises(MediaError, match=r"image input missing\.png"):
        provider.upscale_image(missing, tmp_path / "b.png")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]


def test_concurrent_calls_give_the_same_files_as_sequential_ones(provider: LocalProvider, tmp_path: Path) -> None:
    requests = [image_request(role, width=192, height=336) for role in ("strip", "hero", "last", None)] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda item: provider.generate_image(item[1], tmp_path / f"par{item[0]}.png"), enumerate(requests)))
    for index, request in enumerate(requests[:4]):
        provider.generate_image(request, tmp_path / f"seq{index}.png")
    for index in range(len(requests)):
        assert sha256(tmp_path / f"par{index}.png") == sha256(tmp_path / f"seq{index % 4}.png")


def test_each_call_is_one_completed_ledger_row_at_its_shadow_cost(
    provider: LocalProvider, ledger: Ledger, keyframes: Ends, tmp_path: Path
) -> None:
    image = provider.generate_image(image_request(), tmp_path / "a.png", ticket=shadow_ticket(ledger, "k-image", FLUX_PRICE))
    clip = provider.first_last_video(video_request(keyframes, 81), tmp_path / "clip.mp4",
                                     ticket=shadow_ticket(ledger, "k-clip", CLIP_PRICE))
    verdict = provider.judge_image(JudgeRequest(model="gemini-2.5-flash", image=tmp_path / "a.png", prompt="Jinx dives",
                                                characters=("JINX",), location="MOON_POOL"),
                                   ticket=shadow_ticket(ledger, "k-judge", JUDGE_PRICE))
    again = provider.generate_image(image_request(), tmp_path / "b.png", ticket=shadow_ticket(ledger, "k-image", FLUX_PRICE))

    rows = ledger.rows()
    assert [(row.cache_key, row.status, row.endpoint, row.cost_usd) for row in rows] == [
        ("k-image", "completed", FLUX, FLUX_PRICE), ("k-clip", "completed", WAN, CLIP_PRICE),
        ("k-judge", "completed", "gemini-2.5-flash", JUDGE_PRICE), ("k-image", "completed", FLUX, FLUX_PRICE),
    ]
    assert [row.request_id for row in rows] == [image.request_id, clip.request_id, rows[2].request_id, again.request_id]
    assert all(row.provider == "local" and row.shadow and row.run == "run-1" for row in rows)
    assert verdict.cost_usd == JUDGE_PRICE and ledger.pending("k-image") is None
    assert ledger.spent() == pytest.approx(2 * FLUX_PRICE + CLIP_PRICE + JUDGE_PRICE)


def test_a_call_is_pending_in_the_ledger_while_it_runs(ledger: Ledger, tmp_path: Path) -> None:
    slow = LocalProvider(FaultSchedule(latency=0.3))
    call = threading.Thread(target=slow.generate_image, args=(image_request(), tmp_path / "a.png"),
                            kwargs={"ticket": shadow_ticket(ledger, "k-slow", FLUX_PRICE)})
    call.start()
    try:
        waited = time.monotonic()
        while ledger.pending("k-slow") is None:
            assert call.is_alive() and time.monotonic() - waited < 5, "the call never wrote its pending row"
            time.sleep(0.01)
        [row] = ledger.rows()
        assert (row.status, row.endpoint, row.price_usd, row.cost_usd) == ("pending", FLUX, FLUX_PRICE, 0.0)
        assert ledger.pending("k-slow", FLUX) == row.request_id and ledger.spent() == FLUX_PRICE  # pending: at its price
    finally:
        call.join()
    [row] = ledger.rows()
    assert (row.status, row.cost_usd) == ("completed", FLUX_PRICE) and ledger.pending("k-slow") is None


@pytest.mark.parametrize(("fault", "kind"), [("rate_limit", "rate_limit"), ("reject", "content_rejected")])
def test_an_injected_fault_is_a_failed_row_that_costs_nothing(
    ledger: Ledger, tmp_path: Path, fault: str, kind: str
) -> None:
    failing = LocalProvider(FaultSchedule(rates={fault: 1.0}))
    with pytest.raises(ProviderError) as caught:
        failing.generate_image(image_request(), tmp_path / "a.png", ticket=shadow_ticket(ledger, "k-fault", FLUX_PRICE))
    assert not caught.value.billed
    [row] = ledger.rows()
    assert (row.status, row.cost_usd, row.price_usd, row.request_id) == ("failed", 0.0, FLUX_PRICE, caught.value.request_id)
    assert row.detail.startswith(f"{kind}: ") and ledger.spent() == 0.0 and ledger.pending("k-fault") is None
    assert ledger.billed_failures("k-fault") == 0 and not (tmp_path / "a.png").exists()
    LocalProvider().generate_image(image_request(), tmp_path / "a.png", ticket=shadow_ticket(ledger, "k-fault", FLUX_PRICE))
    assert [(row.status, row.cost_usd) for row in ledger.rows()] == [("failed", 0.0), ("completed", FLUX_PRICE)]


def test_a_pending_row_left_by_a_dead_process_is_settled_by_the_next_call(
    provider: LocalProvider, ledger: Ledger, tmp_path: Path
) -> None:
    request = image_request()
    request_id = f"local-{provider.request_key('generate_image', request)[:16]}"
    shadow_ticket(ledger, "k-crash", FLUX_PRICE, run="died").submitted(FLUX, request_id)
    generation = provider.generate_image(request, tmp_path / "a.png",
                                         ticket=shadow_ticket(ledger, "k-crash", FLUX_PRICE, run="next"))
    [row] = ledger.rows()
    assert (row.request_id, row.status, row.cost_usd, row.run) == (generation.request_id, "completed", FLUX_PRICE, "next")
