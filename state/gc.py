"""`reelflow gc`: remove the cache rows, blobs (local and in S3) and volume LoRA files nothing refers to any more.

Kept: every blob an episode's manifest names (assets, intermediates, the cut, and their inputs), so every take the
dailies approve (a manifest that lacks an approved take stops the collection); every sha256 the LoRA registry and the
candidate manifests mention; the cache rows of requests still open (submitting or pending), and of anything made in
the last REELFLOW_GC_GRACE_S seconds (a day by default: a render still running has written no manifest yet). A cache
row goes when none of its outputs is kept; then every blob no remaining row or reference names, one object at a time
where the store has no bulk delete (a RunPod volume); and the volume's `reelflow-<sha256>.safetensors` LoRAs no
registry entry names (a render puts back one it needs).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from reelflow.schemas.dailies import Dailies
from reelflow.schemas.env import env_number
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder
from reelflow.state.blobs import remote_for
from reelflow.state.db import StateDatabase, database
from reelflow.state.documents import read_document, shared
from reelflow.state.loras import REGISTRY, read_registry
from reelflow.state.manifest import MANIFEST, read_manifest

GRACE_VAR = "REELFLOW_GC_GRACE_S"
GRACE_S = 86400.0
OPEN = ("submitting", "pending")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
BLOB_NAME = re.compile(r"^([0-9a-f]{64})\.[0-9a-z]+$")
VOLUME_LORA = re.compile(r"^reelflow-([0-9a-f]{64})\.safetensors$")
LORAS = "models/loras"
EPISODE = re.compile(r"_(\d+)(?:\.json)?$")


class VolumeFiles(Protocol):
    """A network volume's files (providers/runpod/volume.py)."""

    def files(self, folder: str) -> dict[str, int]: ...

    def delete(self, key: str) -> None: ...


@dataclass
class Collected:
    """What a collection removed (or, in a dry run, would remove), and the bytes that frees."""

    dry_run: bool
    cache_rows: int = 0
    blobs: int = 0
    remote_blobs: int = 0
    volume_files: int = 0
    freed_bytes: int = 0


def _hashes_in(value: Any) -> Iterator[str]:
    """Every sha256 a JSON value mentions, at any depth."""
    if isinstance(value, str) and SHA256.match(value):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _hashes_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _hashes_in(item)


def _json(path: Path, root: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path.relative_to(root)}: unreadable ({' '.join(str(exc).split())}); gc removes nothing") from None


def _episodes(folder: ProjectFolder) -> set[int]:
    """Every episode with a storyboard, a manifest or dailies, in the checkout or in shared state."""
    paths = [*folder.storyboard_paths(), *folder.storyboards_dir.glob("dailies_ep_*.json"),
             *(path.parent for path in folder.storyboards_dir.glob(f"assets/ep_*/{MANIFEST}"))]
    episodes = {int(match.group(1)) for path in paths if (match := EPISODE.search(path.name))}
    if shared(folder.state_dir):
        episodes |= {int(row["episode"]) for row in database(folder.state_dir).rows("SELECT episode FROM documents")}
    return episodes


def _approved(folder: ProjectFolder, episode: int) -> list[tuple[int, int]]:
    """The (shot, take) pairs the episode's dailies approve."""
    path = folder.dailies_path(episode)
    body = read_document(folder.state_dir, "dailies", episode, path)
    if body is None:
        return []
    try:
        dailies = Dailies.model_validate_json(body)
    except ValueError:
        raise ContractError(f"{path.name}: unreadable; gc removes nothing") from None
    return [(shot.shot, shot.approved_take) for shot in dailies.shots if shot.approved_take]


def _manifest_hashes(folder: ProjectFolder, episode: int) -> set[str]:
    """The sha256 of every entry of the episode's manifest and of their inputs; every approved take must be there."""
    assets_dir = folder.assets_dir(episode)
    try:
        manifest = read_manifest(assets_dir, folder.project.code, episode, folder.state_dir)
    except ValueError:
        raise ContractError(f"{(assets_dir / MANIFEST).relative_to(folder.root)}: unreadable; gc removes nothing") from None
    for shot, take in _approved(folder, episode):
        if not manifest.take_entries(shot, take):
            raise ContractError(f"{folder.dailies_path(episode).name}: shot {shot} take T{take:02d} is approved but the "
                                f"episode's {MANIFEST} does not list it; gc removes nothing")
    entries = manifest.assets + manifest.intermediates
    return {entry.sha256 for entry in entries} | {ref.sha256 for entry in entries for ref in entry.inputs}


