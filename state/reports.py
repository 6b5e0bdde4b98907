"""Run reports by flow run id: `.reelflow/reports/<run>.json`, and in S3 where the project keeps its blobs there, so
any machine's CLI reads any run's report."""

from __future__ import annotations

import uuid
from pathlib import Path

from reelflow.schemas.errors import ContractError
from reelflow.state.blobs import BlobStoreError, remote_for, warn
from reelflow.state.store import write_atomic

REPORTS = "reports"


def run_name(run_id: str) -> str:
    """A flow run id as reports are named: the UUID's hyphenated form (its hex form is accepted too)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        raise ContractError(f"run id {run_id!r} is not a flow run id (a UUID, as the Prefect UI shows it)") from None


def report_path(state_dir: Path, run_id: str) -> Path:
    return state_dir / REPORTS / f"{run_name(run_id)}.json"


def save_report(state_dir: Path, run_id: str, data: bytes) -> Path:
    """Keep a run's report here and, where the project keeps blobs in S3, there too; returns the local file."""
    path = report_path(state_dir, run_id)
    write_atomic(path, data)
    remote = remote_for(state_dir)
    if remote is not None:
        try:
            remote.write(remote.report_key(run_name(run_id)), data)
        except BlobStoreError as error:  # the run's work is done and kept: only other hosts miss its report
            warn(f"{error}; the report stays on this host ({path})")
    return path


def read_report(state_dir: Path, run_id: str) -> bytes | None:
    """A run's report: this machine's copy, else the one in S3; None when neither exists."""
    path = report_path(state_dir, run_id)
    if path.is_file():
        return path.read_bytes()
    remote = remote_for(state_dir)
    return None if remote is None else remote.read(remote.report_key(run_name(run_id)))
