"""The ComfyUI provider: keyframes, previz, upscales, angle edits and first-last-frame video as native ComfyUI graphs.

Graphs run on a ComfyUI server (a `host`: the studio's own, or a RunPod pod reelflow starts) through its HTTP API,
or as worker-comfyui jobs on a RunPod serverless endpoint. Before anything is queued, every graph is checked against
what the server says it has (`/object_info`: each model file present, each value in range) and, for RunPod, the
network volume's model folders over S3. LoRAs are loaded by file name (`reelflow-<sha256>.safetensors`): put on the
volume for RunPod, named with where to copy them for a server the studio runs.

Money: a graph on a pod is a share of the pod's own ledger row (its GPU seconds at the pod's $/hr, shown by shot
and stage, never counted twice); a serverless job is billed from its execution plus the worker's idle time at the
endpoint's $/s; a studio's own server costs nothing here.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image

from reelflow.media.hashing import sha256_file
from reelflow.media.images import resize_cover, save_png
from reelflow.media.probe import probe_video
from reelflow.providers.base import UNRECORDED, Ticket
from reelflow.providers.comfyui import graphs
from reelflow.providers.comfyui.client import ComfyClient, GraphFailed, GraphRefused, PromptLost
from reelflow.providers.comfyui.graphs import Graph, WanSettings
from reelflow.providers.comfyui.models import model_files
from reelflow.providers.comfyui.object_info import combo_values, graph_problems
from reelflow.providers.runpod import serverless
from reelflow.schemas import gpu
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import BadRequest, MediaError, OutcomeUnknown, ProviderTimeout, UnusableOutput
from reelflow.schemas.project import ComfyUI, RunpodServerless, Wan
from reelflow.schemas.requests import (
    EditRequest,
    Generation,
    ImageRequest,
    LoraRef,
    UpscaleRequest,
    VideoRequest,
    _Request,
)

if TYPE_CHECKING:
    from reelflow.providers.runpod.volume import Volume

# Raise when what a graph makes for the same request changes (a node, a setting, how the output is read): every
# cached ComfyUI output is made again. tests/tasks/test_stage_versions.py fingerprints that code.
GRAPH_VERSION = 1
DEFAULT_MODELS: dict[str, str] = {
    "keyframes": gpu.FLUX2_DEV,
    "previz": gpu.Z_IMAGE_TURBO,
    "upscale": gpu.UPSCALE,
    "video": gpu.WAN_FLF,
    "candidates": gpu.QWEN_EDIT,
}
ROLES: dict[str, tuple[str, ...]] = {  # the model files each graph loads
    gpu.FLUX2_DEV: ("flux2_unet", "flux2_clip", "flux2_vae"),
    gpu.Z_IMAGE_TURBO: ("zimage_unet", "zimage_clip", "zimage_vae"),
    gpu.UPSCALE: ("upscale",),
    gpu.WAN_FLF: ("wan_high", "wan_low", "wan_clip", "wan_vae"),
    gpu.QWEN_EDIT: ("qwen_unet", "qwen_clip", "qwen_vae", "qwen_lightning", "qwen_angles"),
}
STAND_IN = (64, 64)  # the image a check builds graphs with, before the real inputs exist
DEADLINE_ENV = "REELFLOW_RUNPOD_DEADLINE_S"  # a serverless job's wait before it is cancelled
POLL_ENV = "REELFLOW_RUNPOD_POLL_S"


class ComfyHost(Protocol):
    """A ComfyUI server the provider queues graphs on."""

    share: bool  # a graph's cost is a share of a rented pod's own ledger row

    def session(self) -> AbstractContextManager[ComfyClient]:
        """The server, up (started and leased for a pod) while the block's work runs."""

    def known(self) -> ComfyClient | None:
        """The server if one is up now (nothing is started for it)."""

    def price_per_s(self) -> float:
        """What a second of its GPU costs."""


def lora_sha256(lora: LoraRef) -> str:
    """The adapter's weights' sha256: the registry's, else its project copy's."""
    if lora.sha256 is not None:
        return lora.sha256
    if lora.file is not None and lora.file.is_file():
        return sha256_file(lora.file)
    raise BadRequest(f"comfyui: LoRA {lora.character or lora.path}: no copy of its weights in the project, so no "
                     "file name ComfyUI could load it by", provider="comfyui")


def lora_file(lora: LoraRef) -> str:
    """The file name ComfyUI loads a character adapter by: its weights' sha256."""
    return f"reelflow-{lora_sha256(lora)}.safetensors"


