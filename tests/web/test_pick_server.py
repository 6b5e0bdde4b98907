"""The pick server without a browser: the page, the candidates API with hashes, image serving, saving the selection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelflow.media.phash import near_duplicates
from reelflow.schemas.characters import CandidateManifest
from reelflow.state.candidates import candidates_dir, manifest_path
from reelflow.web.pick_server import PickServer

from candidates_fixture import HOSTILE, TWINS, make_candidates
from checks import call

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def manifest(tmp_path: Path) -> CandidateManifest:
    return make_candidates(tmp_path)


@pytest.fixture
def server(tmp_path: Path, manifest: CandidateManifest) -> Iterator[PickServer]:
    """A server on the test's own candidates, for tests that change them."""
    with PickServer(tmp_path, manifest.character) as pick:
        yield pick


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PickServer]:
    """One server for the tests that change nothing (stopping a server takes half a second)."""
    root = tmp_path_factory.mktemp("pick")
    make_candidates(root)
    with PickServer(root, "JINX") as pick:
        yield pick


def read_selected(server: PickServer) -> list[str]:
    saved = CandidateManifest.model_validate_json(manifest_path(server.root, "JINX").read_bytes())
    return [c.file for c in saved.selected()]


def test_the_page_shows_every_candidate_as_a_card_with_its_text_escaped(shared: PickServer) -> None:
    status, headers, body = call(shared, "GET", "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert shared.url == f"http://127.0.0.1:{shared.port}/"
    for candidate in shared.manifest().candidates:
        assert f'data-file="{candidate.file}"' in page and f'<img src="/candidates/{candidate.file}"' in page
    assert page.count('class="card"') == 20 and 'aria-pressed="false"' in page
    for id_ in ("filter-angle", "filter-location", "filter-expression", "sort", "count", "diversity", "duplicates",
                "save", "status"):
        assert f'id="{id_}"' in page
    assert HOSTILE not in page and "alert(1)" in page  # shown as text in the cards and as escaped JSON
    assert page.count("<script") == 2 and "http://" not in page and "https://" not in page


def test_the_api_gives_the_manifest_with_a_hash_per_file(server: PickServer, manifest) -> None:
    status, headers, body = call(server, "GET", "/api/candidates")
    view = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert (view["character"], view["trigger"], len(view["candidates"])) == ("JINX", "jinx_rf", 20)
    assert view["limits"] == {"selection": [15, 25], "backgrounds": 5, "expressions": 5, "angles": 3,
                              "near_duplicate_bits": 5, "targets": {"wardrobes": [3, 5], "expressions": [5, 7]}}
    assert [c["wardrobe"] for c in view["candidates"][:4]] == ["oilskin", "suit", "coveralls", "oilskin"]
    hashes = {c["file"]: int(c["phash"], 16) for c in view["candidates"]}
    assert all(len(c["phash"]) == 16 for c in view["candidates"])
    twins = tuple(manifest.candidates[i].file for i in TWINS)
    assert [pair[:2] for pair in near_duplicates(hashes)] == [twins]
    assert len(server.hashes) == 20  # one per sha256, kept
    (candidates_dir(server.root, "JINX") / twins[0]).unlink()
    assert json.loads(call(server, "GET", "/api/candidates")[2])["candidates"][TWINS[0]]["phash"] == f"{hashes[twins[0]]:016x}"


def test_only_candidate_images_are_served(server: PickServer, manifest) -> None:
    folder = candidates_dir(server.root, "JINX")
    first = manifest.candidates[0].file
    status, headers, body = call(server, "GET", f"/candidates/{first}")
    assert (status, headers["Content-Type"], body) == (200, "image/png", (folder / first).read_bytes())
    (folder / "stray.png").write_bytes((folder / first).read_bytes())
    (server.root / "visual" / "outside.png").write_bytes(b"outside")
    for path in ("/candidates/../manifest.json", "/candidates/manifest.json", "/candidates/%2e%2e%2fmanifest.json",
                 "/candidates/..%2f..%2foutside.png", "/candidates/stray.png", "/candidates/", "/candidates/JINX_99.png",
                 "/manifest.json", f"/candidates/{first}/x"):
        status, headers, body = call(server, "GET", path)
        assert (status, headers["Content-Type"]) == (404, "application/json"), path
        assert json.loads(body)["error"] == f"not found: {path}"
    assert call(server, "GET", "/", headers={"Host": "attacker.example:80"})[0] == 403


def test_a_selection_is_saved_exactly(server: PickServer, manifest) -> None:
    files = [manifest.candidates[i].file for i in (5, 0, 17)]
    status, _, body = call(server, "POST", "/api/selection", json.dumps({"files": files}).encode(), JSON)
    assert (status, json.loads(body)) == (200, {"saved": 3, "files": sorted(files)})
    saved = CandidateManifest.model_validate_json(manifest_path(server.root, "JINX").read_bytes())
    assert [c.file for c in saved.selected()] == sorted(files) and saved.selected_by == "pick page" and saved.selected_at
    status, _, body = call(server, "POST", "/api/selection", b'{"files": []}', JSON)
    assert (status, json.loads(body)) == (200, {"saved": 0, "files": []})
    assert read_selected(server) == []


@pytest.mark.parametrize(("body", "headers", "error"), [
    (b"not json", JSON, "body: Invalid JSON"),
    (b'["JINX_01.png"]', JSON, "body: Input should be an object"),
    (b'{"files": "JINX_01.png"}', JSON, "files: Input should be a valid array"),
    (b'{"files": ["JINX_01.png", 3]}', JSON, "files.1: Input should be a valid string"),
    (b'{"files": [], "by": "me"}', JSON, "by: Extra inputs are not permitted"),
    (b'{"files": ["JINX_01.png", "../manifest.json"]}', JSON, "pick page: ../manifest.json: not a candidate of JINX"),
    (b'{"files": ["JINX_01.png"]}', {"Content-Type": "text/plain"}, "Content-Type must be application/json"),
    (b"", JSON, "body: a JSON object of at most 65536 bytes is required"),
    (b'{"files": ["' + b"x" * 70_000 + b'"]}', JSON, "body: a JSON object of at most 65536 bytes is required"),
])
def test_a_bad_body_is_400_with_one_line_and_changes_nothing(
    shared: PickServer, body: bytes, headers: dict[str, str], error: str
) -> None:
    before = manifest_path(shared.root, "JINX").read_bytes()
    status, answer_headers, data = call(shared, "POST", "/api/selection", body, headers)
    assert (status, answer_headers["Content-Type"]) == (400, "application/json")
    assert data.count(b"\n") == 0
    message = json.loads(data)["error"]
    assert message.startswith(error) and "\n" not in message
    assert manifest_path(shared.root, "JINX").read_bytes() == before
    assert call(shared, "POST", "/api/candidates", b'{"files": []}', JSON)[0] == 404
