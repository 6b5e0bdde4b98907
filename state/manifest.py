"""`manifest.json` of an episode: every asset with name, hash, stage, provider, model, params, seed, inputs, cost.

In shared state the manifest is a document every host reads (state/documents.py); the file is its export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reelflow.media.hashing import sha256_file, sha256_unchanged
from reelflow.schemas.assets import AssetRef, InputRef, Manifest, ManifestEntry, TakeInputs
from reelflow.state.documents import document_held, read_document, shared, write_document
from reelflow.state.store import AssetStore, StoredFile, held, materialise, write_atomic

MANIFEST = "manifest.json"


def read_manifest(assets_dir: Path, project: str, episode: int, state_dir: Path | None = None) -> Manifest:
    """The episode's manifest: the file in `assets_dir`, or with `state_dir` in shared state, the shared one."""
    path = assets_dir / MANIFEST
    if state_dir is not None:
        body = read_document(state_dir, "manifest", episode, path)
    else:
        body = path.read_bytes() if path.is_file() else None
    return Manifest(project=project, episode=episode) if body is None else Manifest.model_validate_json(body)


def merge(old: Manifest, rendered: dict[tuple[int, int], list[ManifestEntry]], cut: ManifestEntry | None,
          inputs: dict[tuple[int, int], str] | None = None, seeds: dict[tuple[int, int], int] | None = None) -> Manifest:
    """The old manifest with the entries of every (shot, take) rendered now replaced; other takes kept; inputs named.

    The cut is this run's, or none: a cut an earlier run made no longer stands for the episode. `inputs` are the
    fingerprints of the takes whose clip matches what they are made from now, `seeds` the seeds they were made with;
    a take rendered now without inputs has none recorded.
    """
    keep = [e for e in old.assets + old.intermediates if e.shot is not None and (e.shot, e.take or 1) not in rendered]
    kept = {(t.shot, t.take): t for t in old.takes if (t.shot, t.take) not in rendered}
    fingerprints = {key: t.inputs for key, t in kept.items()} | (inputs or {})
    made_with = {key: t.seed for key, t in kept.items() if t.seed is not None} | (seeds or {})
    entries = keep + [entry for shot_entries in rendered.values() for entry in shot_entries]
    names = {e.sha256: e.name for e in entries if e.name}
    if cut is not None:
        names[cut.sha256] = cut.name
    named_inputs = [
        e.model_copy(update={"inputs": [InputRef(sha256=i.sha256, name=i.name or names.get(i.sha256)) for i in e.inputs]})
        for e in entries
    ]
    order = sorted(named_inputs, key=lambda e: (e.shot or 0, e.take or 1, e.stage, e.name or "", e.sha256))
    if cut is not None:
        cut = cut.model_copy(update={"inputs": [InputRef(sha256=i.sha256, name=names.get(i.sha256)) for i in cut.inputs]})
    return Manifest(
        project=old.project,
        episode=old.episode,
        cut=cut.name if cut else None,
        assets=[e for e in order if e.name] + ([cut] if cut else []),
        intermediates=[e for e in order if not e.name],
        takes=[TakeInputs(shot=shot, take=take, inputs=fingerprints[shot, take], seed=made_with.get((shot, take)))
               for shot, take in sorted(fingerprints)],
    )


def save_merged(state_dir: Path, lock: str, assets_dir: Path, project: str, episode: int,
                change: Callable[[Manifest], Manifest]) -> Path:
    """Write `change` of the manifest as it is now, holding the project lock `lock` (the episode's dailies'): two
    renders of one episode each keep the other's entries."""
    with held(state_dir, lock):
        if not shared(state_dir):
            return write_manifest(assets_dir, change(read_manifest(assets_dir, project, episode)))
        with document_held(state_dir, "manifest", episode):
            manifest = change(read_manifest(assets_dir, project, episode, state_dir))
            path = assets_dir / MANIFEST
            write_document(state_dir, "manifest", episode, manifest.model_dump_json(indent=2).encode(), path)
            return path


def write_manifest(assets_dir: Path, manifest: Manifest) -> Path:
    path = assets_dir / MANIFEST
    write_atomic(path, manifest.model_dump_json(indent=2).encode())
    return path


def restore_take(store: AssetStore, assets_dir: Path, manifest: Manifest, shot: int, take: int) -> None:
    """Write a take's named assets into this checkout from the store where they are missing or changed (a take made on
    another host, or a file removed here); those whose blob the store cannot give intact stay as they are."""
    for entry in manifest.take_assets(shot, take):
        path = assets_dir / str(entry.name)
        if path.is_file() and sha256_unchanged(path) == entry.sha256:
            continue
        stored = StoredFile(sha256=entry.sha256, ext=path.suffix.lstrip(".").lower(), media=entry.media)
        if store.is_intact(stored):
            materialise(store.blob_path(stored.sha256, stored.ext), stored.sha256, path)


def published_clip(assets_dir: Path, manifest: Manifest, shot: int, take: int) -> AssetRef | None:
    """A take's clip from an earlier render, if its named file is still there with the recorded hash."""
    for entry in manifest.take_assets(shot, take):
        if entry.name and entry.name.endswith("_clip.mp4"):
            path = assets_dir / entry.name
            if path.is_file() and sha256_file(path) == entry.sha256:
                return AssetRef(path=path, sha256=entry.sha256, media=entry.media)
    return None
