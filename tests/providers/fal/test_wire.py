"""fal's published input schemas: every builder's arguments pass them, what they refuse is named, and
`FalProvider.check` applies them with no I/O."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from reelflow.providers.fal import endpoints
from reelflow.providers.fal.provider import FalProvider
from reelflow.schemas.errors import BadRequest
from reelflow.schemas.requests import (
    EditRequest,
    ImageRequest,
    LoraRef,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
    _Request,
)
from reelflow.schemas.wire.fal import INPUTS, WireViolation, validate

URL = "https://fal.media/files/in.png"


def lora(name: str, scale: float = 1.0, transformer: str | None = None) -> LoraRef:
    return LoraRef.model_validate({"path": f"https://cdn.example/{name}.safetensors", "scale": scale,
                                   "trigger": "ana_v1", "character": "ANA", "transformer": transformer})


LORAS = tuple(lora(f"ana_{index}") for index in range(4))


def image(model: str = endpoints.FLUX2_LORA, **changes: object) -> ImageRequest:
    fields: dict[str, object] = {"model": model, "prompt": "Ana at the helm", "width": 512, "height": 768, "seed": 7}
    return ImageRequest.model_validate(fields | changes)


def video(**changes: object) -> VideoRequest:
    fields: dict[str, object] = {
        "model": endpoints.WAN_FLF, "first": Path("first.png"), "last": Path("last.png"), "prompt": "Ana turns",
        "num_frames": 81, "fps": 16, "width": 720, "height": 1280, "seed": 3,
    }
    return VideoRequest.model_validate(fields | changes)


def edit(model: str = endpoints.NANO_BANANA_EDIT, **changes: object) -> EditRequest:
    fields: dict[str, object] = {"model": model, "image": Path("a.png"), "prompt": "same face, night sky",
                                 "references": (Path("r.png"),)}
    return EditRequest.model_validate(fields | changes)


def train(model: str = endpoints.FLUX2_TRAINER, **changes: object) -> TrainRequest:
    fields: dict[str, object] = {"model": model, "images_zip": Path("ana.zip"), "trigger": "ana_v1", "steps": 1000}
    return TrainRequest.model_validate(fields | changes)


def upscale(**changes: object) -> UpscaleRequest:
    fields: dict[str, object] = {"model": endpoints.SEEDVR_UPSCALE, "image": Path("in.png"), "width": 1024,
                                 "height": 1536}
    return UpscaleRequest.model_validate(fields | changes)


def fields(error: WireViolation) -> list[str]:
    """The dotted field of every problem, as the message names them."""
    return [".".join(str(part) for part in problem["loc"]) for problem in error.problems]


BUILT: list[tuple[str, dict[str, Any]]] = [
    (endpoints.FLUX2_LORA, endpoints.text_to_image(image(loras=LORAS[:3]))),
    (endpoints.FLUX2_LORA, endpoints.text_to_image(image(width=2048, height=2048, steps=50))),
    (endpoints.FLUX2_LORA_EDIT, endpoints.text_to_image(image(loras=LORAS[:3], references=(Path("a.png"),) * 3),
                                                        [URL] * 3)),
    (endpoints.Z_IMAGE_TURBO, endpoints.text_to_image(image(endpoints.Z_IMAGE_TURBO))),
    (endpoints.Z_IMAGE_TURBO_LORA, endpoints.text_to_image(image(endpoints.Z_IMAGE_TURBO, loras=LORAS[:3]))),
    (endpoints.WAN_FLF, endpoints.first_last_video(
        video(loras=(lora("hi", transformer="high"), lora("lo", 0.8, "low"), lora("any")), negative_prompt="blur"),
        URL, URL)),
    (endpoints.WAN_FLF, endpoints.first_last_video(video(num_frames=17, fps=4), URL, URL)),
    (endpoints.WAN_FLF, endpoints.first_last_video(video(num_frames=161, fps=60), URL, URL)),
    (endpoints.SEEDVR_UPSCALE, endpoints.upscale(upscale(), URL, (512, 768))),
    (endpoints.SEEDVR_UPSCALE, endpoints.upscale(upscale(), URL, (10, 10))),  # factor clamped to 10
    (endpoints.QWEN_ANGLES, endpoints.multiple_angles(
        edit(endpoints.QWEN_ANGLES, horizontal_angle=360, vertical_angle=-30, zoom=10), [URL, URL])),
    (endpoints.NANO_BANANA_EDIT, endpoints.identity_edit(edit(width=4096, prompt="abc"), [URL, URL])),
    (endpoints.Z_IMAGE_TRAINER, endpoints.image_zip_trainer(train(endpoints.Z_IMAGE_TRAINER, steps=100), URL)),
    (endpoints.FLUX2_TRAINER, endpoints.image_zip_trainer(train(steps=10_000), URL)),
    (endpoints.WAN22_TRAINER, endpoints.wan_trainer(train(endpoints.WAN22_TRAINER, steps=6_000), URL)),
]


@pytest.mark.parametrize(("endpoint", "arguments"), BUILT, ids=[f"{endpoint}-{index}" for index, (endpoint, _) in
                                                                 enumerate(BUILT)])
def test_every_builder_output_passes_its_endpoint_schema(endpoint: str, arguments: dict[str, Any]) -> None:
    INPUTS[endpoint].model_validate(arguments)
    assert validate(endpoint, arguments) is arguments  # validated, not rewritten: what is built is what is sent


def test_the_builders_cover_every_endpoint_in_the_schema_table() -> None:
    assert {endpoint for endpoint, _ in BUILT} == set(INPUTS)


def test_seedvr_asks_for_png() -> None:
    assert endpoints.upscale(upscale(), URL, (512, 768))["output_format"] == "png"


def test_flux2_takes_three_loras_and_refuses_a_fourth_naming_loras() -> None:
    assert len(endpoints.text_to_image(image(loras=LORAS[:3]))["loras"]) == 3
    with pytest.raises(WireViolation, match=r"^fal-ai/flux-2/lora: loras: \[4 items\]: List should have at most 3 items") \
            as caught:
        endpoints.text_to_image(image(loras=LORAS))
    assert caught.value.endpoint == endpoints.FLUX2_LORA and fields(caught.value) == ["loras"]


def test_flux2_with_reference_images_goes_to_its_lora_edit_with_at_most_three(offline: FalProvider) -> None:
    refs = tuple(Path(f"ref{index}.png") for index in range(4))
    sent = endpoints.text_to_image(image(references=refs[:2]), [URL, URL])
    assert endpoints.image_endpoint(image(references=refs[:2])) == endpoints.FLUX2_LORA_EDIT
    assert sent["image_urls"] == [URL, URL] and list(sent)[:-1] == list(endpoints.text_to_image(image()))
    with pytest.raises(WireViolation, match=r"^fal-ai/flux-2/lora/edit: image_urls: \[4 items\]: List should have at most 3"):
        offline.check(image(references=refs))
    with pytest.raises(BadRequest, match="fal-ai/z-image/turbo takes no reference images"):
        offline.check(image(endpoints.Z_IMAGE_TURBO, references=refs[:1]))
    # fal bills the output's megapixels and one megapixel per reference image, at the edit's rate
    assert offline.estimate(image(references=refs[:3])) == pytest.approx(0.021 * (1 + 3))
    assert offline.estimate(image()) == pytest.approx(0.021)


@pytest.mark.parametrize(("changes", "field", "rule"), [
    ({"width": 496}, "image_size.width: 496", "greater than or equal to 512"),
    ({"height": 2064}, "image_size.height: 2064", "less than or equal to 2048"),
    ({"steps": 3}, "num_inference_steps: 3", "greater than or equal to 4"),
    ({"steps": 51}, "num_inference_steps: 51", "less than or equal to 50"),
    ({"loras": (lora("strong", 4.5),)}, "loras.0.scale: 4.5", "less than or equal to 4"),
])
def test_flux2_ranges_are_refused_naming_field_value_and_range(changes: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(WireViolation, match=rf"^fal-ai/flux-2/lora: {field}: Input should be {rule}$"):
        endpoints.text_to_image(image(**changes))


def test_flux2_sizes_not_on_its_grid_are_refused_by_our_own_check_first() -> None:
    with pytest.raises(BadRequest, match=r"image_size: 520x768 must be positive multiples of 16"):
        endpoints.text_to_image(image(width=520))


@pytest.mark.parametrize("model", [endpoints.Z_IMAGE_TURBO, endpoints.Z_IMAGE_TURBO_LORA])
def test_z_image_steps_are_clamped_to_eight(model: str) -> None:
    loras = LORAS[:1] if model == endpoints.Z_IMAGE_TURBO_LORA else ()
    arguments = endpoints.text_to_image(image(endpoints.Z_IMAGE_TURBO, steps=28, loras=loras))
    assert arguments["num_inference_steps"] == endpoints.Z_IMAGE_MAX_STEPS == 8
    validate(model, arguments)
    with pytest.raises(WireViolation, match=rf"^{model}: num_inference_steps: 9: Input should be less than or equal to 8$"):
        validate(model, arguments | {"num_inference_steps": 9})


def test_wan_lora_transformer_comes_from_the_lora_and_none_means_both(caplog: pytest.LogCaptureFixture) -> None:
    loras = (lora("hi", transformer="high"), lora("lo", transformer="low"), lora("any"))
    with caplog.at_level(logging.INFO, logger="prefect.reelflow"):
        arguments = endpoints.first_last_video(video(loras=loras), URL, URL)
    assert [item["transformer"] for item in arguments["loras"]] == ["high", "low", "both"]
    assert [record.getMessage() for record in caplog.records] == [
        f"fal: {endpoints.WAN_FLF}: LoRA https://cdn.example/any.safetensors has no noise label (high/low); "
        "it goes to both experts"]
    with pytest.raises(WireViolation, match=r"loras\.0\.transformer: 'middle': Input should be 'high', 'low' or 'both'"):
        validate(endpoints.WAN_FLF, arguments | {"loras": [arguments["loras"][0] | {"transformer": "middle"}]})


@pytest.mark.parametrize(("changes", "problem"), [
    ({"fps": 3}, "frames_per_second: 3: Input should be greater than or equal to 4"),
    ({"fps": 61}, "frames_per_second: 61: Input should be less than or equal to 60"),
])
def test_wan_frame_rates_out_of_range_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(WireViolation, match=rf"^{endpoints.WAN_FLF}: {problem}$"):
        endpoints.first_last_video(video(**changes), URL, URL)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"num_frames": 165}, "num_frames: 165: Input should be less than or equal to 161"),
    ({"num_frames": 13}, "num_frames: 13: Input should be greater than or equal to 17"),
    ({"frames_per_second": 16.5}, "frames_per_second: 16.5: Input should be a valid integer"),
    ({"resolution": "1080p"}, "resolution: '1080p': Input should be '480p', '580p' or '720p'"),
    ({"num_interpolated_frames": 5}, "num_interpolated_frames: 5: Input should be less than or equal to 4"),
    ({"num_interpolated_frames": -1}, "num_interpolated_frames: -1: Input should be greater than or equal to 0"),
])
def test_wan_schema_refuses_frames_rates_and_resolutions_it_does_not_publish(changes: dict[str, Any], problem: str) -> None:
    arguments = endpoints.first_last_video(video(), URL, URL)
    assert arguments["num_interpolated_frames"] == 0  # exactly the frames asked for
    with pytest.raises(WireViolation, match=rf"^{endpoints.WAN_FLF}: {problem}"):
        validate(endpoints.WAN_FLF, arguments | changes)
    validate(endpoints.WAN_FLF, arguments | {"resolution": "580p", "num_interpolated_frames": 4})


def test_an_unknown_field_or_endpoint_is_refused() -> None:
    arguments = endpoints.text_to_image(image())
    with pytest.raises(WireViolation, match=r"^fal-ai/flux-2/lora: guidance: 3.5: Extra inputs are not permitted$"):
        validate(endpoints.FLUX2_LORA, arguments | {"guidance": 3.5})
    with pytest.raises(WireViolation, match=r"^fal-ai/flux/dev: endpoint: 'fal-ai/flux/dev': not one of fal-ai/flux-2/lora"):
        validate("fal-ai/flux/dev", arguments)


def test_seedvr_factor_outside_one_to_ten_is_refused() -> None:
    arguments = endpoints.upscale(upscale(), URL, (512, 768))
    with pytest.raises(WireViolation, match=r"upscale_factor: 10.5: Input should be less than or equal to 10"):
        validate(endpoints.SEEDVR_UPSCALE, arguments | {"upscale_factor": 10.5})
    with pytest.raises(WireViolation, match=r"upscale_factor: 0.5: Input should be greater than or equal to 1"):
        validate(endpoints.SEEDVR_UPSCALE, arguments | {"upscale_factor": 0.5})


def test_qwen_angles_out_of_range_are_refused() -> None:
    with pytest.raises(WireViolation, match=r"vertical_angle: 120.0: Input should be less than or equal to 90"):
        endpoints.multiple_angles(edit(endpoints.QWEN_ANGLES, vertical_angle=120), [URL])


def test_nano_banana_refuses_a_two_character_prompt() -> None:
    problem = r"prompt: 'ab': String should have at least 3 characters"
    with pytest.raises(WireViolation, match=rf"^fal-ai/nano-banana-pro/edit: {problem}$"):
        endpoints.identity_edit(edit(prompt="ab"), [URL, URL])
    with pytest.raises(WireViolation, match=r"prompt: '.*': String should have at most 50000 characters"):
        endpoints.identity_edit(edit(prompt="a" * 50_001), [URL, URL])


def test_nano_banana_takes_the_seed_as_an_integer() -> None:
    arguments = endpoints.identity_edit(edit(seed=2**32 - 1), [URL])
    assert arguments["seed"] == 2**32 - 1  # fal documents an integer with no range
    with pytest.raises(WireViolation, match=r"^fal-ai/nano-banana-pro/edit: seed: 1.5: Input should be a valid integer"):
        validate(endpoints.NANO_BANANA_EDIT, arguments | {"seed": 1.5})


@pytest.mark.parametrize(("model", "steps", "rule"), [
    (endpoints.FLUX2_TRAINER, 99, "greater than or equal to 100"),
    (endpoints.FLUX2_TRAINER, 10_001, "less than or equal to 10000"),
    (endpoints.Z_IMAGE_TRAINER, 50, "greater than or equal to 100"),
    (endpoints.WAN22_TRAINER, 9, "greater than or equal to 10"),
    (endpoints.WAN22_TRAINER, 6_001, "less than or equal to 6000"),
])
def test_trainer_steps_out_of_range_are_refused(model: str, steps: int, rule: str) -> None:
    request = train(model, steps=steps)
    with pytest.raises(WireViolation, match=rf"^{model}: steps: {steps}: Input should be {rule}$"):
        endpoints.trainer(request)(request, URL)


class NoQueue:
    """A queue that fails the test on any use: `check` must not upload, submit or poll."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"check used the queue: {name}")


