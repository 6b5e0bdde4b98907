"""Each endpoint's mapping on its own: request to fal arguments, fal result to outputs, fal errors to the taxonomy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelflow.providers.fal import endpoints
from reelflow.providers.fal.endpoints import Output
from reelflow.providers.fal.errors import TRANSIENT, describe, fal_error, status_error
from reelflow.providers.fal.hosts import FAL_CDN_URL, FAL_QUEUE_URL, FAL_REST_URL, configure_fal_client
from reelflow.schemas.errors import (
    BadRequest,
    ContentRejected,
    MissingCredentials,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
    UnusableOutput,
    is_retryable,
)
from reelflow.schemas.requests import (
    EditRequest,
    FrameNotes,
    ImageRequest,
    LoraRef,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
)

ANA = LoraRef(path="https://cdn.example/ana.safetensors", scale=0.7, trigger="ana_v1", character="ANA")
NOTES = FrameNotes(project="TST", episode=1, shot=2, approach="standard_flf", role="first")


def image(model: str = endpoints.FLUX2_LORA, **changes: object) -> ImageRequest:
    fields: dict[str, object] = {"model": model, "prompt": "Ana at the helm", "width": 768, "height": 1344, "seed": 7}
    return ImageRequest.model_validate(fields | changes)


def video(**changes: object) -> VideoRequest:
    fields: dict[str, object] = {
        "model": endpoints.WAN_FLF, "first": Path("first.png"), "last": Path("last.png"), "prompt": "Ana turns",
        "num_frames": 81, "fps": 16, "width": 768, "height": 1344, "seed": 3,
    }
    return VideoRequest.model_validate(fields | changes)


def test_flux2_lora_arguments() -> None:
    assert endpoints.text_to_image(image(loras=(ANA,), notes=NOTES)) == {
        "prompt": "Ana at the helm",
        "image_size": {"width": 768, "height": 1344},
        "num_inference_steps": 28,
        "seed": 7,
        "num_images": 1,
        "output_format": "png",
        "loras": [{"path": "https://cdn.example/ana.safetensors", "scale": 0.7}],
    }


def test_z_image_turbo_caps_steps_and_takes_its_lora_endpoint_only_with_loras() -> None:
    plain = image(endpoints.Z_IMAGE_TURBO)
    assert endpoints.image_endpoint(plain) == endpoints.Z_IMAGE_TURBO
    assert endpoints.text_to_image(plain)["num_inference_steps"] == endpoints.Z_IMAGE_MAX_STEPS
    assert "loras" not in endpoints.text_to_image(plain)
    assert endpoints.image_endpoint(image(endpoints.Z_IMAGE_TURBO, loras=(ANA,))) == endpoints.Z_IMAGE_TURBO_LORA
    assert endpoints.text_to_image(image(endpoints.Z_IMAGE_TURBO, steps=4))["num_inference_steps"] == 4


def test_image_models_and_sizes_fal_would_not_honour_are_refused() -> None:
    with pytest.raises(BadRequest, match="not a text-to-image endpoint"):
        endpoints.image_endpoint(image("fal-ai/flux/dev"))
    with pytest.raises(BadRequest, match=r"fal: fal-ai/flux-2/lora: image_size: 770x1344 must be positive multiples of 16"):
        endpoints.text_to_image(image(width=770))


def test_wan_arguments_keep_the_exact_frame_count_and_say_which_expert_loads_each_lora() -> None:
    high = LoraRef(path="ana_high.safetensors", trigger="ana_v1", character="ANA", transformer="high")
    low = LoraRef(path="ana_low.safetensors", scale=0.8, trigger="ana_v1", character="ANA", transformer="low")
    arguments = endpoints.first_last_video(video(loras=(high, low, ANA), negative_prompt="blur"), "u://first", "u://last")
    assert arguments == {
        "image_url": "u://first",
        "end_image_url": "u://last",
        "prompt": "Ana turns",
        "num_frames": 81,
        "frames_per_second": 16,
        "resolution": "720p",
        "aspect_ratio": "9:16",
        "num_interpolated_frames": 0,
        "seed": 3,
        "negative_prompt": "blur",
        "loras": [
            {"path": "ana_high.safetensors", "scale": 1.0, "transformer": "high"},
            {"path": "ana_low.safetensors", "scale": 0.8, "transformer": "low"},
            {"path": "https://cdn.example/ana.safetensors", "scale": 0.7, "transformer": "both"},
        ],
    }
    assert endpoints.first_last_video(video(width=1344, height=768), "a", "b")["aspect_ratio"] == "16:9"


@pytest.mark.parametrize("frames", [16, 50, 13, 165])
def test_wan_frame_counts_it_cannot_produce_exactly_are_refused(frames: int) -> None:
    with pytest.raises(BadRequest, match=rf"num_frames: {frames} must be 4k\+1 between 17 and 161"):
        endpoints.first_last_video(video(num_frames=frames), "a", "b")


def test_upscale_factor_covers_the_target_within_fal_range() -> None:
    assert endpoints.upscale_factor((384, 672), (768, 1344)) == 2.0
    assert endpoints.upscale_factor((300, 500), (768, 1344)) == 2.69
    assert endpoints.upscale_factor((2000, 3000), (768, 1344)) == 1.0
    assert endpoints.upscale_factor((10, 10), (768, 1344)) == 10.0
    request = UpscaleRequest(model=endpoints.SEEDVR_UPSCALE, image=Path("in.png"), width=768, height=1344, seed=2)
    assert endpoints.upscale(request, "u://in", (384, 672)) == {
        "image_url": "u://in", "upscale_mode": "factor", "upscale_factor": 2.0, "seed": 2, "output_format": "png",
    }


def test_edit_mappings() -> None:
    angles = EditRequest(model=endpoints.QWEN_ANGLES, image=Path("a.png"), prompt="turn", horizontal_angle=90, zoom=5)
    assert endpoints.edit_endpoint(angles) is endpoints.multiple_angles
    assert endpoints.multiple_angles(angles, ["u://a", "u://ref"]) == {
        "image_urls": ["u://a"], "seed": 0, "num_images": 1, "horizontal_angle": 90, "zoom": 5,
    }
    identity = EditRequest(model=endpoints.NANO_BANANA_EDIT, image=Path("a.png"), prompt="same face, night sky",
                           references=(Path("r.png"),), width=1536, height=864)
    assert endpoints.identity_edit(identity.model_copy(update={"seed": 42}), ["u://a", "u://r"]) == {
        "prompt": "same face, night sky", "image_urls": ["u://a", "u://r"], "resolution": "2K", "output_format": "png",
        "num_images": 1, "seed": 42,  # the seed the edit is keyed by is sent (fal documents an integer `seed`)
    }
    with pytest.raises(BadRequest, match="not an edit endpoint"):
        endpoints.edit_endpoint(angles.model_copy(update={"model": "gemini-2.5-flash-image"}))


def test_trainer_mappings_name_the_zip_field_each_trainer_wants() -> None:
    request = TrainRequest(model=endpoints.Z_IMAGE_TRAINER, images_zip=Path("ana.zip"), trigger="ana_v1", steps=1500)
    assert endpoints.trainer(request)(request, "u://zip") == {"image_data_url": "u://zip", "steps": 1500,
                                                              "default_caption": "ana_v1"}
    wan = request.model_copy(update={"model": endpoints.WAN22_TRAINER})
    assert endpoints.trainer(wan)(wan, "u://zip") == {"training_data_url": "u://zip", "trigger_phrase": "ana_v1",
                                                      "steps": 1500}
    with pytest.raises(BadRequest, match="not a trainer"):
        endpoints.trainer(request.model_copy(update={"model": "fal-ai/wan-trainer"}))


def test_results_to_outputs() -> None:
    result = {"images": [{"url": "u://1", "width": 64, "height": 96, "content_type": "image/png"}], "seed": 1}
    assert endpoints.images("e", result) == [Output("u://1", 64, 96)]
    assert endpoints.images("e", {"images": [{"url": "u://2"}]}) == [Output("u://2")]
    assert endpoints.image("e", {"image": {"url": "u://3", "width": 8, "height": 8}}) == [Output("u://3", 8, 8)]
    assert endpoints.video("e", {"video": {"url": "u://4"}, "seed": 2}) == [Output("u://4")]
    # fal lists `diffusers_lora_file` (the low-noise adapter) first; the URLs say nothing of which is which
    trained = {"config_file": {"url": "u://c/config.json"}, "diffusers_lora_file": {"url": "u://a/lora.safetensors"},
               "high_noise_lora": {"url": "u://b/lora.safetensors"}, "debug_preprocessed_output": None}
    assert endpoints.weights(endpoints.WAN22_TRAINER, trained) == ["u://b/lora.safetensors", "u://a/lora.safetensors"]
    for model in (endpoints.Z_IMAGE_TRAINER, endpoints.FLUX2_TRAINER):
        assert endpoints.weights(model, trained) == ["u://a/lora.safetensors"]


@pytest.mark.parametrize(("model", "result", "missing"), [
    (endpoints.Z_IMAGE_TRAINER, {"config_file": {"url": "u://c"}}, "diffusers_lora_file"),
    (endpoints.WAN22_TRAINER, {"diffusers_lora_file": {"url": "u://l"}}, "high_noise_lora"),
    (endpoints.WAN22_TRAINER, {"high_noise_lora": {"url": "u://h"}, "diffusers_lora_file": None}, "diffusers_lora_file"),
])
def test_a_trainer_result_without_its_weights_is_unusable(model: str, result: dict[str, Any], missing: str) -> None:
    with pytest.raises(UnusableOutput, match=rf"no LoRA weights \({missing} missing\)") as caught:
        endpoints.weights(model, result)
    assert caught.value.billed and not is_retryable(caught.value)


def test_images_the_safety_checker_flagged_are_content_rejected_and_billed() -> None:
    images = [{"url": "u://1", "width": 8, "height": 8}, {"url": "u://2", "width": 8, "height": 8}]
    assert endpoints.images("e", {"images": images[:1], "has_nsfw_concepts": [False]}) == [Output("u://1", 8, 8)]
    assert endpoints.images("e", {"images": images, "has_nsfw_concepts": [True, False]}) == [Output("u://2", 8, 8)]
    with pytest.raises(ContentRejected, match=r"^fal: e: content policy: the safety checker flagged the output") as caught:
        endpoints.images("e", {"images": images[:1], "has_nsfw_concepts": [True]})
    error = caught.value
    assert error.billed and not is_retryable(error) and not isinstance(error, UnusableOutput) and error.provider == "fal"


@pytest.mark.parametrize(("parse", "result", "message"), [
    (endpoints.images, {"images": []}, "no images"),
    (endpoints.images, {"images": [{"url": ""}]}, "a file without a url"),
    (endpoints.image, {"images": [{"url": "u://1"}]}, "no image"),
    (endpoints.video, {}, "no video"),
])
def test_results_without_outputs_are_unusable(
    parse: Callable[[str, dict[str, Any]], list[Any]], result: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnusableOutput, match=message) as caught:
        parse("fal-ai/x", result)
    # fal finished (and billed) the request: never retried blindly, and not a server error
    assert not isinstance(caught.value, ServerError) and not caught.value.retryable and caught.value.billed
    assert not is_retryable(caught.value) and caught.value.provider == "fal"


def test_http_statuses_map_to_the_taxonomy_with_one_line_messages() -> None:
    policy = [{"loc": ["body", "prompt"], "msg": "The content was flagged\nby a content checker.",
               "type": "content_policy_violation"}]
    invalid = [{"loc": ["body", "image_size", "width"], "msg": "Input should be between 512 and 2048",
                "type": "value_error"}]
    cases = [
        (401, "x", MissingCredentials, "FAL_KEY was refused by fal.ai (401)"),
        (403, "x", MissingCredentials, "FAL_KEY was refused by fal.ai (403)"),
        (408, "x", ProviderTimeout, "fal: e: fal timed out the request (408)"),
        (429, "slow down", RateLimited, "fal: e: rate limited (429): slow down"),
        (500, "Internal Server Error", ServerError, "fal: e: server error (500): Internal Server Error"),
        (503, "upstream", ServerError, "fal: e: server error (503): upstream"),
        (422, policy, ContentRejected, "fal: e: content policy: prompt: The content was flagged by a content checker."),
        (422, invalid, BadRequest, "fal: e: image_size.width: Input should be between 512 and 2048"),
        (404, "Application 'e' not found", BadRequest, "fal: e: Application 'e' not found"),
    ]
    for status, detail, kind, message in cases:
        error = status_error(status, detail, "e", "req-1")
        assert type(error) is kind and str(error) == message and error.provider == "fal" and error.request_id == "req-1"
        assert error.billed == (status == 422), status  # a 422 for an accepted request may be billed; a 5xx never
        unsubmitted = status_error(status, detail, "e")
        assert type(unsubmitted) is kind and not unsubmitted.billed  # refused at submit: no request, nothing billed
    assert describe({"error": "x"}) == '{"error": "x"}'
    assert len(describe("word " * 200)) <= 300


def test_transport_failures_map_to_retryable_errors() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:1/queue/")
    assert isinstance(fal_error(httpx.ConnectError("refused", request=request), "e"), TransportError)
    assert isinstance(fal_error(httpx.ReadTimeout("slow", request=request), "e"), ProviderTimeout)
    response = httpx.Response(401, json={"detail": "bad"}, request=request)
    refused = httpx.HTTPStatusError("401", request=request, response=response)
    assert isinstance(fal_error(refused, "upload"), MissingCredentials) and 401 in TRANSIENT


def test_hosts_come_from_the_environment_and_fal_client_tries_once() -> None:
    from fal_client import client as fal_wire

    configure_fal_client({"REELFLOW_FAL_QUEUE_URL": "http://127.0.0.1:9/queue", "REELFLOW_FAL_REST_URL": "http://h/rest/",
                          "REELFLOW_FAL_CDN_URL": " http://h/cdn "})
    try:
        assert (fal_wire.QUEUE_URL_FORMAT, fal_wire.REST_URL, fal_wire.CDN_URL) == (
            "http://127.0.0.1:9/queue/", "http://h/rest", "http://h/cdn")
        assert fal_wire.MAX_ATTEMPTS == 1
    finally:
        configure_fal_client({})
    assert (fal_wire.QUEUE_URL_FORMAT, fal_wire.REST_URL, fal_wire.CDN_URL) == (FAL_QUEUE_URL, FAL_REST_URL, FAL_CDN_URL)
    assert FAL_QUEUE_URL == "https://queue.fal.run/"


def test_capabilities_with_one_endpoint_refuse_other_models() -> None:
    endpoints.expect_model(endpoints.WAN_FLF, endpoints.WAN_FLF, "a first-last-frame video")
    with pytest.raises(BadRequest, match=r"fal: model 'fal-ai/kling-video' is not an upscale endpoint \(have: fal-ai/seedvr"):
        endpoints.expect_model("fal-ai/kling-video", endpoints.SEEDVR_UPSCALE, "an upscale")
