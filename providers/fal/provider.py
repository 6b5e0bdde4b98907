"""The fal.ai provider: keyframes, previz, upscales, edits, first-last-frame video and LoRA training on fal's queue."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fal_client.client import SyncClient

from reelflow.media.images import resize_cover, save_png
from reelflow.media.probe import probe_image
from reelflow.providers.base import Ticket
from reelflow.providers.cancel import Answer
from reelflow.providers.fal import cancel, endpoints
from reelflow.providers.fal.endpoints import Output
from reelflow.providers.fal.errors import NAME
from reelflow.providers.fal.hosts import configure_fal_client
from reelflow.providers.fal.loras import readable_loras
from reelflow.providers.fal.queue import DEADLINE_S, POLL_S, FalQueue, Result, download, verified_image, verified_video
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import MediaError, MissingCredentials
from reelflow.schemas.pricing import load_prices, request_size
from reelflow.schemas.requests import (
    SAMPLING,
    EditRequest,
    Generation,
    ImageRequest,
    TrainedLora,
    TrainRequest,
    UpscaleRequest,
    VideoRequest,
    _Request,
)

KEY_ENV = "FAL_KEY"
POLL_ENV = "REELFLOW_FAL_POLL_S"
DEADLINE_ENV = "REELFLOW_FAL_DEADLINE_S"
TIMEOUT_ENV = "REELFLOW_FAL_TIMEOUT_S"  # how long one submit or upload waits for fal's answer
TIMEOUT_S = 120.0  # fal-client's own default
DEFAULT_MODELS: dict[str, str] = {
    "keyframes": endpoints.FLUX2_LORA,
    "previz": endpoints.Z_IMAGE_TURBO,
    "upscale": endpoints.SEEDVR_UPSCALE,
    "video": endpoints.WAN_FLF,
    "candidates": endpoints.QWEN_ANGLES,
    "training": endpoints.FLUX2_TRAINER,  # LoRAs for FLUX.2, the default keyframe model
}
CHECK_URL = "https://fal.media/files/reelflow/check"  # stands in for uploads while a request is validated
# Fields only offline providers draw; fal's output does not depend on them (nor on WAN's SAMPLING but its steps:
# fal's WAN endpoint is sent `num_inference_steps` only).
NOT_SENT = frozenset({"notes"})
WAN_UNSENT = SAMPLING - {"steps"}
# Raise an endpoint's number when what fal makes for the same request changes (a field reelflow now sends): only
# that endpoint's cached outputs are made again. 1 is implicit, so keys made before a number existed stay valid.
# SeedVR 2: asks for PNG (SeedVR answers JPEG otherwise). Nano Banana Pro edit 2: the seed in its key is now sent.
# WAN 2: project.json's wan.steps is sent (fal used its own 27 before).
WIRE_VERSIONS: dict[str, int] = {endpoints.SEEDVR_UPSCALE: 2, endpoints.NANO_BANANA_EDIT: 2, endpoints.WAN_FLF: 2}


WAN_RESOLUTION = "720p"  # what endpoints.first_last_video asks WAN for; its per-second price depends on it
# What fal bills a reference image of FLUX.2's LoRA edit at: one megapixel each (prices.toml's row and its note)
REFERENCE_BILLED_SIZE = (1024, 1024)


def weight_name(url: str) -> str:
    """A weight file's name from its URL, in safe characters (`weights.safetensors` when the URL has none)."""
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    safe = "".join(char if char.isalnum() or char in "._-" else "_" for char in name).lstrip(".")
    return safe or "weights.safetensors"


def _edit_billed_size(request: EditRequest) -> tuple[int, int] | None:
    """The size fal bills an edit at: the input image's (no image_size is sent), else the size asked for."""
    try:
        source = probe_image(request.image)
    except MediaError:
        return request_size(request)
    return source.width, source.height


def _upscale_billed_size(request: UpscaleRequest) -> tuple[int, int]:
    """The size fal bills a SeedVR2 upscale at: its output, the source image times the factor sent (the source's size
    probed as `upscale_image` probes it), not the size reelflow resamples to; the size asked for if it cannot be read."""
    target = (request.width, request.height)
    try:
        probed = probe_image(request.image)
        source = (probed.width, probed.height)
    except MediaError:
        if request.source_size is None:
            return target
        source = request.source_size
    return endpoints.upscaled_size(source, target)


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A scratch folder beside `out` for downloads, removed afterwards; `out` is replaced only when complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as folder:
        yield Path(folder)



