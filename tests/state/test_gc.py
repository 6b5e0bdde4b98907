"""`reelflow gc`: what nothing refers to goes (cache rows, local and S3 blobs one object at a time, volume LoRAs), what
a manifest, an approved take, an open request or the LoRA registry names stays; a dry run removes nothing."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelflow.cli.app import app
from reelflow.schemas.assets import InputRef, Manifest, ManifestEntry, MediaInfo, Provenance
from reelflow.schemas.dailies import Dailies, DailiesShot
from reelflow.schemas.errors import ContractError
from reelflow.schemas.load import ProjectFolder, load_project
from reelflow.state.db import database
from reelflow.state.gc import Collected, collect
from reelflow.state.manifest import write_manifest
from reelflow.state.store import AssetStore, CacheRecord, StoredFile

from projects import PROJECT, write_project
from s3_bucket import CODE, RUNPOD_OPERATIONS, S3, recorded

IMAGE = MediaInfo(kind="image", width=1, height=1)
MADE = Provenance(stage="keyframes", stage_version=1, provider="local", model="m")


def put(store: AssetStore, content: bytes, ext: str = "png") -> StoredFile:
    source = store.root.parent / f"made.{ext}"
    source.write_bytes(content)
    sha, _ = store.put(source)
    return StoredFile(sha256=sha, ext=ext, media=IMAGE)


def cached(store: AssetStore, key: str, *outputs: StoredFile) -> None:
    store.save(CacheRecord(key=key, outputs=list(outputs), provenance=MADE))


def entry(stored: StoredFile, name: str | None, shot: int = 1, take: int = 1) -> ManifestEntry:
    return ManifestEntry(**MADE.model_dump(), name=name, shot=shot, take=take, sha256=stored.sha256, media=IMAGE)


def request(folder: ProjectFolder, key: str, status: str) -> None:
    with database(folder.state_dir).write() as sql:
        sql.execute("INSERT INTO requests (cache_key, provider, endpoint, request_id, status, submitted_at) "
                    "VALUES (?, 'fal', 'fal-ai/x', ?, ?, ?)", (key, f"r-{key}", status, time.time()))


def cache_keys(folder: ProjectFolder) -> set[str]:
    return {row["cache_key"] for row in database(folder.state_dir).rows("SELECT cache_key FROM cache")}


def local_blobs(folder: ProjectFolder) -> set[str]:
    return {path.name.split(".")[0] for path in (folder.state_dir / "blobs").glob("*/*")}


@pytest.fixture
def collectable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ProjectFolder, dict[str, StoredFile]]:
    """A project whose episode 1 approved shot 1's take, with a row of each kind; nothing is recent (no grace)."""
    monkeypatch.setenv("REELFLOW_GC_GRACE_S", "0")
    folder = load_project(write_project(tmp_path / "proj", project=PROJECT | {"code": CODE}))
    store = AssetStore(folder.state_dir)
    blobs = {name: put(store, f"{name} bytes".encode()) for name in
             ("clip", "keyframe", "pending", "orphan", "loose", "weights", "candidate", "input")}
    for name in ("clip", "keyframe", "pending", "orphan"):
        cached(store, f"k-{name}", blobs[name])
    request(folder, "k-pending", "pending")
    request(folder, "k-orphan", "completed")
    clip = entry(blobs["clip"], "LEV_EP001_SH01_T01_clip.mp4").model_copy(
        update={"inputs": [InputRef(sha256=blobs["input"].sha256)]})
    write_manifest(folder.assets_dir(1), Manifest(project=CODE, episode=1, assets=[clip],
                                                  intermediates=[entry(blobs["keyframe"], None)]))
    approved = DailiesShot(shot=1, status="approved", take=1, approved_take=1)
    folder.dailies_path(1).write_text(Dailies(project=CODE, episode=1, shots=[approved]).model_dump_json())
    (folder.root / "visual" / "lora_candidates" / "ANA").mkdir(parents=True)
    (folder.root / "visual" / "lora_registry.json").write_text(json.dumps(
        {"characters": {"ANA": [{"base_model": "flux-2", "path": "visual/loras/ana.safetensors",
                                 "sha256": blobs["weights"].sha256}]}}))
    (folder.root / "visual" / "lora_candidates" / "ANA" / "manifest.json").write_text(json.dumps(
        {"character": "ANA", "candidates": [{"sha256": blobs["candidate"].sha256}]}))
    return folder, blobs