@pytest.fixture
def offline(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> FalProvider:
    """A provider whose hosts are unreachable and whose queue refuses to be touched."""
    monkeypatch.setenv("REELFLOW_FAL_QUEUE_URL", "http://127.0.0.1:9/queue/")
    monkeypatch.setenv("REELFLOW_FAL_REST_URL", "http://127.0.0.1:9/rest")
    monkeypatch.setenv("REELFLOW_FAL_CDN_URL", "http://127.0.0.1:9/cdn")
    provider = FalProvider("k")
    provider.queue = NoQueue()  # type: ignore[assignment]
    return provider


GOOD: list[_Request] = [
    image(loras=LORAS[:3]),
    image(endpoints.Z_IMAGE_TURBO, steps=28),
    video(loras=(lora("hi", transformer="high"), lora("any"))),
    upscale(),
    edit(),
    edit(endpoints.QWEN_ANGLES, horizontal_angle=90, zoom=5),
    train(),
    train(endpoints.Z_IMAGE_TRAINER),
    train(endpoints.WAN22_TRAINER),
]


@pytest.mark.parametrize("request_", GOOD, ids=lambda request: type(request).__name__ + ":" + request.model)
def test_check_passes_good_requests_without_any_io(offline: FalProvider, request_: _Request) -> None:
    assert offline.check(request_) is None  # no files exist at the requests' paths, and no host answers


@pytest.mark.parametrize(("request_", "problem"), [
    (image(width=4096), r"fal-ai/flux-2/lora: image_size.width: 4096: Input should be less than or equal to 2048"),
    (image(loras=LORAS), r"fal-ai/flux-2/lora: loras: \[4 items\]"),
    (video(fps=61), r"frames_per_second: 61: Input should be less than or equal to 60"),
    (edit(prompt="ab"), r"fal-ai/nano-banana-pro/edit: prompt: 'ab'"),
    (edit(endpoints.QWEN_ANGLES, vertical_angle=-45), r"vertical_angle: -45.0: Input should be greater than or equal to -30"),
    (train(steps=50), r"fal-ai/flux-2-trainer: steps: 50: Input should be greater than or equal to 100"),
    (train(endpoints.WAN22_TRAINER, steps=7000), r"fal-ai/wan-22-image-trainer: steps: 7000"),
], ids=lambda value: value.model if isinstance(value, _Request) else "")
def test_check_raises_wire_violation_for_a_request_the_schema_refuses(
    offline: FalProvider, request_: _Request, problem: str
) -> None:
    with pytest.raises(WireViolation, match=problem):
        offline.check(request_)


def test_check_refuses_what_our_own_rules_refuse_as_bad_request(offline: FalProvider) -> None:
    with pytest.raises(BadRequest, match="not a text-to-image endpoint"):
        offline.check(image("fal-ai/flux/dev"))
    with pytest.raises(BadRequest, match=r"num_frames: 50 must be 4k\+1"):
        offline.check(video(num_frames=50))
    with pytest.raises(BadRequest, match="not an upscale endpoint"):
        offline.check(upscale(model="fal-ai/esrgan"))
