"""A ComfyUI server's HTTP API over httpx: check, upload, queue, poll, download (gpu-path.md D; ComfyUI v0.3.64
`server.py`, `execution.py`).

Every request is short (`timeout_s`): a prompt is waited for by polling `GET /history/{id}` every `poll_s`, never by
one long request, so a proxy's 100 s cut (gpu-path.md G4) never ends a render. The base URL may carry a path prefix
(`http://host:8188/comfy`); paths are joined below it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reelflow.providers.comfyui.object_info import graph_problems
from reelflow.schemas.errors import (
    BadRequest,
    OutcomeUnknown,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    TransportError,
)

NAME = "comfyui"
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class GraphRefused(BadRequest):
    """The server (or its object_info) refuses the graph: a missing model, a bad value, an unknown node."""


class GraphFailed(ProviderError):
    """The graph was accepted but a node raised while running (ComfyUI's `execution_error`)."""

    retryable = False
    billed = False
    kind = "graph_failed"


class PromptLost(OutcomeUnknown):
    """The server no longer knows the prompt (not in its history, not queued): it restarted or dropped it."""


@dataclass(frozen=True)
class OutputFile:
    """One file a node wrote, as `GET /view` takes it."""

    filename: str
    subfolder: str
    type: str


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def refusal(body: dict[str, Any]) -> str:
    """A `POST /prompt` 400 body as one line: one part per node (class, input, value, message), else the error."""
    parts = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        for error in entry.get("errors", []):
            extra = error.get("extra_info") or {}
            subject = " ".join(str(bit) for bit in (extra.get("input_name"), repr(extra["received_value"])
                               if "received_value" in extra else None) if bit)
            detail = f"{error.get('message', '')}: {error.get('details', '')}".rstrip(": ")
            parts.append(f"node {node_id} ({entry.get('class_type')}): {subject + ': ' if subject else ''}{detail}")
    if not parts:
        error = body.get("error") or {}
        if isinstance(error, dict):
            parts.append(f"{error.get('message', 'refused')}: {error.get('details', '')}".rstrip(": "))
        else:
            parts.append(str(error))
    return _one_line(f"{NAME}: " + "; ".join(parts))


def failure(record: dict[str, Any], prompt_id: str) -> GraphFailed:
    """The error of a history record whose status is "error": the failing node, its type and message."""
    for kind, data in (record.get("status") or {}).get("messages", []):
        if kind == "execution_error":
            message = _one_line(data.get("exception_message", "")) or data.get("exception_type", "error")
            return GraphFailed(f"{NAME}: node {data.get('node_id')} ({data.get('node_type')}): {message}",
                               provider=NAME, request_id=prompt_id)
        if kind == "execution_interrupted":
            return GraphFailed(f"{NAME}: node {data.get('node_id')} ({data.get('node_type')}): interrupted",
                               provider=NAME, request_id=prompt_id)
    return GraphFailed(f"{NAME}: prompt {prompt_id} failed without an execution_error", provider=NAME,
                       request_id=prompt_id)


class ComfyClient:
    """One ComfyUI server. `object_info` is fetched once per client."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, poll_s: float = 1.0,
                 deadline_s: float = 1800.0, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_s = poll_s
        self.deadline_s = deadline_s
        self.client_id = uuid.uuid4().hex
        self._http = httpx.Client(headers=headers, timeout=timeout_s)
        self._object_info: dict[str, Any] | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def url(self, path: str) -> str:
        """`path` below the base URL, its prefix kept."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def _send(self, method: str, path: str, *, sent_is_unknown: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, self.url(path), **kwargs)
        except CONNECT_ERRORS as error:
            raise TransportError(f"{NAME}: {method} {path} not sent: {_one_line(error)}", provider=NAME) from error
        except httpx.TimeoutException as error:
            if sent_is_unknown:
                raise OutcomeUnknown(f"{NAME}: {method} {path} timed out after sending", provider=NAME) from error
            raise ProviderTimeout(f"{NAME}: {method} {path} timed out", provider=NAME) from error
        except httpx.HTTPError as error:
            if sent_is_unknown:
                raise OutcomeUnknown(f"{NAME}: {method} {path} lost its answer: {_one_line(error)}",
                                     provider=NAME) from error
            raise TransportError(f"{NAME}: {method} {path} failed: {_one_line(error)}", provider=NAME) from error
        if response.status_code == 429:
            raise RateLimited(f"{NAME}: {method} {path} answered 429", provider=NAME)
        if response.status_code >= 500:
            raise ServerError(f"{NAME}: {method} {path} answered {response.status_code}: "
                              f"{_one_line(response.text[:200])}", provider=NAME)
        if response.status_code >= 400 and not (path == "/prompt" and response.status_code == 400):
            raise BadRequest(f"{NAME}: {method} {path} answered {response.status_code}: "
                             f"{_one_line(response.text[:200])}", provider=NAME)
        return response

    def system_stats(self) -> dict[str, Any]:
        """`GET /system_stats`: versions, RAM and devices."""
        return self._send("GET", "/system_stats").json()

    def object_info(self) -> dict[str, Any]:
        """`GET /object_info`, fetched once per client."""
        if self._object_info is None:
            self._object_info = self._send("GET", "/object_info").json()
        return self._object_info

    def check(self, nodes: dict[str, Any]) -> None:
        """Raise GraphRefused naming every problem the server's object_info finds in `nodes`."""
        problems = graph_problems(nodes, self.object_info())
        if problems:
            raise GraphRefused(f"{NAME}: " + "; ".join(problems), provider=NAME)

    def upload(self, path: Path, name: str) -> str:
        """`POST /upload/image` (overwrite) of a local file under `name`; the name a LoadImage node uses."""
        files = {"image": (name, path.read_bytes(), "image/png" if path.suffix.lower() == ".png" else "image/jpeg")}
        stored = self._send("POST", "/upload/image", files=files, data={"overwrite": "true"}).json()
        return f"{stored['subfolder']}/{stored['name']}" if stored.get("subfolder") else stored["name"]

    def queue(self, nodes: dict[str, Any]) -> str:
        """`POST /prompt`; the prompt id. A refused graph raises GraphRefused naming each node's errors."""
        response = self._send("POST", "/prompt", sent_is_unknown=True,
                              json={"prompt": nodes, "client_id": self.client_id})
        if response.status_code == 400:
            raise GraphRefused(refusal(response.json()), provider=NAME)
        return response.json()["prompt_id"]

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The prompt's history record, or None while it has none (`{}`: queued, running or unknown)."""
        return self._send("GET", f"/history/{prompt_id}").json().get(prompt_id)

    def queued(self, prompt_id: str) -> bool:
        """Whether the prompt is running or pending (`GET /queue`)."""
        queue = self._send("GET", "/queue").json()
        items = queue.get("queue_running", []) + queue.get("queue_pending", [])
        return any(len(item) > 1 and item[1] == prompt_id for item in items)

    def interrupt(self, prompt_id: str) -> None:
        """Stop the prompt: interrupt it if running (`POST /interrupt`), drop it if pending (`POST /queue`)."""
        self._send("POST", "/interrupt", json={"prompt_id": prompt_id})
        self._send("POST", "/queue", json={"delete": [prompt_id]})

    def wait(self, prompt_id: str) -> dict[str, Any]:
        """Poll until the prompt ends; its `outputs`. Errors: GraphFailed, PromptLost, ProviderTimeout (interrupted)."""
        end = time.monotonic() + self.deadline_s
        while True:
            record = self.history(prompt_id)
            if record is None and not self.queued(prompt_id):
                record = self.history(prompt_id)  # it may have finished between the two requests
                if record is None:
                    raise PromptLost(f"{NAME}: prompt {prompt_id} is neither in the history nor queued "
                                     "(the server restarted or dropped it)", provider=NAME, request_id=prompt_id)
            if record is not None:
                if (record.get("status") or {}).get("status_str") == "error":
                    raise failure(record, prompt_id)
                return record.get("outputs", {})
            if time.monotonic() >= end:
                self.interrupt(prompt_id)
                raise ProviderTimeout(f"{NAME}: prompt {prompt_id} did not finish in {self.deadline_s:g} s; "
                                      "interrupted", provider=NAME, request_id=prompt_id)
            time.sleep(self.poll_s)

    def output_files(self, outputs: dict[str, Any], node: str) -> list[OutputFile]:
        """The files node `node` wrote (SaveImage and SaveVideo both list theirs under `images`)."""
        entries = (outputs.get(node) or {}).get("images", [])
        return [OutputFile(entry["filename"], entry.get("subfolder", ""), entry.get("type", "output"))
                for entry in entries]

    def download(self, file: OutputFile, dest: Path) -> Path:
        """`GET /view` of one output file into `dest` (written whole, then renamed)."""
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        response = self._send("GET", "/view", params=params)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        partial.write_bytes(response.content)
        partial.replace(dest)
        return dest