def test_gc_keeps_what_is_referred_to_and_a_dry_run_removes_nothing(
        s3: S3, collectable: tuple[ProjectFolder, dict[str, StoredFile]]) -> None:
    folder, blobs = collectable
    store = AssetStore(folder.state_dir)
    assert store.remote is not None
    rows, local, remote = cache_keys(folder), local_blobs(folder), s3.keys()
    freed = 2 * sum(len(f"{name} bytes") for name in ("orphan", "loose"))

    sent = recorded(store.remote._s3)
    expected = Collected(dry_run=True, cache_rows=1, blobs=2, remote_blobs=2, freed_bytes=freed)
    assert collect(folder, dry_run=True) == expected
    assert (cache_keys(folder), local_blobs(folder), s3.keys()) == (rows, local, remote)
    assert sent == ["ListObjectsV2"]

    assert collect(folder) == Collected(**asdict(expected) | {"dry_run": False})
    gone = {blobs["orphan"].sha256, blobs["loose"].sha256}
    assert cache_keys(folder) == rows - {"k-orphan"}  # the open request's row stays, outputs unreferenced or not
    assert local_blobs(folder) == local - gone  # the approved take's, its input, the LoRA's and the candidate's stay
    assert s3.keys() == {key for key in remote if key.rsplit("/", 1)[-1].split(".")[0] not in gone}
    assert sent.count("DeleteObject") == 2 and set(sent) <= RUNPOD_OPERATIONS  # one by one: no DeleteObjects

    assert collect(folder) == Collected(dry_run=False)  # nothing left to collect


def test_an_approved_take_the_manifest_lacks_stops_gc(collectable: tuple[ProjectFolder, dict[str, StoredFile]]) -> None:
    folder, _ = collectable
    approved = [DailiesShot(shot=1, status="approved", take=1, approved_take=1),
                DailiesShot(shot=2, status="approved", take=3, approved_take=3)]
    folder.dailies_path(1).write_text(Dailies(project=CODE, episode=1, shots=approved).model_dump_json())
    before = local_blobs(folder), cache_keys(folder)
    with pytest.raises(ContractError, match="^dailies_ep_001.json: shot 2 take T03 is approved but the episode's "
                                            "manifest.json does not list it; gc removes nothing$"):
        collect(folder)
    assert (local_blobs(folder), cache_keys(folder)) == before


def test_what_was_made_in_the_grace_period_stays(collectable: tuple[ProjectFolder, dict[str, StoredFile]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = collectable
    monkeypatch.delenv("REELFLOW_GC_GRACE_S")  # a day: a render still running has written no manifest yet
    assert collect(folder) == Collected(dry_run=False)


class Volume:
    """A network volume's LoRA folder in memory."""

    def __init__(self, files: dict[str, int]) -> None:
        self.held, self.deleted = dict(files), []

    def files(self, folder: str) -> dict[str, int]:
        assert folder == "models/loras"
        return dict(self.held)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        del self.held[key.removeprefix("models/loras/")]


def test_volume_loras_no_registry_entry_names_are_deleted_one_by_one(
        collectable: tuple[ProjectFolder, dict[str, StoredFile]]) -> None:
    folder, blobs = collectable
    stale = f"reelflow-{'e' * 64}.safetensors"
    volume = Volume({f"reelflow-{blobs['weights'].sha256}.safetensors": 10, stale: 300, "someone-else.safetensors": 5,
                     f"sub/reelflow-{'f' * 64}.safetensors": 7})
    assert collect(folder, dry_run=True, volume=volume).volume_files == 1 and volume.deleted == []
    done = collect(folder, volume=volume)
    assert (done.volume_files, volume.deleted) == (1, [f"models/loras/{stale}"])
    assert done.freed_bytes == 300 + len("orphan bytes") + len("loose bytes")  # no S3 here: local blobs only


def test_the_gc_command(collectable: tuple[ProjectFolder, dict[str, StoredFile]]) -> None:
    folder, _ = collectable
    runner = CliRunner()
    dry = runner.invoke(app, ["gc", str(folder.root), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {"dry_run": True, "cache_rows": 1, "blobs": 2, "remote_blobs": 0,
                                      "volume_files": 0, "freed_bytes": len("orphan bytes") + len("loose bytes")}
    done = runner.invoke(app, ["gc", str(folder.root)])
    assert (done.exit_code, done.stdout) == (0, "removed 1 cache row(s), 2 local blob(s), 0 blob(s) in S3, 0 volume "
                                                "file(s): 23 B freed\n")
    (folder.assets_dir(1) / "manifest.json").write_text("{not json")
    broken = runner.invoke(app, ["gc", str(folder.root)])
    assert (broken.exit_code, broken.stderr) == (2, "error: storyboards/assets/ep_001/manifest.json: unreadable; gc "
                                                    "removes nothing\n")
