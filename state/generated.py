"""Files reelflow writes among a project's inputs (`visual/`: candidates, their manifest, training sets, weights, the
LoRA registry), each recorded with its sha256 as it is written, so a checkout can tell them from a person's edits."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

from reelflow.media.hashing import sha256_unchanged
from reelflow.schemas.assets import AssetRef
from reelflow.state.db import FILE_NAME, database, is_shared
from reelflow.state.store import materialise, write_atomic

STATE_DIR = ".reelflow"


def _relative(root: Path, target: Path) -> str:
    """`target`'s path in the project at `root`, as git names it (a ValueError where it lies outside)."""
    return Path(os.path.abspath(target)).relative_to(os.path.abspath(root)).as_posix()


def write_generated(root: Path, target: Path, content: bytes | AssetRef) -> Path:
    """Write `content` (bytes, atomically; or a stored blob, materialised) to `target` inside the project at `root`,
    and record its sha256 there as reelflow's own output."""
    relative = _relative(root, target)
    if isinstance(content, AssetRef):
        materialise(content.path, content.sha256, target)
        sha256 = content.sha256
    else:
        write_atomic(target, content)
        sha256 = hashlib.sha256(content).hexdigest()
    # Not durable: a record lost with the machine's power only makes the file count as a person's again.
    with database(Path(root) / STATE_DIR).write(durable=False) as sql:
        sql.execute(
            "INSERT INTO generated (path, sha256, at) VALUES (?, ?, ?) "
            "ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, at = excluded.at",
            (relative, sha256, time.time()),
        )
    return target


def generated_unchanged(root: Path, paths: Iterable[str]) -> set[str]:
    """Those of `paths` (relative to the project) that hold exactly what reelflow last wrote there; a file a person
    changed, replaced or removed since is not among them."""
    wanted = set(paths)
    state_dir = Path(root) / STATE_DIR
    if not wanted or not (is_shared(state_dir) or (state_dir / FILE_NAME).is_file()):
        return set()  # nothing was ever recorded, and a checkout's question creates no state folder
    recorded = {row["path"]: row["sha256"] for row in database(Path(root) / STATE_DIR).rows("SELECT path, sha256 FROM generated")}
    ours = set()
    for path in wanted & recorded.keys():
        file = Path(root) / path
        if file.is_file() and not file.is_symlink() and sha256_unchanged(file) == recorded[path]:
            ours.add(path)
    return ours
