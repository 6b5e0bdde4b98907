"""Settings read from environment variables: numbers (one clear line naming the variable when one is wrong),
REELFLOW_HOME, and where a project's state and blobs live (REELFLOW_STATE_URL, REELFLOW_BLOB_URL)."""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from reelflow.schemas.errors import ContractError


def reelflow_home() -> Path:
    """This machine's reelflow folder: REELFLOW_HOME, else ~/.reelflow."""
    return Path(os.environ.get("REELFLOW_HOME") or Path.home() / ".reelflow").expanduser().absolute()


STATE_URL_VAR, BLOB_URL_VAR = "REELFLOW_STATE_URL", "REELFLOW_BLOB_URL"


def state_url_problem(url: str) -> str | None:
    """Why `url` cannot hold a project's state, or None: a `postgresql://` URL naming a database."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return f"{url!r} must be a postgresql:// URL (leave it out for the project's own SQLite file)"
    if not parts.hostname and "host=" not in parts.query:
        return f"{url!r} names no host"
    return None


def blob_url_problem(url: str) -> str | None:
    """Why `url` cannot hold a project's blobs, or None: `s3://bucket[/prefix]`."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        return f"{url!r} must be s3://bucket or s3://bucket/prefix (leave it out for blobs on local disk)"
    return None


def project_setting(project_root: Path, name: str) -> str | None:
    """One top-level string of the project's project.json (None when missing, or the file unreadable: loading the
    project reports that)."""
    path = project_root / "project.json"
    try:
        stat = path.stat()
    except OSError:
        return None
    value = _settings(path, stat.st_mtime_ns, stat.st_size).get(name)
    return value if isinstance(value, str) and value else None


@lru_cache(maxsize=64)
def _settings(path: Path, mtime_ns: int, size: int) -> dict[str, object]:
    """project.json's top level as it is at `mtime_ns` (read once per change, not once per question)."""
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def state_url(project_root: Path) -> str | None:
    """Where the project's state lives past its own SQLite file: REELFLOW_STATE_URL, else project.json's
    `state_url`; None: `.reelflow/state.db`."""
    url = os.environ.get(STATE_URL_VAR, "").strip() or project_setting(project_root, "state_url")
    if url and (problem := state_url_problem(url)):
        raise ContractError(f"{STATE_URL_VAR}: {problem}")
    return url or None


def blob_url(project_root: Path) -> str | None:
    """Where the project's blobs live past local disk: REELFLOW_BLOB_URL, else project.json's `blob_url`; None:
    `.reelflow/blobs` only."""
    url = os.environ.get(BLOB_URL_VAR, "").strip() or project_setting(project_root, "blob_url")
    if url and (problem := blob_url_problem(url)):
        raise ContractError(f"{BLOB_URL_VAR}: {problem}")
    return url or None


CHECKOUTS_VAR = "REELFLOW_CHECKOUTS"


def checkout_here(project: str) -> str:
    """The project folder a flow run names, as this host holds it: REELFLOW_CHECKOUTS maps the studio's paths to this
    host's checkouts (`/srv/studio=/home/worker/studio`, several separated by commas; the longest match wins); a path
    no mapping names, or one that exists here, is as given."""
    if Path(project).exists():
        return project
    pairs = [pair.split("=", 1) for pair in os.environ.get(CHECKOUTS_VAR, "").split(",") if "=" in pair]
    for studio, here in sorted(pairs, key=lambda pair: -len(pair[0].rstrip("/"))):
        studio = studio.strip().rstrip("/")
        if project == studio or project.startswith(studio + "/"):
            return here.strip().rstrip("/") + project[len(studio):]
    return project


def env_number(name: str, default: float, *, positive: bool = False) -> float:
    """`name` as a finite number (unset or blank: `default`); negative, or zero when `positive`, is an error."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ContractError(f"{name}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ContractError(f"{name}: {raw!r} must be {'more than 0' if positive else '0 or more'}")
    return value


FRAME_SCALE_VAR = "REELFLOW_FRAME_SCALE"


def scaled_sizes(sizes: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """`sizes` times `REELFLOW_FRAME_SCALE` (default 1: the product's sizes), each side even and at least 16 px.

    For benchmarks and tests only: at 1/16 the pictures cost next to nothing, so a run measures orchestration.
    """
    scale = env_number(FRAME_SCALE_VAR, 1.0, positive=True)
    if scale > 1:
        raise ContractError(f"{FRAME_SCALE_VAR}: {scale} must be at most 1")
    if scale == 1:
        return dict(sizes)
    return {key: (max(16, round(w * scale / 2) * 2), max(16, round(h * scale / 2) * 2)) for key, (w, h) in sizes.items()}
