"""The pick server on 127.0.0.1: one character's LoRA candidate page, its JSON API and the candidate images, nothing else."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import suppress
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelflow.media.phash import dhash
from reelflow.schemas.characters import Candidate, CandidateManifest
from reelflow.schemas.errors import ContractError, MediaError, ReelflowError
from reelflow.state.candidates import candidates_dir, read_candidates, require_candidates, save_selection
from reelflow.web.dailies_server import HOST, MAX_BODY, BadRequest
from reelflow.web.pick_page import pick_html, pick_view

BY = "pick page"
MAX_FILES = 1000
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class SelectionRequest(BaseModel):
    """The body of `POST /api/selection`: every file the person selected (any count: the page saves work in progress)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    files: list[str] = Field(max_length=MAX_FILES)


def parse_selection(body: bytes) -> SelectionRequest:
    try:
        return SelectionRequest.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{where}: {error['msg']}") from None


class PickServer:
    """One character's candidate pick page, served on 127.0.0.1 (port 0: any free port) in the foreground or a thread."""

    def __init__(self, root: Path, character: str, port: int = 0) -> None:
        self.root = root
        self.character = character
        self.folder = candidates_dir(root, character).resolve()
        self.hashes: dict[str, int] = {}  # perceptual hash by the candidate's sha256
        self.hash_lock = threading.Lock()
        self.save_lock = threading.Lock()
        self.httpd = _HTTPServer((HOST, port), _Handler, self)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def manifest(self) -> CandidateManifest:
        """The candidate manifest, read from disk now."""
        return require_candidates(self.root, self.character)

    def path(self, candidate: Candidate) -> Path | None:
        """The candidate's image file, if its name is a plain image name inside the candidates folder and it exists."""
        name = candidate.file
        path = self.folder / name
        if Path(name).name != name or path.suffix.lower() not in IMAGE_TYPES or not path.is_file():
            return None
        return path if path.resolve().parent == self.folder else None

    def phashes(self, manifest: CandidateManifest) -> dict[str, int | None]:
        """Each candidate's perceptual hash (None when its image is missing or unreadable), computed once per sha256."""
        found: dict[str, int | None] = {}
        with self.hash_lock:
            for candidate in manifest.candidates:
                if candidate.sha256 not in self.hashes and (path := self.path(candidate)):
                    with suppress(MediaError):
                        self.hashes[candidate.sha256] = dhash(path)
                found[candidate.file] = self.hashes.get(candidate.sha256)
        return found

    def page(self) -> str:
        manifest = self.manifest()
        return pick_html(manifest, self.phashes(manifest))

    def view(self) -> dict[str, Any]:
        """The page's JSON: the manifest read now, each candidate with its perceptual hash."""
        manifest = self.manifest()
        return pick_view(manifest, self.phashes(manifest))

    def image(self, name: str) -> Path | None:
        """The image of the candidate of that name, if the manifest lists it and the file is served (see `path`)."""
        manifest = read_candidates(self.root, self.character)
        candidate = next((c for c in manifest.candidates if c.file == name), None) if manifest else None
        return self.path(candidate) if candidate else None

    def select(self, request: SelectionRequest) -> dict[str, Any]:
        """Save exactly the requested files as the selection; an unknown file is refused (400) and nothing changes."""
        with self.save_lock:
            try:
                manifest = save_selection(self.root, self.character, request.files, by=BY)
            except ContractError as exc:
                raise BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
        files = [candidate.file for candidate in manifest.selected()]
        return {"saved": len(files), "files": files}

    def start(self) -> str:
        """Serve in a background thread; returns the page's URL."""
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="pick-server", daemon=True)
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

    def __enter__(self) -> PickServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], pick: PickServer) -> None:
        self.pick = pick
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection mid-response is no error, and nothing prints."""


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
        port = self.server.pick.port
        if self.headers.get("Host") not in {f"{HOST}:{port}", f"localhost:{port}"}:
            raise BadRequest(HTTPStatus.FORBIDDEN, "host: requests must be addressed to 127.0.0.1 or localhost")

    def get(self, path: str) -> None:
        pick = self.server.pick
        if path == "/":
            self.send_body(pick.page().encode(), "text/html; charset=utf-8")
        elif path == "/api/candidates":
            self.send_json(pick.view())
        elif path.startswith("/candidates/") and (file := pick.image(unquote(path.removeprefix("/candidates/")))):
            self.send_body(file.read_bytes(), IMAGE_TYPES[file.suffix.lower()], cache="no-cache")
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def post(self, path: str) -> None:
        if path != "/api/selection":
            raise BadRequest(HTTPStatus.NOT_FOUND, f"not found: {path}")
        if self.headers.get_content_type() != "application/json":
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Type must be application/json")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"body: a JSON object of at most {MAX_BODY} bytes is required")
        self.send_json(self.server.pick.select(parse_selection(self.rfile.read(int(length)))))

    def send_json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_body(json.dumps(data).encode(), "application/json", status)

    def send_body(self, body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
