"""The embedded default provider: real media made locally and deterministically, priced as the cloud."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import ImageFilter

from reelflow.media.hashing import sha256_file
from reelflow.media.images import load_image, resize_cover, save_png
from reelflow.media.motion import overlay_rows
from reelflow.providers.base import UNRECORDED, Ticket
from reelflow.providers.local.draw import (
    draw_edit,
    draw_keyframe,
    draw_turn,
    elsewhere,
    keyframe_overlay_rows,
    save_frame,
    video_overlay,
)
from reelflow.providers.local.faults import FaultSchedule
from reelflow.providers.local.flf import render_first_last, render_stuck
from reelflow.providers.local.judge import PASS_SCORE, judge_pixels
from reelflow.providers.local.replay import VIDEO_VAR, Replays, replaying
from reelflow.providers.local.train import placeholder_files
from reelflow.providers.sizes import billed_size
from reelflow.schemas.errors import BadRequest, ContractError, MediaError, ProviderError
from reelflow.schemas.gemini_models import gemini_model
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.requests import (
    SAMPLING,
    EditRequest,
    Generation,
    ImageRequest,
    JudgeRequest,
    TrainedLora,
    TrainRequest,
    UpscaleRequest,
    Verdict,
    VideoRequest,
    _Request,
)
from reelflow.schemas.wire.fal import QWEN_ANGLES

NAME = "local"
LOCAL_VERSION = 4  # raise when what the local provider draws or encodes changes, so caches make it again
# Raise when only what the local provider draws for edits changes: edits are made again, every other cached render is
# kept. 1: angle turns for the multiple-angles model; other edits keep the subject on a new backdrop and light.
EDIT_VERSION = 1
DEFAULT_MODELS: dict[str, str] = {
    "keyframes": "fal-ai/flux-2/lora",
    "previz": "fal-ai/z-image/turbo",
    "upscale": "gemini-2.5-flash-image",
    "video": "fal-ai/wan/v2.2-a14b/image-to-video/lora",
    "candidates": "gemini-2.5-flash-image",
    "qc": "gemini-2.5-flash",
    "training": "fal-ai/flux-2-trainer",
}
# These names are what the local provider draws as and its cache identity: renaming one would make every local
# output of that stage again for nothing. A name the cloud has retired is priced as its replacement
# (schemas/gemini_models.py), so the shadow cost is what the same call costs on the cloud today.
SHARPEN = ImageFilter.UnsharpMask(radius=1.2, percent=45, threshold=2)


def _input_sha256(field: str, path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as error:
        raise MediaError(f"local: cannot read {field} input {path.name}: {error.strerror or error}") from None


def shadow_cost(request: _Request) -> float:
    """What the same call costs on the cloud, at the request's real size and length; 0.0 where the price table
    cannot price it (a model it does not list, or a request of another kind than the model's unit)."""
    try:
        return load_prices().cost_of(request, model=priced_as(request.model), size=billed_size(request))
    except ContractError:
        return 0.0


def priced_as(model: str) -> str:
    """The cloud model a local model name is priced as: a retired Gemini id at its replacement's price."""
    row = gemini_model(model)
    return row.replacement if row is not None and not row.usable and row.replacement else model


@contextmanager
def _written(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` that replaces `out` only once it is completely written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix)
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _ledgered(ticket: Ticket | None, endpoint: str, key: str, cost_usd: float) -> Iterator[str]:
    """Write the call to the ledger as a cloud provider would: submitted, then completed or failed (unbilled)."""
    request_id = f"local-{key[:16]}"
    ticket = ticket or UNRECORDED
    if ticket.resume(endpoint) is None:
        with ticket.sending(endpoint) as sent:
            sent.accepted(request_id)
    try:
        yield request_id
    except ProviderError as error:
        ticket.failed(endpoint, request_id, f"{error.kind}: {error}")
        raise
    except Exception as error:
        ticket.failed(endpoint, request_id, f"{type(error).__name__}: {error}")
        raise
    ticket.completed(endpoint, request_id, cost_usd)


def _check_size(width: int, height: int, *, even: bool = False) -> None:
    if width < 1 or height < 1 or (even and (width % 2 or height % 2)):
        need = "positive even" if even else "positive"
        raise BadRequest(f"local: size {width}x{height} must be {need} width and height", provider=NAME)


class LocalProvider:
    """Every stage offline: animatic keyframes, resampling, visible edits and first-last-frame motion.

    Nothing is paid, yet every call writes the ledger like a cloud provider, at its shadow cost: budgets, limits
    and reports behave offline as they will on the cloud.
    """

    name = NAME

    def __init__(self, faults: FaultSchedule | None = None, replay: bool = False) -> None:
        self.faults = faults or FaultSchedule()
        self.replays = Replays() if replay else None  # benchmark mode: first-last clips replayed (replay.py)
        self.default_models = dict(DEFAULT_MODELS)

    @classmethod
    def from_env(cls) -> LocalProvider:
        """A provider with the latency, faults and video mode the `REELFLOW_LOCAL_*` variables ask for."""
        return cls(FaultSchedule.from_env(), replay=replaying(os.environ.get(VIDEO_VAR)))

    def estimate(self, request: _Request) -> float:
        """The shadow cost of the call: what it would cost on the cloud, at its real size and length."""
        return shadow_cost(request)

    def check(self, request: _Request) -> None:
        """Nothing leaves the machine: every request the local provider can draw is valid."""

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """Every field (notes included) and the drawing's version (an edit's too): the local output depends on all of them."""
        edit = {"edit_version": EDIT_VERSION} if isinstance(request, EditRequest) else {}
        replay = {"video": "replay"} if self.replays is not None and isinstance(request, VideoRequest) else {}
        params = request.params()
        if isinstance(request, VideoRequest):  # WAN's sampling is not drawn
            params = {name: value for name, value in params.items() if name not in SAMPLING}
        return params | {"local_version": LOCAL_VERSION} | edit | replay

    def request_key(self, method: str, request: _Request) -> str:
        """sha256 of the method, the request's params and the content of its input files."""
        inputs = {field: _input_sha256(field, path) for field, path in request.input_paths().items()}
        canonical = json.dumps([method, self.cache_params(request), inputs], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def generate_image(self, request: ImageRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        _check_size(request.width, request.height)
        drawn = request
        key = self.request_key("generate_image", request)
        if request.notes is not None and self.faults.off_model(key):
            off_model = {"characters": (), "location": elsewhere(request.notes.location)}
            drawn = request.model_copy(update={"notes": request.notes.model_copy(update=off_model)})
        elif request.notes is not None and self.faults.off_location(key):
            drawn = request.model_copy(update={"notes": request.notes.model_copy(
                update={"location": elsewhere(request.notes.location)})})
        return self._call("generate_image", request, out,
                          lambda path: save_frame(draw_keyframe(drawn), path, keyframe_overlay_rows(drawn)), ticket)

    def judge_image(self, request: JudgeRequest, *, ticket: Ticket | None = None) -> Verdict:
        """Gate 2 offline: the frame holds each character's figure and the location's look, as drawn here."""
        key = self.request_key("judge_image", request)
        cost = shadow_cost(request)
        with _ledgered(ticket, request.model, key, cost), self.faults.serving(key, request.prompt, request=request):
            score, reasons = judge_pixels(load_image(request.image), request.characters, request.location)
        return Verdict(score=round(score, 4), passed=score >= PASS_SCORE, reasons=reasons, cost_usd=cost)

    def upscale_image(self, request: UpscaleRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        _check_size(request.width, request.height)

        def produce(path: Path) -> None:  # a caption band stays named: a push still holds it (media/motion.py)
            size = (request.width, request.height)
            source = load_image(request.image)
            save_frame(resize_cover(source, size).filter(SHARPEN), path, overlay_rows(source, size))

        return self._call("upscale_image", request, out, produce, ticket)

    def edit_image(self, request: EditRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        _check_size(1 if request.width is None else request.width, 1 if request.height is None else request.height)

        angles = (request.horizontal_angle, request.vertical_angle, request.zoom)
        turn = request.model == QWEN_ANGLES and any(angle is not None for angle in angles)

        def produce(path: Path) -> None:
            image = load_image(request.image)
            size = request.output_size(image.size)
            if turn:
                horizontal, vertical, zoom = (0.0 if angle is None else angle for angle in angles)
                save_png(draw_turn(image, horizontal, vertical, zoom, size), path)
            else:
                save_png(draw_edit(image, request.prompt, request.seed, size), path)

        return self._call("edit_image", request, out, produce, ticket)

    def train_lora(self, request: TrainRequest, out: Path, *, ticket: Ticket | None = None) -> TrainedLora:
        """Trains nothing: writes the trainer's weight files into `out` as real safetensors of placeholder numbers,
        drawn from the zip's content, seed and steps, at the training's shadow cost."""
        key = self.request_key("train_lora", request)
        zip_sha256 = _input_sha256("images_zip", request.images_zip)
        cost = shadow_cost(request)
        files: list[Path] = []
        with _ledgered(ticket, request.model, key, cost) as request_id, \
                self.faults.serving(key, request.trigger, request=request):
            for name, data in placeholder_files(request, zip_sha256):
                with _written(out / name) as partial:
                    partial.write_bytes(data)
                files.append(out / name)
        return TrainedLora(provider=NAME, model=request.model, weights=[path.name for path in files], files=files,
                           trigger=request.trigger, cost_usd=cost, request_id=request_id)

    def first_last_video(self, request: VideoRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        _check_size(request.width, request.height, even=True)

        key = self.request_key("first_last_video", request)
        size, stuck = (request.width, request.height), self.faults.stuck_video(key)

        def produce(path: Path) -> None:
            if self.replays is not None:
                self.replays.write(path, key, size=size, num_frames=request.num_frames, fps=request.fps, stuck=stuck)
                return
            if stuck:
                render_stuck(request.first, path, num_frames=request.num_frames, fps=request.fps, size=size)
                return
            notes = request.notes
            render_first_last(
                request.first, request.last, path, num_frames=request.num_frames, fps=request.fps, size=size,
                seed=request.seed,
                overlay=None if notes is None else video_overlay(size, notes, request.prompt, request.loras),
            )

        return self._call("first_last_video", request, out, produce, ticket)

    def _call(
        self, method: str, request: _Request, out: Path, produce: Callable[[Path], None], ticket: Ticket | None
    ) -> Generation:
        """Faults first, then the file, then what the cloud would have charged, all under the ledger."""
        started = time.monotonic()
        key = self.request_key(method, request)
        prompts = " ".join(str(getattr(request, field, None) or "") for field in ("prompt", "negative_prompt"))
        cost = shadow_cost(request)
        with _ledgered(ticket, request.model, key, cost) as request_id, self.faults.serving(key, prompts, request=request):
            with _written(out) as partial:
                produce(partial)
        return Generation(
            provider=NAME,
            model=request.model,
            files=[out],
            cost_usd=cost,
            request_id=request_id,
            seconds=time.monotonic() - started,
        )
