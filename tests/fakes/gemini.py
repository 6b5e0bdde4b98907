"""A loopback Gemini: `POST /{v1|v1beta}/models/{model}:generateContent` on 127.0.0.1, answers made from the body.

google-genai reaches it with `HttpOptions(base_url=fake.url)` (the provider reads REELFLOW_GEMINI_BASE_URL)
and sends the key in the `x-goog-api-key` header. Every answer is deterministic from the request body:

- image requests (responseModalities has IMAGE, or an image model) get a real PNG as base64 `inlineData`:
  the first input image resized 2x, or a gradient of the requested `imageConfig.aspectRatio` coloured by
  the prompt (`base_pixels` per 1K tier: smaller than Gemini's ~1 MP, so runs stay fast);
- structured-output requests (responseMimeType application/json) get JSON text that validates against the
  sent responseSchema: numbers 0.9 and booleans true, or 0.2 and false when the prompt has a mismatch word;
  arrays named like "character" list the ALL-CAPS names in the prompt;
- a block word gives `promptFeedback.blockReason: SAFETY` and no candidates; an image-safety word gives a
  candidate with finishReason IMAGE_SAFETY and no image part;
- scripted answers (`finish_next`, `block_next`, `no_candidates`) stop with any finishReason or blockReason
  google-genai knows (ESCALATION, a request an escalation rule filtered, and PUP_LIMITED_DISABLED, an account
  limited for Prohibited Use Policy violations, included), or answer with no candidate at all;
- every request is checked against reelflow.schemas.gemini_models, the same table the provider builds from:
  an unknown or shut-down model is 404 NOT_FOUND (as Google answers for a model id it does not serve); a seed
  outside int32, an aspectRatio, imageSize, responseModalities value or imageConfig field outside the documented ones, IMAGE asked
  of a text model or JSON mode of an image model is 400 INVALID_ARGUMENT with `google.rpc.BadRequest`
  fieldViolations naming the field — so a wrong request fails loudly in tests;
- scripted faults (`fail_next`, `rate_limit`, `unavailable`, `corrupt_images`, `delay_s`) and a wrong or
  missing key (403 PERMISSION_DENIED, or 400 API_KEY_INVALID) answer in Google's error shape.

All state lives in the FakeGemini object, so `reelflow render` subprocesses pointed at it share it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np
from google.genai import types
from PIL import Image

from reelflow.schemas.gemini_models import ASPECT_RATIOS, MODALITIES, gemini_model
from reelflow.schemas.pricing import load_prices

ROUTE = re.compile(r"^/(v1|v1beta)/models/([^/:?]+):generateContent(?:\?.*)?$")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
STATUS_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
TIERS = {"1K": 1, "2K": 4, "4K": 16}
MAX_SIDE = 2048
POLL_S = 0.02
NAMES = re.compile(r"\b[A-Z][A-Z0-9_]+\b")
IMAGE_CONFIG_FIELDS = {"aspectRatio": "aspect_ratio", "imageSize": "image_size"}  # the ones the table documents
FINISH_REASONS = frozenset(reason.value for reason in types.FinishReason)
BLOCK_REASONS = frozenset(reason.value for reason in types.BlockedReason)
Body = dict[str, Any]


def _get(mapping: Any, *names: str) -> Any:
    """The first of `names` set in `mapping` (the wire takes camelCase and snake_case alike)."""
    if not isinstance(mapping, dict):
        return None
    return next((mapping[name] for name in names if name in mapping), None)


def _error(status: int, message: str, details: Iterable[Body] = ()) -> Body:
    status_name = STATUS_NAMES.get(status, "UNKNOWN")
    return {"error": {"code": status, "message": message, "status": status_name, "details": list(details)}}


def _bytes(data: str) -> bytes:
    """Proto JSON bytes: base64, standard or URL-safe (google-genai sends URL-safe)."""
    return base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_") + "=" * (-len(data) % 4))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _has(words: Iterable[str], text: str) -> str | None:
    return next((word for word in words if re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE)), None)


def _invalid(field: str, value: Any, rule: str) -> tuple[int, Body]:
    """400 INVALID_ARGUMENT naming `field` in a google.rpc.BadRequest field violation."""
    description = f"Invalid value at '{field}' ({value!r}): {rule}"
    return 400, _error(400, description, [{
        "@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": field, "description": description}],
    }])


def _violation(model: str, version: str, config: Body, json_mode: bool) -> tuple[int, Body] | None:
    """Google's answer to a request outside the table (schemas/gemini_models.py), or None for a valid one."""
    row = gemini_model(model)
    if row is None or not row.usable:
        message = (f"models/{model} is not found for API version {version}, or is not supported for generateContent. "
                   "Call ListModels to see the list of available models and their supported methods.")
        return 404, _error(404, message)
    seed = _get(config, "seed")
    if seed is not None and not -(2**31) <= int(seed) < 2**31:
        return _invalid("generation_config.seed", seed, "TYPE_INT32")
    modalities = _get(config, "responseModalities", "response_modalities") or []
    for value in modalities:
        if str(value).upper() not in MODALITIES:
            return _invalid("generation_config.response_modalities", value, f"supported values are {', '.join(MODALITIES)}")
    if "IMAGE" in [str(value).upper() for value in modalities] and row.kind != "image":
        return 400, _error(400, "Model does not support the requested response modalities: image")
    if json_mode and row.kind == "image":
        return 400, _error(400, f"JSON mode is not enabled for models/{model}")
    image_config = _get(config, "imageConfig", "image_config")
    if image_config is None:
        return None
    for name in image_config:
        if name not in IMAGE_CONFIG_FIELDS and name not in IMAGE_CONFIG_FIELDS.values():
            return 400, _error(400, f"Invalid JSON payload received. Unknown name \"{name}\" at "
                                    "'generation_config.image_config': Cannot find field.")
    ratio = _get(image_config, "aspectRatio", "aspect_ratio")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        return _invalid("generation_config.image_config.aspect_ratio", ratio, f"supported values are {', '.join(ASPECT_RATIOS)}")
    size = _get(image_config, "imageSize", "image_size")
    if size is not None and size not in row.image_sizes:
        rule = f"supported values are {', '.join(row.image_sizes)}" if row.image_sizes else f"{model} takes no imageSize"
        return _invalid("generation_config.image_config.image_size", size, rule)
    return None


