"""Which take a shot's work goes to: new footage gets a new take, and a take's published files are never written again.

A take's named files are what its reviewer saw and what the cut of an approved take uses, so no render replaces them
with other bytes. A shot whose inputs changed since its take was made renders as the next take; at publishing, a take
whose names already hold other footage (on disk, or as the manifest records the take) is passed over for the next.
A take keeps the seed it was made with (the manifest records it): the next take of a changed shot has the same seed, so
what did not change is still found in the cache; only a retake asks for a new seed.
"""

from __future__ import annotations

from reelflow.media.hashing import sha256_unchanged
from reelflow.schemas.assets import Manifest, ManifestEntry
from reelflow.schemas.names import AssetName
from reelflow.tasks.job import ShotJob
from reelflow.tasks.upgrades import shot_inputs


def at_take(job: ShotJob, take: int) -> ShotJob:
    """The job for another take of its shot, with the same seed."""
    return job.model_copy(update={"take": take, "name": job.name.with_(take=take)})


def as_made(job: ShotJob, manifest: Manifest) -> ShotJob:
    """The job with the seed its take was made with, where the manifest records one."""
    seed = manifest.take_seed(job.shot.shot, job.take)
    return job if seed is None else job.model_copy(update={"seed": seed})


def fresh_take(job: ShotJob, manifest: Manifest) -> ShotJob:
    """The job at its take, unless the manifest records that take as made from other inputs: then at the first take
    after it that is not (same seed). A take never made, or made from these inputs, stays as it is."""
    while (recorded := manifest.take_inputs(job.shot.shot, job.take)) is not None and recorded != shot_inputs(job):
        job = at_take(job, job.take + 1)
    return job


def renamed(entry: ManifestEntry, take: int) -> ManifestEntry:
    """A shot's manifest entry as another take's: its take, and its name's."""
    name = None
    if entry.name is not None:
        parsed = AssetName.parse(entry.name)
        name = parsed.with_(take=take, suffix=parsed.suffix, ext=parsed.ext).format()
    return entry.model_copy(update={"take": take, "name": name})


def clash(job: ShotJob, entries: list[ManifestEntry], manifest: Manifest) -> str | None:
    """Why the job's take cannot take these entries without replacing other bytes (one line), or None when it can:
    the manifest records the take with other named files, or one of their names on disk holds other bytes. A take
    that stopped at its keyframes for review records only some of its files: the rest of the same footage joins them."""
    ours = {entry.name: entry.sha256 for entry in entries if entry.name}
    recorded = {entry.name: entry.sha256 for entry in manifest.take_assets(job.shot.shot, job.take)}
    if any(ours.get(name) != sha256 for name, sha256 in recorded.items()):
        return f"T{job.take:02d} holds other footage"
    for name, sha256 in sorted(ours.items()):
        path = job.assets_dir / name
        if path.is_file() and sha256_unchanged(path) != sha256:
            return f"{name} holds other bytes"
    return None


def publish_take(job: ShotJob, entries: list[ManifestEntry],
                 manifest: Manifest) -> tuple[ShotJob, list[ManifestEntry], str | None]:
    """The job and entries at the first take from the job's whose files these entries can be published as without
    replacing other bytes, and why the job's own take was passed over (None when it was not)."""
    at, moved = job, entries
    why = blocked = clash(job, entries, manifest)
    while blocked is not None:
        at = at_take(at, at.take + 1)
        moved = [renamed(entry, at.take) for entry in entries]
        blocked = clash(at, moved, manifest)
    return at, moved, None if why is None else f"{why}, kept as it is: published as T{at.take:02d}"
