"""The pick server on 127.0.0.1: one character's LoRA candidate page, its JSON API and the candidate images, nothing else."""

from __future__ import annotations

import threading
from contextlib import suppress
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field

from reelflow.media.phash import dhash
from reelflow.schemas.characters import Candidate, CandidateManifest
from reelflow.schemas.errors import ContractError, MediaError
from reelflow.state.candidates import candidates_dir, read_candidates, require_candidates, save_selection
from reelflow.web.local_server import ErrorAnswer, JsonHandler, LocalServer, parse_body
from reelflow.web.pick_page import pick_html, pick_view

BY = "pick page"
MAX_FILES = 1000
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class SelectionRequest(BaseModel):
    """The body of `POST /api/selection`: every file the person selected (any count: the page saves work in progress)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    files: list[str] = Field(max_length=MAX_FILES)


def parse_selection(body: bytes) -> SelectionRequest:
    return parse_body(SelectionRequest, body)


class PickServer(LocalServer):
    """One character's candidate pick page, served on 127.0.0.1 (port 0: any free port) in the foreground or a thread."""

    name = "pick-server"

    def __init__(self, root: Path, character: str, port: int = 0) -> None:
        self.root = root
        self.character = character
        self.folder = candidates_dir(root, character).resolve()
        self.hashes: dict[str, int] = {}  # perceptual hash by the candidate's sha256
        self.hash_lock = threading.Lock()
        self.save_lock = threading.Lock()
        super().__init__(port, _Handler)

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
                raise ErrorAnswer(HTTPStatus.BAD_REQUEST, str(exc)) from None
        files = [candidate.file for candidate in manifest.selected()]
        return {"saved": len(files), "files": files}


class _Handler(JsonHandler):
    def get(self, path: str) -> None:
        pick = cast(PickServer, self.server.app)
        if path == "/":
            self.send_body(pick.page().encode(), "text/html; charset=utf-8")
        elif path == "/api/candidates":
            self.send_json(pick.view())
        elif path.startswith("/candidates/") and (file := pick.image(unquote(path.removeprefix("/candidates/")))):
            self.send_body(file.read_bytes(), IMAGE_TYPES[file.suffix.lower()], cache="no-cache")
        else:
            raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def post(self, path: str) -> None:
        if path != "/api/selection":
            raise ErrorAnswer(HTTPStatus.NOT_FOUND, f"not found: {path}")
        self.send_json(cast(PickServer, self.server.app).select(parse_selection(self.json_body())))