@dataclass(frozen=True)
class Call:
    """One request the fake answered: model, API version, HTTP status, prompt text, input images, JSON mode,
    image config and the sampling temperature sent (None when the request left it out)."""

    model: str
    version: str
    status: int
    prompt: str
    images: int
    json_mode: bool
    aspect_ratio: str | None
    image_size: str | None = None
    temperature: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeGemini


class _Handler(BaseHTTPRequestHandler):
    """Routes POSTs to the FakeGemini that owns the server; everything else is 404."""

    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.server.fake.answer(self.path, self.headers.get("x-goog-api-key"), body)
        self._send(status, answer)

    def do_GET(self) -> None:
        self._send(404, _error(404, f"{self.path} is not served by the fake"))

    def _send(self, status: int, answer: Body) -> None:
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except ConnectionError:
            return

    def log_message(self, format: str, *args: Any) -> None:
        return


class FakeGemini:
    """The fake server: start()/stop() or a context manager; `.env()` points a provider at it."""

    def __init__(
        self,
        *,
        api_key: str = "fake-gemini-key",
        block_words: tuple[str, ...] = ("forbidden",),
        image_safety_words: tuple[str, ...] = ("gore",),
        mismatch_words: tuple[str, ...] = ("mismatch",),
        bad_key_status: int = 403,
        base_pixels: int = 256 * 256,
    ) -> None:
        self.api_key = api_key
        self.block_words, self.image_safety_words, self.mismatch_words = block_words, image_safety_words, mismatch_words
        self.bad_key_status = bad_key_status
        self.base_pixels = base_pixels
        self.delay_s = 0.0
        self.stall_s = 5.0  # how long a stalled answer waits after it was generated and billed
        self.billed_usd = 0.0  # what Google would bill: every 200 answer, at the list price of what was generated
        self.billed_by_body: Counter[str] = Counter()  # billed answers per request body
        self._stalls = 0
        self._stalled: set[str] = set()
        self.calls: list[Call] = []
        self._failures: list[int] = []
        self._scripted: list[Body] = []
        self._corrupt = 0
        self._served = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeGemini:
        """Listen on 127.0.0.1 at a free port, serving from a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), name="fake-gemini", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give google-genai (`HttpOptions(base_url=...)`)."""
        if self._server is None:
            raise RuntimeError("FakeGemini is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """The environment that points GeminiProvider.from_env() (in this process or a subprocess) here."""
        return {"REELFLOW_GEMINI_BASE_URL": self.url, "GEMINI_API_KEY": self.api_key}

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` authorised requests with HTTP `status` in Google's error shape."""
        with self._lock:
            self._failures.extend([status] * times)

    def rate_limit(self, times: int = 1) -> None:
        """The next `times` requests get 429 RESOURCE_EXHAUSTED."""
        self.fail_next(429, times)

    def unavailable(self, times: int = 1) -> None:
        """The next `times` requests get 503 UNAVAILABLE."""
        self.fail_next(503, times)

    def finish_next(self, reason: str, times: int = 1, *, text: str | None = None) -> None:
        """The next `times` valid requests get a candidate stopped by finishReason `reason`: no image, `text` if given."""
        if reason not in FINISH_REASONS:
            raise ValueError(f"{reason!r} is not a google-genai FinishReason")
        candidate: Body = {"finishReason": reason, "index": 0}
        if text is not None:
            candidate["content"] = {"role": "model", "parts": [{"text": text}]}
        self._script({"candidates": [candidate]}, times)

    def block_next(self, reason: str = "SAFETY", times: int = 1) -> None:
        """The next `times` valid requests get `promptFeedback.blockReason: reason` and no candidates."""
        if reason not in BLOCK_REASONS:
            raise ValueError(f"{reason!r} is not a google-genai BlockedReason")
        self._script({"promptFeedback": {"blockReason": reason}}, times)

    def no_candidates(self, times: int = 1) -> None:
        """The next `times` valid requests get a 200 with no candidates and no block reason."""
        self._script({"candidates": []}, times)

    def _script(self, answer: Body, times: int) -> None:
        with self._lock:
            self._scripted.extend([answer] * times)

    def stall_next(self, times: int = 1) -> None:
        """The first request of each of the next `times` bodies is generated and billed, then answered only after
        `stall_s` (past the client's timeout: the answer never arrives)."""
        with self._lock:
            self._stalls += times

    def _bill(self, model: str, config: Body, answer: Body, body: Body) -> str:
        """Bill a 200 answer as Google does: an image model per image at the size tier asked (1K unless said), a
        per-token model by the usage the answer reports; returns the body's digest."""
        prices = load_prices()
        usage = answer.get("usageMetadata") or {}
        tokens = prices.token_cost(model, int(usage.get("promptTokenCount") or 0),
                                   int(usage.get("candidatesTokenCount") or 0) + int(usage.get("thoughtsTokenCount") or 0))
        if tokens is None:
            tier = _get(_get(config, "imageConfig", "image_config") or {}, "imageSize", "image_size")
            tokens = prices.cost(model, resolution=tier)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.billed_usd = round(self.billed_usd + tokens, 6)
            self.billed_by_body[digest] += 1
        return digest

    def corrupt_images(self, times: int = 1) -> None:
        """The next `times` image answers carry bytes that are not an image."""
        with self._lock:
            self._corrupt += times

    def calls_per_model(self) -> dict[str, int]:
        """How many requests each model received (failed ones included)."""
        with self._lock:
            return dict(Counter(call.model for call in self.calls))

    def calls_for(self, model: str) -> list[Call]:
        """The requests `model` received, in order."""
        with self._lock:
            return [call for call in self.calls if call.model == model]

    def answer(self, path: str, key: str | None, raw: bytes) -> tuple[int, Body]:
        """The status and JSON body for one request."""
        route = ROUTE.match(path)
        if route is None:
            return 404, _error(404, f"{path} is not found (the fake serves models/{{model}}:generateContent)")
        version, model = route.groups()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return self._logged(Call(model, version, 400, "", 0, False, None), 400, _error(400, "Invalid JSON payload received."))
        prompt, images = self._inputs(body)
        config = _get(body, "generationConfig", "generation_config") or {}
        json_mode = _get(config, "responseMimeType", "response_mime_type") == "application/json"
        image_config = _get(config, "imageConfig", "image_config")
        ratio = _get(image_config, "aspectRatio", "aspect_ratio")
        call = Call(model, version, 200, prompt, len(images), json_mode, ratio, _get(image_config, "imageSize", "image_size"),
                    _get(config, "temperature"))
        if key != self.api_key:
            return self._logged(call, self.bad_key_status, self._bad_key())
        violation = _violation(model, version, config, json_mode)
        if violation is not None:
            return self._logged(call, violation[0], violation[1])
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}] if failure == 429 else []
            return self._logged(call, failure, _error(failure, STATUS_MESSAGES.get(failure, "scripted failure"), details))
        if self.delay_s:
            time.sleep(self.delay_s)
        try:
            answer = self._generate(model, body, config, prompt, images, json_mode)
        except (OSError, ValueError) as error:
            return self._logged(call, 400, _error(400, f"Unable to process input image: {error}"))
        digest = self._bill(model, config, answer, body)
        with self._lock:
            stalled = self._stalls > 0 and digest not in self._stalled
            if stalled:
                self._stalls -= 1
                self._stalled.add(digest)
        if stalled:
            time.sleep(self.stall_s)
        return self._logged(call, 200, answer)

    def _logged(self, call: Call, status: int, answer: Body) -> tuple[int, Body]:
        with self._lock:
            self.calls.append(replace(call, status=status))
        return status, answer

    def _bad_key(self) -> Body:
        """The error body for a wrong or missing key."""
        if self.bad_key_status == 400:
            return _error(400, "API key not valid. Please pass a valid API key.", [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }])
        return _error(self.bad_key_status, "Permission denied: the API key is not authorised for this fake.")

    @staticmethod
    def _inputs(body: Body) -> tuple[str, list[bytes]]:
        """All text of the request's parts, and its inline images' bytes in order."""
        texts: list[str] = []
        images: list[bytes] = []
        for content in _get(body, "contents") or []:
            for part in _get(content, "parts") or []:
                if _get(part, "text") is not None:
                    texts.append(str(part["text"]))
                blob = _get(part, "inlineData", "inline_data")
                if blob is not None and str(_get(blob, "mimeType", "mime_type") or "").startswith("image/"):
                    images.append(_bytes(str(_get(blob, "data") or "")))
        return "\n".join(texts), images

    def _generate(self, model: str, body: Body, config: Body, prompt: str, images: list[bytes], json_mode: bool) -> Body:
        """The 200 answer: a blocked prompt, an image-safety stop, JSON, an image, or text."""
        with self._lock:
            self._served += 1
            serial = self._served
        prompt_tokens = 10 + len(prompt) // 4 + 258 * len(images)
        answer_tokens = 60 if json_mode else 1290  # a short JSON verdict, or one image
        meta = {
            "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": answer_tokens,
                              "totalTokenCount": prompt_tokens + answer_tokens},
            "modelVersion": model,
            "responseId": f"fake-{serial:06d}-{hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]}",
        }
        with self._lock:
            scripted = self._scripted.pop(0) if self._scripted else None
        if scripted is not None:
            return {**scripted, **meta}
        if _has(self.block_words, prompt):
            return {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]}, **meta}
        modalities = [str(item).upper() for item in _get(config, "responseModalities", "response_modalities") or []]
        wants_image = "IMAGE" in modalities or (not json_mode and "image" in model)
        if wants_image and _has(self.image_safety_words, prompt):
            return {"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}], **meta}
        if json_mode:
            schema = _get(config, "responseSchema", "response_schema", "responseJsonSchema", "response_json_schema") or {}
            part: Body = {"text": json.dumps(self._value(schema, "", prompt))}
        elif wants_image:
            data = base64.b64encode(self._image(config, prompt, images)).decode()
            part = {"inlineData": {"mimeType": "image/png", "data": data}}
        else:
            part = {"text": "fake gemini: ok"}
        return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}], **meta}

    def _image(self, config: Body, prompt: str, images: list[bytes]) -> bytes:
        """PNG bytes: the first input image 2x, or a prompt-coloured gradient of the requested aspect and tier."""
        with self._lock:
            corrupt, self._corrupt = self._corrupt > 0, max(0, self._corrupt - 1)
        if corrupt:
            return b"this is not an image"
        if images:
            with Image.open(io.BytesIO(images[0])) as source:
                image = source.convert("RGB")
            scale = min(2.0, MAX_SIDE / max(image.size))
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            return _png(image.resize(size, Image.Resampling.LANCZOS))
        image_config = _get(config, "imageConfig", "image_config")
        ratio = str(_get(image_config, "aspectRatio", "aspect_ratio") or "1:1")
        pixels = self.base_pixels * TIERS.get(str(_get(image_config, "imageSize", "image_size") or "1K"), 1)
        across, down = (int(side) for side in ratio.split(":"))
        width = max(1, round(math.sqrt(pixels * across / down)))
        height = max(1, round(width * down / across))
        digest = hashlib.sha256(prompt.encode()).digest()
        ramp = Image.linear_gradient("L")
        red = ramp.resize((width, height)).point(lambda value: (value + digest[0]) % 256)
        green = ramp.rotate(90).resize((width, height)).point(lambda value: (value + digest[1]) % 256)
        rows, columns = np.indices((height, width))
        weave = (((rows // 2 + columns // 2) % 2) * 48).astype(np.uint8)
        blue = Image.fromarray(weave + digest[2] % 192, "L")
        return _png(Image.merge("RGB", (red, green, blue)))

    def _value(self, schema: Body, name: str, prompt: str) -> Any:
        """A value that validates against `schema` (OpenAPI subset or JSON Schema), deterministic from the prompt."""
        mismatch = _has(self.mismatch_words, prompt)
        options = _get(schema, "anyOf", "any_of")
        if options:
            schema = next((option for option in options if str(_get(option, "type")).upper() != "NULL"), options[0])
        if _get(schema, "enum"):
            return schema["enum"][0]
        declared = _get(schema, "type")
        if isinstance(declared, list):
            declared = next((item for item in declared if str(item).upper() != "NULL"), "")
        kind = str(declared or "").upper()
        if kind == "OBJECT" or _get(schema, "properties"):
            return {key: self._value(sub, key, prompt) for key, sub in (_get(schema, "properties") or {}).items()}
        if kind == "ARRAY":
            if "character" in name.lower():
                return [] if mismatch else sorted(set(NAMES.findall(prompt)))
            return [self._value(_get(schema, "items") or {"type": "STRING"}, name, prompt)]
        if kind in ("NUMBER", "INTEGER"):
            value = 0.2 if mismatch else 0.9
            low, high = _get(schema, "minimum"), _get(schema, "maximum")
            value = max(float(low), value) if low is not None else value
            value = min(float(high), value) if high is not None else value
            return round(value) if kind == "INTEGER" else value
        if kind == "BOOLEAN":
            return not mismatch
        return f"fake judge: the prompt says {mismatch!r}" if mismatch else "fake judge: matches the prompt"
