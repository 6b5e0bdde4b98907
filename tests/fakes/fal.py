"""A loopback fal.ai: the queue, storage and CDN wire that fal-client speaks, on 127.0.0.1.

One ThreadingHTTPServer serves four roots; `.env()` gives the REELFLOW_FAL_* base URLs and FAL_KEY a provider
(in this process or a subprocess) needs:

- `/queue/` (QUEUE_URL_FORMAT): POST /queue/{endpoint} → {request_id, status_url, response_url, cancel_url,
  queue_position}; GET .../requests/{id}/status → IN_QUEUE (queue_position) → IN_PROGRESS → COMPLETED; GET
  .../requests/{id} → the result, or the 422 `detail[{loc, msg, type, input}]` fal settles it with; PUT
  .../requests/{id}/cancel → 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED or 404 NOT_FOUND. Status, result
  and cancel live under owner/alias only: the endpoint's sub-path is dropped, as on fal.
- `/rest` (REST_URL): POST /rest/storage/auth/token → a CDN token; POST /rest/storage/upload/initiate → an upload
  URL (fal-client's fallback when the CDN upload fails).
- `/cdn` (CDN_URL): POST /cdn/files/upload (bearer token) → {access_url}; PUT /cdn/put/{id} for the fallback.
- `/files/...`: every uploaded input and every output, public.

Queue and storage calls need `Authorization: Key <key>` (else 401). Outputs are real media made from the request
body alone: PNGs of `image_size` (FLUX.2's LoRA edit too: the images it was sent are in `jobs`' bodies); SeedVR2
upscales of the input by `upscale_factor`; edits at the input's size (turned with the angles); WAN clips of exactly
`num_frames` frames at `frames_per_second`, 720x1280 or 1280x720 by `aspect_ratio` (or the first image's aspect)
blending first into last image; trainers' safetensors files.
Scripted behaviours: a reject word in the prompt (content policy 422), `rate_limited` / `server_errors` submits (429 /
`server_error_status`), `status_errors` (503 on status polls), `progress_polls` / `slow_s` of IN_PROGRESS,
`corrupt_outputs` (truncated files), `finish_before_cancel` (the request completes just as a cancel arrives),
`run_past_cancel` (a running request asked to stop finishes anyway, and bills: fal leaves it to the app),
`silent_status` (request ids whose status polls get no answer: the connection closes), `running_limit` (the account
runs that many requests at once; the rest wait IN_QUEUE, as fal's queue does), a wrong key (401). Every body is
validated with the schema table reelflow validates against before it sends (`reelflow.schemas.wire.fal.INPUTS`:
ranges, enums, required fields, unknown fields refused), so a body that breaks it — one sent past reelflow's own check
— is settled with a 422 whose `loc` starts with "body" and names the field. Input URLs and LoRA paths the fake does
not serve are a 422 `file_download_error`; `expire(url)` deletes a CDN file as fal may after 7 days. The log:
`submits` per endpoint and `submits_by_body` per body hash (accepted, billable submits only), `cancels`, `uploads`,
`status_polls`.
Billing, by fal's rule for each endpoint (`billed_usd`, see its function): every request that ran, a 422 too. The
answers that never come: `drop_submits` / `drop_new_bodies` run and bill a submit and close the socket without an
answer; `stall_new_bodies` runs and bills it and answers after `stall_s`; `garble_submits` answers with fal's
`x-fal-request-id` header and a body cut short; `forget_results()` finishes (and bills) every request and then 404s
it, as `result_retention_s` does for results older than that; `expire(url)` drops a CDN file. A cancel of a request
still in the queue answers OK (removed, never billed); `state_of(request_id)` says where a request is.
All state lives in the FakeFal object, served from a thread: clients in subprocesses share it, so a client killed
mid-request and started again finds its request where it left it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image
from pydantic import ValidationError

from reelflow.media.encode import encode_frames
from reelflow.schemas.errors import ContractError
from reelflow.schemas.pricing import load_prices
from reelflow.schemas.wire.fal import INPUTS

Body = dict[str, Any]
Answer = tuple[int, "Body | bytes | Garbled"]

LORA_EDIT = "fal-ai/flux-2/lora/edit"  # FLUX.2 with LoRAs and reference images: text to image from `image_urls` too
TEXT_TO_IMAGE = frozenset({"fal-ai/flux-2/lora", "fal-ai/z-image/turbo", "fal-ai/z-image/turbo/lora", LORA_EDIT})
REFERENCE_MEGAPIXEL = (1024, 1024)  # what the LoRA edit bills each input image at
UPSCALE = "fal-ai/seedvr/upscale/image"
ANGLES = "fal-ai/qwen-image-edit-2511-multiple-angles"
EDIT = "fal-ai/nano-banana-pro/edit"
VIDEO = "fal-ai/wan/v2.2-a14b/image-to-video/lora"
TRAINERS = {
    "fal-ai/z-image-trainer": ("diffusers_lora_file",),
    "fal-ai/flux-2-trainer": ("diffusers_lora_file",),
    "fal-ai/wan-22-image-trainer": ("diffusers_lora_file", "high_noise_lora"),
}
ENDPOINTS = TEXT_TO_IMAGE | {UPSCALE, ANGLES, EDIT, VIDEO} | set(TRAINERS)
SIZES_720P = {"9:16": (720, 1280), "16:9": (1280, 720), "1:1": (960, 960)}
CDN_TOKEN = "fake-cdn-token"
DROPPED = 0  # an answer's status meaning: close the connection without a response


def billed_usd(job: Job, read: Any) -> float:
    """What fal bills for a request that ran, in each endpoint's unit (fal's model pages, as schemas/prices.toml cites
    them): text to image by the megapixels of `image_size` (rounded up), FLUX.2's LoRA edit one megapixel more per
    input image; SeedVR by its *output*, the source image
    times `upscale_factor`; the multiple-angles edit by the input image's megapixels (no size is sent); Nano Banana Pro
    per image at its `resolution`; WAN per second of `num_frames` at 16 fps at the `resolution` sent; trainers per
    step. Unpriceable bodies (a refused schema) bill nothing."""
    prices, body = load_prices(), job.body
    try:
        if job.endpoint in TEXT_TO_IMAGE:
            size = (int(body["image_size"]["width"]), int(body["image_size"]["height"]))
            model = "fal-ai/z-image/turbo/lora" if job.endpoint == "fal-ai/z-image/turbo" and body.get("loras") else job.endpoint
            inputs = len(body["image_urls"]) if job.endpoint == LORA_EDIT else 0
            return prices.cost(model, size=size) + prices.cost(model, size=REFERENCE_MEGAPIXEL, count=inputs)
        if job.endpoint == UPSCALE:
            source = read(body["image_url"])
            factor = float(body.get("upscale_factor", 2))
            return prices.cost(UPSCALE, size=(round(source.width * factor), round(source.height * factor)))
        if job.endpoint == ANGLES:
            source = read(body["image_urls"][0])
            return prices.cost(ANGLES, size=source.size)
        if job.endpoint == EDIT:
            return prices.cost(EDIT, resolution=str(body.get("resolution") or "1K")) * int(body.get("num_images") or 1)
        if job.endpoint == VIDEO:
            return prices.cost(VIDEO, frames=int(body["num_frames"]), resolution=str(body.get("resolution") or "720p"))
        steps = body.get("steps", body.get("number_of_steps", 1000))
        return prices.cost(job.endpoint, steps=int(steps))
    except (KeyError, TypeError, ValueError, AttributeError, ContractError):
        return 0.0


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _problem(loc: list[str | int], msg: str, kind: str, value: Any = None) -> Body:
    return {"loc": ["body", *loc], "msg": msg, "type": kind, "input": value}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _picture(size: tuple[int, int], digest: str) -> Image.Image:
    """A gradient between two colours taken from `digest`, blocks and a band placed by it, and a fine weave for detail."""
    width, height = size
    seed = bytes.fromhex(digest[:16])
    start, end = np.array(list(seed[:3]), float), np.array(list(seed[3:6]), float)
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    pixels = np.broadcast_to(start + (end - start) * ramp, (height, width, 3)).copy()
    top = seed[6] * height // 256
    pixels[top : top + max(1, height // 8)] = 255 - pixels[top : top + max(1, height // 8)]
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    for _ in range(24):  # blocks of colour scattered over the frame, so each region of a strip looks different
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        pixels[y : y + max(1, height // 10), x : x + max(1, width // 12)] = rng.integers(0, 256, 3)
    rows, columns = np.indices((height, width))
    pixels += (12.0 * (((rows // 2 + columns // 2) % 2) * 2 - 1))[:, :, None]
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def _tinted(image: Image.Image, digest: str) -> Image.Image:
    tint = Image.new("RGB", image.size, tuple(bytes.fromhex(digest[:6])))
    return Image.blend(image.convert("RGB"), tint, 0.25)


@dataclass
class Job:
    """One submitted request: what was asked, how often it was polled, and how fal settled it."""

    request_id: str
    endpoint: str
    body: Body
    submitted_at: float
    polls: int = 0
    cancelled: bool = False
    fetched: bool = False
    outcome: tuple[int, Body] | None = None
    completed_at: float | None = None
    forgotten: bool = False
    billed_usd: float = 0.0
    settling: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def app(self) -> str:
        return "/".join(self.endpoint.split("/")[:2])


@dataclass(frozen=True)
class Garbled:
    """An answer whose headers arrive but whose JSON body does not parse."""

    data: bytes
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeFal


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.server.fake.answer(method, self.path, dict(self.headers.items()), raw)
        if status == DROPPED:  # the request was taken and billed; the answer is lost on the way back
            self.close_connection = True
            return
        if isinstance(answer, Garbled):  # headers intact, the body cut off on the way back
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.data)))
            self.end_headers()
            self.wfile.write(answer.data)
            return
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        kind = "application/octet-stream" if isinstance(answer, bytes) else "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError:
            return

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def do_PUT(self) -> None:
        self._answer("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        return


class FakeFal:
    """The fake fal: start()/stop() or a context manager; `.env()` points a FalProvider at it."""

    def __init__(
        self,
        *,
        key: str | None = None,
        reject_word: str = "forbidden",
        nsfw_word: str = "nsfw",
        progress_polls: int = 1,
        slow_s: float = 0.0,
    ) -> None:
        # a key of its own: each fake is an account of its own, whose concurrency limit no other test shares
        self.key = key or f"fake-fal-key-{uuid.uuid4().hex[:8]}"
        self.reject_word, self.nsfw_word = reject_word, nsfw_word
        self.progress_polls, self.slow_s = progress_polls, slow_s
        self.rate_limited = 0
        self.server_errors = 0
        self.server_error_status = 500
        self.status_errors = 0
        self.corrupt_outputs = 0
        self.finish_before_cancel = False
        self.run_past_cancel = False  # a running request asked to stop finishes anyway (its next poll), and bills
        self.silent_status: set[str] = set()  # request ids whose status polls are never answered
        self.running_limit: int | None = None  # requests run at once; the rest wait in the queue (IN_QUEUE)
        self.drop_submits = 0  # the next accepted submits run and bill, and their answers are lost (the socket closes)
        self.drop_new_bodies = 0  # the same, for the first submit of each of the next bodies only
        self.stall_new_bodies = 0  # the first submit of each of the next bodies runs and bills, answered after stall_s
        self.stall_s = 3.0
        self.garble_submits = 0  # the next accepted submits answer with fal's x-fal-request-id header, the body cut
        self.result_retention_s: float | None = None  # completed results fal forgets after this long (404)
        self.billed_usd = 0.0  # what fal bills: every request that ran, by fal's rule for its endpoint
        self.jobs: dict[str, Job] = {}
        self.submits: Counter[str] = Counter()
        self.submits_by_body: Counter[str] = Counter()
        self.cancels: list[str] = []
        self.uploads: list[str] = []
        self.status_polls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._files: dict[str, bytes] = {}
        self._upload_counts: Counter[str] = Counter()
        self._pending_puts: dict[str, str] = {}
        self._lock = threading.RLock()
        self._scratch = tempfile.TemporaryDirectory(prefix="fake-fal-")
        self._server: _Server | None = None

    def start(self) -> FakeFal:
        """Listen on 127.0.0.1 at a free port, serving from a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-fal", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and drop the scratch files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._scratch.cleanup()

    def __enter__(self) -> FakeFal:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT, the one server behind every base URL in `.env()`."""
        if self._server is None:
            raise RuntimeError("FakeFal is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """The environment that points FalProvider.from_env() (here or in a subprocess) at this fake."""
        return {
            "REELFLOW_FAL_QUEUE_URL": f"{self.url}/queue/",
            "REELFLOW_FAL_REST_URL": f"{self.url}/rest",
            "REELFLOW_FAL_CDN_URL": f"{self.url}/cdn",
            "REELFLOW_FAL_POLL_S": "0.01",
            "FAL_KEY": self.key,
        }

    def expire(self, *urls: str) -> None:
        """Delete these files from the CDN, as fal may once they are 7 days old: `/files/...` answers 404."""
        with self._lock:
            for url in urls:
                self._files.pop(urlsplit(url).path, None)

    def serves(self, url: Any) -> bool:
        """Whether `url` is a file this fake's CDN serves now."""
        if not isinstance(url, str) or not url.startswith(self.url):
            return False
        with self._lock:
            return urlsplit(url).path in self._files

    def image(self, url: str) -> Image.Image | None:
        """The image this fake serves at `url` (an upload or an output), as RGB; None if it serves none there."""
        return self._input(url)

    def total_submits(self) -> int:
        """Requests fal accepted (and would bill), over every endpoint."""
        with self._lock:
            return sum(self.submits.values())

    # -- routing -----------------------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        """The status and body (JSON or bytes) for one HTTP request."""
        path = urlsplit(target).path
        parts = [part for part in path.split("/") if part]
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        root, rest = (parts[0], parts[1:]) if parts else ("", [])
        if root == "files" and method == "GET":
            return self._file(path)
        if root == "cdn":
            return self._cdn(method, rest, headers, auth, raw)
        if auth != f"Key {self.key}":
            return 401, {"detail": "Invalid key: authentication failed"}
        if root == "rest" and method == "POST" and rest == ["storage", "auth", "token"]:
            expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            return 200, {"token": CDN_TOKEN, "token_type": "Bearer", "base_url": f"{self.url}/cdn", "expires_at": expires}
        if root == "rest" and method == "POST" and rest == ["storage", "upload", "initiate"]:
            return self._initiate(raw)
        if root == "queue" and len(rest) >= 4 and rest[2] == "requests":
            return self._request(method, "/".join(rest[:2]), rest[3], rest[4:])
        if root == "queue" and method == "POST" and len(rest) >= 2:
            return self._submit("/".join(rest), raw)
        return 404, {"detail": f"{method} {path} is not served by the fake"}

    def _file(self, path: str) -> Answer:
        with self._lock:
            data = self._files.get(path)
        return (200, data) if data is not None else (404, {"detail": "File not found"})

    def _store(self, name: str, data: bytes, *, upload: bool = False) -> str:
        """Serve `data` under a new URL; an upload's URL follows its content and how often it was uploaded (the same
        bodies from run to run, a new URL for each upload again)."""
        with self._lock:
            if upload:
                digest = hashlib.sha256(data).hexdigest()[:12]
                self._upload_counts[digest] += 1
                path = f"/files/{digest}-{self._upload_counts[digest]}/{name}"
            else:
                path = f"/files/{uuid.uuid4().hex[:12]}/{name}"
            self._files[path] = data
        return self.url + path

    def _cdn(self, method: str, rest: list[str], headers: dict[str, str], auth: str, raw: bytes) -> Answer:
        if method == "PUT" and len(rest) == 2 and rest[0] == "put":
            with self._lock:
                name = self._pending_puts.pop(rest[1], None)
            if name is None:
                return 404, {"detail": "Unknown upload"}
            self._uploaded(raw)
            with self._lock:
                self._files[name] = raw
            return 200, {}
        if auth != f"Bearer {CDN_TOKEN}":
            return 401, {"detail": "Invalid CDN token"}
        if method == "POST" and rest == ["files", "upload"]:
            self._uploaded(raw)
            name = headers.get("X-Fal-File-Name") or headers.get("x-fal-file-name") or "upload.bin"
            return 200, {"access_url": self._store(name, raw, upload=True)}
        return 404, {"detail": "Not found"}

    def _initiate(self, raw: bytes) -> Answer:
        name = (json.loads(raw or b"{}").get("file_name") or "upload.bin").replace("/", "_")
        token = uuid.uuid4().hex
        path = f"/files/{token[:12]}/{name}"
        with self._lock:
            self._pending_puts[token] = path
        return 200, {"upload_url": f"{self.url}/cdn/put/{token}", "file_url": self.url + path}

    def _uploaded(self, raw: bytes) -> None:
        with self._lock:
            self.uploads.append(hashlib.sha256(raw).hexdigest())

    # -- queue -------------------------------------------------------------------------------------------------

    def _submit(self, endpoint: str, raw: bytes) -> Answer:
        with self._lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return 429, {"detail": "Rate limit exceeded: too many concurrent requests"}
            if self.server_errors > 0:
                self.server_errors -= 1
                return self.server_error_status, {"detail": "Internal Server Error"}
        if endpoint not in ENDPOINTS:
            return 404, {"detail": f"Application '{endpoint}' not found"}
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return 400, {"detail": "Invalid JSON body"}
        job = Job(uuid.uuid4().hex, endpoint, body, time.monotonic())
        with self._lock:
            self.jobs[job.request_id] = job
            self.submits[endpoint] += 1
            self.submits_by_body[_digest(body)] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        with self._lock:
            new_body = self.submits_by_body[_digest(body)] == 1
            dropped = self.drop_submits > 0 or (self.drop_new_bodies > 0 and new_body)
            if self.drop_submits > 0:
                self.drop_submits -= 1
            elif dropped:
                self.drop_new_bodies -= 1
            stalled = not dropped and self.stall_new_bodies > 0 and new_body
            self.stall_new_bodies -= int(stalled)
            garbled = not (dropped or stalled) and self.garble_submits > 0
            self.garble_submits -= int(garbled)
        if dropped or stalled:
            self._settle(job)  # it runs and bills; the client never hears of it
            with self._lock:
                self.in_flight -= 1
        if dropped:
            return DROPPED, b""
        base = f"{self.url}/queue/{job.app}/requests/{job.request_id}"
        if stalled:  # answered after the client stopped waiting
            time.sleep(self.stall_s)
        if garbled:
            return 200, Garbled(b'{"request_id": "', {"x-fal-request-id": job.request_id})
        return 200, {"request_id": job.request_id, "status_url": f"{base}/status", "response_url": base,
                     "cancel_url": f"{base}/cancel", "queue_position": 0}

    def _request(self, method: str, app: str, request_id: str, tail: list[str]) -> Answer:
        with self._lock:
            job = self.jobs.get(request_id)
        if job is not None and job.completed_at is not None and self.result_retention_s is not None:
            job.forgotten = job.forgotten or time.monotonic() - job.completed_at > self.result_retention_s
        if job is None or job.app != app or job.forgotten:
            return 404, {"detail": f"Request {request_id} not found"}
        if method == "GET" and tail == ["status"]:
            with self._lock:
                if request_id in self.silent_status:
                    return DROPPED, b""
                if self.status_errors > 0:
                    self.status_errors -= 1
                    return 503, {"detail": "Service Unavailable"}
            return 200, self._status(job)
        if method == "GET" and not tail:
            if self._state(job) != "COMPLETED":
                return 400, {"detail": "Request is still in progress"}
            with self._lock:
                if not job.fetched:
                    job.fetched = True
                    self.in_flight -= 1
            return self._settle(job)
        if method == "PUT" and tail == ["cancel"]:
            if self.finish_before_cancel:
                self._settle(job)
            with self._lock:
                self.cancels.append(request_id)
                if job.outcome is not None:
                    return 400, {"status": "ALREADY_COMPLETED"}
                if self._queued(job):  # still in the queue: removed, it never runs (fal's queue/cancel docs)
                    job.cancelled = job.forgotten = True
                    self.in_flight -= 1
                    return 200, {"status": "OK"}
                job.cancelled = True  # it keeps its runner until it stops (never), or finishes (`run_past_cancel`)
            return 202, {"status": "CANCELLATION_REQUESTED"}
        return 405, {"detail": "Method not allowed"}

    def state_of(self, request_id: str) -> str:
        """Where a request is now: IN_QUEUE, IN_PROGRESS, COMPLETED, CANCELLED (asked to stop, never ending) or
        REMOVED (cancelled from the queue, or forgotten)."""
        with self._lock:
            job = self.jobs[request_id]
            return "REMOVED" if job.forgotten else self._state(job)

    def _queued(self, job: Job) -> bool:
        """Still waiting in the queue: not polled past its first answer, or behind `running_limit` requests holding a
        runner (a request asked to stop holds its runner until it ends)."""
        with self._lock:
            if job.outcome is not None:
                return False
            if job.polls <= 1:
                return True
            if self.running_limit is None:
                return False
            running = [other.request_id for other in self.jobs.values() if other.outcome is None and not other.forgotten]
            return job.request_id not in running[: self.running_limit]

    def _state(self, job: Job) -> str:
        with self._lock:
            if job.outcome is not None:
                return "COMPLETED"
            if job.cancelled:  # asked to stop while running: it never ends, or finishes (and bills) when next asked
                return "COMPLETED" if self.run_past_cancel else "CANCELLED"
            if self._queued(job):
                return "IN_QUEUE"
            if job.polls <= 1 + self.progress_polls or time.monotonic() < job.submitted_at + self.slow_s:
                return "IN_PROGRESS"
            return "COMPLETED"

    def _status(self, job: Job) -> Body:
        with self._lock:
            job.polls += 1
            self.status_polls[job.request_id] += 1
        state = self._state(job)
        response_url = f"{self.url}/queue/{job.app}/requests/{job.request_id}"
        if state == "IN_QUEUE":
            return {"status": "IN_QUEUE", "queue_position": 0, "response_url": response_url}
        if state in ("IN_PROGRESS", "CANCELLED"):
            return {"status": "IN_PROGRESS", "logs": None, "response_url": response_url}
        status, result = self._settle(job)
        answer: Body = {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 0.01}, "response_url": response_url}
        if status != 200:
            answer |= {"error": json.dumps(result.get("detail")), "error_type": "validation_error"}
        return answer

    def _settle(self, job: Job) -> tuple[int, Body]:
        """The job's result, made once: a 422 when fal would refuse it, else real media at the fake's URLs."""
        with job.settling:
            if job.outcome is None:
                problems = self._problems(job)
                job.outcome = (422, {"detail": problems}) if problems else (200, self._produce(job))
                self._bill(job)
            return job.outcome

    def _bill(self, job: Job) -> None:
        """Charge a request that ran, by fal's rule for its endpoint (a 422 too: fal may bill the GPU time spent)."""
        job.completed_at = time.monotonic()
        job.billed_usd = billed_usd(job, self._input)
        with self._lock:
            self.billed_usd = round(self.billed_usd + job.billed_usd, 6)

    def forget_results(self) -> None:
        """Every request finishes (and bills) as if time passed, then fal forgets it: status and result answer 404."""
        with self._lock:
            jobs = [job for job in self.jobs.values() if not job.forgotten]
        for job in jobs:
            if not job.cancelled or job.outcome is not None:
                self._settle(job)
            job.forgotten = True

    def _problems(self, job: Job) -> list[Body]:
        body, problems = job.body, []
        prompt = str(body.get("prompt") or "")
        if self.reject_word and self.reject_word.lower() in prompt.lower():
            problems.append(_problem(["prompt"], "The content was flagged by a content checker.",
                                     "content_policy_violation", prompt) | {"categories": ["violence"]})
        schema = INPUTS.get(job.endpoint)
        if schema is None:
            problems.append(_problem(["endpoint"], f"Application '{job.endpoint}' not found", "not_found", job.endpoint))
        else:
            try:
                schema.model_validate(body)
            except ValidationError as error:
                problems.extend(_problem(list(item["loc"]), item["msg"], item["type"], item.get("input"))
                                for item in error.errors(include_url=False))
        for name in ("image_url", "end_image_url", "image_urls"):
            urls = body.get(name)
            for url in urls if isinstance(urls, list) else [urls] if urls is not None else []:
                if self._input(url) is None:
                    problems.append(_problem([name], "Could not download the file from the URL", "file_download_error", url))
        loras = body.get("loras")
        for index, lora in enumerate(loras if isinstance(loras, list) else []):
            path = lora.get("path") if isinstance(lora, dict) else None
            if not self.serves(path):
                problems.append(_problem(["loras", index, "path"], "Could not download the file from the URL",
                                         "file_download_error", path))
        return problems

    def _input(self, url: Any) -> Image.Image | None:
        if not isinstance(url, str) or not url.startswith(self.url):
            return None
        with self._lock:
            data = self._files.get(urlsplit(url).path)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.convert("RGB")
        except OSError:
            return None

    def _output(self, name: str, data: bytes) -> str:
        with self._lock:
            if self.corrupt_outputs > 0:
                self.corrupt_outputs -= 1
                data = data[: len(data) // 2]
        return self._store(name, data)

    def _image_file(self, image: Image.Image) -> Body:
        url = self._output("output.png", _png(image))
        return {"url": url, "width": image.width, "height": image.height, "content_type": "image/png"}

    def _produce(self, job: Job) -> Body:
        """The result fal-ai/fal-js types for the endpoint. Text to image (`v4Output`) adds `has_nsfw_concepts: [bool]`:
        true, with the image blacked out as fal's safety checker does, when the prompt has `nsfw_word`. Trainers
        (`Wan22ImageTrainerOutput`, `Output`) give each file under its key, at a URL whose name says nothing of it."""
        body, digest = job.body, _digest(job.body)
        if job.endpoint in TEXT_TO_IMAGE:
            size = (body["image_size"]["width"], body["image_size"]["height"])
            flagged = bool(self.nsfw_word) and self.nsfw_word.lower() in str(body.get("prompt", "")).lower()
            picture = Image.new("RGB", size) if flagged else _picture(size, digest)  # flagged: blacked out
            return {"images": [self._image_file(picture)], "has_nsfw_concepts": [flagged], "seed": body.get("seed", 0),
                    "prompt": body.get("prompt", "")}
        if job.endpoint == UPSCALE:
            source = self._input(body["image_url"])
            assert source is not None
            factor = float(body.get("upscale_factor", 2))
            size = (round(source.width * factor), round(source.height * factor))
            return {"image": self._image_file(_tinted(source.resize(size, Image.Resampling.BICUBIC), digest))}
        if job.endpoint in (ANGLES, EDIT):
            source = self._input(body["image_urls"][0])
            assert source is not None
            turned = source.rotate(float(body.get("horizontal_angle") or 0) % 360, fillcolor=(0, 0, 0))
            return {"images": [self._image_file(_tinted(turned, digest))], "seed": body.get("seed", 0)}
        if job.endpoint == VIDEO:
            return {"video": {"url": self._video(job, digest), "content_type": "video/mp4"}, "seed": body.get("seed", 0)}
        return {
            **{key: {"url": self._output("lora.safetensors", f"fake weights {key} {digest}".encode()),
                     "file_name": "lora.safetensors", "content_type": "application/octet-stream"}
               for key in TRAINERS[job.endpoint]},
            "config_file": {"url": self._output("config.json", b"{}"), "file_name": "config.json"},
        }

    def _video(self, job: Job, digest: str) -> str:
        body = job.body
        first, last = self._input(body["image_url"]), self._input(body.get("end_image_url") or body["image_url"])
        assert first is not None and last is not None
        ratio = body.get("aspect_ratio")
        if ratio not in SIZES_720P:
            ratio = "9:16" if first.height > first.width else "16:9" if first.width > first.height else "1:1"
        size = SIZES_720P[ratio]
        start = first.convert("RGB").resize(size)
        end = _tinted(last, digest).convert("RGB").resize(size)
        count = body["num_frames"] + (body["num_frames"] - 1) * int(body.get("num_interpolated_frames") or 0)
        frames = (Image.blend(start, end, i / max(1, count - 1)) for i in range(count))
        path = Path(self._scratch.name) / f"{job.request_id}.mp4"
        encode_frames(frames, path, fps=int(body.get("frames_per_second") or 16), size=size)
        return self._output("output.mp4", path.read_bytes())
