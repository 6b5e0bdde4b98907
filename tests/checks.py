"""What every rendered episode must satisfy, whatever the project: cut length, clips, names, manifest."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

from reelflow.media.probe import probe
from reelflow.schemas.names import AssetName
from reelflow.state.ledger import LedgerRow
from reelflow.web.local_server import LocalServer

MANIFEST_FIELDS = ("name", "sha256", "stage", "provider", "model", "params", "seed", "inputs", "cost_usd",
                   "request_id", "seconds")


def check_episode(root: Path, episode: int) -> dict[str, AssetName]:
    """Assert the rendered episode keeps the contract; returns its named assets by file name."""
    project = json.loads((root / "project.json").read_text())
    board = json.loads((root / "storyboards" / f"storyboard_ep_{episode:03d}.json").read_text())
    fps, shots = project["fps"], board["shots"]
    folder = root / "storyboards" / "assets" / f"ep_{episode:03d}"
    cut_name = f"ep_{episode:03d}.mp4"

    cut = probe(folder / cut_name)
    assert cut.fps == fps
    assert abs(cut.duration_s - sum(s["duration_s"] for s in shots)) <= 0.1 * len(shots)

    named = {p.name: AssetName.parse(p.name) for p in folder.iterdir() if p.name not in {"manifest.json", cut_name}}
    assert all((n.project, n.episode, n.take) == (project["code"], episode, 1) for n in named.values())
    clips = {n.shot: name for name, n in named.items() if n.suffix == "clip"}
    assert sorted(clips) == sorted(s["shot"] for s in shots)
    for shot in shots:
        name = named[clips[shot["shot"]]]
        assert name.character == (shot["characters_in_shot"][0] if shot["characters_in_shot"] else "ENV")
        assert abs(probe(folder / clips[shot["shot"]]).duration_s - shot["duration_s"]) <= 0.1

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["cut"] == cut_name
    entries = {entry["name"]: entry for entry in manifest["assets"]}
    assert set(entries) == set(named) | {cut_name}
    for name, entry in entries.items():
        assert all(field in entry for field in MANIFEST_FIELDS), entry
        assert entry["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return named


def calls_in_flight(rows: list[LedgerRow]) -> int:
    """The most provider calls ever in flight at once, from the ledger's submit and settle times."""
    edges = sorted([(row.submitted_at, 1) for row in rows] + [(row.settled_at or 0.0, -1) for row in rows],
                   key=lambda edge: (edge[0], edge[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def call(server: LocalServer, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to a page server, with the path sent exactly as given (no normalising of `..`)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
