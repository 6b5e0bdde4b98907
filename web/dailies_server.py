"""The dailies server on 127.0.0.1: the review page, its JSON API and the episode's named assets, nothing else."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelflow.schemas.dailies import Dailies, Decision
from reelflow.schemas.errors import ContractError, ReelflowError
from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.names import AssetName
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import apply_seen_decisions, read_dailies
from reelflow.state.manifest import read_manifest
from reelflow.web.dailies_page import dailies_html, episode_view

HOST = "127.0.0.1"
BY = "dailies page"
MAX_BODY = 64 * 1024
CHUNK = 256 * 1024
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class DecisionRequest(BaseModel):
    """The body of `POST /api/decision`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    shot: int
    decision: Decision
    note: str | None = Field(None, max_length=4000)
    version: int | None = Field(None, ge=0, description="the shot's dailies version the page showed; stale: 409")


class BadRequest(Exception):
    """A request the server answers with one line of JSON and an error status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_decision(body: bytes) -> DecisionRequest:
    try:
        return DecisionRequest.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{where}: {error['msg']}") from None


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single `Range: bytes=` request; None serves the whole file."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:
        first, last = max(size - int(match[2]), 0), size - 1
    else:
        first, last = int(match[1]), min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or first > last:
        raise BadRequest(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"range {header!r} is outside the file's {size} bytes")
    return first, last


class DailiesServer:
    """One episode's dailies page, served on 127.0.0.1 (port 0: any free port) in the foreground or a thread."""

    def __init__(self, folder: ProjectFolder, storyboard: Storyboard, port: int = 0) -> None:
        self.folder = folder
        self.storyboard = storyboard
        self.assets_dir = folder.assets_dir(storyboard.episode).resolve()
        self.httpd = _HTTPServer((HOST, port), _Handler, self)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def view(self, dailies: Dailies | None = None) -> dict[str, Any]:
        """The page's JSON, read from disk now (or with the dailies just saved)."""
        if dailies is None:
            dailies = read_dailies(self.folder, self.storyboard)
        manifest = read_manifest(self.assets_dir, self.folder.project.code, self.storyboard.episode)
        return episode_view(self.folder, self.storyboard, dailies, manifest)

    def decide(self, request: DecisionRequest) -> dict[str, Any]:
        """Apply one reviewer decision to the dailies file and return the new view; refused (409) when the shot changed
        since the page showed it (the request's `version`)."""
        if request.shot not in {shot.shot for shot in self.storyboard.shots}:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"shot: {request.shot} is not in episode {self.storyboard.episode}")
        seen = {} if request.version is None else {request.shot: request.version}
        try:
            dailies, stale = apply_seen_decisions(self.folder, self.storyboard, {request.shot: request.decision}, seen,
                                                  by=BY, note=request.note)
        except ContractError as exc:
            raise BadRequest(HTTPStatus.CONFLICT, str(exc)) from None
        if stale:
            raise BadRequest(HTTPStatus.CONFLICT, stale[0])
        return self.view(dailies)

    def asset(self, name: str) -> Path | None:
        """The episode's asset file of that plain name, if the name is a valid asset name and the file exists."""
        if not name or "/" in name or "\\" in name or ".." in name:
            return None
        try:
            parsed = AssetName.parse(name)
        except ContractError:
            return None
        path = self.assets_dir / name
        if parsed.ext not in CONTENT_TYPES or not path.is_file() or path.resolve().parent != self.assets_dir:
            return None
        return path

    def start(self) -> str:
        """Serve in a background thread; returns the page's URL."""
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="dailies-server", daemon=True)
        self.thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C), then release the port."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        """Stop a server started with `start` and release the port."""
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join()
            self.thread = None
        self.httpd.server_close()

    def __enter__(self) -> DailiesServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], review: DailiesServer) -> None:
        self.review = review
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection mid-response (seeking a video) is no error, and nothing prints."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the CLI is the only thing that prints."""

    def do_GET(self) -> None:
        self.respond(self.get)

    def do_POST(self) -> None:
        self.respond(self.post)

    def respond(self, route: Callable[[str], None]) -> None:
        try:
            self.check_host()
            route(urlsplit(self.path).path)
        except ConnectionError:
            self.close_connection = True
        except BadRequest as exc:
            self.send_error_json(str(exc), exc.status)
        except Exception as exc:
            line = str(exc).splitlines()[0] if str(exc) else ""
            self.send_error_json(line if isinstance(exc, ReelflowError) else f"{type(exc).__name__}: {line}")

    def send_error_json(self, message: str, status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """One line of JSON; the connection closes, so a request body left unread cannot be taken for the next request."""
        self.close_connection = True
        self.send_json({"error": message}, status)

    def check_host(self) -> None:
        """Only requests addressed to this server by name: a page elsewhere cannot reach it through DNS rebinding."""
        port = self.server.review.port
        if self.headers.get("Host") not in {f"{HOST}:{port}", f"localhost:{port}"}:
            raise BadRequest(HTTPStatus.FORBIDDEN, "host: requests must be addressed to 127.0.0.1 or localhost")

    def get(self, path: str) -> None:
        review = self.server.review
        if path == "/":
            self.send_body(dailies_html(review.view()).encode(), "text/html; charset=utf-8")
        elif path == "/api/episode":
            self.send_json(review.view())
        elif path.startswith("/assets/") and (file := review.asset(unquote(path.removeprefix("/assets/")))):
            self.send_file(file)
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def post(self, path: str) -> None:
        if path != "/api/decision":
            raise BadRequest(HTTPStatus.NOT_FOUND, f"not found: {path}")
        if self.headers.get_content_type() != "application/json":
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Type must be application/json")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"body: a JSON object of at most {MAX_BODY} bytes is required")
        self.send_json(self.server.review.decide(parse_decision(self.rfile.read(int(length)))))

    def send_json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_body(json.dumps(data).encode(), "application/json", status)

    def send_body(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_file(self, path: Path) -> None:
        """The file, or the byte range asked for (video seeking), with its media type."""
        size = path.stat().st_size
        span = byte_range(self.headers.get("Range"), size)
        first, last = span or (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
        self.send_header("Content-Type", CONTENT_TYPES[path.suffix.lstrip(".")])
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-cache")
        if span:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        with path.open("rb") as handle:
            handle.seek(first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