def referenced(folder: ProjectFolder) -> set[str]:
    """Every sha256 the project refers to: its episodes' manifests, its LoRA registry, its candidate manifests and its
    previz manifests (a previz made again would be paid again)."""
    root = folder.root
    hashes = {sha for episode in _episodes(folder) for sha in _manifest_hashes(folder, episode)}
    previz = sorted(root.glob("previz/ep_*/previz_manifest.json"))
    for path in [root / REGISTRY, *sorted(root.glob(f"visual/lora_candidates/*/{MANIFEST}")), *previz]:
        if path.is_file():
            hashes.update(_hashes_in(_json(path, root)))
    return hashes | _registered_weights(root)


def _registered_weights(root: Path) -> set[str]:
    """The sha256 of every registry entry's weights (current and retired)."""
    return {entry.sha256 for entry in read_registry(root).entries() if entry.sha256}


def _outputs(record: str) -> set[str] | None:
    """The sha256 of a cache record's outputs; None when the record cannot be read (it is kept)."""
    try:
        return {str(output["sha256"]) for output in json.loads(record)["outputs"]}
    except (ValueError, KeyError, TypeError):
        return None


def _stale_rows(db: StateDatabase, keep: set[str], before: float) -> tuple[list[str], set[str]]:
    """The cache rows to remove, and the outputs of those that stay."""
    open_keys = {row["cache_key"] for row in db.rows(
        f"SELECT DISTINCT cache_key FROM requests WHERE status IN ({', '.join('?' * len(OPEN))})", OPEN)}
    stale, kept = [], set()
    for row in db.rows("SELECT cache_key, record, created_at FROM cache"):
        outputs = _outputs(str(row["record"]))
        if outputs is None:
            continue
        if row["cache_key"] in open_keys or row["created_at"] >= before or outputs & keep:
            kept |= outputs
        else:
            stale.append(str(row["cache_key"]))
    return stale, kept


def _remove_rows(db: StateDatabase, keys: list[str], before: float) -> int:
    """Delete the rows one by one, each only while it is still old and has no open request."""
    removed = 0
    with db.write() as sql:
        for key in keys:
            removed += sql.execute(
                "DELETE FROM cache WHERE cache_key = ? AND created_at < ? AND NOT EXISTS (SELECT 1 FROM requests "
                f"WHERE requests.cache_key = cache.cache_key AND requests.status IN ({', '.join('?' * len(OPEN))}))",
                (key, before, *OPEN),
            ).rowcount
    return removed


def _blob_sha(name: str) -> str | None:
    match = BLOB_NAME.match(name)
    return match.group(1) if match else None


def collect(folder: ProjectFolder, *, dry_run: bool = False, volume: VolumeFiles | None = None) -> Collected:
    """Remove (with `dry_run`: count) what nothing refers to: cache rows, local and S3 blobs, and `volume`'s LoRAs."""
    before = time.time() - env_number(GRACE_VAR, GRACE_S)
    done = Collected(dry_run=dry_run)
    keep = referenced(folder)
    db = database(folder.state_dir)
    stale, outputs = _stale_rows(db, keep, before)
    done.cache_rows = len(stale) if dry_run else _remove_rows(db, stale, before)
    keep |= outputs

    for path in sorted((folder.state_dir / "blobs").glob("*/*")):
        sha = _blob_sha(path.name)
        if sha is None or sha in keep or path.parent.name != sha[:2]:
            continue
        try:
            status = path.stat()
        except FileNotFoundError:  # removed meanwhile
            continue
        if status.st_mtime >= before:
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        done.blobs += 1
        done.freed_bytes += status.st_size if status.st_nlink == 1 else 0  # a linked asset still holds its bytes

    remote = remote_for(folder.state_dir)
    if remote is not None:
        for item in list(remote.objects("blobs")):
            sha = _blob_sha(PurePosixPath(item.key).name)
            if sha is None or sha in keep or item.modified >= before:
                continue
            if not dry_run:
                remote.delete(item.key)
            done.remote_blobs += 1
            done.freed_bytes += item.size

    if volume is not None:
        weights = _registered_weights(folder.root)
        for name, size in sorted(volume.files(LORAS).items()):
            match = VOLUME_LORA.match(name)
            if match is None or match.group(1) in weights:
                continue
            if not dry_run:
                volume.delete(f"{LORAS}/{name}")
            done.volume_files += 1
            done.freed_bytes += size
    return done