@cache
def _stand_in() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="reelflow-comfyui-check-"))
    save_png(Image.new("RGB", STAND_IN, (128, 128, 128)), folder / "stand-in.png")
    return folder / "stand-in.png"


def _checkable(request: _Request) -> _Request:
    """`request` with a stand-in image for every input file not made yet (a check runs before they exist)."""
    update: dict[str, Any] = {}
    for name, value in request:
        if isinstance(value, Path) and not value.exists():
            update[name] = _stand_in()
        elif isinstance(value, tuple) and value and all(isinstance(item, Path) for item in value):
            update[name] = tuple(item if item.exists() else _stand_in() for item in value)
    return request.model_copy(update=update) if update else request


class ComfyUIProvider:
    """Every GPU stage as a ComfyUI graph, on a server (`host`) or a RunPod serverless endpoint."""

    def __init__(self, name: str, settings: ComfyUI, wan: Wan, *, host: ComfyHost | None = None,
                 volume: Volume | None = None, measured: Callable[[str], float | None] | None = None) -> None:
        self.name, self.settings, self.host, self.volume = name, settings, host, volume
        self.wan = WanSettings(steps=wan.steps, cfg=wan.cfg, shift=wan.shift)
        self.files = model_files(settings.models)
        self.default_models = dict(DEFAULT_MODELS)
        self.serverless = settings.runpod if isinstance(settings.runpod, RunpodServerless) else None
        self.share = host is not None and host.share
        self.measured = measured or (lambda model: None)
        self._volume_names: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # --- what a call depends on and costs ------------------------------------------------------------------------

    def cache_params(self, request: _Request) -> dict[str, Any]:
        """Every field but the offline-only frame notes, the model files the graph loads (an override changes the
        output) and the graphs' version."""
        params = {name: value for name, value in request.params().items() if name != "notes"}
        return params | {"model_files": [self.files[role].name for role in ROLES.get(request.model, ())],
                         "graph_version": GRAPH_VERSION}

    def gpu_seconds(self, request: _Request) -> float:
        """How long the graph holds the GPU: the ledger's measurement for the model, else the table's."""
        measured = self.measured(request.model)
        if measured is not None:
            return measured
        if isinstance(request, VideoRequest):
            return gpu.gpu_seconds(request.model, steps=request.steps or self.wan.steps, frames=request.num_frames,
                                   pixels=request.width * request.height)
        return gpu.gpu_seconds(request.model)

    def estimate(self, request: _Request) -> float:
        """GPU seconds at the GPU's price: a serverless job adds the worker's idle time; a studio's server is free."""
        if self.serverless is not None:
            return round((self.gpu_seconds(request) + self.serverless.idle_s) * self.serverless.price_per_s, 6)
        if self.host is None:
            return 0.0
        return round(self.gpu_seconds(request) * self.host.price_per_s(), 6)

    # --- checks before anything is queued ------------------------------------------------------------------------

    def graph(self, request: _Request) -> Graph:
        """The graph that makes `request` (pure)."""
        try:
            if isinstance(request, ImageRequest) and request.model == gpu.FLUX2_DEV:
                loras = [(lora_file(lora), lora.scale) for lora in request.loras]
                return graphs.keyframe_graph(request, self.files, loras)
            if isinstance(request, ImageRequest) and request.model == gpu.Z_IMAGE_TURBO:
                return graphs.previz_graph(request, self.files)
            if isinstance(request, UpscaleRequest) and request.model == gpu.UPSCALE:
                return graphs.upscale_graph(request, self.files)
            if isinstance(request, VideoRequest) and request.model == gpu.WAN_FLF:
                wan = WanSettings(steps=request.steps or self.wan.steps, cfg=request.cfg or self.wan.cfg,
                                  shift=request.shift or self.wan.shift)
                high, low = graphs.wan_loras((lora_file(lora), lora.scale, lora.transformer) for lora in request.loras)
                return graphs.video_graph(request, self.files, high, low, wan)
            if isinstance(request, EditRequest) and request.model == gpu.QWEN_EDIT:
                return graphs.angle_graph(request, self.files)
        except ValueError as error:
            raise BadRequest(str(error), provider=self.name) from None
        raise BadRequest(f"comfyui: no graph makes {type(request).__name__} with model {request.model!r} (models: "
                         f"{', '.join(DEFAULT_MODELS.values())})", provider=self.name)

    def check(self, request: _Request) -> None:
        """Build the graph and check it where that needs nothing started: model files on the network volume, and
        against the server's `/object_info` when a server is up (a studio's own always is). One line per problem."""
        graph = self.graph(_checkable(request))
        problems = self._volume_problems(request)
        client = self.host.known() if self.host is not None else None
        if client is not None:
            problems += self._server_problems(client, request, graph)
        if problems:
            raise GraphRefused("comfyui: " + "; ".join(problems), provider=self.name)

    def _volume_problems(self, request: _Request) -> list[str]:
        if self.volume is None:
            return []
        problems = []
        for role in ROLES.get(request.model, ()):
            file = self.files[role]
            if file.name not in self._folder(file.folder):
                problems.append(f"model {file.name} ({role}, {file.loader_node}.{file.loader_input}) is not on network "
                                f"volume {self.volume.volume_id} in {file.folder}/ (get it from {file.source})")
        return problems

    def _folder(self, folder: str) -> set[str]:
        with self._lock:
            if folder not in self._volume_names:
                assert self.volume is not None
                self._volume_names[folder] = self.volume.names(folder)
            return self._volume_names[folder]

    def _server_problems(self, client: ComfyClient, request: _Request, graph: Graph) -> list[str]:
        """The graph against the server's node definitions. The character LoRAs are not judged from its list: on
        RunPod they are put on the volume before queueing; a studio's own server lacking one says where to copy it."""
        info = client.object_info()
        loras = {lora_file(lora): lora for lora in getattr(request, "loras", ())}
        problems = []
        if self.volume is None:
            on_server = set(combo_values(info, "LoraLoaderModelOnly", "lora_name"))
            problems += [f"LoRA {lora.character or lora.path} ({name}) is not on the server: copy "
                         f"{lora.file or lora.path} to ComfyUI's models/loras/{name}"
                         for name, lora in loras.items() if name not in on_server]
        return problems + [problem for problem in graph_problems(graph.nodes, info)
                           if not any(name in problem for name in loras)]

    # --- the capabilities ------------------------------------------------------------------------------------------

    def generate_image(self, request: ImageRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """Text to image, written at exactly the requested size (graphs make it at the next multiple of 16)."""
        size = (request.width, request.height)
        return self._run(request, out, ticket, lambda made: self._write_image(made, out, size))

    def edit_image(self, request: EditRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """An angle (or instruction) edit with Qwen-Image-Edit, at the requested size."""
        with Image.open(request.image) as source:
            size = request.output_size(source.size)
        return self._run(request, out, ticket, lambda made: self._write_image(made, out, size))

    def upscale_image(self, request: UpscaleRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        size = (request.width, request.height)
        return self._run(request, out, ticket, lambda made: self._write_image(made, out, size))

    def first_last_video(self, request: VideoRequest, out: Path, *, ticket: Ticket | None = None) -> Generation:
        """WAN 2.2 from the first to the last frame with exactly `num_frames` frames."""

        def finish(made: Path) -> None:
            try:
                frames = probe_video(made).frames
            except MediaError as error:
                raise UnusableOutput(f"comfyui: the video does not decode: {error}", provider=self.name) from None
            if frames != request.num_frames:
                raise UnusableOutput(f"comfyui: the video has {frames} frames, expected {request.num_frames}",
                                     provider=self.name)
            os.replace(made, out)

        return self._run(request, out, ticket, finish)

    def _write_image(self, made: Path, out: Path, size: tuple[int, int]) -> None:
        try:
            with Image.open(made) as opened:
                image = opened.convert("RGB")
        except OSError as error:
            raise UnusableOutput(f"comfyui: the image does not decode: {error}", provider=self.name) from None
        save_png(image if image.size == size else resize_cover(image, size), out)

    # --- running a graph -------------------------------------------------------------------------------------------

    def _run(self, request: _Request, out: Path, ticket: Ticket | None, finish: Callable[[Path], None]) -> Generation:
        """Run the request's graph (checked by `check` first, as every caller does) and `finish` its output."""
        ticket = ticket or UNRECORDED
        graph = self.graph(request)
        self._place_loras(request)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.stem}.") as folder:
            if self.serverless is not None:
                made, request_id, cost = self._serverless(request, graph, Path(folder), ticket)
            else:
                made, request_id, seconds = self._on_server(request, graph, Path(folder), ticket)
                cost = self._gpu_cost(seconds)
            try:
                finish(made)
            except UnusableOutput as error:
                ticket.failed(request.model, request_id, str(error), cost)
                raise
        ticket.completed(request.model, request_id, cost, cost if self.serverless is not None else None)
        return Generation(provider=self.name, model=request.model, files=[out], cost_usd=cost, request_id=request_id,
                          seconds=time.monotonic() - started)

    def _gpu_cost(self, seconds: float) -> float:
        """What `seconds` of the host's GPU cost (a pod's share; a studio's own server is free)."""
        return round(seconds * (self.host.price_per_s() if self.host is not None else 0.0), 6)

    def _place_loras(self, request: _Request) -> None:
        """Put the request's LoRAs on the network volume (skipped when there), before any GPU waits on them."""
        if self.volume is None:
            return
        for lora in getattr(request, "loras", ()):
            if lora.file is None or not lora.file.exists():
                raise BadRequest(f"comfyui: LoRA {lora.character or lora.path}: no copy of its weights in the project "
                                 "to put on the network volume", provider=self.name)
            self.volume.put_lora(lora.file, lora_sha256(lora))

    def _on_server(self, request: _Request, graph: Graph, folder: Path, ticket: Ticket) -> tuple[Path, str, float]:
        """Queue (or resume) the graph on the host's server, after checking it there, and download its result; its
        GPU seconds."""
        assert self.host is not None
        with self.host.session() as client:
            problems = self._server_problems(client, request, graph)
            if problems:
                raise GraphRefused("comfyui: " + "; ".join(problems), provider=self.name)
            prompt_id = ticket.resume(request.model)
            started = time.monotonic()
            if prompt_id is None:
                for name, path in graph.images.items():
                    client.upload(path, name)
                with ticket.sending(request.model) as sent:
                    prompt_id = client.queue(graph.nodes)
                    sent.accepted(prompt_id)
            try:
                outputs = client.wait(prompt_id)
            except PromptLost as error:  # the server no longer knows it: it may have run
                ticket.unknown(request.model, prompt_id, str(error))
                raise
            except GraphFailed as error:
                ticket.failed(request.model, prompt_id, str(error), self._gpu_cost(time.monotonic() - started))
                raise
            seconds = time.monotonic() - started
            files = client.output_files(outputs, graph.output)
            if not files:
                ticket.failed(request.model, prompt_id, "comfyui: the graph wrote no file", self._gpu_cost(seconds))
                raise UnusableOutput(f"comfyui: {request.model}: the graph wrote no file", provider=self.name,
                                     request_id=prompt_id)
            made = client.download(files[0], folder / files[0].filename)
        return made, prompt_id, seconds

    def _serverless(self, request: _Request, graph: Graph, folder: Path, ticket: Ticket) -> tuple[Path, str, float]:
        """One worker-comfyui job: submitted once, polled, cancelled at the deadline; billed by worker seconds."""
        settings = self.serverless
        assert settings is not None
        endpoint = settings.endpoint_id
        deadline = env_number(DEADLINE_ENV, settings.execution_timeout_s + 300, positive=True)
        poll = env_number(POLL_ENV, 2.0, positive=True)
        job_id = ticket.resume(request.model)
        if job_id is None:
            with ticket.sending(request.model) as sent:
                job_id = serverless.submit(endpoint, graph.nodes, graph.images,
                                           execution_timeout_s=settings.execution_timeout_s, ttl_s=settings.ttl_s)
                sent.accepted(job_id)
        try:
            done = serverless.wait(endpoint, job_id, deadline_s=deadline, poll_s=poll)
        except ProviderTimeout as error:  # cancelled at the deadline: billed if a worker had started it
            if error.billed:
                ticket.failed(request.model, job_id, str(error), self.estimate(request))
            else:
                ticket.cancelled(request.model, job_id, str(error))
            raise
        except OutcomeUnknown as error:  # RunPod no longer knows the job (past its ttl): it may have run and billed
            ticket.unknown(request.model, job_id, str(error))
            raise
        cost = round((done.execution_ms / 1000 + settings.idle_s) * settings.price_per_s, 6)
        if done.status != "COMPLETED":
            detail = f"runpod: job {job_id} ended {done.status}: {done.error or 'no error given'}"
            ticket.failed(request.model, job_id, detail, cost)
            raise UnusableOutput(detail, provider=self.name, request_id=job_id)
        try:
            files = serverless.outputs(done.output, folder, job_id=job_id)
        except Exception as error:
            ticket.failed(request.model, job_id, str(error), cost)
            raise
        return files[0], job_id, cost