class FalProvider:
    """Every cloud stage on fal.ai, paid once per request: ids are in the ledger before any waiting."""

    name = NAME

    def __init__(self, key: str, *, poll_s: float = POLL_S, deadline_s: float = DEADLINE_S,
                 timeout_s: float = TIMEOUT_S) -> None:
        configure_fal_client()
        self.default_models = dict(DEFAULT_MODELS)
        self.queue = FalQueue(SyncClient(key=key, default_timeout=timeout_s), poll_s=poll_s, deadline_s=deadline_s)

    @classmethod
    def from_env(cls) -> FalProvider:
        """A provider with the key in FAL_KEY, polling, deadline and answer timeout from REELFLOW_FAL_POLL_S /
        _DEADLINE_S / _TIMEOUT_S."""
        key = os.environ.get(KEY_ENV, "").strip()
        if not key:
            raise MissingCredentials("FAL_KEY is not set: export your fal.ai key as FAL_KEY", provider=NAME)
        return cls(key, poll_s=env_number(POLL_ENV, POLL_S, positive=True),
                   deadline_s=env_number(DEADLINE_ENV, DEADLINE_S, positive=True),
                   timeout_s=env_number(TIMEOUT_ENV, TIMEOUT_S, positive=True))

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """Every field but input files and the offline-only frame notes, and the endpoint's wire version past 1."""
        unsent = NOT_SENT | WAN_UNSENT if isinstance(request, VideoRequest) else NOT_SENT
        params = {name: value for name, value in request.params().items() if name not in unsent}
        version = WIRE_VERSIONS.get(request.model, 1)
        return params if version == 1 else params | {"wire_version": version}

    def estimate(self, request: _Request) -> float:
        """The price-table cost of the call as fal bills it: output megapixels (an upscale's as SeedVR2 makes them),
        video seconds at the resolution sent, training steps, or an image at its resolution tier."""
        prices = load_prices()
        if isinstance(request, ImageRequest):
            endpoint = endpoints.image_endpoint(request)
            inputs = prices.cost(endpoint, size=REFERENCE_BILLED_SIZE, count=len(request.references)) \
                if request.references else 0.0
            return round(prices.cost_of(request, model=endpoint) + inputs, 6)
        if isinstance(request, UpscaleRequest):
            return prices.cost_of(request, size=_upscale_billed_size(request))
        if isinstance(request, VideoRequest):
            return prices.cost_of(request, resolution=WAN_RESOLUTION)
        if isinstance(request, EditRequest) and request.model == endpoints.NANO_BANANA_EDIT:
            return prices.cost_of(request, resolution=endpoints._resolution(request.width, request.height))
        if isinstance(request, EditRequest):
            return prices.cost_of(request, size=_edit_billed_size(request))
        return prices.cost_of(request)

    def check(self, request: _Request) -> None:
        """Build the arguments this request would send, with stand-in URLs, and validate them against fal's schema."""
        if isinstance(request, ImageRequest):
            endpoints.text_to_image(request, [CHECK_URL] * len(request.references))
        elif isinstance(request, VideoRequest):
            endpoints.expect_model(request.model, endpoints.WAN_FLF, "a first-last-frame video")
            endpoints.first_last_video(request, CHECK_URL, CHECK_URL)
        elif isinstance(request, UpscaleRequest):
            endpoints.expect_model(request.model, endpoints.SEEDVR_UPSCALE, "an upscale")
            endpoints.upscale(request, CHECK_URL, (max(1, request.width // 2), max(1, request.height // 2)))
        elif isinstance(request, EditRequest):
            endpoints.edit_endpoint(request)(request, [CHECK_URL] * (1 + len(request.references)))
        elif isinstance(request, TrainRequest):
            endpoints.trainer(request)(request, CHECK_URL)

    def generate_image(self, request: ImageRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """Text to image at exactly the requested size: FLUX.2 with LoRAs (with reference images: its LoRA edit
        endpoint, the images uploaded first), or Z-Image Turbo."""
        endpoint = endpoints.image_endpoint(request)
        self.check(request)  # before any LoRA upload
        image_urls = [self.queue.upload(path) for path in request.references]
        arguments = endpoints.text_to_image(readable_loras(self.queue, request), image_urls)
        size = (request.width, request.height)

        def finish(result: Result) -> None:
            self._write_image(endpoint, endpoints.images(endpoint, result)[0], out, expected=size)

        return self._generation(request, endpoint, arguments, out, ticket, finish)

    def edit_image(self, request: EditRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """Nano Banana Pro edit by instruction, or Qwen multiple angles; resampled to the requested size."""
        self.check(request)  # before any upload
        mapping = endpoints.edit_endpoint(request)
        urls = [self.queue.upload(path) for path in (request.image, *request.references)]
        arguments = mapping(request, urls)

        def finish(result: Result) -> None:
            self._write_image(request.model, endpoints.images(request.model, result)[0], out,
                              resize=request.output_size)

        return self._generation(request, request.model, arguments, out, ticket, finish)

    def upscale_image(self, request: UpscaleRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """SeedVR2 by the factor that covers the target, then resampled to exactly its size."""
        self.check(request)  # before any upload
        endpoints.expect_model(request.model, endpoints.SEEDVR_UPSCALE, "an upscale")
        source = probe_image(request.image)
        arguments = endpoints.upscale(request, self.queue.upload(request.image), (source.width, source.height))
        size = (request.width, request.height)

        def finish(result: Result) -> None:
            self._write_image(request.model, endpoints.image(request.model, result)[0], out, resize=lambda _: size)

        return self._generation(request, request.model, arguments, out, ticket, finish)

    def first_last_video(self, request: VideoRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """WAN 2.2 from the first to the last frame, with exactly `num_frames` frames (720p)."""
        self.check(request)  # before any upload
        endpoints.expect_model(request.model, endpoints.WAN_FLF, "a first-last-frame video")
        endpoints.check_frames(request.num_frames)
        first_url, last_url = self.queue.upload(request.first), self.queue.upload(request.last)
        arguments = endpoints.first_last_video(readable_loras(self.queue, request), first_url, last_url)

        def finish(result: Result) -> None:
            output = endpoints.video(request.model, result)[0]
            with _staged(out) as folder:
                clip = download(output.url, folder / "download.mp4", request.model)
                verified_video(clip, request.model, frames=request.num_frames)
                os.replace(clip, out)

        return self._generation(request, request.model, arguments, out, ticket, finish)

    def train_lora(self, request: TrainRequest, out: Path, *, ticket: Ticket | None = None) -> TrainedLora:
        """A character LoRA from the zip: inference loads the weights from fal's URLs, and each file is downloaded
        into `out` too, so its sha256 is on record and a copy stays with the project."""
        self.check(request)  # before any upload
        mapping = endpoints.trainer(request)
        arguments = mapping(request, self.queue.upload(request.images_zip))
        cost = self.estimate(request)

        def finish(result: Result) -> tuple[list[str], list[Path]]:
            urls = endpoints.weights(request.model, result)
            files = [download(url, out / f"{index}-{weight_name(url)}", request.model) for index, url in enumerate(urls)]
            return urls, files

        done = self.queue.run(request.model, arguments, ticket=ticket, cost_usd=cost, finish=finish)
        urls, files = done.value
        return TrainedLora(provider=NAME, model=request.model, weights=urls, files=files, trigger=request.trigger,
                           cost_usd=cost, request_id=done.request_id)

    def cancel_request(self, endpoint: str, request_id: str, timeout_s: float) -> Answer:
        """Ask fal to cancel a queued request (providers/fal/cancel.py)."""
        return cancel.cancel_request(self.queue.client, endpoint, request_id, timeout_s)

    def request_state(self, endpoint: str, request_id: str, timeout_s: float) -> Answer:
        """How a queued request stands at fal now (providers/fal/cancel.py)."""
        return cancel.request_state(self.queue.client, endpoint, request_id, timeout_s)

    def _generation(self, request: _Request, endpoint: str, arguments: dict[str, Any], out: Path,
                    ticket: Ticket | None, finish: Callable[[Result], None]) -> Generation:
        cost = self.estimate(request)
        done = self.queue.run(endpoint, arguments, ticket=ticket, cost_usd=cost, finish=finish)
        return Generation(provider=NAME, model=endpoint, files=[out], cost_usd=cost, request_id=done.request_id,
                          seconds=done.seconds)

    @staticmethod
    def _write_image(endpoint: str, output: Output, out: Path, *, expected: tuple[int, int] | None = None,
                     resize: Callable[[tuple[int, int]], tuple[int, int]] | None = None) -> None:
        """Download, verify and write one image as PNG at `out`, resampled to the size `resize` gives."""
        reported = (output.width, output.height) if output.width and output.height else None
        with _staged(out) as folder:
            image = verified_image(download(output.url, folder / "download", endpoint), endpoint,
                                   expected=expected, reported=reported)
            if resize is not None and image.size != resize(image.size):
                image = resize_cover(image, resize(image.size))
            save_png(image, folder / out.name)
            os.replace(folder / out.name, out)
