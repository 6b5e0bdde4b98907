"""The dailies server on 127.0.0.1: the review page, its JSON API and the episode's named assets, nothing else."""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from reelflow.schemas.dailies import Dailies, Decision
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder
from reelflow.schemas.names import AssetName
from reelflow.schemas.storyboard import Storyboard
from reelflow.state.dailies import apply_seen_decisions, read_dailies
from reelflow.state.manifest import read_manifest
from reelflow.web.dailies_page import dailies_html, episode_view
from reelflow.web.local_server import ErrorAnswer, JsonHandler, LocalServer, parse_body

BY = "dailies page"
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


def parse_decision(body: bytes) -> DecisionRequest:
    return parse_body(DecisionRequest, body)


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
        raise ErrorAnswer(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"range {header!r} is outside the file's {size} bytes")
    return first, last


class DailiesServer(LocalServer):
    """One episode's dailies page, served on 127.0.0.1 (port 0: any free port) in the foreground or a thread."""

    name = "dailies-server"

    def __init__(self, folder: ProjectFolder, storyboard: Storyboard, port: int = 0) -> None:
        self.folder = folder
        self.storyboard = storyboard
        self.assets_dir = folder.assets_dir(storyboard.episode).resolve()
        super().__init__(port, _Handler)

    def view(self, dailies: Dailies | None = None) -> dict[str, Any]:
        """The page's JSON, read from disk now (or with the dailies just saved)."""
        if dailies is None:
            dailies = read_dailies(self.folder, self.storyboard)
        manifest = read_manifest(self.assets_dir, self.folder.project.code, self.storyboard.episode,
                                 self.folder.state_dir)
        return episode_view(self.folder, self.storyboard, dailies, manifest)

    def decide(self, request: DecisionRequest) -> dict[str, Any]:
        """Apply one reviewer decision to the dailies file and return the new view; refused (409) when the shot changed
        since the page showed it (the request's `version`)."""
        if request.shot not in {shot.shot for shot in self.storyboard.shots}:
            raise ErrorAnswer(HTTPStatus.BAD_REQUEST, f"shot: {request.shot} is not in episode {self.storyboard.episode}")
        seen = {} if request.version is None else {request.shot: request.version}
        try:
            dailies, stale = apply_seen_decisions(self.folder, self.storyboard, {request.shot: request.decision}, seen,
                                                  by=BY, note=request.note)
        except ContractError as exc:
            raise ErrorAnswer(HTTPStatus.CONFLICT, str(exc)) from None
        if stale:
            raise ErrorAnswer(HTTPStatus.CONFLICT, stale[0])
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


class _Handler(JsonHandler):
    def get(self, path: str) -> None:
        review = cast(DailiesServer, self.server.app)
        if path == "/":
            self.send_body(dailies_html(review.view()).encode(), "text/html; charset=utf-8")
        elif path == "/api/episode":
            self.send_json(review.view())
        elif path.startswith("/assets/") and (file := review.asset(unquote(path.removeprefix("/assets/")))):
            self.send_file(file)
        else:
            raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def post(self, path: str) -> None:
        if path != "/api/decision":
            raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")
        review = cast(DailiesServer, self.server.app)
        self.send_json(review.decide(parse_decision(self.json_body())))

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
