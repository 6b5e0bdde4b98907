"""What every reelflow page server shares: 127.0.0.1 only, one-line JSON errors, a strict JSON body, no logging.

A page server subclasses `LocalServer` (its state and actions) and `JsonHandler` (its routes: `get` and `post`).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from reelflow.schemas.errors import ReelflowError

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024
Body = TypeVar("Body", bound=BaseModel)


class ErrorAnswer(Exception):
    """A request the server answers with one line of JSON and an error status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_body(model: type[Body], body: bytes) -> Body:
    """A request body as `model`, or a 400 naming the first field it gets wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        raise ErrorAnswer(HTTPStatus.BAD_REQUEST, f"{where}: {error['msg']}") from None


class LocalServer:
    """A page served on 127.0.0.1 (port 0: any free port) in the foreground or a background thread."""

    name = "page-server"

    def __init__(self, port: int, handler: type[JsonHandler]) -> None:
        self.httpd = _HTTPServer((HOST, port), handler, self)
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self) -> str:
        """Serve in a background thread; returns the page's URL."""
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=self.name, daemon=True)
        self.thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C), then release the port. Ctrl-C stops it even where the
        process was started with SIGINT ignored (a shell's background job)."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
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

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: LocalServer) -> None:
        self.app = app
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection mid-response (seeking a video) is no error, and nothing prints."""


class JsonHandler(BaseHTTPRequestHandler):
    """Routes `get(path)` and `post(path)`; any error becomes one line of JSON with its status."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the CLI is the only thing that prints."""

    def do_GET(self) -> None:
        self.respond(self.get)

    def do_POST(self) -> None:
        self.respond(self.post)

    def get(self, path: str) -> None:
        raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def post(self, path: str) -> None:
        raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def respond(self, route: Callable[[str], None]) -> None:
        try:
            self.check_host()
            route(urlsplit(self.path).path)
        except ConnectionError:
            self.close_connection = True
        except ErrorAnswer as exc:
            self.send_error_json(str(exc), exc.status)
        except Exception as exc:
            line = str(exc).splitlines()[0] if str(exc) else ""
            self.send_error_json(line if isinstance(exc, ReelflowError) else f"{type(exc).__name__}: {line}")

    def check_host(self) -> None:
        """Only requests addressed to this server by name: a page elsewhere cannot reach it through DNS rebinding."""
        port = self.server.app.port
        if self.headers.get("Host") not in {f"{HOST}:{port}", f"localhost:{port}"}:
            raise ErrorAnswer(HTTPStatus.FORBIDDEN, "host: requests must be addressed to 127.0.0.1 or localhost")

    def json_body(self) -> bytes:
        """The request's JSON body, at most MAX_BODY bytes."""
        if self.headers.get_content_type() != "application/json":
            raise ErrorAnswer(HTTPStatus.BAD_REQUEST, "Content-Type must be application/json")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY:
            raise ErrorAnswer(HTTPStatus.BAD_REQUEST, f"body: a JSON object of at most {MAX_BODY} bytes is required")
        return self.rfile.read(int(length))

    def send_error_json(self, message: str, status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR) -> None:
        """One line of JSON; the connection closes, so a request body left unread cannot be taken for the next request."""
        self.close_connection = True
        self.send_json({"error": message}, status)

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
